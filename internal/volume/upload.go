package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/volgw/volgw/internal/blob"
)

// uploader schedules cuts. Several volumes are cut at once (at most
// Config.ParallelCuts; one cut per volume at a time, which v.cutMu
// enforces anyway), all sharing the engine's bound on PUTs in flight and
// its block buffers (uploadPool), so N busy volumes neither make N×8 PUTs
// nor hold N×8 buffers.
//
// A volume is due:
//   - when its recovery point is about to be CutInterval old: the cut
//     starts early by the time its last cut took (plus a quarter, plus one
//     scan), so that it is published, and the recovery point advances, by
//     then. Waiting for the interval to pass first, as a plain ticker does,
//     left the recovery point up to interval + upload time behind;
//   - when its writes have paused (quietAfter since the last one, more for
//     a writer that came back right after such pauses) and it
//     holds dirty data, unless the scheduler started a cut of it less
//     than quietSpacing ago: a burst is in the store one upload after it
//     ends, not up to an interval later, and a volume that writes a
//     little all the time is cut at most once per quietSpacing. Cutting
//     during a burst instead (as soon as any PUT slot is free) hashes and
//     PUTs alongside the writes and, on a small machine, halves the rate
//     they are acknowledged at;
//   - when its dirty blocks hold a quarter of the cache's slots and dirty
//     blocks hold half of them (dirtyDue), a snapshot waits, or a
//     failed cut is to be retried (with backoff);
//   - while the journal is over a quarter full, as soon as it has enough
//     dirty blocks to keep every PUT slot busy (2×UploadConcurrency);
//   - under pressure (the journal over half full or the cache out of
//     slots), whenever it has anything dirty. A pressure signal that finds
//     a volume's cut running is remembered, and the volume is cut again as
//     soon as that cut ends: under sustained writes the store then has
//     PUTs in flight continuously, not only at the interval.
//
// Every cut ending triggers a scan, so no due volume waits for a tick, and
// so does a volume becoming dirty (noteDirty); a scan that finds a volume
// due later (its pause or the interval) sets a timer for then.
func (e *Engine) uploader(ctx context.Context) {
	defer e.wg.Done()
	s := &uploadSched{e: e, interval: e.cfg.CutInterval, vols: map[*Volume]*volSched{}, done: make(chan *Volume)}
	defer s.wait()
	var tick <-chan time.Time
	if e.cfg.CutInterval > 0 {
		t := time.NewTicker(scanEvery(e.cfg.CutInterval))
		defer t.Stop()
		tick = t.C
	}
	wakeup := time.NewTimer(time.Hour)
	wakeup.Stop()
	defer wakeup.Stop()
	lastAll := e.now()
	for {
		pressure := false
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-wakeup.C:
		case <-e.pressure:
			pressure = true
		case <-e.kick:
		case v := <-s.done:
			s.finished(v)
			pressure = s.deferred
		}
		all := false
		if e.cfg.CutInterval > 0 && e.now().Sub(lastAll) >= e.cfg.CutInterval {
			all, lastAll = true, e.now()
		}
		if all || (pressure && e.cfg.CutInterval <= 0) {
			e.refreshLedger(false)
		}
		if next := s.scan(ctx, all, pressure); !next.IsZero() {
			wakeup.Reset(max(time.Millisecond, next.Sub(e.now())))
		}
	}
}

// quietAfter is how long a volume's writes must have paused for the
// uploader to take it that the burst is over: longer than the gaps
// between a busy writer's commands, so that a burst is not cut in its
// middle (where the upload would compete with the writes for the CPU),
// short next to an upload (512 MiB take seconds), since it delays every
// burst's way into the store by that much. Measured on the 2-vCPU bench
// machine under load 4–10 (bench/peers.sh): commands of a sequential
// qemu-img convert up to 54 ms apart, 93 ms while a cut ran.
const quietAfter = 100 * time.Millisecond

