//go:build !linux

package blobtest

import "time"

// processCPUTime: only Linux's /proc says, here.
func processCPUTime(int) (time.Duration, bool) { return 0, false }
