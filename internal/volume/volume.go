package volume

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/seal"
)

const noLSN = math.MaxUint64

// blockPool holds 512 KiB buffers for copy-on-write.
var blockPool = sync.Pool{New: func() any { b := make([]byte, BlockSize); return &b }}

// maxDirtyBlocks bounds a volume's dirty map; writers wait for a cut beyond.
const maxDirtyBlocks = 1 << 20

// blockState is a dirty or frozen block: its content is in an owned cache
// slot, or it is all zeros (no slot). A sparse block's slot holds only the
// 4 KiB sectors valid names (sparse.go); the others are zeros whatever the
// slot holds there, or, with over, those of the frozen slot under (the
// block's frozen, whole, slot: copy-on-write that copies nothing). A block
// that read as zeros takes its slot unfilled. Only dirty blocks are over
// frozen ones, and none is once their cut is published.
type blockState struct {
	slot   int32
	zero   bool
	sparse bool
	over   bool
	under  int32                       // with over: frozen[b].slot
	valid  [sectorsPerSlot / 64]uint64 // with sparse: bit i, sector i
	// written: the sectors written since the block became dirty (or
	// since its copy-on-write began); a cut stores them, with those of
	// the block's old patch, as its new patch if they are few (patch.go).
	written sectorMask
	// fromZero: the slot started as zeros (a block unmapped whole, or
	// absent from the recovery point), not as the recovery point's
	// block: a patch of it is over the zero block.
	fromZero bool
	// known: with written, the CRCs of the block's sectors written since
	// it became dirty excluded, as they were then (its clean slot's, or
	// the zero sector's for a block started from zeros); nil when not
	// known (a copy-on-write not yet settled, a replayed block's first
	// state). A cut of a patched block then reads only the patch's
	// sectors (readFrozen). Shared by copies of the state: never changed
	// in place.
	known []uint32
}

// Volume is one block volume. It has the method set of scsi.Backend, so the
// iSCSI target serves it directly. Offsets and lengths must be multiples of
// 512. Calls may run in parallel.
type Volume struct {
	e       *Engine
	id      string
	size    int64
	nonce   uint64 // incarnation: journal records carry it
	created time.Time
	// w names and seals the volume's objects (its key, if any, and
	// compression); zeroName is the name the all-zero block would get,
	// which is never stored.
	keyName  string
	w        seal.Writer
	zeroName hash

	// cutMu serializes everything that replaces or pins the volume's head:
	// cuts, snapshot pins, clones of this volume, deletion. Order: cutMu
	// before mu.
	cutMu sync.Mutex

	mu sync.Mutex // guards every field below, and the volume's slot I/O
	// base is the published root: the recovery point.
	base     *root
	headETag string
	// dirty holds blocks written since the current cut was frozen; frozen
	// holds the blocks of the cut in flight (nil if none). Invariant
	// (recovery point): frozen is exactly the set of blocks written by
	// records with LSN < cut.lsn and >= base.JournalLSN, with their content
	// as of cut.lsn; a write to a frozen block never changes its slot but
	// copies it into a new dirty slot (copy-on-write).
	dirty  map[uint64]blockState
	frozen map[uint64]blockState
	cut    *cutState
	// cutting: a cutOnce is under way (whoever started it). A cut left
	// failed (cut set, cutting not) is the uploader's to retry; one under
	// way is not, or the retry, waiting for cutMu, would cut afresh
	// writes made after it.
	cutting bool
	// dirtyFrom and frozenFrom are the LSNs of the first record in dirty and
	// frozen (noLSN if none): the journal keeps everything from the smaller.
	dirtyFrom, frozenFrom uint64
	pendingSnaps          []string // snapshot IDs waiting for the next cut
	// cleanAt is the last time the volume was seen with nothing dirty or in
	// flight: every write made before it is in base.
	cleanAt time.Time
	// published is closed and replaced each time a cut is published.
	published chan struct{}
	deleted   bool
	// detaching is set while DetachVolume publishes the last root
	// (attach.go): writes are refused, so none can follow that root.
	detaching bool
	// fenced says why the volume's head is no longer its own (fence.go):
	// writes are refused, reads go on. baseLost: and its own last root is
	// gone from the store, so only blocks the journal holds can be read.
	fenced   error
	baseLost bool
	unknown  map[uint64]bool // with baseLost: blocks the journal holds only part of
	readErr  error           // a fenced volume whose journal could not be replayed, or a cache disk failed (cutOnce)
	// vf mirrors the volume's file (fence.go); guarded by cutMu.
	vf volFile
	// fencedCtx is cancelled when the volume is fenced.
	fencedCtx    context.Context
	fencedCancel context.CancelFunc
	// lastLSN is the LSN of the volume's newest journal record; replayed
	// counts the records Open replayed for it (ledger.go).
	lastLSN  uint64
	replayed int
	// cond is set when Open found the upload buffer damaged for this
	// volume (ledger.go); bootstrapLSN, when non-zero, is the journal
	// position a published cut must reach to end BOOTSTRAPPING after an
	// unclean stop, with bootstrapBlocks the dirty blocks replayed then.
	cond            *volCondition
	bootstrapLSN    uint64
	bootstrapBlocks int64
	// pendingReplay: the cache was reset (cachereset.go) and the volume's
	// dirty blocks are to be rebuilt from the journal, from holdFrom
	// (noLSN: nothing to keep), once a cache disk is added.
	pendingReplay bool
	holdFrom      uint64
	// resync: ResetCache abandoned a cut whose head may have landed; the
	// head is read again before the volume is rebuilt.
	resync bool
	// restore is set while the volume is RESTORING (restore.go).
	restore *restoreState
	// ra follows the volume's sequential readers (readahead.go).
	ra readAhead

	// needLedger is set when the volume goes from nothing outside its
	// published root to something, until the ledger names that (ledger.go,
	// noteWritten).
	needLedger bool
	// lastWrite is when the volume was last written (noteDirty): the
	// uploader cuts a volume whose writes have paused (upload.go).
	lastWrite time.Time

	// progress of the cut in flight, for pending snapshots
	cutTotal, cutDone atomic.Int64

	// rp is what RecoveryPoint answers, republished under v.mu whenever
	// base, cleanAt or fenced change (recovery.go); rpBase is the root
	// its usage was computed from.
	rp     atomic.Pointer[recoveryState]
	rpBase *root
}

