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
	// The grandchild is gone or a zombie waiting for init to reap it.
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil {
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 0 && fields[0] != "Z" {
			t.Errorf("grandchild %d still running (state %s) after the timeout", pid, fields[0])
		}
	}
}
