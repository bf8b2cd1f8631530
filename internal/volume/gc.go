package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/volgw/volgw/internal/blob"
)

// Garbage collection: mark and sweep over the object store.
//
// The rule (GC safety) that keeps a block or page from being swept while a
// root that names it is being built or published. Let G be the grace period
// (Config.GCGrace, minutes by default: what nothing names is reclaimed by
// the first round G after it was last written), L = G/2 the lease and S the
// clock-skew limit (Engine.gcSkewLimit, G/10 by default). A round that
// starts at time M:
//
//	G0. first checks the clocks: it PUTs an object of its own and compares
//	    the store's ModTime for it with the engine's clock around the PUT;
//	    if they disagree by more than S it deletes nothing (ErrClockSkew);
//	G1. lists heads, then snapshot records, then roots and cut checkpoints
//	    (one listing), in that order;
//	G2. marks from: every head's root (a deleted volume's tombstone head for
//	    G after deletion), every snapshot record's root (a deleted one's
//	    tombstone for G after deletion), every root whose ModTime is
//	    after M-G (recently written roots, published or in flight), and
//	    every hash in a cut checkpoint whose ModTime is after M-G; a
//	    checkpoint listed but gone when read fails the round;
//	G4. deletes, roots and checkpoints first, then pages, then blocks, only
//	    what is unmarked and has a ModTime before M-G — for a page or a
//	    block, as a Stat right before its DELETE sees it, not only as the
//	    listing did (a cut may have stored it again meanwhile: G3c). So a
//	    crash mid-sweep never leaves a root naming a deleted page.
//
// and every writer of a reference keeps:
//
//	G3a. a root or snapshot record that names objects of a volume's current
//	     root (a cut building on it, a snapshot pin, a clone of a local
//	     volume) is written under that volume's cutMu, so the source stays
//	     the head until the new reference exists;
//	G3b. a clone of a snapshot publishes within L of reading the record; a
//	     deletion leaves a tombstone marked for G > L;
//	G3c. a cut (gclease.go) records each block and page it stores or reuses
//	     with its freshness f: when its PUT was sent, or for a reuse the
//	     ModTime found, which must be after now-(L-S) (else the object is
//	     written again, which refreshes it). What it has recorded is
//	     "protected until" the earliest of: f+G-S of every object not yet in
//	     a landed checkpoint, and the last landed checkpoint's PUT start
//	     plus G-S. Before that runs out it writes a checkpoint (a new object
//	     listing every hash recorded so far); each checkpoint, and at the
//	     end the root, must land (its PUT return) before it ran out, or the
//	     cut is abandoned; the head is PUT within L-S of the root's PUT
//	     start, and only once every object the cut stored again over an
//	     older copy is seen to exist after the root landed. A cut therefore runs as long as it needs to, writing a
//	     checkpoint about every L once it has run about G-L/2. What the
//	     new root names that the cut did not record is named by its base
//	     root, which stays the head (G3a). An import's completion keeps the
//	     same lease for its pages (its blocks are named by its entries
//	     while it is pending; its parent's pages by the parent's record,
//	     read again within L of the root's PUT: G3b).
//	G3d. with a retention window W (retention.go): G2 also marks, for every
//	     head that is not a tombstone, the roots of its history (parents
//	     followed from its root) whose child was cut at or after M-W-L, W
//	     being the one the head's root records; a snapshot of a retained
//	     point is written within L of choosing a point whose child was cut
//	     at or after its start minus W, or withdrawn.
//
// Why this is enough: an object named by a root published before the round
// listed that root's head or record is marked through it (G3a/G3b keep a
// live reference across the hand-over; tombstones cover a deletion racing
// a clone); a root published after M is itself recent and marked (G2), and
// anything it reuses is fresh or reached through a chain of such roots back
// to one the round marked. An object a cut stores again over an older copy
// that a round had listed as unmarked and older than M-G: the round's Stat
// before the DELETE sees the new ModTime, unless the PUT lands between that
// Stat and the DELETE; then the cut, which Stats it after its root landed,
// finds it gone and is abandoned — unless the round's Stat-to-DELETE gap
// also spans the cut's root PUT and its Stat, the one window left (closing
// it needs a delete conditional on the object's age, which S3 does not
// offer). For a cut's object O (G3c): a round sweeps O only
// if O is unmarked and f < M-G. If the round listed before the first
// checkpoint naming O (or the root) landed, then M is before that landing,
// which was before f+G-S, so f > M-G: O is kept. Otherwise its listing (at
// T >= M) saw a checkpoint naming O, or the root: the last one landed by T
// started after T-(G-S) (each landed before its predecessor's start plus
// G-S ran out), so its ModTime is after M-G and it marks O. The root is
// recent for every round until it started plus G, and the head lands
// before then (it is PUT within L-S of the root, and a PUT takes less
// than L). Checkpoints live under their own keys, so a late PUT of an
// old one cannot replace a newer one's list; one removed by its cut
// while a round reads it fails that round rather than leave O unmarked.
//
// Clocks: ModTimes are the store's; M and every lease are the engine's.
// G0 keeps them within S of each other on the gateway that deletes, and
// the margin S in G3c absorbs that much on the gateway that cuts (G3a,
// G3b and G3d have no such margin: their operations are short). Gateways
// sharing a store must use the same G.

