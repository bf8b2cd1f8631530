package volume

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"

	"github.com/volgw/volgw/internal/control"
)

// A failed cache disk, and ResetCache.
//
// AWS: "If your cache disk encounters an error, the gateway prevents read
// and write operations"; ResetCache "resets all cache disks that have
// encountered an error and makes the disks available for reconfiguration
// as cache storage", data not yet uploaded "can be lost", and the gateway
// needs a new cache disk to function.
//
// volgw loses nothing: every acknowledged write not yet in the store is in
// the journal (invariant 1), which a cache disk failure does not touch,
// and the cache is rebuilt from the journal at every Open anyway. So:
//
//   - The first I/O error of a cache disk file (noteCacheFault; a full
//     file system is not one, cache.ioError) is logged
//     at ERROR with the file's name, and from then on every volume's
//     reads, writes, flushes and cuts fail with ErrCacheDisk (never wrong
//     data), and VolumeStatus reports PASS THROUGH naming the disk, until
//     ResetCache then AddDisk — or a restart, which reopens the disk and
//     replays the journal as always.
//   - ResetCache cancels the cuts in flight (a cut's root is named by the
//     head only once everything it names is stored, so a cancelled one
//     publishes nothing), forgets every volume's dirty, frozen and clean
//     blocks, closes and forgets the cache disks, and keeps the journal
//     from each volume's first record after its published root.
//   - AddDisk of a cache disk then replays those records over each
//     volume's published root, exactly as Open does, and I/O resumes.

// cacheDown says why the cache cannot serve.
type cacheDown struct {
	err  error
	disk string // the disk file that failed ("" after a reset)
	// reset: ResetCache removed the disks (a cache disk added ends it);
	// else a disk failed (only ResetCache ends it).
	reset bool
}

// cacheReplayKey marks the context of the replay after a reset: its cuts
// (a full cache) are allowed while I/O is refused.
type cacheReplayKey struct{}

// noteCacheFault is the cache's onFault: the first fault of the engine's
// life since the last reset takes the cache down, loudly.
func (e *Engine) noteCacheFault(disk string, err error) {
	d := &cacheDown{disk: disk, err: fmt.Errorf("%w %s failed (%v): every volume's I/O is refused; "+
		"ResetCache then AddCache (this disk once it is sound again, or another) rebuilds every volume from the upload buffer, losing nothing acknowledged",
		ErrCacheDisk, disk, err)}
	if e.setCacheDown(nil, d) {
		e.log.Error("volume: cache disk failed; every volume's I/O is refused until ResetCache and AddCache (or a restart)",
			"disk", disk, "err", err)
	}
}

// CacheFault reports why the cache cannot serve, or nil.
func (e *Engine) CacheFault() error {
	if d := e.cacheDown.Load(); d != nil {
		return d.err
	}
	return nil
}

// setCacheDown replaces the cache's state old (nil: up) with d, if it is
// still old, and then, d being down, ends the cuts in flight and the
// writers waiting for space (cacheUp).
func (e *Engine) setCacheDown(old, d *cacheDown) bool {
	e.resetMu.Lock()
	defer e.resetMu.Unlock()
	if !e.cacheDown.CompareAndSwap(old, d) {
		return false
	}
	if d != nil {
		e.cacheUpStop()
	} else {
		e.cacheUp, e.cacheUpStop = context.WithCancel(context.Background())
	}
	return true
}

// FailedCacheDisks implements control.CacheResetter: the cache disk whose
// failure took the cache down, until ResetCache.
func (e *Engine) FailedCacheDisks() []string {
	if d := e.cacheDown.Load(); d != nil && d.disk != "" {
		return []string{d.disk}
	}
	return nil
}

// cutContext is ctx, also cancelled when the cache goes down (cut waits
// use it, and so do writers' waits for journal or cache space).
func (e *Engine) cutContext(ctx context.Context) (context.Context, context.CancelFunc) {
	e.resetMu.Lock()
	up := e.cacheUp
	e.resetMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(up, cancel)
	return ctx, func() { stop(); cancel() }
}

// cuttable is usable for a cut: during the replay after a reset the cache
// is still down (I/O waits for the replay to end) but the replay's own
// cuts, freeing slots, must run. v.mu held.
func (v *Volume) cuttable(ctx context.Context) error {
	err := v.usable()
	if errors.Is(err, ErrCacheDisk) && ctx.Value(cacheReplayKey{}) != nil && v.readErr == nil {
		return v.fenced
	}
	return err
}

var _ control.CacheResetter = (*Engine)(nil)