type cutState struct {
	lsn   uint64
	time  time.Time
	snaps []string
	// token is the publish token of this cut's root and head (fence.go);
	// a retry of the cut keeps it.
	token string
}

// newVolume makes the in-memory volume for vs. It fails only if the
// volume is sealed with a key the keyring does not hold.
func newVolume(e *Engine, vs volState) (*Volume, error) {
	w, err := e.writerFor(vs.Key)
	if err != nil {
		return nil, fmt.Errorf("volume %s is sealed with key %q: %w", vs.ID, vs.Key, err)
	}
	v := &Volume{e: e, id: vs.ID, size: vs.Size, nonce: vs.Nonce, created: vs.Created, keyName: vs.Key, w: w, zeroName: hash(w.NameOf(zeroBlock)),
		dirty: make(map[uint64]blockState), dirtyFrom: noLSN, frozenFrom: noLSN, holdFrom: noLSN, published: make(chan struct{})}
	v.fencedCtx, v.fencedCancel = context.WithCancel(context.Background())
	return v, nil
}

// state is what the engine records of the volume locally.
func (v *Volume) state() volState {
	return volState{ID: v.id, Size: v.size, Nonce: v.nonce, Created: v.created, Key: v.keyName}
}

// ID is the volume's ID.
func (v *Volume) ID() string { return v.id }

// Size is the capacity in bytes.
func (v *Volume) Size() int64 { return v.size }

func (v *Volume) checkRange(off int64, n int) error {
	if off < 0 || off%512 != 0 || n%512 != 0 || off+int64(n) > v.size {
		return fmt.Errorf("%w: %d bytes at %d on a volume of %d", ErrOutOfRange, n, off, v.size)
	}
	return nil
}

func (v *Volume) key(b uint64) cacheKey { return cacheKey{nonce: v.nonce, block: b} }

// usable reports why the volume cannot take writes, flushes or cuts; v.mu
// held.
func (v *Volume) usable() error {
	if err := v.readable(); err != nil {
		return err
	}
	return v.fenced
}

// flushable reports why the volume's acknowledged writes cannot be made
// durable; v.mu held. A failed cache disk is no reason: every write
// acknowledged is in the journal, which a flush syncs, and the journal is
// what ResetCache and a new cache disk rebuild the volume from — so the
// initiator is told the truth (its writes are safe) rather than an error
// that reads as loss.
func (v *Volume) flushable() error {
	switch {
	case v.e.isClosed.Load():
		return ErrClosed
	case v.deleted:
		return fmt.Errorf("%w: %s", control.ErrVolumeNotFound, v.id)
	}
	return v.fenced
}

