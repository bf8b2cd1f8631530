package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/crc32c"
)

// The cache lays 512 KiB slots over the cache disk files. A slot is free,
// owned by a volume (holding a dirty or frozen block: the only copy of data
// not yet in the object store besides the journal), or clean (a copy of a
// stored block, evictable).
//
// Invariant (cache): only clean slots are ever evicted; a slot holding a
// block not yet uploaded is owned by its volume until the cut that uploads
// it is published. A clean slot's content equals the object it names: each
// 4 KiB sector's CRC-32C, taken when the slot became clean, is checked on
// every read, and a mismatch drops the slot so the block is fetched again.
// An owned slot may be sparse (sparse.go): only the sectors its block's
// bitmap names hold content, the others read as zeros; the uploader zeros
// those in the slot before it can become clean.
//
// The cache is not persistent: after a restart every slot is free, dirty
// blocks are rebuilt from the journal, and clean blocks are fetched again.

const (
	sectorSize     = 4096
	sectorsPerSlot = BlockSize / sectorSize
)

type slotState uint8

const (
	slotFree slotState = iota
	slotOwned
	slotClean
)

type cacheKey struct {
	nonce uint64 // volume incarnation
	block uint64
}

type slotMeta struct {
	state slotState
	// staging marks an owned slot that only stages a block fetched from
	// the store on its way to clean: it holds no data not yet uploaded.
	staging    bool
	key        cacheKey
	pins       int32
	prev, next int32 // LRU links among clean slots; -1 ends
	crc        []uint32
	// zombie marks a clean slot discarded while pinned by a reader: it is
	// out of the index (owned, staging) and freed when the last pin goes.
	zombie bool
}

type cacheFile struct {
	f     *os.File
	desc  string
	first int32 // first slot number in this file
	n     int32
}

type cache struct {
	mu sync.Mutex // guards every field below
	// Invariant: a slot is in free, or owned, or in clean+lru, never two.
	files      []cacheFile
	slots      []slotMeta
	free       []int32
	clean      map[cacheKey]int32
	head, tail int32 // LRU: head is most recently used
	space      chan struct{}
	// staging counts owned slots with staging set. Invariant: the slots
	// holding dirty or frozen blocks number
	// len(slots) - len(free) - len(clean) - staging, which is what
	// stats reports without walking the slots.
	staging int

	// unpinned is broadcast when a slot's last pin goes (takeClean waits
	// for it).
	unpinned *sync.Cond

	// hits and misses count block lookups of reads (see noteRead).
	hits, misses atomic.Int64
	// noPunch: punching a hole failed once; zeroInvalid writes zeros.
	noPunch atomic.Bool
	// gen counts resets (cachereset.go): a pin taken before one is let go
	// of without touching the slots that replaced it.
	gen uint64
	// onFault is told of every I/O error of a cache disk file (set once,
	// before use).
	onFault func(disk string, err error)

	// writeBackDue: a cut published since the last startWriteBack (the
	// uploader starts one when writes pause); writingBack: a
	// startWriteBack goroutine runs; writeBackAgain: it was asked for
	// again meanwhile, so it runs another round when done.
	writeBackDue, writingBack, writeBackAgain atomic.Bool
}

func newCache() *cache {
	c := &cache{clean: make(map[cacheKey]int32), head: -1, tail: -1, space: make(chan struct{})}
	c.unpinned = sync.NewCond(&c.mu)
	return c
}

func (c *cache) addDisk(path string, size int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	desc := fmt.Sprintf("%s:%d", path, size)
	for _, f := range c.files {
		if f.desc == desc {
			return nil
		}
	}
	n := int32(size / BlockSize)
	if n < 4 {
		return fmt.Errorf("volume: cache disk %s of %d bytes is too small", path, size)
	}
	f, err := openDiskFile(path, size)
	if err != nil {
		return err
	}
	// Neighbouring slots hold unrelated blocks: the kernel's read-ahead
	// would read them for nothing, and make the large folios folioBytes is
	// about. Volumes read ahead by block themselves (readahead.go).
	adviseRandom(f)
	first := int32(len(c.slots))
	c.files = append(c.files, cacheFile{f: f, desc: desc, first: first, n: n})
	for i := range n {
		c.slots = append(c.slots, slotMeta{prev: -1, next: -1})
		c.free = append(c.free, first+i)
	}
	c.signal()
	return nil
}

func (c *cache) signal() {
	close(c.space)
	c.space = make(chan struct{})
}

func (c *cache) nslots() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.slots)
}

