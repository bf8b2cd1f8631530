//go:build !linux

package volume

import (
	"errors"
	"os"
)

// punchHole is not available here: zeros are written instead.
func punchHole(f *os.File, off, n int64) error {
	return errors.ErrUnsupported
}

// startFileWriteBack: the kernel's own write-back is all there is here.
func startFileWriteBack(fd uintptr) {}

// pageCached: the folio sizes writeSmallFolios is about are Linux's; one
// write is best elsewhere.
func pageCached(f *os.File, off, n int64) bool { return true }

// adviseRandom: no advice here.
func adviseRandom(f *os.File) {}