// readable reports why the volume cannot be read; v.mu held. A fenced
// volume stays readable: what this data dir holds can be copied off.
func (v *Volume) readable() error {
	switch {
	case v.e.isClosed.Load():
		return ErrClosed
	case v.deleted:
		return fmt.Errorf("%w: %s", control.ErrVolumeNotFound, v.id)
	case v.readErr != nil:
		return v.readErr
	}
	if d := v.e.cacheDown.Load(); d != nil {
		return d.err
	}
	return nil
}

// writable reports why the volume cannot take writes; v.mu held. An
// IRRECOVERABLE volume still serves reads of its recovery point (the way
// back is a snapshot or a clone of it) but takes no writes: they would
// build on a state that lacks acknowledged ones.
func (v *Volume) writable() error {
	if err := v.usable(); err != nil {
		return err
	}
	if v.cond != nil && v.cond.Status == control.VolumeIrrecoverable {
		return fmt.Errorf("%w: %s is %s: %s", ErrNotReady, v.id, v.cond.Status, v.cond.Reason)
	}
	if v.detaching {
		return fmt.Errorf("%w: %s is being detached", ErrNotReady, v.id)
	}
	return nil
}

// ReadAt fills p from off: dirty and frozen blocks from their slots, clean
// ones from the cache, the rest from the object store (then cached).
// Never-written blocks read as zeros.
//
// A command takes the volume lock once for all its blocks (readRun), and
// reads its clean blocks after letting go of it, with their slots pinned:
// reads of one volume proceed in parallel, with each other and with its
// writes. Every clean sector's CRC is still checked (invariant 4).
func (v *Volume) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := v.checkRange(off, len(p)); err != nil {
		return err
	}
	for len(p) > 0 {
		n, err := v.readRun(ctx, p, off)
		if err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// maxPinned bounds the blocks of one readRun (8 MiB): the clean ones it
// pins, and the local ones it reads under v.mu.
const maxPinned = 16

// readRun reads a prefix of [off, off+len(p)) and returns its length. Under
// one hold of v.mu it serves dirty, frozen and zero blocks and pins the
// clean ones, up to the first block that needs the store (or maxPinned
// blocks); it then reads the pinned ones without v.mu. A run that
// starts on a block the store must serve reads that one block the slow way
// (readBlock). A pinned block whose sectors fail their CRC is dropped from
// the cache and read again the slow way, after every pin is released (a
// writer waiting for a pin holds v.mu).
func (v *Volume) readRun(ctx context.Context, p []byte, off int64) (int, error) {
	var pinArr [maxPinned]pinnedRead
	var dstArr [maxPinned]pinDest
	pins, dsts := pinArr[:0], dstArr[:0]
	done, blocks := 0, 0
	c := v.e.cache
	v.mu.Lock()
	if err := v.readable(); err != nil {
		v.mu.Unlock()
		return 0, err
	}
	for ; done < len(p) && blocks < maxPinned; blocks++ {
		cur := off + int64(done)
		b, boff := uint64(cur/BlockSize), int(cur%BlockSize)
		n := min(len(p)-done, BlockSize-boff)
		q := p[done : done+n]
		st, local := v.dirty[b]
		if !local {
			st, local = v.frozen[b]
		}
		if local && v.unknown[b] {
			break // readBlock says why
		}
		if local {
			if st.zero {
				clear(q)
			} else {
				c.noteRead(true)
				if err := c.readLocal(st, q, boff); err != nil {
					v.mu.Unlock()
					c.unpin(pins, make([]bool, len(pins)))
					return 0, err
				}
			}
			done += n
			continue
		}
		if pr, ok := c.pinClean(v.key(b)); ok {
			pins = append(pins, pr)
			dsts = append(dsts, pinDest{q: q, boff: boff, b: b})
			done += n
			continue
		}
		if v.baseLost || done > 0 {
			break // the slow way, from a run of its own
		}
		// The block is not local: zeros if its recovery point has none,
		// else the store (the slow way, which drops v.mu to fetch).
		h, err := v.e.blockRef(ctx, v.base, b)
		if err != nil {
			v.mu.Unlock()
			return 0, err
		}
		if !h.isZero() {
			break
		}
		clear(q)
		done += n
	}
	if done == 0 {
		// The run's first block needs the store (or is unreadable).
		cur := off
		b, boff := uint64(cur/BlockSize), int(cur%BlockSize)
		n := min(len(p), BlockSize-boff)
		v.noteRun(b, b)
		err := v.readBlock(ctx, b, boff, p[:n])
		v.mu.Unlock()
		return n, err
	}
	v.noteRun(uint64(off/BlockSize), uint64((off+int64(done)-1)/BlockSize))
	v.mu.Unlock()
	if len(pins) == 0 {
		return done, nil
	}
	var badArr [maxPinned]bool
	bad := badArr[:len(pins)]
	var scratch *[]byte
	var readErr error
	for i := range pins {
		d := &dsts[i]
		var sbuf []byte
		if d.boff%sectorSize != 0 || len(d.q)%sectorSize != 0 {
			if scratch == nil {
				scratch = blockPool.Get().(*[]byte)
			}
			sbuf = *scratch
		}
		good, err := pins[i].read(c, d.q, d.boff, sbuf)
		if err != nil && readErr == nil {
			readErr = err
		}
		bad[i] = !good
		if good {
			c.noteRead(true)
		}
	}
	if scratch != nil {
		blockPool.Put(scratch)
	}
	c.unpin(pins, bad)
	if readErr != nil {
		return 0, readErr
	}
	// Blocks that failed their check were dropped: fetch them again.
	for i := range pins {
		if !bad[i] {
			continue
		}
		d := &dsts[i]
		v.mu.Lock()
		err := v.readBlock(ctx, d.b, d.boff, d.q)
		v.mu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	return done, nil
}

// pinDest is where a pinned block's bytes go.
type pinDest struct {
	q    []byte
	boff int
	b    uint64
}

// readBlock: v.mu held. A miss is fetched from the store with v.mu dropped,
// so one volume's misses proceed in parallel; afterwards the block's state
// is looked at again, and the fetched copy used only if the block is still
// the one fetched.
func (v *Volume) readBlock(ctx context.Context, b uint64, boff int, p []byte) error {
	// One lookup counts once for the cache's hit ratio, as a miss if the
	// store was read even when a retry then finds the block local.
	fetched := false
	for {
		if err := v.readable(); err != nil {
			return err
		}
		st, ok := v.dirty[b]
		if !ok {
			st, ok = v.frozen[b]
		}
		if ok && v.unknown[b] {
			return fmt.Errorf("%w: block %d is only partly in this data dir's journal and its last recovery point is gone from the store", v.fenced, b)
		}
		if ok {
			if st.zero {
				clear(p)
				return nil
			}
			v.e.cache.noteRead(!fetched)
			return v.e.cache.readLocal(st, p, boff)
		}
		hit, err := v.e.cache.readClean(v.key(b), p, boff)
		if err != nil {
			return err
		}
		if hit {
			v.e.cache.noteRead(!fetched)
			return nil
		}
		if v.baseLost {
			return fmt.Errorf("%w: block %d is not in this data dir's journal and its last recovery point is gone from the store", v.fenced, b)
		}
		h, err := v.e.blockRef(ctx, v.base, b)
		if err != nil {
			return err
		}
		if h.isZero() {
			clear(p)
			return nil
		}
		v.mu.Unlock()
		data, err := v.e.fetchToCache(ctx, v, b, h, true)
		v.mu.Lock()
		if err != nil {
			return err
		}
		fetched = true
		v.ra.missed = true
		_, dirty := v.dirty[b]
		_, frozen := v.frozen[b]
		if now, err := v.e.blockRef(ctx, v.base, b); err != nil || now != h || dirty || frozen {
			continue // changed meanwhile: look again
		}
		copy(p, data[boff:])
		v.e.cache.noteRead(false)
		// Caching is best effort: a read never waits for cache space.
		if _, cached := v.e.cache.lookup(v.key(b)); !cached {
			v.mu.Unlock()
			err := v.e.cacheFetched(ctx, v, b, h, data, true)
			v.mu.Lock()
			return err
		}
		return nil
	}
}

// WriteAt stores p at off. It returns once every block's record is appended
// to the journal (acknowledged); Flush makes it durable. A write of up to
// maxAtomic bytes is applied under one hold of the volume lock, so a cut
// sees all of it or none of it.
func (v *Volume) WriteAt(ctx context.Context, p []byte, off int64) error {
	if err := v.checkRange(off, len(p)); err != nil {
		return err
	}
	chunk := v.e.maxAtomic()
	for len(p) > 0 {
		n := min(len(p), chunk-int(off%BlockSize))
		if err := v.applyRange(ctx, recWrite, p[:n], off, int64(n)); err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return v.e.noteWritten(v)
}

// Unmap makes [off, off+n) read as zeros; whole blocks are freed (they cost
// nothing in the next root).
func (v *Volume) Unmap(ctx context.Context, off, n int64) error {
	if n < 0 || n > v.size {
		return fmt.Errorf("%w: unmap of %d bytes", ErrOutOfRange, n)
	}
	if off < 0 || off%512 != 0 || n%512 != 0 || off+n > v.size {
		return fmt.Errorf("%w: unmap of %d bytes at %d on a volume of %d", ErrOutOfRange, n, off, v.size)
	}
	const chunk = 1024 * BlockSize // zero records are small: 64 bytes a block
	const pageBytes = pageBlocks * BlockSize
	touched := v.touchedPages(off, n)
	for n > 0 {
		if off%pageBytes == 0 && n >= pageBytes && v.pageKnownZero(uint32(off/pageBytes), touched) {
			off, n = off+pageBytes, n-pageBytes // a discard of a fresh volume
			continue
		}
		l := min(n, chunk-off%BlockSize, pageBytes-off%pageBytes)
		if err := v.applyRange(ctx, recZero, nil, off, l); err != nil {
			return err
		}
		off, n = off+l, n-l
	}
	return v.e.noteWritten(v)
}

// touchedPages lists the pages of [off, off+n) with dirty or frozen blocks
// as the unmap starts. A write racing the unmap into a page it skips is
// ordered after the unmap, which is one of the orders SCSI allows for
// overlapping commands in flight together.
func (v *Volume) touchedPages(off, n int64) map[uint32]bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	first, last := uint64(off/BlockSize), uint64((off+n-1)/BlockSize)
	touched := map[uint32]bool{}
	for _, m := range []map[uint64]blockState{v.dirty, v.frozen} {
		for b := range m {
			if b >= first && b <= last {
				touched[uint32(b/pageBlocks)] = true
			}
		}
	}
	return touched
}

// pageKnownZero reports, cheaply, whether a whole page reads as zeros: the
// recovery point has no such page and no block of it is dirty or in flight.
func (v *Volume) pageKnownZero(pi uint32, touched map[uint32]bool) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.base.Pages[pi]
	return !ok && !touched[pi]
}

// maxAtomic is the largest write applied atomically with respect to cuts:
// it needs a slot per block at once, so it is bounded by the cache too. It
// changes only when a disk is added (setMaxAtomic), so every write reads it
// without a lock.
func (e *Engine) maxAtomic() int {
	if n := e.atomicBytes.Load(); n > 0 {
		return int(n)
	}
	return BlockSize
}

// setMaxAtomic computes maxAtomic; openDisk calls it after each disk.
func (e *Engine) setMaxAtomic() {
	blocks := min(16, e.cache.nslots()/4, int(e.jr.capacityBytes()/4/(BlockSize+recHeader)))
	e.atomicBytes.Store(int64(max(1, blocks) * BlockSize))
}

// zeroLocked reports whether block b already reads as zeros with no record
// needed: never written since the recovery point and absent from it. Only
// pages already in memory are consulted. v.mu held.
func (v *Volume) zeroLocked(b uint64) bool {
	if st, ok := v.dirty[b]; ok {
		return st.zero
	}
	if _, ok := v.frozen[b]; ok {
		return false
	}
	pr, ok := v.base.Pages[uint32(b/pageBlocks)]
	if !ok {
		return true
	}
	p := v.e.pages.get(pr.Hash)
	if p == nil {
		return false
	}
	// A touched zero block takes the record, so that an unmap frees it.
	return p.ref(uint16(b%pageBlocks)).isZero() && !p.zeros[uint16(b%pageBlocks)]
}

// splitRecords cuts [off, off+n) into one record per block.
func (v *Volume) splitRecords(kind uint16, data []byte, off, n int64) []record {
	recs := make([]record, 0, n/BlockSize+2)
	for n > 0 {
		l := min(n, BlockSize-off%BlockSize)
		r := record{kind: kind, nonce: v.nonce, off: uint64(off), length: uint64(l)}
		if kind == recWrite {
			r.data, data = data[:l], data[l:]
		}
		recs = append(recs, r)
		off, n = off+l, n-l
	}
	return recs
}

// applyRange journals and applies a write or unmap of [off, off+n).
//
// Invariant (durability): under v.mu each record is given its LSN and is
// copied into the journal's current batch, then applied; after v.mu is
// dropped applyRange waits until the journal's files hold it and every
// record before it (journal.wait), so the write is acknowledged only once
// it is in the journal, though its effect may be visible to reads and
// cuts a little earlier. Every acknowledged write is
// therefore either in the journal after base.JournalLSN or in the
// published root, and replaying the journal over the root gives it back.
//
// Invariant (recovery point): every slot the range needs is made ready
// first; then all records are assigned LSNs and applied in one hold of
// v.mu, so a cut (which freezes under v.mu and takes the journal's head as
// its LSN) includes the whole range or none of it, and its LSN splits the
// records exactly.
func (v *Volume) applyRange(ctx context.Context, kind uint16, data []byte, off, n int64) (err error) {
	e := v.e
	recs := v.splitRecords(kind, data, off, n)
	var total int64
	for i := range recs {
		total += recordSize(len(recs[i].data))
	}
	// A fenced volume's journal records are never released: refuse before
	// waiting for journal space it may never get back.
	v.mu.Lock()
	err = v.usable()
	v.mu.Unlock()
	if err != nil {
		return err
	}
	// Waits below (journal space, cache space, a cut) end if the volume is
	// fenced meanwhile: its records are never released now.
	ctx, cancel := e.cutContext(ctx) // ends if the cache goes down
	defer cancel()
	defer context.AfterFunc(v.fencedCtx, cancel)()
	defer func() {
		if err != nil && ctx.Err() != nil {
			if f := v.Fenced(); f != nil {
				err = f
			} else if f := e.CacheFault(); f != nil {
				err = f
			}
		}
	}()
	e.ioGate.RLock()
	defer e.ioGate.RUnlock()
	if err := e.jr.reserve(ctx, total, e.underPressure); err != nil {
		return err
	}
	defer e.jr.unreserve(total)
	end, err := v.applyRecords(ctx, recs)
	if end != 0 {
		if werr := e.jr.wait(end); err == nil {
			err = werr
		}
	}
	return err
}

// applyRecords adds each record of one range to the journal's current
// batch and applies it, all in one hold of v.mu (see applyRange), and
// returns the journal position applyRange must wait for (0: no record).
// Zero records for blocks that already read as zeros are skipped.
func (v *Volume) applyRecords(ctx context.Context, recs []record) (end uint64, err error) {
	e := v.e
	v.mu.Lock()
	defer v.mu.Unlock()
prepare:
	if err := v.writable(); err != nil {
		return 0, err
	}
	if len(v.dirty) >= maxDirtyBlocks {
		// Memory stays bounded even for unmaps of huge written ranges
		// (zero blocks need no slot, so the cache does not limit them).
		ch := v.published
		v.mu.Unlock()
		e.underPressure()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		case <-e.done:
			err = ErrClosed
		}
		v.mu.Lock()
		if err != nil {
			return 0, err
		}
		goto prepare
	}
	for i := range recs {
		r := &recs[i]
		b := r.off / BlockSize
		if r.kind == recZero && r.length == BlockSize {
			continue // needs no slot
		}
		_, retry, err := v.writableSlot(ctx, b, r.kind == recWrite && r.length == BlockSize)
		if err != nil {
			return 0, err
		}
		if retry { // v.mu was dropped: start over
			goto prepare
		}
	}
	// Journal first, then the cache: a big batch is on its way to the disk
	// (kick) while the next record is copied and the slots are written.
	n := 0
	for i := range recs {
		r := &recs[i]
		if r.kind == recZero && r.length == BlockSize && v.zeroLocked(r.off/BlockSize) {
			continue
		}
		rend, aerr := e.jr.add(r)
		if aerr != nil {
			err = aerr
			break
		}
		end, recs[n] = rend, *r
		n++
		e.jr.kick()
	}
	for i := range recs[:n] {
		r := &recs[i]
		if err := v.applyLocked(r); err != nil {
			return end, err
		}
		v.noteDirty(r.lsn)
	}
	return end, err
}