// GCStats reports one GC round.
type GCStats struct {
	Marked              int
	DeletedBlocks       int
	DeletedPages        int
	DeletedRoots        int
	DeletedTombstones   int
	DeletedImportTokens int // StartSnapshot ClientTokens of snapshots gone
	ReclaimedBlockBytes int64
	// Kept is what the store holds after the sweep.
	Kept StoreUsage
	// Awaiting is the part of Kept that nothing named but was younger
	// than G: superseded (reclaimed by a round G after it was last
	// written), or stored by a cut not yet published.
	Awaiting StoreUsage
}

// StoreUsage is the engine's objects in the store by kind: what the
// bucket's owner pays to keep. Objects named by nothing yet younger than
// the grace period (superseded, or in flight) are in it until a later
// round reclaims them.
//
// Roots counts the cuts' checkpoints (gclease.go) too.
type StoreUsage struct {
	Blocks, Pages, Roots             int
	BlockBytes, PageBytes, RootBytes int64
}

// keep counts a page or block (pfx "pages/" or "blocks/") of size bytes
// the sweep leaves, unmarked ones as awaiting reclaim too.
func (st *GCStats) keep(pfx string, size int64, unmarked bool) {
	add := func(u *StoreUsage) {
		if pfx == "blocks/" {
			u.Blocks++
			u.BlockBytes += size
		} else {
			u.Pages++
			u.PageBytes += size
		}
	}
	add(&st.Kept)
	if unmarked {
		add(&st.Awaiting)
	}
}

// gcRound is a completed GC round, for the metrics.
type gcRound struct {
	at             time.Time
	kept, awaiting StoreUsage
}

func (e *Engine) gcLoop(ctx context.Context) {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if st, err := e.GC(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("volume: gc failed", "err", err)
			} else if err == nil {
				e.log.Debug("volume: gc", "stats", st)
			}
		}
	}
}