func (c *cache) where(s int32) (*os.File, int64) {
	for _, f := range c.files {
		if s >= f.first && s < f.first+f.n {
			return f.f, int64(s-f.first) * BlockSize
		}
	}
	panic(fmt.Sprintf("volume: slot %d outside %d cache files", s, len(c.files)))
}

// ioError reports an I/O error of cache file f (onFault) and wraps it in
// ErrCacheDisk. Two are not faults of the disk: a file closed by a reset
// (cachereset.go), and a full file system (the cache file is sparse: a
// write into a hole needs space) — the I/O that met them fails, and writes
// resume as soon as there is space, as RELIABILITY.md promises.
func (c *cache) ioError(f *os.File, op string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("volume: cache %s %s: %w", op, f.Name(), err)
	}
	if !errors.Is(err, os.ErrClosed) && c.onFault != nil {
		c.onFault(f.Name(), err)
	}
	return fmt.Errorf("%w: %s %s: %w", ErrCacheDisk, op, f.Name(), err)
}

func (c *cache) readSlot(s int32, p []byte, off int) error {
	c.mu.Lock()
	f, base := c.where(s)
	c.mu.Unlock()
	if _, err := f.ReadAt(p, base+int64(off)); err != nil {
		return c.ioError(f, "read", err)
	}
	return nil
}

func (c *cache) writeSlot(s int32, p []byte, off int) error {
	c.mu.Lock()
	f, base := c.where(s)
	c.mu.Unlock()
	if err := writeSmallFolios(f, p, base+int64(off)); err != nil {
		return c.ioError(f, "write", err)
	}
	return nil
}

// folioBytes bounds the page-cache folios of the cache files, because a
// buffered write costs in proportion to the folio it lands in, not to the
// bytes written. ext4 walks every buffer head of the folio twice per write
// (ext4_block_write_begin, block_commit_write), and a write dirties its
// whole folio, which is written back whole. A slot written in one 512 KiB
// pwrite gets one 512 KiB folio; every later 4 KiB write into that block
// then costs ~16.6 µs of kernel CPU (Linux 6.18, ext4, 2 vCPUs; 43 µs
// under the 2 MiB folios the kernel's read-ahead makes) and 512 KiB of
// write-back. Small folios cost the reads: cached 1 MiB preads copy
// 11–13 GB/s out of 32 KiB folios, 20–21 out of 64 KiB ones and 20–22 out
// of 512 KiB ones, while a 4 KiB write costs 5.0–5.5, 6.2 and 16.6 µs (one
// run, the sizes interleaved). 64 KiB is the knee: writes at 2.7× less,
// reads within a few percent. Filling a slot in 64 KiB writes costs
// ~100 µs of CPU against ~66 µs in one. On the product path
// (TestWrappedRandomWriteBench: a volume of data written whole, then 4 KiB
// random writes of data) 64 KiB took 21 015 IOPS against 17 120 with
// 512 KiB folios, 32 KiB 24 354, the process's dirtied bytes 2.3 and
// 1.7 GiB against 23 GiB a pass of 195 MiB written.
const folioBytes = 64 << 10

// writeSmallFolios writes p at off of cache file f. Where the page cache
// does not hold the whole range, the kernel makes the range's folios as
// large as each write, so the write goes in folioBytes pieces aligned to
// folioBytes; where it does, the folios are already there (whatever made
// them: FADV_RANDOM keeps reads from making large ones) and one write is
// cheapest.
func writeSmallFolios(f *os.File, p []byte, off int64) error {
	if len(p) <= folioBytes || pageCached(f, off, int64(len(p))) {
		_, err := f.WriteAt(p, off)
		return err
	}
	for len(p) > 0 {
		n := min(len(p), folioBytes-int(off%folioBytes))
		if _, err := f.WriteAt(p[:n], off); err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// alloc returns an owned slot for a dirty block, evicting the least
// recently used clean slot if none is free; ok is false when every slot is
// owned.
func (c *cache) alloc() (int32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.allocLocked()
}

// allocStaging is alloc for a block fetched from the store, which the
// caller turns clean (makeClean) or gives back (release) at once.
func (c *cache) allocStaging() (int32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.allocLocked()
	if ok {
		c.slots[s].staging = true
		c.staging++
	}
	return s, ok
}

// allocFreeStaging is allocStaging that only takes a free slot, never
// evicting: for prefetching (restore.go), which must not push out blocks
// someone reads.
func (c *cache) allocFreeStaging() (int32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.free)
	if n == 0 {
		return -1, false
	}
	s := c.free[n-1]
	c.free = c.free[:n-1]
	c.slots[s].state, c.slots[s].staging = slotOwned, true
	c.staging++
	return s, true
}

// allocLocked: c.mu held.
func (c *cache) allocLocked() (int32, bool) {
	if n := len(c.free); n > 0 {
		s := c.free[n-1]
		c.free = c.free[:n-1]
		c.slots[s].state = slotOwned
		return s, true
	}
	for s := c.tail; s >= 0; s = c.slots[s].prev {
		if c.slots[s].pins == 0 {
			c.unlinkClean(s)
			c.slots[s].state = slotOwned
			return s, true
		}
	}
	return -1, false
}

// waitSpace blocks until some slot may have been freed.
func (c *cache) waitSpace(ctx context.Context, done <-chan struct{}) error {
	c.mu.Lock()
	ch := c.space
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return ErrClosed
	}
}