// quietSpacing is the least time between the starts of two cuts of one
// volume that its pauses start: a fifth of the interval (1 s by default).
// A cut costs PUTs beyond its blocks (the pages it rewrites, a root and
// the head, a fencing record's fsync) and, with recovery-point retention,
// a root kept for the window. A volume that writes a little, pauses,
// writes again, all the time, is therefore cut at most five times as often
// as the interval alone would cut it (3 small PUTs a second, where the
// interval makes 0.6), which the operator's choice of interval bounds; a
// burst that follows a cut closely waits at most a fifth of the interval
// to start its own.
func quietSpacing(interval time.Duration) time.Duration { return interval / 5 }

// scanEvery is how often the uploader looks at its volumes' recovery
// points: often enough that a cut starts within a small part of the
// interval of when it is due.
func scanEvery(interval time.Duration) time.Duration {
	return max(10*time.Millisecond, min(interval/20, 100*time.Millisecond))
}

// uploadSched is the uploader's own state; only its goroutine touches it.
type uploadSched struct {
	e *Engine
	// interval is Config.CutInterval (<= 0: no periodic cuts, and no cuts
	// on a pause either).
	interval time.Duration
	vols     map[*Volume]*volSched
	running  int
	done     chan *Volume // a launched cut ended
	// deferred: a pressure signal found a dirty volume it could not cut
	// (its cut running, or ParallelCuts reached): scan again, under
	// pressure, when a cut ends.
	deferred bool
}

type volSched struct {
	running bool
	lastDur time.Duration // how long the last cut took
	start   time.Time
	err     error
	fails   int
	retryAt time.Time
	// quiet is the pause that counts as the end of the volume's burst:
	// quietAfter, doubled (up to quietMost) each time its writer came
	// back within quietBack of a pause it was cut on — on a loaded
	// machine a busy writer's commands can be that far apart — and halved
	// after each such pause that lasted.
	quiet time.Duration
	// pausedAt is the last write before the pause a launched cut was due
	// to, until the scans have seen whether the pause lasted.
	pausedAt time.Time
}

// quietMost bounds the pause taken as the end of a burst (volSched.quiet);
// quietBack is how soon a writer that resumes after a pause it was cut on
// shows that the pause was not the end of its burst.
const (
	quietMost = 4 * quietAfter
	quietBack = time.Second
)

func (s *uploadSched) state(v *Volume) *volSched {
	vs := s.vols[v]
	if vs == nil {
		vs = &volSched{quiet: quietAfter}
		s.vols[v] = vs
	}
	return vs
}

func (s *uploadSched) finished(v *Volume) {
	s.running--
	vs := s.vols[v]
	vs.running = false
	if vs.err == nil {
		vs.fails, vs.lastDur = 0, s.e.now().Sub(vs.start)
		return
	}
	// Retry with backoff, up to the interval (or 5s): a store that is down
	// is not hammered, one that blinked is retried soon.
	vs.fails++
	limit := s.interval
	if limit <= 0 {
		limit = 5 * time.Second
	}
	vs.retryAt = s.e.now().Add(min(limit, 100*time.Millisecond<<min(vs.fails, 10)))
}

// wait lets every launched cut end (they see the cancelled context).
func (s *uploadSched) wait() {
	for s.running > 0 {
		<-s.done
		s.running--
	}
}

