package scsi

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

var errPunchUnsupported = errors.New("punch hole not supported")

func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

func punchHole(f *os.File, off, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		// EINVAL: block devices and some file systems reject the mode.
		return errPunchUnsupported
	}
	return err
}

func blockStatus(f *os.File, off, size int64) (bool, int64, error) {
	fd := int(f.Fd())
	data, err := unix.Seek(fd, off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return false, size - off, nil // only a hole from off to the end
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
		return true, size - off, nil // no hole support: all mapped
	}
	if err != nil {
		return false, 0, err
	}
	if data > off {
		return false, min(data, size) - off, nil
	}
	hole, err := unix.Seek(fd, off, unix.SEEK_HOLE)
	if err != nil {
		return true, size - off, nil
	}
	return true, min(hole, size) - off, nil
}
