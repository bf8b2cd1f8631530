package volume

import (
	"os"

	"golang.org/x/sys/unix"
)

// punchHole makes [off, off+n) of f read as zeros without writing them
// (and frees the file's blocks there).
func punchHole(f *os.File, off, n int64) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// startFileWriteBack queues the write-back of the file's dirty pages and
// returns without waiting for it (cache.startWriteBack).
func startFileWriteBack(fd uintptr) {
	unix.SyncFileRange(int(fd), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}
