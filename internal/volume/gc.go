package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/volgw/volgw/internal/blob"
)

// Garbage collection: mark and sweep over the object store.
//
// The rule (GC safety) that keeps a block or page from being swept while a
// root that names it is being built or published. Let G be the grace period
// (Config.GCGrace) and L = G/2 the lease. A round that starts at time M:
//
//	G1. lists heads, then snapshot records, then roots, in that order;
//	G2. marks from: every head's root (a deleted volume's tombstone head for
//	    G after deletion), every snapshot record's root (a deleted one's
//	    tombstone for G after deletion), and every root whose ModTime is
//	    after M-G (recently written roots, published or in flight);
//	G4. deletes, roots first, then pages, then blocks, only what is unmarked
//	    and has a ModTime before M-G. So a crash mid-sweep never leaves a
//	    root naming a deleted page.
//
// and every writer of a reference keeps:
//
//	G3a. a root or snapshot record that names objects of a volume's current
//	     root (a cut building on it, a snapshot pin, a clone of a local
//	     volume) is written under that volume's cutMu, so the source stays
//	     the head until the new reference exists;
//	G3b. a clone of a snapshot publishes within L of reading the record; a
//	     deletion leaves a tombstone marked for G > L;
//	G3c. a cut reuses an existing block or page only if its ModTime is no
//	     older than the cut's start minus L, else writes it again (which
//	     refreshes it), and abandons the cut if it has run longer than L.
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
// anything it reuses is fresh (G3c: ModTime after start-L > M-G) or reached
// through a chain of such roots back to one the round marked.
//
// Clocks: ModTimes are the store's; M is the engine's clock; they must agree
// to well within G.

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
}

// StoreUsage is the engine's objects in the store by kind: what the
// bucket's owner pays to keep. Objects named by nothing yet younger than
// the grace period (superseded, or in flight) are in it until a later
// round reclaims them.
type StoreUsage struct {
	Blocks, Pages, Roots             int
	BlockBytes, PageBytes, RootBytes int64
}

// gcRound is a completed GC round, for the metrics.
type gcRound struct {
	at   time.Time
	kept StoreUsage
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
	m := e.now()
	horizon := m.Add(-e.cfg.GCGrace)
	live := map[string]bool{} // root keys
	var oldTombstones []string
	// Marks are keyed by hash (pages and blocks share the set: a page and a
	// block with equal bytes are the same content), 32 bytes a entry.
	marked := map[hash]struct{}{}
	markRoot := func(r *root) error {
		for _, pr := range r.Pages {
			if _, ok := marked[pr.Hash]; ok {
				continue
			}
			marked[pr.Hash] = struct{}{}
			p, err := e.loadPage(ctx, pr.Hash)
			if err != nil {
				return err
			}
			for _, h := range p.blocks {
				marked[h] = struct{}{}
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
				return markRoot(r)
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
	var roots []blob.ObjectInfo
	if err := e.store.List(ctx, "volumes/", func(o blob.ObjectInfo) error {
		if strings.Contains(o.Key, "/roots/") {
			roots = append(roots, o)
			if !o.ModTime.Before(horizon) {
				live[o.Key] = true
			}
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
	for k := range live {
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
		if err := markRoot(r); err != nil {
			return st, err
		}
	}
	st.Marked = len(marked) + len(live)

	// Sweep (G4): roots, pages, blocks.
	for _, o := range roots {
		if !live[o.Key] && o.ModTime.Before(horizon) {
			if err := e.store.Delete(ctx, o.Key); err != nil {
				return st, fmt.Errorf("volume: gc: %w", err)
			}
			st.DeletedRoots++
			continue
		}
		st.Kept.Roots++
		st.Kept.RootBytes += o.Size
	}
	for _, pfx := range []string{"pages/", "blocks/"} {
		var doomed []blob.ObjectInfo
		if err := e.store.List(ctx, pfx, func(o blob.ObjectInfo) error {
			switch {
			case !isMarked(marked, o.Key) && o.ModTime.Before(horizon):
				doomed = append(doomed, o)
			case pfx == "blocks/":
				st.Kept.Blocks++
				st.Kept.BlockBytes += o.Size
			default:
				st.Kept.Pages++
				st.Kept.PageBytes += o.Size
			}
			return nil
		}); err != nil {
			return st, fmt.Errorf("volume: gc listing %s: %w", pfx, err)
		}
		for _, o := range doomed {
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
		e.lastGC.Store(&gcRound{at: m, kept: st.Kept})
	}
	return st, err
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
			if len(p.blocks) != pr.Blocks {
				return fmt.Errorf("volume: check: root %s page %d counts %d blocks, page has %d", k, pi, pr.Blocks, len(p.blocks))
			}
			for _, h := range p.blocks {
				if seenBlock[h] {
					continue
				}
				seenBlock[h] = true
				if _, err := e.store.Stat(ctx, blockKey(h)); err != nil {
					return fmt.Errorf("volume: check: root %s names block %s: %w", k, h, err)
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
)

func describeGC(ch chan<- *prometheus.Desc) {
	ch <- descStoreObjects
	ch <- descStoreBytes
	ch <- descGCLast
	ch <- descGCReclaimed
}

func (e *Engine) collectGC(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descGCReclaimed, prometheus.CounterValue, float64(e.gcReclaimed.Load()))
	r := e.lastGC.Load()
	if r == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descGCLast, prometheus.GaugeValue, float64(r.at.UnixNano())/1e9)
	for _, k := range []struct {
		kind  string
		n     int
		bytes int64
	}{{"block", r.kept.Blocks, r.kept.BlockBytes}, {"page", r.kept.Pages, r.kept.PageBytes}, {"root", r.kept.Roots, r.kept.RootBytes}} {
		ch <- prometheus.MustNewConstMetric(descStoreObjects, prometheus.GaugeValue, float64(k.n), k.kind)
		ch <- prometheus.MustNewConstMetric(descStoreBytes, prometheus.GaugeValue, float64(k.bytes), k.kind)
	}
}
