//go:build !linux

package scsi

import (
	"errors"
	"os"
)

var errPunchUnsupported = errors.New("punch hole not supported")

func fdatasync(f *os.File) error { return f.Sync() }

func punchHole(*os.File, int64, int64) error { return errPunchUnsupported }

func blockStatus(_ *os.File, off, size int64) (bool, int64, error) { return true, size - off, nil }
