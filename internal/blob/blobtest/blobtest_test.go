package blobtest_test

import (
	"runtime"
	"testing"

	"github.com/volgw/volgw/internal/blob/blobtest"
)

// TestServerCPUTime: a running versitygw reports the CPU it has used
// (starting it and creating the bucket took some), a stopped one none,
// and a restarted one its new process's.
func TestServerCPUTime(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux reports a process's CPU time here")
	}
	srv := blobtest.StartVersityGW(t)
	if d, ok := srv.CPUTime(); !ok || d <= 0 {
		t.Fatalf("running: CPUTime = %v, %v; want some, true", d, ok)
	}
	srv.Stop()
	if d, ok := srv.CPUTime(); ok {
		t.Fatalf("stopped: CPUTime = %v, %v; want false", d, ok)
	}
	srv.Restart()
	if d, ok := srv.CPUTime(); !ok || d < 0 {
		t.Fatalf("restarted: CPUTime = %v, %v; want ok", d, ok)
	}
}
