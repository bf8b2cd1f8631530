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