// applyLocked applies a journaled record whose slot, if it needs one, is
// ready. v.mu held.
func (v *Volume) applyLocked(r *record) error {
	e := v.e
	b, boff := r.off/BlockSize, int(r.off%BlockSize)
	if r.kind == recZero && r.length == BlockSize {
		if st, ok := v.dirty[b]; ok && !st.zero {
			e.cache.release(st.slot)
		}
		e.cache.drop(v.key(b))
		v.dirty[b] = blockState{slot: -1, zero: true}
		return nil
	}
	st, ok := v.dirty[b]
	if !ok || st.zero {
		panic(fmt.Sprintf("volume: %s block %d has no ready slot (dirty %v %+v)", v.id, b, ok, st))
	}
	data := r.data
	if r.kind == recZero {
		data = zeroBlock[:r.length]
	}
	if err := e.cache.writeLocal(&st, data, boff); err != nil {
		return err
	}
	st.written.addRange(boff, len(data))
	v.dirty[b] = st
	return nil
}

// replay applies one record from the journal at Open. Unlike applyRange it
// appends nothing: the record is already there.
func (v *Volume) replay(ctx context.Context, r *record) error {
	if r.off+r.length > uint64(v.size) || r.off/BlockSize != (r.off+r.length-1)/BlockSize {
		return fmt.Errorf("%w: journal record at %d of %d bytes does not fit %s", ErrCorrupt, r.off, r.length, v.id)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	b := r.off / BlockSize
	if v.baseLost {
		// Over a lost root, a block is known only once a record covered
		// it whole; a partial record would be applied over zeros.
		if r.length == BlockSize {
			delete(v.unknown, b)
		} else if _, dirty := v.dirty[b]; !dirty {
			v.unknown[b] = true
		}
	}
	for !(r.kind == recZero && r.length == BlockSize) {
		_, retry, err := v.writableSlot(ctx, b, r.kind == recWrite && r.length == BlockSize)
		if err != nil {
			return err
		}
		if !retry {
			break
		}
	}
	if err := v.applyLocked(r); err != nil {
		return err
	}
	v.noteDirty(r.lsn)
	v.replayed++
	return nil
}

// Flush makes every write acknowledged before it durable: it syncs the
// journal up to what was written when it was called (a write is
// acknowledged only once written), sharing the fdatasync with concurrent
// Flushes and skipping it when an earlier one already covered that.
func (v *Volume) Flush(ctx context.Context) error {
	v.mu.Lock()
	err := v.flushable()
	v.mu.Unlock()
	if err != nil {
		return err
	}
	if err := v.e.jr.sync(); err != nil {
		return err
	}
	return v.e.noteFlush()
}

// noteDirty: v.mu held.
func (v *Volume) noteDirty(lsn uint64) {
	v.lastLSN, v.lastWrite = lsn, v.e.now()
	if v.dirtyFrom == noLSN {
		v.dirtyFrom = lsn
		v.e.wake() // the uploader times the volume's pause from now on
		if v.frozenFrom == noLSN {
			v.needLedger = true
		}
	}
	if v.e.dirtyDue(len(v.dirty)) {
		v.e.wake()
	}
}

// writableSlot returns the owned slot of dirty block b, creating it with
// the block's current content (unless full, when it is about to be
// overwritten whole). A block that reads as zeros gets a sparse slot,
// unfilled, and so does a copy of a frozen block: over it if it is whole,
// else with its few valid sectors (sparse.go). v.mu held; if it has to wait for cache
// space it drops and retakes v.mu and returns retry, and the caller starts
// over.
func (v *Volume) writableSlot(ctx context.Context, b uint64, full bool) (slot int32, retry bool, err error) {
	e := v.e
	if st, ok := v.dirty[b]; ok && !st.zero {
		return st.slot, false, nil
	}
	if _, ok := v.dirty[b]; !ok {
		if _, frozen := v.frozen[b]; !frozen {
			if s, crc, ok := e.cache.takeClean(v.key(b)); ok {
				v.dirty[b] = blockState{slot: s, known: crc}
				return s, false, nil
			}
		}
	}
	// Work out the current content before taking a slot.
	var content []byte // nil: zeros, or copy-on-write (cow)
	var cow *blockState
	switch _, ok := v.dirty[b]; {
	case ok: // a zero block
	case full:
	default:
		if fst, ok := v.frozen[b]; ok {
			switch {
			case fst.zero:
			default:
				// Copy-on-write of a frozen block: the new slot starts
				// empty, over the frozen one (whole), or with a copy of
				// the frozen one's few valid sectors (sparse).
				cow = &fst
			}
			break
		}
		h, err := e.blockRef(ctx, v.base, b)
		if err != nil {
			return -1, false, err
		}
		if !h.isZero() {
			// Fetch without holding v.mu (other I/O to the volume goes on),
			// cache the block clean, and start over: the retry takes the
			// clean slot, if the block is still the one fetched.
			v.mu.Unlock()
			data, err := e.fetchBlock(ctx, h)
			v.mu.Lock()
			if err != nil {
				return -1, false, err
			}
			_, dirty := v.dirty[b]
			_, frozen := v.frozen[b]
			now, err := e.blockRef(ctx, v.base, b)
			if err != nil || now != h || dirty || frozen {
				return -1, err == nil, err
			}
			if _, cached := e.cache.lookup(v.key(b)); cached {
				return -1, true, nil
			}
			if s, ok := e.cache.allocStaging(); ok {
				if err := e.cache.writeSlot(s, data, 0); err != nil {
					e.cache.release(s)
					return -1, false, err
				}
				e.cache.makeClean(s, v.key(b), sectorCRCs(data))
				return -1, true, nil
			}
			content = data // no room to cache it: use it now
		}
	}
	s, ok := e.cache.alloc()
	if !ok {
		if e.replaying.Load() {
			if e.cache.nslots() == 0 {
				return -1, false, fmt.Errorf("%w: no cache slot to replay into", ErrCacheDisk)
			}
			// Replay runs before the uploader: cut here to free slots.
			v.mu.Unlock()
			err := e.cutVolume(ctx, v, false)
			v.mu.Lock()
			return -1, err == nil, err
		}
		v.mu.Unlock()
		e.underPressure()
		err := e.cache.waitSpace(ctx, e.done)
		v.mu.Lock()
		return -1, err == nil, err
	}
	st := blockState{slot: s}
	switch {
	case full:
	case cow != nil && cow.sparse:
		err = e.cache.copyValid(*cow, &st)
	case cow != nil:
		st.sparse, st.over, st.under = true, true, cow.slot
	case content == nil:
		// Zeros: nothing to write. No sector is valid yet (the record
		// about to be applied makes its own valid).
		st.sparse, st.fromZero, st.known = true, true, zeroSectorCRCs
	default:
		err = e.cache.writeSlot(s, content, 0)
	}
	if err != nil {
		e.cache.release(s)
		return -1, false, err
	}
	v.dirty[b] = st
	return s, false, nil
}

// dropAll frees every slot of a deleted volume. v.mu and v.cutMu held (no
// cut is running, though a failed one may have left blocks frozen).
func (v *Volume) dropAll() {
	for _, m := range []map[uint64]blockState{v.dirty, v.frozen} {
		for b, st := range m {
			if !st.zero {
				v.e.cache.release(st.slot)
			}
			v.e.cache.drop(v.key(b))
		}
	}
	v.dirty, v.frozen, v.cut = map[uint64]blockState{}, nil, nil
	v.dirtyFrom, v.frozenFrom = noLSN, noLSN
}

// recoveryTime: v.mu held. See RecoveryPoint.
func (v *Volume) recoveryTime() time.Time {
	if v.cleanAt.After(v.base.CutTime) {
		return v.cleanAt
	}
	return v.base.CutTime
}

// isClean reports whether every acknowledged write is in the published
// root; then noteClean may advance cleanAt to now. v.mu held.
func (v *Volume) isClean() bool { return len(v.dirty) == 0 && v.cut == nil && !v.pendingReplay }

// A volume the upload buffer failed (ledger.go: IRRECOVERABLE, or PASS
// THROUGH until a cut after the damage) does not advance: writes made
// before now are lost, so now is not a recovery point; its root's cut is.
// Callers call it after publishing a root too: it republishes the recovery
// state either way. v.mu held.
func (v *Volume) noteClean() {
	if v.isClean() && !v.damaged() {
		v.cleanAt = v.e.now()
	}
	v.publishRecovery()
}

// damaged reports whether Open found the upload buffer lacking what the
// volume needed and the volume is not yet past it. v.mu held.
func (v *Volume) damaged() bool {
	c := v.cond
	return c != nil && (c.Status == control.VolumeIrrecoverable || v.base.JournalLSN <= c.LSN)
}

// dirtyDue reports whether n dirty blocks make a volume due a cut for
// their number alone. A dirty block holds a cache slot until a cut has
// stored it, so a volume is cut once it holds a quarter of the slots — but
// only while dirty and frozen blocks hold half the cache or more. Below
// that the slots are not short, and cutting on the count alone cut a
// random writer every few thousand writes: in the product bench's 4 KiB
// random row (writes spread over 8 192 blocks, a 10 GiB cache of 20 480
// slots) 9–14 cuts in a 3 s pass, 16–21% of volgw's CPU, each re-reading
// blocks the next would read again, where the interval cuts once; with
// real data each of those cuts stores a patch per block, about one PUT per
// write. Config.DirtyBlocksCut, when set, is the count alone.
func (e *Engine) dirtyDue(n int) bool {
	if e.cfg.DirtyBlocksCut > 0 {
		return n >= e.cfg.DirtyBlocksCut
	}
	all, _, dirty := e.cache.slotCounts()
	return n >= max(1, all/4) && dirty >= all/2
}