// scan launches the cuts that are due (up to ParallelCuts) and returns
// the earliest time a volume it passed over will be due by its pause or
// the interval (zero if none): the uploader scans again then.
func (s *uploadSched) scan(ctx context.Context, all, pressure bool) (next time.Time) {
	e := s.e
	now := e.now()
	type cand struct {
		v      *Volume
		urgent bool
		from   uint64    // oldest journal record it holds
		paused time.Time // due to a pause after this write
	}
	var due []cand
	if pressure {
		s.deferred = false // set again below if it leaves a volume behind
	}
	// Busy: the journal holds over a quarter of its capacity, i.e. writes
	// outpace uploads. Then a volume is cut as soon as it has enough dirty
	// blocks to keep every PUT slot busy, rather than waiting for the
	// threshold: with slow local writes (or many volumes) the threshold
	// may take long to reach while the store idles.
	used, capacity := e.jr.usage()
	busy := capacity > 0 && used >= capacity/4
	minCut := 2 * e.cfg.UploadConcurrency
	vols := e.volumes()
	quiet := true // no volume written for quietAfter
	for _, v := range vols {
		vs := s.state(v)
		v.mu.Lock()
		if now.Sub(v.lastWrite) < quietAfter {
			quiet = false
		}
		if all {
			v.noteClean()
		}
		dirty := len(v.dirty) > 0
		if !vs.pausedAt.IsZero() {
			// Was the last pause cut on the end of a burst?
			switch back := v.lastWrite.After(vs.pausedAt); {
			case back && v.lastWrite.Sub(vs.pausedAt) < quietBack:
				vs.quiet, vs.pausedAt = min(2*vs.quiet, quietMost), time.Time{}
			case back || now.Sub(vs.pausedAt) >= quietBack:
				vs.quiet, vs.pausedAt = max(quietAfter, vs.quiet/2), time.Time{}
			}
		}
		var why bool
		var paused time.Time
		urgent := v.cut != nil || len(v.pendingSnaps) > 0
		switch {
		case v.usable() != nil:
		case v.cut != nil:
			why = !v.cutting && !now.Before(vs.retryAt)
		case urgent, e.dirtyDue(len(v.dirty)), pressure && dirty, all && dirty, busy && len(v.dirty) >= minCut:
			why = true
		case dirty && s.interval > 0:
			lead := vs.lastDur + vs.lastDur/4 + scanEvery(s.interval)
			at := v.recoveryTime().Add(s.interval - lead)
			// Or once its writes have paused, the cuts spaced.
			quiet := v.lastWrite.Add(vs.quiet)
			if !vs.start.IsZero() {
				quiet = later(quiet, vs.start.Add(quietSpacing(s.interval)))
			}
			if now.Before(at) && !now.Before(quiet) {
				paused = v.lastWrite
			}
			at = earlier(at, quiet)
			why = !now.Before(at)
			if !why && !vs.running {
				next = earlier(next, at)
			}
		}
		from := min(v.dirtyFrom, v.frozenFrom)
		v.mu.Unlock()
		if !why {
			continue
		}
		if vs.running {
			if pressure {
				s.deferred = true
			}
			continue
		}
		due = append(due, cand{v, urgent, from, paused})
	}
	// The cache's write-back (cache.startWriteBack) waits for a pause of
	// every volume's writes, as pause cuts do: while writes run it would
	// queue the disk's writes ahead of their journal appends (a 1 MiB
	// sequential write ran at 630 MB/s with the write-back of the cuts
	// made during it, 980 without).
	if quiet && e.cache.writeBackDue.Load() {
		e.cache.writeBackDue.Store(false)
		e.cache.startWriteBack()
	}
	// Retries and snapshots first, then the volume holding the oldest
	// journal records: releasing them is what frees the ring.
	sort.Slice(due, func(i, j int) bool {
		if due[i].urgent != due[j].urgent {
			return due[i].urgent
		}
		return due[i].from < due[j].from
	})
	for _, c := range due {
		if s.running >= e.cfg.ParallelCuts {
			if pressure {
				s.deferred = true
			}
			break
		}
		vs := s.state(c.v)
		vs.running, vs.start = true, e.now()
		if !c.paused.IsZero() {
			vs.pausedAt = c.paused
		}
		s.running++
		go func() {
			err := e.cutVolume(ctx, c.v, false)
			if err != nil && ctx.Err() == nil {
				e.log.Warn("volume: cut failed; will retry", "volume", c.v.id, "err", err)
			}
			vs.err = err // read by the uploader after it receives c.v
			s.done <- c.v
		}()
	}
	// Forget deleted volumes.
	if len(s.vols) > len(vols) {
		live := make(map[*Volume]bool, len(vols))
		for _, v := range vols {
			live[v] = true
		}
		for v, vs := range s.vols {
			if !live[v] && !vs.running {
				delete(s.vols, v)
			}
		}
	}
	return next
}