func (c *cache) unlinkClean(s int32) {
	m := &c.slots[s]
	delete(c.clean, m.key)
	if m.prev >= 0 {
		c.slots[m.prev].next = m.next
	} else {
		c.head = m.next
	}
	if m.next >= 0 {
		c.slots[m.next].prev = m.prev
	} else {
		c.tail = m.prev
	}
	m.prev, m.next, m.crc = -1, -1, nil
}

func (c *cache) pushFront(s int32) {
	m := &c.slots[s]
	m.prev, m.next = -1, c.head
	if c.head >= 0 {
		c.slots[c.head].prev = s
	}
	c.head = s
	if c.tail < 0 {
		c.tail = s
	}
}

// release returns an owned slot to the free list.
func (c *cache) release(s int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slots[s].state != slotOwned {
		panic(fmt.Sprintf("volume: releasing slot %d in state %d", s, c.slots[s].state))
	}
	c.unstage(s)
	c.slots[s].state = slotFree
	c.free = append(c.free, s)
	c.signal()
}

// makeClean turns an owned slot holding exactly the stored block for key,
// whose sector CRCs are crc, into a clean, evictable one.
func (c *cache) makeClean(s int32, key cacheKey, crc []uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slots[s].state != slotOwned {
		panic(fmt.Sprintf("volume: cleaning slot %d in state %d", s, c.slots[s].state))
	}
	c.unstage(s)
	if old, ok := c.clean[key]; ok { // a racing fetch cached it first
		c.discardLocked(old)
	}
	m := &c.slots[s]
	m.state, m.key, m.crc = slotClean, key, crc
	c.clean[key] = s
	c.pushFront(s)
	c.signal()
}

// unstage clears an owned slot's staging mark as it leaves the owned
// state. c.mu held.
func (c *cache) unstage(s int32) {
	if c.slots[s].staging {
		c.slots[s].staging = false
		c.staging--
	}
}

// noteRead counts one block lookup of a read: served from a slot (a hit)
// or fetched from the object store (a miss). Blocks that hold zeros are
// neither: no data is kept for them anywhere.
func (c *cache) noteRead(hit bool) {
	if hit {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
}

// stats reports the cache's figures as DescribeCache shows them: slots
// holding data, slots holding data not yet uploaded (dirty or frozen), and
// the share of read lookups served from the cache since the engine started.
// All are percentages, 0 when there is nothing to count.
// slotCounts are the cache's slots by use: all of them, those holding a
// block, and those holding data not yet uploaded (owned by a volume: dirty
// or frozen).
func (c *cache) slotCounts() (all, used, dirty int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	all, free, clean, staging := len(c.slots), len(c.free), len(c.clean), c.staging
	return all, all - free, all - free - clean - staging
}

func (c *cache) stats() control.CacheStats {
	all, used, dirty := c.slotCounts()
	var st control.CacheStats
	if all > 0 {
		st.UsedPercent = percent(int64(used), int64(all))
		st.DirtyPercent = percent(int64(dirty), int64(all))
	}
	hits, misses := c.hits.Load(), c.misses.Load()
	if hits+misses > 0 {
		st.HitPercent = percent(hits, hits+misses)
		st.MissPercent = 100 - st.HitPercent
	}
	return st
}

// check verifies the counts stats relies on against the slots themselves.
func (c *cache) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var free, owned, clean, staging int
	for s, m := range c.slots {
		switch m.state {
		case slotFree:
			free++
		case slotOwned:
			owned++
		case slotClean:
			clean++
			if c.clean[m.key] != int32(s) {
				return fmt.Errorf("volume: check: clean slot %d is not indexed", s)
			}
		}
		if m.staging {
			staging++
			if m.state != slotOwned {
				return fmt.Errorf("volume: check: staging slot %d in state %d", s, m.state)
			}
		}
	}
	if free != len(c.free) || clean != len(c.clean) || staging != c.staging {
		return fmt.Errorf("volume: check: cache counts free %d/%d clean %d/%d staging %d/%d (slots/counters)",
			free, len(c.free), clean, len(c.clean), staging, c.staging)
	}
	return nil
}

