package catalog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// LockFileName is the data dir's lock: whoever holds an exclusive flock on
// it owns the data dir (its catalog, and by extension the engine state and
// disks next to it). It holds the owner's pid, for the message a second
// process gets; the flock, not the file's presence, is what counts, so a
// stale file left by a killed process is harmless.
const LockFileName = "volgw.lock"

type dirLock struct {
	once sync.Once
	f    *os.File
}

// lockDataDir takes the data dir's lock without waiting: a second volgw on
// the same data dir is told at once who has it, instead of waiting for
// bbolt's file lock to time out.
func lockDataDir(dataDir string) (*dirLock, error) {
	path := filepath.Join(dataDir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("catalog: lock data dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			raw, _ := os.ReadFile(path)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
			return nil, &Error{Err: ErrInUse, Path: path, PID: pid,
				Detail: "only one volgw may use a data dir at a time; stop the other one first, or give this one another --data-dir"}
		}
		return nil, fmt.Errorf("catalog: lock %s: %w", path, err)
	}
	// Only the holder writes the file, so a reader sees the holder's pid
	// or, in the instant between these two calls, nothing.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// release gives the data dir up. Closing the descriptor drops the flock.
func (l *dirLock) release() {
	if l == nil {
		return
	}
	l.once.Do(func() { l.f.Close() })
}
