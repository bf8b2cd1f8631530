package volume

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

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

// FIEMAP (linux/fiemap.h): the ioctl, its header and extent sizes, and the
// extent flags read here.
const (
	fsIocFiemap       = 0xc020660b // _IOWR('f', 11, struct fiemap)
	fiemapHeader      = 32
	fiemapExtentSize  = 56
	fiemapExtents     = 512 // extents asked for per call
	fiemapExtentLast  = 0x1
	fiemapExtentUnwr  = 0x800
	fiemapExtentDeloc = 0x4 // delayed allocation: data in the page cache
)

// unwrittenSpans lists the byte ranges of the first size bytes of f that
// were never written: unwritten (preallocated) extents and holes, rounded
// out to whole ring sectors. ext4 reports unwritten extents to FIEMAP as
// such (FIEMAP_EXTENT_UNWRITTEN); SEEK_DATA would call them data or holes
// depending on the page cache.
func unwrittenSpans(f *os.File, size int64) ([]fileSpan, error) {
	buf := make([]byte, fiemapHeader+fiemapExtents*fiemapExtentSize)
	le := binary.LittleEndian
	var spans []fileSpan
	// gap adds [from, to) to spans, merging with the last one.
	gap := func(from, to int64) {
		from, to = from&^(ringSector-1), min(size, (to+ringSector-1)&^(ringSector-1))
		if from >= to {
			return
		}
		if n := len(spans); n > 0 && spans[n-1].end >= from {
			spans[n-1].end = max(spans[n-1].end, to)
			return
		}
		spans = append(spans, fileSpan{from, to})
	}
	next := int64(0) // bytes before it are accounted for
	for next < size {
		clear(buf)
		le.PutUint64(buf[0:], uint64(next))
		le.PutUint64(buf[8:], uint64(size-next))
		le.PutUint32(buf[24:], fiemapExtents)
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0]))); errno != 0 {
			return nil, fmt.Errorf("volume: listing extents: %w", errno)
		}
		mapped := int(le.Uint32(buf[20:]))
		if mapped == 0 {
			break
		}
		last := false
		for i := range mapped {
			e := buf[fiemapHeader+i*fiemapExtentSize:]
			logical, length, flags := int64(le.Uint64(e[0:])), int64(le.Uint64(e[16:])), le.Uint32(e[40:])
			if logical > next {
				gap(next, logical) // a hole
			}
			end := logical + length
			if flags&fiemapExtentUnwr != 0 && flags&fiemapExtentDeloc == 0 {
				gap(max(logical, next), end)
			}
			next = max(next, end)
			last = last || flags&fiemapExtentLast != 0
		}
		if last {
			break
		}
	}
	if next < size {
		gap(next, size)
	}
	runtime.KeepAlive(f)
	return spans, nil
}

// fallocZeroes makes [off, off+n) of f written zeros without writing them
// where the device can zero (FALLOC_FL_WRITE_ZEROES, Linux 6.17+).
func fallocZeroes(f *os.File, off, n int64) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_WRITE_ZEROES, off, n)
}

// isZeroesRefused reports whether FALLOC_FL_WRITE_ZEROES is not to be had
// here (an older kernel, a file system or device without it).
func isZeroesRefused(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS)
}
