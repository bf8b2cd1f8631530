package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/volgw/volgw/internal/blob"
)

// GetRange returns bytes [off, off+n) of the object: one pread, whatever
// the object's size (a pack of many patches is read a patch at a time).
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if off < 0 || n <= 0 {
		return nil, fmt.Errorf("fs: get %q bytes %d+%d: %w", key, off, n, blob.ErrRange)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, mapErr("get", key, err)
	}
	defer f.Close()
	b := make([]byte, n)
	got, err := f.ReadAt(b, off)
	switch {
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("fs: get %q bytes %d+%d: the object ends after %d of them: %w", key, off, n, got, blob.ErrRange)
	case err != nil:
		return nil, mapErr("get", key, err)
	}
	return b, nil
}
