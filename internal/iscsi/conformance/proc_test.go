package conformance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRunBoundedKillsGroup: a hung tool and the children it spawned are all
// killed when the bound passes, and the run reports ErrTimeout.
func TestRunBoundedKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	_, err := runBounded(context.Background(), 2*time.Second, "sh", "-c",
		"sleep 60 & echo $! > "+pidFile+"; wait")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		// On a starved machine sh can be killed before it forks; the
		// timeout itself was still checked above.
		t.Logf("no grandchild was started before the kill: %v", err)
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The grandchild is gone, or a zombie waiting for init to reap it. A
	// SIGKILL takes effect when the process next runs, which on a loaded
	// machine can be a while after Wait saw the group leader die: give it
	// a generous bound rather than look once.
	deadline := time.Now().Add(30 * time.Second)
	for {
		state := processState(pid)
		if state == "" || state == "Z" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still running (state %s) 30 s after the timeout", pid, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processState is the state letter /proc gives a process, "" if it is gone.
func processState(pid int) string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}
