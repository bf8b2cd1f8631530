package volume

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openDirect opens a second descriptor of a ring disk with O_DIRECT, or
// returns nil where the file system refuses it (tmpfs, some FUSE): the ring
// then writes through the page cache, in the same format.
func openDirect(path string) *os.File {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}

// preallocate gives the file its blocks now, so that ring writes neither
// allocate (a direct write into a hole is slow, and could find the file
// system full) nor depend on the file's previous life.
func preallocate(f *os.File, size int64) error {
	return unix.Fallocate(int(f.Fd()), 0, 0, size)
}

func fdatasyncFile(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// isDirectRefused reports whether a direct write failed because of its
// alignment or the file system's lack of support, not the device.
func isDirectRefused(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)
}
