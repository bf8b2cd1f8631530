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

// startFileWriteBack queues the write-back of the file's dirty pages and
// returns without waiting for it (cache.startWriteBack).
func startFileWriteBack(fd uintptr) {
	unix.SyncFileRange(int(fd), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}

// pageCached reports whether the page cache holds every page of [off,
// off+n) of f (cachestat(2), Linux 6.5+; false where it is refused).
func pageCached(f *os.File, off, n int64) bool {
	var cs unix.Cachestat_t
	r := unix.CachestatRange{Off: uint64(off), Len: uint64(n)}
	if err := unix.Cachestat(uint(f.Fd()), &r, &cs, 0); err != nil {
		return false
	}
	return int64(cs.Cache)*int64(os.Getpagesize()) >= n
}

// adviseRandom turns the kernel's read-ahead off for f.
func adviseRandom(f *os.File) {
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM)
}