// GC runs one mark-and-sweep round (see the rule above). Safe to run
// concurrently with I/O, cuts, snapshots and other gateways' rounds.
func (e *Engine) GC(ctx context.Context) (GCStats, error) {
	var st GCStats
	if err := e.checkClock(ctx); err != nil {
		return st, err
	}
	m := e.now()
	horizon := m.Add(-e.cfg.GCGrace)
	live := map[string]bool{}  // keys of roots heads and records name, and their histories
	young := map[string]bool{} // keys of other roots younger than G
	var oldTombstones []string
	// Marks are keyed by hash (pages and blocks share the set: a page and a
	// block with equal bytes are the same content), 32 bytes a entry.
	// marked is what heads, records, their histories, imports and cut
	// checkpoints name; youngMarked what only young roots add (superseded
	// recovery points still in their grace, or roots being published):
	// both are kept, the second counted as awaiting reclaim.
	marked, youngMarked := map[hash]struct{}{}, map[hash]struct{}{}
	markRoot := func(into map[hash]struct{}, r *root) error {
		for _, pr := range r.Pages {
			_, done := marked[pr.Hash]
			if _, ok := into[pr.Hash]; ok || done {
				continue
			}
			into[pr.Hash] = struct{}{}
			p, err := e.loadPage(ctx, pr.Hash)
			if err != nil {
				return err
			}
			for _, h := range p.blocks {
				into[h] = struct{}{}
			}
			for _, pt := range p.patches {
				into[pt.storedAs()] = struct{}{}
			}
		}
		return nil
	}
	// History roots are marked as they are walked (G3d): a day of a large
	// volume's roots is not kept in memory, nor read twice.
	walked := map[string]bool{}

	// G1: heads first.
	var heads []string
	if err := e.store.List(ctx, "volumes/", func(o blob.ObjectInfo) error {
		if strings.HasSuffix(o.Key, "/head") {
			heads = append(heads, o.Key)
		}
		return nil
	}); err != nil {
		return st, fmt.Errorf("volume: gc listing heads: %w", err)
	}
	for _, k := range heads {
		vol := strings.TrimSuffix(strings.TrimPrefix(k, "volumes/"), "/head")
		h, _, err := e.getHead(ctx, vol)
		if errors.Is(err, blob.ErrNotFound) {
			continue
		}
		if err != nil {
			return st, err
		}
		if h.Deleted && h.DeletedAt.Before(horizon) {
			oldTombstones = append(oldTombstones, k)
			continue
		}
		live[h.rootKey(vol)] = true
		if !h.Deleted {
			if err := e.markHistory(ctx, h.rootKey(vol), m, func(r *root) error {
				live[r.key()], walked[r.key()] = true, true
				return markRoot(marked, r)
			}); err != nil {
				return st, err
			}
		}
	}
	recs, err := e.listRecords(ctx)
	if err != nil {
		return st, err
	}
	for _, r := range recs {
		if r.Deleted && r.DeletedAt.Before(horizon) {
			oldTombstones = append(oldTombstones, snapshotKey(r.ID))
			continue
		}
		if r.Root != "" {
			live[r.Root] = true
		}
	}
	// Roots and cut checkpoints (gclease.go), in one listing.
	var roots, checkpoints []blob.ObjectInfo
	if err := e.store.List(ctx, "volumes/", func(o blob.ObjectInfo) error {
		switch {
		case strings.Contains(o.Key, "/roots/"):
			roots = append(roots, o)
			if !o.ModTime.Before(horizon) && !live[o.Key] {
				young[o.Key] = true
			}
		case isCheckpointKey(o.Key):
			checkpoints = append(checkpoints, o)
		}
		return nil
	}); err != nil {
		return st, fmt.Errorf("volume: gc listing roots: %w", err)
	}

	// Mark.
	// Blocks put into snapshots being imported (snapshotimport.go).
	if err := e.markImports(ctx, recs, marked); err != nil {
		return st, err
	}
	// What cuts in flight store or reuse (G3c).
	for _, o := range checkpoints {
		if o.ModTime.Before(horizon) {
			continue
		}
		b, err := e.store.Get(ctx, o.Key)
		if errors.Is(err, blob.ErrNotFound) {
			// Superseded, or its cut published, after the listing: what it
			// named may be in a root or checkpoint this round did not list.
			return st, fmt.Errorf("volume: gc: cut checkpoint %s went away during the round; the next round will see what replaced it", o.Key)
		}
		if err != nil {
			return st, fmt.Errorf("volume: gc: %w", err)
		}
		hs, err := decodeCheckpoint(b)
		if err != nil {
			return st, fmt.Errorf("volume: gc: %s: %w", o.Key, err)
		}
		for _, h := range hs {
			marked[h] = struct{}{}
		}
	}
	for _, set := range []struct {
		roots map[string]bool
		into  map[hash]struct{}
	}{{live, marked}, {young, youngMarked}} {
		for k := range set.roots {
			if walked[k] {
				continue
			}
			r, err := e.loadRoot(ctx, k)
			if errors.Is(err, blob.ErrNotFound) {
				continue // a tombstone's root already swept, or a root not yet written
			}
			if err != nil {
				return st, err
			}
			if err := markRoot(set.into, r); err != nil {
				return st, err
			}
		}
	}
	st.Marked = len(marked) + len(youngMarked) + len(live) + len(young)

	// Sweep (G4): roots and checkpoints, pages, blocks. What is unmarked
	// but younger than G awaits a later round (or is in flight).
	for _, o := range append(roots, checkpoints...) {
		// A checkpoint protects a cut's objects while young; nothing names
		// it. A young root is kept, awaiting reclaim.
		unmarked := isCheckpointKey(o.Key) || !live[o.Key]
		if unmarked && o.ModTime.Before(horizon) {
			if err := e.store.Delete(ctx, o.Key); err != nil {
				return st, fmt.Errorf("volume: gc: %w", err)
			}
			st.DeletedRoots++
			continue
		}
		st.Kept.Roots++
		st.Kept.RootBytes += o.Size
		if unmarked {
			st.Awaiting.Roots++
			st.Awaiting.RootBytes += o.Size
		}
	}
	for _, pfx := range []string{"pages/", "blocks/"} {
		var doomed []blob.ObjectInfo
		if err := e.store.List(ctx, pfx, func(o blob.ObjectInfo) error {
			unmarked := !isMarked(marked, o.Key)
			switch {
			case unmarked && !isMarked(youngMarked, o.Key) && o.ModTime.Before(horizon):
				doomed = append(doomed, o)
				return nil
			}
			st.keep(pfx, o.Size, unmarked)
			return nil
		}); err != nil {
			return st, fmt.Errorf("volume: gc listing %s: %w", pfx, err)
		}
		for _, o := range doomed {
			// G4: looked at again right before its DELETE. Since the
			// listing a cut may have stored it again (one older than the
			// lease is rewritten, not reused: G3c), which the listing's
			// ModTime does not show.
			info, err := e.store.Stat(ctx, o.Key)
			if errors.Is(err, blob.ErrNotFound) {
				continue
			}
			if err != nil {
				return st, fmt.Errorf("volume: gc: %w", err)
			}
			if !info.ModTime.Before(horizon) {
				st.keep(pfx, o.Size, true)
				continue
			}
			if err := e.store.Delete(ctx, o.Key); err != nil {
				return st, fmt.Errorf("volume: gc: %w", err)
			}
			if pfx == "blocks/" {
				st.DeletedBlocks++
				st.ReclaimedBlockBytes += o.Size
				e.gcReclaimed.Add(o.Size)
			} else {
				st.DeletedPages++
			}
		}
	}
	for _, k := range oldTombstones {
		if err := e.store.Delete(ctx, k); err != nil {
			return st, fmt.Errorf("volume: gc: %w", err)
		}
		st.DeletedTombstones++
	}
	n, err := e.sweepImportTokens(ctx, recs, horizon)
	st.DeletedImportTokens = n
	if err == nil {
		e.lastGC.Store(&gcRound{at: m, kept: st.Kept, awaiting: st.Awaiting})
	}
	return st, err
}