// earlier returns the earlier of a and b, a zero time counting as none.
func earlier(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// cutVolume freezes the volume's dirty blocks as of now, uploads them and
// publishes the new root. If a previous cut failed half-way, that same
// frozen set is retried first (its cut time and LSN do not change). With
// force, a root is published even if nothing is dirty. Returns when the cut
// is published or failed.
//
// Invariant (recovery point): the cut is taken under v.mu, which every
// journal append for the volume also holds, so the records before cut.lsn
// are exactly those whose effects are in frozen (on top of base). The new
// root holds base plus frozen, and is published (head replaced) only after
// every block and page it names is in the store: blocks and pages, then
// the root, then head. So the published root is always a crash-consistent
// prefix: exactly the writes acknowledged before the cut. Only after
// publication is the journal released up to the cut.
func (e *Engine) cutVolume(ctx context.Context, v *Volume, force bool) error {
	for {
		retried, err := e.cutOnce(ctx, v, force)
		if err != nil || !retried {
			return err
		}
		// That was an earlier cut's retry; now cut what is dirty now.
	}
}

func (e *Engine) cutOnce(ctx context.Context, v *Volume, force bool) (retried bool, err error) {
	v.cutMu.Lock()
	defer v.cutMu.Unlock()
	ctx, stop := e.cutContext(ctx)
	defer stop()
	v.mu.Lock()
	if err := v.cuttable(ctx); err != nil {
		v.mu.Unlock()
		return false, err
	}
	v.cutting = true
	defer func() {
		v.mu.Lock()
		v.cutting = false
		v.mu.Unlock()
	}()
	retried = v.cut != nil
	if v.cut == nil {
		if len(v.dirty) == 0 && !force {
			snaps := v.pendingSnaps
			v.pendingSnaps = nil
			v.noteClean()
			base, t := v.base, v.recoveryTime()
			v.mu.Unlock()
			// Nothing dirty: the published root is the volume as of now.
			return false, e.completeSnapshots(ctx, snaps, base, t)
		}
		lsn := e.jr.headLSN()
		if e.replaying.Load() {
			lsn = e.replayLSN.Load()
		}
		v.cut = &cutState{lsn: lsn, time: e.now(), snaps: v.pendingSnaps, token: newToken()}
		v.frozen, v.dirty = v.dirty, make(map[uint64]blockState)
		v.frozenFrom, v.dirtyFrom = v.dirtyFrom, noLSN
		v.pendingSnaps = nil
	}
	cut, base, etag := v.cut, v.base, v.headETag
	defer func() {
		if err == nil {
			e.cutSeconds.Observe(e.now().Sub(cut.time).Seconds())
		}
	}()
	frozen := make(map[uint64]blockState, len(v.frozen))
	for b, st := range v.frozen {
		frozen[b] = st
	}
	v.mu.Unlock()

	// GC rule G3c: the lease protects what the cut stores or reuses, by
	// checkpoints while it runs, until its root lands (gclease.go).
	ctx, lease := e.startCutLease(ctx, v.id, base.Seq+1)
	defer func() { lease.end(ctx, err == nil) }()
	// The fencing record (fence.go) names the head about to be published:
	// its seq and token are the cut's from the start, so it is written
	// (and fsynced, a few hundred ms while the cache's writeback fills the
	// disk) while the blocks upload rather than after. Until the head PUT
	// either head, base or this one, is known as ours, as it is once
	// recorded whenever that is.
	noted := make(chan error, 1)
	go func() { noted <- e.notePublishing(v, base, base.Seq+1, cut.token, false) }()
	newRoot, crcs, _, err := e.upload(ctx, v, base, cut, frozen)
	lease.stop()
	noteErr := <-noted // v.vf is the cut's (cutMu) again
	if err != nil {
		return retried, err
	}
	rootStart := e.now()
	// The root (its key carries the cut's token, so no other writer's root
	// is replaced; an earlier attempt of this same cut wrote the same
	// bytes); the fencing record is written by now: the token is recorded
	// before the head's PUT, so that this data dir knows the head as its
	// own even if the answer is lost or it dies right after. Both must be
	// done before the head names the root.
	if newRoot.Seq != base.Seq+1 || newRoot.Token != cut.token {
		panic(fmt.Sprintf("volume: cut of %s: root seq %d token %q, recorded %d %q", v.id, newRoot.Seq, newRoot.Token, base.Seq+1, cut.token))
	}
	if err := errors.Join(e.putRoot(ctx, v.w, newRoot, blob.PutOptions{}), noteErr); err != nil {
		return retried, err
	}
	// GC rule G3c: the root took over from the checkpoints in time, and
	// the head lands while the root is young enough to be marked.
	if err := lease.landedAll(rootStart, e.now()); err != nil {
		return retried, fmt.Errorf("cut of %s: %w", v.id, err)
	}
	// What the cut stored again over an older copy is still there: a round
	// that listed the old copy may have deleted the new one (G4).
	if err := lease.checkRewritten(ctx); err != nil {
		return retried, fmt.Errorf("cut of %s: %w", v.id, err)
	}
	if d := e.now().Sub(rootStart); d > e.lease()-e.gcSkewLimit() {
		return retried, fmt.Errorf("%w: cut of %s: its root was written %v ago", ErrLeaseExpired, v.id, d)
	}
	hb, _ := json.Marshal(head{Seq: newRoot.Seq, Owner: e.state.Owner, Token: newRoot.Token})
	info, err := e.store.Put(ctx, headKey(v.id), hb, blob.PutOptions{IfMatch: etag})
	if errors.Is(err, blob.ErrPreconditionFailed) {
		// Either another writer published, or our own PUT landed and its
		// retry (after a lost answer) found the new ETag: the token says
		// which. (An owner ID cannot: a copy of this data dir has ours.)
		h, cur, herr := e.getHead(ctx, v.id)
		switch {
		case herr != nil:
			return retried, fmt.Errorf("volume: publishing %s seq %d: %w", v.id, newRoot.Seq, herr)
		case h.Token == newRoot.Token && !h.Deleted:
			info.ETag, err = cur, nil
		default:
			e.fence(v, fmt.Sprintf("publishing seq %d over seq %d, found the head replaced by seq %d of %q (token %q, deleted %v): "+
				"another writer has published the volume (a copy of this data dir, this data dir restored from an older backup, or another gateway)",
				newRoot.Seq, base.Seq, h.Seq, h.Owner, h.Token, h.Deleted))
			return retried, v.Fenced()
		}
	}
	if err != nil {
		return retried, fmt.Errorf("volume: publishing %s seq %d: %w", v.id, newRoot.Seq, err)
	}

	v.mu.Lock()
	v.base, v.headETag = newRoot, info.ETag
	for b, st := range frozen {
		switch dst, rewritten := v.dirty[b]; {
		case st.zero:
		case rewritten && dst.over && !v.deleted:
			// Copy-on-write over the frozen slot (sparse.go): the frozen
			// slot takes the later writes and is the dirty block's now.
			nst, err := e.cache.settle(dst)
			nst.known = crcs[b] // the frozen slot's, uploaded
			if err != nil && v.readErr == nil {
				// The block's later writes are in the journal only: the
				// volume is unusable until a restart replays it.
				e.log.Error("volume: cache disk failed; restart to replay the journal", "volume", v.id, "err", err)
				v.readErr = fmt.Errorf("volume: %s: cache disk: %w", v.id, err)
			}
			e.cache.release(dst.slot)
			v.dirty[b] = nst
		case rewritten || v.deleted:
			e.cache.release(st.slot)
		default:
			// The frozen slot holds exactly the uploaded block (a sparse
			// one's invalid sectors were zeroed by upload).
			e.cache.makeClean(st.slot, v.key(b), crcs[b])
		}
	}
	v.frozen, v.cut, v.frozenFrom = nil, nil, noLSN
	v.noteClean()
	close(v.published)
	v.published = make(chan struct{})
	v.mu.Unlock()
	e.cache.writeBackDue.Store(true) // the uploader starts it once writes pause
	e.releaseJournal()
	// Still under cutMu: the head is newRoot while the records are written.
	return retried, e.completeSnapshots(ctx, cut.snaps, newRoot, cut.time)
}

// uploadPool bounds the engine's block uploads as a whole: PUTs in flight
// (Config.UploadConcurrency, shared by every cut of every volume) and the
// 512 KiB buffers blocks are read into (one per PUT slot plus a few being
// hashed ahead), allocated once and reused. Memory for uploads is
// therefore a fixed few MiB whatever the number of volumes.
//
// Small objects (patches, pages: at most a quarter of a block) have PUT
// slots of their own, smallPuts for each block slot: their cost is the
// request, not the bytes (a file store's fsync, an S3 round trip), so a
// cut of thousands of patches keeps many in flight, in a few MiB.
type uploadPool struct {
	slots, small chan struct{}
	bufs         chan []byte // nil entries: not allocated yet
}

// smallPuts is how many small PUTs may be in flight per block PUT slot.
const smallPuts = 8

// hashAhead is how many blocks beyond the PUTs in flight may be read and
// hashed, waiting for a PUT slot: the next PUT starts as soon as one ends.
const hashAhead = 2

func newUploadPool(puts int) *uploadPool {
	p := &uploadPool{slots: make(chan struct{}, puts), small: make(chan struct{}, puts*smallPuts), bufs: make(chan []byte, puts+hashAhead)}
	for range puts + hashAhead {
		p.bufs <- nil
	}
	return p
}

func (p *uploadPool) buf(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.bufs:
		if b == nil {
			b = make([]byte, BlockSize)
		}
		return b, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (p *uploadPool) putBuf(b []byte) { p.bufs <- b }

// acquire takes a PUT slot: a small one for an object of at most a
// quarter of a block.
func (p *uploadPool) acquire(ctx context.Context, small bool) error {
	slots := p.slots
	if small {
		slots = p.small
	}
	select {
	case slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (p *uploadPool) release(small bool) {
	if small {
		<-p.small
	} else {
		<-p.slots
	}
}

// upload stores the frozen blocks and the pages they change, and returns
// the new root (not yet stored), each block's sector CRCs and when it
// started (the lease of GC rule G3c runs from then).
//
// It is a pipeline: hashers read frozen slots into pooled buffers and hash
// them while earlier blocks' PUTs are in flight; each hashed block waits
// for a PUT slot of the engine-wide pool; the base pages the cut changes
// are loaded meanwhile; once every block is hashed the new pages are built
// and go up while the last blocks' PUTs finish. A page stored before the
// blocks it names is named by nothing yet (only the root, stored after
// both, names it), so a crash leaves it unreachable, and GC reclaims it.
func (e *Engine) upload(ctx context.Context, v *Volume, base *root, cut *cutState, frozen map[uint64]blockState) (*root, map[uint64][]uint32, time.Time, error) {
	start := e.now()
	blocks := make([]uint64, 0, len(frozen))
	for b := range frozen {
		blocks = append(blocks, b)
	}
	slices.Sort(blocks)
	v.cutTotal.Store(int64(len(blocks)))
	v.cutDone.Store(0)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fail := func(err error) { cancel(err) }

	// The base pages this cut rewrites, loaded while blocks upload.
	oldPages := make(map[uint32]*page)
	var pagesErr error
	pagesDone := make(chan struct{})
	go func() {
		defer close(pagesDone)
		for i := 0; i < len(blocks); {
			pi := uint32(blocks[i] / pageBlocks)
			for ; i < len(blocks) && uint32(blocks[i]/pageBlocks) == pi; i++ {
			}
			if pr, ok := base.Pages[pi]; ok {
				p, err := e.loadPage(ctx, pr.Hash)
				if err != nil {
					pagesErr = err
					return
				}
				oldPages[pi] = p
			}
		}
	}()

	// refs[i] and crcs[i] belong to blocks[i]; each is written by one
	// goroutine and read after all are done.
	refs := make([]blockRef, len(blocks))
	crcs := make([][]uint32, len(blocks))
	pool := e.uploads
	var next atomic.Int64
	var puts, hashers sync.WaitGroup
	packs := newPacker(ctx, e, v, start, blocks, &puts, fail)
	for range min(hashAhead, max(1, len(blocks))) {
		hashers.Go(func() {
			scratch := sealedBufs.Get().(*[]byte)
			defer sealedBufs.Put(scratch)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(blocks) || ctx.Err() != nil {
					return
				}
				if !e.hashBlock(ctx, packs, blocks[i], frozen[blocks[i]], &refs[i], &crcs[i], scratch, oldPages, pagesDone) {
					return
				}
				packs.store(packs.done(uint32(blocks[i] / pageBlocks)))
			}
		})
	}
	hashers.Wait()
	packs.flush()
	<-pagesDone
	abort := func(err error) (*root, map[uint64][]uint32, time.Time, error) {
		fail(err)
		puts.Wait()
		return nil, nil, start, err
	}
	if err := context.Cause(ctx); err != nil {
		return abort(err)
	}
	if pagesErr != nil {
		return abort(pagesErr)
	}

	r := &root{Volume: v.id, Seq: base.Seq + 1, Size: v.size, CutTime: cut.time, Owner: e.state.Owner, Token: cut.token, JournalLSN: cut.lsn, Pages: make(map[uint32]pageRef, len(base.Pages)),
		Retain: e.cfg.RecoveryPointRetention}
	if base.Seq > 0 || base.Token != "" {
		r.Parent = base.key() // a published root (seq 0 without a token is the in-memory start of a volume never published)
	}
	for i, p := range base.Pages {
		r.Pages[i] = p
	}
	type newPage struct {
		pi   uint32
		p    *page
		data []byte
		h    hash
	}
	var built []newPage
	for i := 0; i < len(blocks); {
		pi := uint32(blocks[i] / pageBlocks)
		np := emptyPage()
		if old := oldPages[pi]; old != nil {
			np = old.clone()
		}
		for ; i < len(blocks) && uint32(blocks[i]/pageBlocks) == pi; i++ {
			k := uint16(blocks[i] % pageBlocks)
			if frozen[blocks[i]].zero {
				np.free(k) // unmapped whole: freed, untouched
				continue
			}
			np.set(k, refs[i]) // the zero ref: written with zeros, still touched
		}
		if np.touched() == 0 {
			delete(r.Pages, pi)
			continue
		}
		built = append(built, newPage{pi: pi, p: np})
	}
	if err := packs.repackAll(len(built), func(i int) (uint32, *page) { return built[i].pi, built[i].p }); err != nil {
		return abort(err)
	}
	for i, np := range built {
		data := encodePage(np.p)
		built[i].data, built[i].h = data, hash(v.w.NameOf(data))
	}
	// Pages go up at once, through the same PUT slots as blocks.
	var pagePuts sync.WaitGroup
	for _, np := range built {
		small := len(np.data) <= BlockSize/4
		if err := pool.acquire(ctx, small); err != nil {
			break
		}
		pagePuts.Go(func() {
			defer pool.release(small)
			var sum *[32]byte
			if !v.w.Sealed() {
				sum = (*[32]byte)(&np.h)
			}
			if _, err := e.putSealed(ctx, v.w, pageKey(np.h), np.data, -1, start, sum); err != nil {
				fail(err)
			}
		})
	}
	pagePuts.Wait()
	puts.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, nil, start, err
	}
	for _, np := range built {
		e.pages.add(np.h, np.p)
		r.Pages[np.pi] = pageRef{Hash: np.h, Blocks: np.p.nonZero(), Touched: np.p.touched()}
	}
	byBlock := make(map[uint64][]uint32, len(blocks))
	for i, b := range blocks {
		byBlock[b] = crcs[i]
	}
	return r, byBlock, start, nil
}

// hashBlock reads frozen block b (state st) of the cut packs belongs to,
// names it and sends it on its way: a whole block to a PUT of its own, a
// patch into its page's pack. It sets *ref (left zero for zeros, never
// stored) and *crcs, and reports false if the cut is failing.
func (e *Engine) hashBlock(ctx context.Context, packs *packer, b uint64, st blockState, ref *blockRef, crcs *[]uint32, scratch *[]byte, oldPages map[uint32]*page, pagesDone <-chan struct{}) bool {
	v, pool := packs.v, packs.pool
	if st.zero {
		v.cutDone.Add(1)
		return true
	}
	buf, err := pool.buf(ctx)
	if err != nil {
		return false
	}
	// A block changed in a few sectors goes up as a patch over the block
	// its recovery point stores whole (patch.go).
	r, patched := e.patchFor(st, b, oldPages, pagesDone)
	var only sectorMask // a patch's sectors: all the cut reads of the block
	if patched {
		only = r.Mask
	}
	// A frozen slot is never written (copy-on-write), so it is read
	// without v.mu. A sparse one's invalid sectors read as zeros, and are
	// made zeros in the slot before it can become clean (sparse.go).
	*crcs, err = e.cache.readFrozen(st, buf, only)
	if err == nil {
		err = e.cache.zeroInvalid(st)
	}
	if err != nil {
		pool.putBuf(buf)
		packs.fail(err)
		return false
	}
	if patched {
		body := encodePatch((*scratch)[:0], r.Base, r.Mask, buf)
		pool.putBuf(buf)
		if sectors := body[patchHeader:]; r.Base.isZero() && bytes.Equal(sectors, zeroBlock[:len(sectors)]) { // a patch is under a block
			v.cutDone.Add(1) // zeros are not stored: *ref stays zero
			return true
		}
		r.Patch = hash(v.w.NameOf(body))
		// Sealed under its own name, as if stored alone (pack.go).
		stored := body
		if v.w.Transforms() {
			sealed := sealedBufs.Get().(*[]byte)
			defer sealedBufs.Put(sealed)
			stored, err = sealInto(v.w, blockKey(r.Patch), body, -1, sealed)
		}
		if err != nil {
			packs.fail(err)
			return false
		}
		*ref = r
		packs.store(packs.add(uint32(b/pageBlocks), stored, len(body), &ref.Pack, false))
		return true
	}
	r = blockRef{Base: hash(v.w.NameOf(buf))}
	if r.Base == v.zeroName {
		pool.putBuf(buf)
		v.cutDone.Add(1) // zeros are not stored: *ref stays zero
		return true
	}
	*ref = r
	if err := pool.acquire(ctx, false); err != nil {
		pool.putBuf(buf)
		return false
	}
	packs.puts.Go(func() {
		defer pool.putBuf(buf)
		defer pool.release(false)
		var sum *[32]byte
		if !v.w.Sealed() {
			sum = (*[32]byte)(&r.Base) // the name is the SHA-256
		}
		if _, err := e.putSealed(ctx, v.w, blockKey(r.Base), buf, BlockSize, packs.start, sum); err != nil {
			packs.fail(err)
			return
		}
		e.blocksStored.Add(1)
		v.cutDone.Add(1)
	})
	return true
}

var zeroHash = hash(sha256.Sum256(zeroBlock))

// patchFor decides whether frozen block b (state st) goes up as a patch,
// and over what: the sectors written since it became dirty, plus those of
// the patch its recovery point already has, if together they are at most
// maxPatchSectors (patch.go). Deciding needs the base page, which the cut
// loads meanwhile: a block with too many sectors written for a patch is
// decided without waiting for it.
func (e *Engine) patchFor(st blockState, b uint64, oldPages map[uint32]*page, pagesDone <-chan struct{}) (blockRef, bool) {
	if e.cfg.WholeBlocks || st.written.empty() || st.written.count() > maxPatchSectors {
		return blockRef{}, false
	}
	ref := blockRef{Mask: st.written}
	if !st.fromZero {
		<-pagesDone // (on an error the cut fails after the hashers)
		if old := oldPages[uint32(b/pageBlocks)]; old != nil {
			was := old.ref(uint16(b % pageBlocks))
			ref.Base, ref.Mask = was.Base, ref.Mask.union(was.Mask)
		}
	}
	if ref.Mask.count() > maxPatchSectors {
		return blockRef{}, false
	}
	return ref, true
}