func percent(part, whole int64) float64 { return float64(part) * 100 / float64(whole) }

func sectorCRCs(data []byte) []uint32 {
	crc := make([]uint32, sectorsPerSlot)
	crc32c.Sectors(data[:sectorsPerSlot*sectorSize], crc)
	return crc
}

// zeroSectorCRCs are the zero block's sector CRCs. Never changed.
var zeroSectorCRCs = sectorCRCs(zeroBlock)

// lookup reports whether key has a clean slot.
func (c *cache) lookup(key cacheKey) (int32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.clean[key]
	return s, ok
}

// takeClean removes key's clean slot from the cache and hands it to the
// caller as owned (a write is about to change it), with its sector CRCs. A slot pinned by readers
// (which read without the volume lock) is waited for: they hold it for one
// read of it, and need nothing the caller holds to let go.
func (c *cache) takeClean(key cacheKey) (s int32, crc []uint32, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		s, ok := c.clean[key]
		if !ok {
			return -1, nil, false
		}
		if c.slots[s].pins > 0 {
			c.unpinned.Wait()
			continue // the slot may have gone meanwhile: look again
		}
		crc := c.slots[s].crc
		c.unlinkClean(s)
		c.slots[s].state = slotOwned
		return s, crc, true
	}
}

// drop forgets key's clean slot, if any. A reader still holding it keeps
// it until it lets go (discardLocked).
func (c *cache) drop(key cacheKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.clean[key]; ok {
		c.discardLocked(s)
	}
}

// discardLocked takes clean slot s out of the cache: free now, or, if
// readers hold it, a zombie freed by the last unpin (its content must not
// change under them). c.mu held.
func (c *cache) discardLocked(s int32) {
	c.unlinkClean(s)
	m := &c.slots[s]
	if m.pins > 0 {
		// Owned and staging: counted as holding nothing not uploaded, and
		// never handed out or evicted.
		m.state, m.staging, m.zombie = slotOwned, true, true
		c.staging++
		return
	}
	m.state = slotFree
	c.free = append(c.free, s)
	c.signal()
}

// pinnedRead is a clean slot a reader holds (pinClean) while it reads it
// without the volume lock.
type pinnedRead struct {
	s    int32
	key  cacheKey
	crc  []uint32
	f    *os.File
	base int64 // the slot's offset in f
	gen  uint64
}

// pinClean pins key's clean slot and moves it to the LRU front. The pin
// keeps the slot's content (clean: immutable) from being evicted, taken
// for a write or reused until unpin.
func (c *cache) pinClean(key cacheKey) (pinnedRead, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.clean[key]
	if !ok {
		return pinnedRead{}, false
	}
	m := &c.slots[s]
	m.pins++
	c.moveToFront(s)
	f, base := c.where(s)
	return pinnedRead{s: s, key: key, crc: m.crc, f: f, base: base, gen: c.gen}, true
}

// unpin lets go of pinned slots; a slot whose read failed its check (bad[i])
// is dropped from the cache, so the block is fetched again.
func (c *cache) unpin(pins []pinnedRead, bad []bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, pr := range pins {
		if pr.gen != c.gen {
			continue // its slots went with a reset
		}
		m := &c.slots[pr.s]
		m.pins--
		if bad[i] && !m.zombie && c.clean[pr.key] == pr.s {
			c.discardLocked(pr.s)
		}
		if m.pins == 0 {
			if m.zombie {
				m.zombie = false
				c.unstage(pr.s)
				m.state = slotFree
				c.free = append(c.free, pr.s)
				c.signal()
			}
			c.unpinned.Broadcast()
		}
	}
}

// read copies [off, off+len(p)) of the pinned block into p, checking the
// CRC of every 4 KiB sector it touches. ok is false if a sector does not
// match (the caller unpins it as bad and fetches the block again). scratch
// is a 512 KiB buffer for reads that do not cover whole sectors.
func (pr *pinnedRead) read(c *cache, p []byte, off int, scratch []byte) (ok bool, err error) {
	first, last := off/sectorSize, (off+len(p)-1)/sectorSize
	buf := p
	if off%sectorSize != 0 || len(p)%sectorSize != 0 {
		buf = scratch[:(last-first+1)*sectorSize]
	}
	if _, err := pr.f.ReadAt(buf, pr.base+int64(first*sectorSize)); err != nil {
		return false, c.ioError(pr.f, "read", err)
	}
	if !sectorsMatch(buf, pr.crc[first:last+1]) {
		return false, nil
	}
	if len(buf) != len(p) {
		copy(p, buf[off-first*sectorSize:])
	}
	return true, nil
}