// ErrClockSkew: a GC round found the store's clock and the engine's too far
// apart to trust object ages, and deleted nothing.
var ErrClockSkew = errors.New("volume: the object store's clock and this gateway's disagree")

// clockProbeSize is the probe's size: an object of its own, small.
const clockProbeSize = 16

// checkClock is the clock rule: it PUTs a small object of this engine's
// and compares its ModTime, the store's clock, with the engine's clock
// around the PUT. A store stamping times to the second (S3) may read up to
// a second early. It records the disagreement for the metrics, and returns
// ErrClockSkew past the limit.
func (e *Engine) checkClock(ctx context.Context) error {
	limit := e.cfg.GCClockSkew
	if limit <= 0 {
		return nil
	}
	key := "gc/clock/" + e.state.Owner
	before := e.now()
	if err := e.put(ctx, key, make([]byte, clockProbeSize), blob.PutOptions{}); err != nil {
		return fmt.Errorf("volume: gc clock probe: %w", err)
	}
	after := e.now()
	info, err := e.store.Stat(ctx, key)
	if err != nil {
		return fmt.Errorf("volume: gc clock probe: %w", err)
	}
	var skew time.Duration // store minus engine, 0 inside [before-1s, after]
	switch t := info.ModTime; {
	case t.Before(before.Add(-time.Second)):
		skew = t.Sub(before.Add(-time.Second))
	case t.After(after):
		skew = t.Sub(after)
	}
	e.gcSkew.Store(int64(skew))
	e.gcSkewSet.Store(true)
	if skew.Abs() > limit {
		e.gcRefused.Add(1)
		e.log.Error("volume: GC deletes nothing: the object store's clock and this gateway's disagree by more than the GC rules allow; fix the clocks (NTP)",
			"store_minus_gateway", skew, "limit", limit, "grace", e.cfg.GCGrace)
		return fmt.Errorf("%w by %v (limit %v)", ErrClockSkew, skew, limit)
	}
	return nil
}