// ResetCache implements control.CacheResetter: it drops every cache disk
// and returns their paths. Volumes refuse I/O until AddDisk adds a cache
// disk, which rebuilds them from the journal. It must not run together
// with AddDisk (control serializes them).
//
// An error (the store not answering a head's GET) leaves the cache reset
// all the same; the volumes whose head could not be read are read again
// before the rebuild.
func (e *Engine) ResetCache(ctx context.Context) ([]string, error) {
	if e.isClosed.Load() {
		return nil, ErrClosed
	}
	down := &cacheDown{reset: true, err: fmt.Errorf(
		"%w: the cache was reset and no cache disk has been added since: AddCache one; every acknowledged write is in the upload buffer and comes back", ErrCacheDisk)}
	for old := e.cacheDown.Load(); !e.setCacheDown(old, down); old = e.cacheDown.Load() {
	}

	// With every volume's cutMu then mu held, nothing uses a slot (reads
	// of pinned slots use their file, closed below, and let go of them by
	// generation).
	vols := e.volumes()
	slices.SortFunc(vols, func(a, b *Volume) int { return strings.Compare(a.id, b.id) })
	for _, v := range vols {
		v.cutMu.Lock()
	}
	for _, v := range vols {
		v.mu.Lock()
	}
	var resync []*Volume
	for _, v := range vols {
		if v.cut != nil {
			// A cut that failed (or was cancelled) may have landed its
			// head with its answer lost: look at the head again below
			// (and before the rebuild, if the store does not answer now).
			v.pendingSnaps = append(v.cut.snaps, v.pendingSnaps...)
			v.resync = true
			resync = append(resync, v)
		}
		v.holdFrom = min(v.holdFrom, v.dirtyFrom, v.frozenFrom)
		v.dirty, v.frozen, v.cut = map[uint64]blockState{}, nil, nil
		v.dirtyFrom, v.frozenFrom = noLSN, noLSN
		v.pendingReplay = true
		if v.baseLost {
			v.unknown = map[uint64]bool{}
		}
		if errors.Is(v.readErr, ErrCacheDisk) {
			v.readErr = nil
		}
		v.publishRecovery()
	}
	disks := e.cache.reset()
	for _, v := range vols {
		v.mu.Unlock()
	}
	var errs []error
	for _, v := range resync {
		errs = append(errs, e.resyncHead(ctx, v))
	}
	for _, v := range vols {
		v.cutMu.Unlock()
	}
	e.mu.Lock()
	e.state.Disks = slices.DeleteFunc(e.state.Disks, func(d control.Disk) bool { return d.Use == control.DiskUseCache })
	errs = append(errs, e.saveState())
	e.mu.Unlock()
	e.setMaxAtomic()
	e.log.Warn("volume: cache reset; volumes refuse I/O until a cache disk is added", "disks", disks, "volumes", len(vols))
	return disks, errors.Join(errs...)
}

// resyncHead reads the volume's head again after a cut was abandoned: if
// that cut's PUT landed, the head names its root (this data dir's, by its
// token) and replay starts there. v.cutMu held.
func (e *Engine) resyncHead(ctx context.Context, v *Volume) error {
	base, etag, fenced, err := e.openHead(ctx, v)
	if err != nil {
		return fmt.Errorf("volume: reading %s's head after a reset: %w", v.id, err)
	}
	if fenced != "" {
		e.fence(v, fenced)
		return nil
	}
	v.mu.Lock()
	v.base, v.headETag, v.resync = base, etag, false
	v.publishRecovery()
	v.mu.Unlock()
	return nil
}

