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