// markHistory visits the retained history of the volume whose head names
// top (rule G3d): its root's window W, parents kept while their child was
// cut at or after m-W-L. A volume without a window costs one GET of its
// root, which is then marked here too.
func (e *Engine) markHistory(ctx context.Context, top string, m time.Time, visit func(*root) error) error {
	r, err := e.loadRoot(ctx, top)
	if errors.Is(err, blob.ErrNotFound) {
		return nil // Check reports a head naming a missing root; GC has nothing to keep
	}
	if err != nil {
		return err
	}
	if r.Retain <= 0 {
		return visit(r)
	}
	if _, err := e.history(ctx, r, m, r.Retain+e.lease(), visit); err != nil {
		return fmt.Errorf("volume: gc: history of %s: %w", r.Volume, err)
	}
	return nil
}

// isMarked looks a blocks/ or pages/ key up by its hash; a key that is not
// a content address is never swept.
func isMarked(marked map[hash]struct{}, key string) bool {
	i := strings.LastIndexByte(key, '/')
	h, err := parseHash(key[i+1:])
	if err != nil {
		return true
	}
	_, ok := marked[h]
	return ok
}

// Check is the opt-in strict mode: it verifies that every root in the store
// decodes, that every page and block it names exists (pages are also checked
// against their hash), that every head and completed snapshot names an
// existing root, and the local invariants of each open volume. Expensive;
// meant for tests and for operators after a scare.
func (e *Engine) Check(ctx context.Context) error {
	// Heads, then records, then roots (as GC does): a root that a head or
	// record read here names was written before it, so the later listing
	// sees it even while cuts go on.
	var heads, roots []string
	if err := e.store.List(ctx, "volumes/", func(o blob.ObjectInfo) error {
		if strings.HasSuffix(o.Key, "/head") {
			heads = append(heads, o.Key)
		}
		return nil
	}); err != nil {
		return err
	}
	want := map[string]string{} // root key -> who names it
	for _, k := range heads {
		b, err := e.store.Get(ctx, k)
		if err != nil {
			return err
		}
		var h head
		if err := json.Unmarshal(b, &h); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, k, err)
		}
		if !h.Deleted {
			vol := strings.TrimSuffix(strings.TrimPrefix(k, "volumes/"), "/head")
			want[h.rootKey(vol)] = k
		}
	}
	recs, err := e.listRecords(ctx)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if !r.Deleted && r.Root != "" {
			want[r.Root] = snapshotKey(r.ID)
		}
	}
	if err := e.store.List(ctx, "volumes/", func(o blob.ObjectInfo) error {
		if strings.Contains(o.Key, "/roots/") {
			roots = append(roots, o.Key)
		}
		return nil
	}); err != nil {
		return err
	}
	have := map[string]bool{}
	for _, k := range roots {
		have[k] = true
	}
	for k, by := range want {
		if !have[k] {
			return fmt.Errorf("volume: check: %s names missing root %s", by, k)
		}
	}
	seenPage := map[hash]bool{}
	seenBlock := map[hash]bool{}
	for _, k := range roots {
		r, err := e.loadRoot(ctx, k)
		if err != nil {
			return fmt.Errorf("volume: check: %w", err)
		}
		for pi, pr := range r.Pages {
			if seenPage[pr.Hash] {
				continue
			}
			seenPage[pr.Hash] = true
			p, err := e.loadPage(ctx, pr.Hash)
			if err != nil {
				return fmt.Errorf("volume: check: root %s page %d: %w", k, pi, err)
			}
			if p.nonZero() != pr.Blocks || p.touched() != pr.Touched {
				return fmt.Errorf("volume: check: root %s page %d counts %d blocks (%d touched), page has %d (%d)", k, pi, pr.Blocks, pr.Touched, p.nonZero(), p.touched())
			}
			named := slices.Collect(maps.Values(p.blocks))
			for _, pt := range p.patches {
				named = append(named, pt.storedAs())
			}
			sizes := map[hash]int64{} // what a pack's page says it holds
			for _, pl := range p.packs() {
				sizes[pl.Hash] = int64(pl.Size)
			}
			for _, h := range named {
				if seenBlock[h] {
					continue
				}
				seenBlock[h] = true
				info, err := e.store.Stat(ctx, blockKey(h))
				if err != nil {
					return fmt.Errorf("volume: check: root %s names block %s: %w", k, h, err)
				}
				if want, ok := sizes[h]; ok && info.Size != want {
					return fmt.Errorf("volume: check: root %s names pack %s of %d bytes; it has %d", k, h, want, info.Size)
				}
			}
		}
	}
	for _, v := range e.volumes() {
		if err := v.checkLocal(); err != nil {
			return err
		}
	}
	return e.cache.check()
}

