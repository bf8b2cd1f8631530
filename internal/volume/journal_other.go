//go:build !linux

package volume

import (
	"errors"
	"os"
)

func openDirect(string) *os.File { return nil }

func preallocate(*os.File, int64) error { return errors.New("preallocation not supported") }

func fdatasyncFile(f *os.File) error { return f.Sync() }

func isDirectRefused(error) bool { return false }

// unwrittenSpans: extents cannot be listed here, so nothing is initialised.
func unwrittenSpans(*os.File, int64) ([]fileSpan, error) {
	return nil, errors.New("listing extents not supported")
}

func fallocZeroes(*os.File, int64, int64) error { return errors.ErrUnsupported }

func isZeroesRefused(err error) bool { return errors.Is(err, errors.ErrUnsupported) }