// holdWithoutCache is Open's replay when there is no cache disk (reset,
// then a restart): each volume keeps the journal from its first record
// after its published root, and waits for a cache disk.
func (e *Engine) holdWithoutCache(byNonce map[uint64]*Volume) error {
	err := e.jr.replay(func(r *record) error {
		if v := byNonce[r.nonce]; v != nil && r.lsn >= v.base.JournalLSN {
			v.holdFrom = min(v.holdFrom, r.lsn)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("volume: journal replay: %w", err)
	}
	for _, v := range byNonce {
		v.pendingReplay = true
		v.publishRecovery()
	}
	e.setCacheDown(nil, &cacheDown{reset: true, err: fmt.Errorf(
		"%w: there is no cache disk: AddCache one; every acknowledged write is in the upload buffer and comes back", ErrCacheDisk)})
	e.log.Warn("volume: no cache disk; volumes refuse I/O until one is added", "volumes", len(byNonce))
	return nil
}

// rebuildAfterReset replays the journal over every volume waiting for a
// cache disk, as Open does, with every journal append held off. The cache
// stays down (I/O refused) until it is done.
func (e *Engine) rebuildAfterReset(ctx context.Context) error {
	d := e.cacheDown.Load()
	if d == nil || !d.reset || e.cache.nslots() == 0 {
		return nil
	}
	e.ioGate.Lock()
	defer e.ioGate.Unlock()
	// The replay's own cuts (a full cache) must not be cancelled: a
	// context of their own, the cache staying down meanwhile.
	e.resetMu.Lock()
	e.cacheUp, e.cacheUpStop = context.WithCancel(context.Background())
	e.resetMu.Unlock()
	byNonce := map[uint64]*Volume{}
	for _, v := range e.volumes() {
		v.mu.Lock()
		pending, resync := v.pendingReplay, v.resync
		v.mu.Unlock()
		if resync {
			v.cutMu.Lock()
			err := e.resyncHead(ctx, v)
			v.cutMu.Unlock()
			if err != nil {
				return err // the volumes stay down; AddCache can be retried
			}
		}
		if pending {
			byNonce[v.nonce] = v
		}
	}
	rctx := context.WithValue(ctx, cacheReplayKey{}, true)
	e.replaying.Store(true)
	n := 0
	err := e.jr.scan(func(r *record) error {
		v := byNonce[r.nonce]
		if v == nil || r.lsn < v.base.JournalLSN {
			return nil
		}
		e.replayLSN.Store(r.lsn)
		n++
		return e.replayFenced(v, v.replay(rctx, r), byNonce)
	})
	e.replaying.Store(false)
	if err != nil {
		// The volumes stay down and keep their journal (holdFrom); a
		// ResetCache and AddCache again starts over.
		e.log.Error("volume: rebuilding volumes from the upload buffer after a cache reset failed", "err", err)
		return fmt.Errorf("volume: rebuilding volumes after a cache reset: %w", err)
	}
	for _, v := range byNonce {
		v.mu.Lock()
		v.pendingReplay, v.holdFrom = false, noLSN
		v.noteClean()
		v.mu.Unlock()
	}
	e.resetMu.Lock()
	e.cacheDown.CompareAndSwap(d, nil)
	e.resetMu.Unlock()
	e.releaseJournal()
	e.wake()
	e.log.Info("volume: volumes rebuilt from the upload buffer after a cache reset", "volumes", len(byNonce), "records", n)
	return nil
}

// reset closes and forgets every cache disk and slot, and returns the
// disks' paths. Callers hold every volume's lock.
func (c *cache) reset() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var paths []string
	for _, f := range c.files {
		paths = append(paths, f.f.Name())
		f.f.Close() // a read still holding it fails; nothing is lost
	}
	c.files, c.slots, c.free = nil, nil, nil
	c.clean = make(map[cacheKey]int32)
	c.head, c.tail, c.staging = -1, -1, 0
	c.gen++
	c.noPunch.Store(false)
	c.signal()
	c.unpinned.Broadcast()
	return paths
}

// scan calls fn for every record the journal holds, from its tail to what
// was written, while it is in use: unlike replay it moves nothing. The
// caller holds ioGate exclusively, so no record is being appended and
// every acknowledged one is written. A record that does not check is
// corruption of what the journal must hold: scan fails.
func (j *journal) scan(fn func(*record) error) error {
	j.mu.Lock()
	lsn, end, ring := j.tail, j.written, j.sb.ID
	j.mu.Unlock()
	read := func(lsn uint64, p []byte) error {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.ringIO(lsn, p, false)
	}
	var h [recHeader]byte
	le := binary.LittleEndian
	for lsn < end {
		if err := read(lsn, h[:]); err != nil {
			return err
		}
		r := record{kind: le.Uint16(h[4:]), lsn: le.Uint64(h[8:]), epoch: le.Uint32(h[16:]),
			nonce: le.Uint64(h[24:]), off: le.Uint64(h[32:]), length: le.Uint64(h[40:]), ring: le.Uint64(h[48:])}
		dataLen := le.Uint32(h[20:])
		if le.Uint32(h[0:]) != recMagic || r.lsn != lsn || r.ring != ring || lsn+uint64(recordSize(int(dataLen))) > end {
			return fmt.Errorf("%w: journal record at %d does not check", ErrCorrupt, lsn)
		}
		r.data = make([]byte, dataLen)
		if err := read(lsn+recHeader, r.data); err != nil {
			return err
		}
		want := le.Uint32(h[56:])
		le.PutUint32(h[56:], 0)
		if crc32.Update(crc32.Checksum(h[:], castagnoli), castagnoli, r.data) != want {
			return fmt.Errorf("%w: journal record at %d fails its CRC", ErrCorrupt, lsn)
		}
		if err := fn(&r); err != nil {
			return err
		}
		lsn += uint64(recordSize(int(dataLen)))
	}
	return nil
}