// checkKnown verifies that the block's sectors not written since it became
// dirty still have the CRCs st.known says (what a cut of a patch trusts
// instead of reading them). v.mu held.
func (v *Volume) checkKnown(name string, b uint64, st blockState) error {
	if st.known == nil {
		return nil
	}
	pb := blockPool.Get().(*[]byte)
	defer blockPool.Put(pb)
	if err := v.e.cache.readLocal(st, *pb, 0); err != nil {
		return err
	}
	got := sectorCRCs(*pb)
	for s := range sectorsPerSlot {
		if !st.written.has(s) && got[s] != st.known[s] {
			return fmt.Errorf("volume: check: %s %s block %d sector %d: CRC %08x, known %08x", v.id, name, b, s, got[s], st.known[s])
		}
	}
	return nil
}

// checkLocal verifies a volume's in-memory invariants; panics are not used
// because Check runs in production too.
func (v *Volume) checkLocal() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	slots := map[int32]uint64{}
	for name, m := range map[string]map[uint64]blockState{"dirty": v.dirty, "frozen": v.frozen} {
		for b, st := range m {
			if b >= uint64((v.size+BlockSize-1)/BlockSize) {
				return fmt.Errorf("volume: check: %s %s block %d beyond size %d", v.id, name, b, v.size)
			}
			if st.zero != (st.slot < 0) {
				return fmt.Errorf("volume: check: %s %s block %d: zero=%v slot=%d", v.id, name, b, st.zero, st.slot)
			}
			if !st.sparse && (st.valid != [2]uint64{} || st.over) || st.sparse && st.zero {
				return fmt.Errorf("volume: check: %s %s block %d: zero=%v sparse=%v over=%v valid=%x", v.id, name, b, st.zero, st.sparse, st.over, st.valid)
			}
			if st.over {
				// Copy-on-write over a whole frozen slot (sparse.go).
				if fst, ok := v.frozen[b]; name != "dirty" || !ok || fst.zero || fst.sparse || fst.slot != st.under {
					return fmt.Errorf("volume: check: %s %s block %d over slot %d, frozen %+v %v", v.id, name, b, st.under, fst, ok)
				}
			}
			if st.zero {
				continue
			}
			if other, dup := slots[st.slot]; dup {
				return fmt.Errorf("volume: check: %s slot %d holds blocks %d and %d", v.id, st.slot, other, b)
			}
			slots[st.slot] = b
			v.e.cache.mu.Lock()
			state, staging := v.e.cache.slots[st.slot].state, v.e.cache.slots[st.slot].staging
			v.e.cache.mu.Unlock()
			if state != slotOwned || staging {
				return fmt.Errorf("volume: check: %s %s block %d in slot %d of state %d (staging %v)", v.id, name, b, st.slot, state, staging)
			}
			if err := v.checkKnown(name, b, st); err != nil {
				return err
			}
		}
	}
	if (v.cut == nil) != (v.frozen == nil) {
		return fmt.Errorf("volume: check: %s cut %v but frozen has %d blocks", v.id, v.cut != nil, len(v.frozen))
	}
	if err := v.checkRecovery(); err != nil {
		return err
	}
	if len(v.dirty) > 0 && v.dirtyFrom == noLSN {
		return fmt.Errorf("volume: check: %s has %d dirty blocks and no journal position", v.id, len(v.dirty))
	}
	// The journal never released a record a volume still needs.
	v.e.jr.mu.Lock()
	tail, head := v.e.jr.tail, v.e.jr.head
	v.e.jr.mu.Unlock()
	if need := min(v.dirtyFrom, v.frozenFrom); need != noLSN && (need < tail || need >= head) {
		return fmt.Errorf("volume: check: %s needs the journal from %d, which holds [%d, %d)", v.id, need, tail, head)
	}
	return nil
}

