package scsi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// FileBackend is a Backend over a plain file or block device: what tests,
// benchmarks and the conformance harness serve, and a usable volume in its
// own right. Unmap punches holes where the file system can and writes
// zeros where it cannot; Flush is fdatasync.
type FileBackend struct {
	f    *os.File
	size int64
	// noPunch is set once the file system refused to punch a hole, so
	// later unmaps write zeros without asking again.
	noPunch atomic.Bool
}

// OpenFileBackend opens (creating if needed) the file at path as a
// backend of size bytes, extending a shorter file sparsely. A size of 0
// takes the file's current size.
func OpenFileBackend(path string, size int64) (*FileBackend, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("scsi: open backend file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("scsi: stat backend file: %w", err)
	}
	have := fi.Size()
	if !fi.Mode().IsRegular() {
		// A block device's size is where its end is; Stat reports 0.
		if have, err = f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, fmt.Errorf("scsi: size of backend device: %w", err)
		}
		if size > have {
			f.Close()
			return nil, fmt.Errorf("scsi: backend device has %d bytes, %d asked: %w", have, size, ErrOutOfRange)
		}
	}
	if size == 0 {
		size = have
	} else if fi.Mode().IsRegular() && have < size {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("scsi: extend backend file: %w", err)
		}
	}
	return &FileBackend{f: f, size: size}, nil
}

// Close closes the file. Calls after Close fail.
func (b *FileBackend) Close() error { return b.f.Close() }

// Size is the capacity in bytes.
func (b *FileBackend) Size() int64 { return b.size }

func (b *FileBackend) check(off, n int64) error {
	if off < 0 || n < 0 || off > b.size || n > b.size-off {
		return fmt.Errorf("%w: [%d, +%d) of %d", ErrOutOfRange, off, n, b.size)
	}
	return nil
}

// ReadAt fills p from off; parts of a block device or file that end early
// read as zeros.
func (b *FileBackend) ReadAt(_ context.Context, p []byte, off int64) error {
	if err := b.check(off, int64(len(p))); err != nil {
		return err
	}
	n, err := b.f.ReadAt(p, off)
	if errors.Is(err, io.EOF) {
		clear(p[n:])
		return nil
	}
	if err != nil {
		return fmt.Errorf("scsi: read backend file: %w", err)
	}
	return nil
}

// WriteAt stores p at off.
func (b *FileBackend) WriteAt(_ context.Context, p []byte, off int64) error {
	if err := b.check(off, int64(len(p))); err != nil {
		return err
	}
	if _, err := b.f.WriteAt(p, off); err != nil {
		return fmt.Errorf("scsi: write backend file: %w", err)
	}
	return nil
}

// Flush makes every completed write durable (fdatasync).
func (b *FileBackend) Flush(context.Context) error {
	if err := fdatasync(b.f); err != nil {
		return fmt.Errorf("scsi: sync backend file: %w", err)
	}
	return nil
}

// Unmap makes [off, off+n) read as zeros, releasing the space where the
// file system supports punching holes.
func (b *FileBackend) Unmap(ctx context.Context, off, n int64) error {
	if err := b.check(off, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if !b.noPunch.Load() {
		err := punchHole(b.f, off, n)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errPunchUnsupported) {
			return fmt.Errorf("scsi: punch hole in backend file: %w", err)
		}
		b.noPunch.Store(true)
	}
	zeros := make([]byte, min(n, 1<<20))
	for n > 0 {
		w := zeros[:min(n, int64(len(zeros)))]
		if err := b.WriteAt(ctx, w, off); err != nil {
			return err
		}
		off += int64(len(w))
		n -= int64(len(w))
	}
	return nil
}

// BlockStatus reports whether off lies in data or in a hole, and how far
// that extends, from the file system's SEEK_DATA/SEEK_HOLE.
func (b *FileBackend) BlockStatus(_ context.Context, off int64) (mapped bool, length int64, err error) {
	if err := b.check(off, 1); err != nil {
		return false, 0, err
	}
	return blockStatus(b.f, off, b.size)
}