// moveToFront makes clean slot s the most recently used. c.mu held.
func (c *cache) moveToFront(s int32) {
	if c.head == s {
		return
	}
	m := &c.slots[s]
	if m.prev >= 0 {
		c.slots[m.prev].next = m.next
	}
	if m.next >= 0 {
		c.slots[m.next].prev = m.prev
	} else {
		c.tail = m.prev
	}
	c.pushFront(s)
}

// readClean copies [off, off+len(p)) of key's clean block into p, checking
// sector CRCs. ok is false if the block is not cached or fails its check
// (then the slot is dropped and the caller fetches the block again).
func (c *cache) readClean(key cacheKey, p []byte, off int) (ok bool, err error) {
	pr, found := c.pinClean(key)
	if !found {
		return false, nil
	}
	var scratch []byte
	if off%sectorSize != 0 || len(p)%sectorSize != 0 {
		buf := blockPool.Get().(*[]byte)
		defer blockPool.Put(buf)
		scratch = *buf
	}
	good, err := pr.read(c, p, off, scratch)
	c.unpin([]pinnedRead{pr}, []bool{!good})
	return good, err
}

// sectorsMatch reports whether each 4 KiB sector of buf has its CRC in crc
// (at most one slot's). All of them are computed before comparing: a
// mismatch is rare, and whole slots checksum faster in one call.
func sectorsMatch(buf []byte, crc []uint32) bool {
	var got [sectorsPerSlot]uint32
	crc32c.Sectors(buf[:len(crc)*sectorSize], got[:len(crc)])
	return slices.Equal(got[:len(crc)], crc)
}

// startWriteBack starts, in the background, the write-back of the cache
// disks' dirty pages, and returns at once; a call while a round runs makes
// it run once more when done. The uploader calls it at the first pause of
// the writes after a cut published (uploadSched.scan).
//
// Why: a slot's pages stay dirty in the page cache after the cut that
// uploads its block (nothing needs them on the disk: the journal holds the
// writes until then, the store after), so the kernel writes them back on
// its own clock, up to dirty_expire_centisecs (30 s) later and in bursts:
// a gigabyte written in one burst of writes is written back half a minute
// later, all at once, under whatever runs then, whose journal writes
// queue behind it (on the bench machine a 4 KiB random-write run that met
// the write-back of the 1 GiB written 20 s before it ran at 13 700 IOPS,
// the same run without at 18 200). Starting the write-back in the pause
// after the writes puts it where it delays none, bounds the dirty memory
// the cache holds, and costs one sync_file_range per disk per pause
// (SYNC_FILE_RANGE_WRITE: queue the pages, wait for nothing). Pages of
// slots still dirty go too; a page written again later is written back
// again, as the kernel would do anyway. Advisory: an error here is the
// kernel's write-back error, which it reports where it always does (a
// later read of a slot checks its CRCs).
func (c *cache) startWriteBack() {
	if c.writingBack.Swap(true) {
		c.writeBackAgain.Store(true)
		return
	}
	go func() {
		for {
			c.writeBackAgain.Store(false)
			c.mu.Lock()
			files := make([]*os.File, len(c.files))
			for i, f := range c.files {
				files[i] = f.f
			}
			c.mu.Unlock()
			for _, f := range files {
				// Control holds the descriptor open for the call: a
				// disk closed meanwhile (reset, close) fails it.
				if rc, err := f.SyscallConn(); err == nil {
					rc.Control(func(fd uintptr) { startFileWriteBack(fd) })
				}
			}
			c.writingBack.Store(false)
			if !c.writeBackAgain.Load() || c.writingBack.Swap(true) {
				return
			}
		}
	}()
}

func (c *cache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for _, f := range c.files {
		if err := f.f.Close(); err != nil && first == nil {
			first = err
		}
	}
	// The files stay listed, closed: I/O that outlives the engine (a
	// read-ahead fetch finishing after Close, which nothing waits for)
	// finds its slot's file and fails with os.ErrClosed, which ioError
	// does not take for a fault, rather than finding no file at all.
	return first
}