var (
	descStoreObjects = prometheus.NewDesc("volgw_store_objects",
		"The engine's objects in the store by kind (block, page, root), as the last GC round found them after its sweep (absent before one).",
		[]string{"kind"}, nil)
	descStoreBytes = prometheus.NewDesc("volgw_store_bytes",
		"Bytes of the engine's objects in the store by kind (block, page, root), as the last GC round found them after its sweep.",
		[]string{"kind"}, nil)
	descGCLast = prometheus.NewDesc("volgw_gc_last_round_timestamp_seconds",
		"When the last completed GC round started (Unix time).", nil, nil)
	descGCReclaimed = prometheus.NewDesc("volgw_gc_reclaimed_block_bytes_total",
		"Bytes of blocks GC deleted since volgw started.", nil, nil)
	descAwaitingObjects = prometheus.NewDesc("volgw_store_awaiting_reclaim_objects",
		"Of volgw_store_objects, those named by nothing but younger than the GC grace period at the last round, by kind: superseded (a later round reclaims them) or stored by a cut not yet published.",
		[]string{"kind"}, nil)
	descAwaitingBytes = prometheus.NewDesc("volgw_store_awaiting_reclaim_bytes",
		"Bytes of volgw_store_awaiting_reclaim_objects, by kind.", []string{"kind"}, nil)
	descGCRefused = prometheus.NewDesc("volgw_gc_refused_rounds_total",
		"GC rounds that deleted nothing because the object store's clock and this gateway's disagreed by more than the GC rules allow.", nil, nil)
	descGCSkew = prometheus.NewDesc("volgw_gc_clock_skew_seconds",
		"The object store's clock minus this gateway's, as the last GC round measured it (0 within a second's rounding; absent before a round or with the check off).", nil, nil)
)

func describeGC(ch chan<- *prometheus.Desc) {
	ch <- descStoreObjects
	ch <- descStoreBytes
	ch <- descGCLast
	ch <- descGCReclaimed
	ch <- descAwaitingObjects
	ch <- descAwaitingBytes
	ch <- descGCRefused
	ch <- descGCSkew
}

func (e *Engine) collectGC(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descGCReclaimed, prometheus.CounterValue, float64(e.gcReclaimed.Load()))
	ch <- prometheus.MustNewConstMetric(descGCRefused, prometheus.CounterValue, float64(e.gcRefused.Load()))
	if e.gcSkewSet.Load() {
		ch <- prometheus.MustNewConstMetric(descGCSkew, prometheus.GaugeValue, time.Duration(e.gcSkew.Load()).Seconds())
	}
	r := e.lastGC.Load()
	if r == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descGCLast, prometheus.GaugeValue, float64(r.at.UnixNano())/1e9)
	r.kept.emit(ch, descStoreObjects, descStoreBytes)
	r.awaiting.emit(ch, descAwaitingObjects, descAwaitingBytes)
}

// emit sends u as one gauge of objects and one of bytes per kind.
func (u StoreUsage) emit(ch chan<- prometheus.Metric, objects, bytes *prometheus.Desc) {
	for _, k := range []struct {
		kind  string
		n     int
		bytes int64
	}{{"block", u.Blocks, u.BlockBytes}, {"page", u.Pages, u.PageBytes}, {"root", u.Roots, u.RootBytes}} {
		ch <- prometheus.MustNewConstMetric(objects, prometheus.GaugeValue, float64(k.n), k.kind)
		ch <- prometheus.MustNewConstMetric(bytes, prometheus.GaugeValue, float64(k.bytes), k.kind)
	}
}
