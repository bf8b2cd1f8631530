package volume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/volgw/volgw/internal/blob"
)

// A cut's lease and its checkpoints (GC rule G3c, gc.go).
//
// Every block and page a cut stores or reuses is recorded, with the time
// from which GC's grace protects it (its freshness f: when its PUT was
// sent, or the ModTime a reuse found). Until the cut's root lands, those
// objects are named by nothing GC marks from but the cut's checkpoints:
// objects under volumes/<volume>/cuts/ that list the hashes recorded so
// far, each under its own key, marked by GC while younger than G (rule
// G2). A checkpoint is written when the oldest protection the cut holds
// (the last landed checkpoint's start, or the oldest freshness it does not
// cover yet) is within L/2 of running out, so a cut shorter than about
// G-L/2 writes none, and a longer one one every L or so, however long it
// runs. Each landing is checked (landed): if some protection could have
// run out before it, the cut is abandoned, as before.
//
// The recording happens in the engine's store (leaseStore), through the
// context, so the upload pipeline needs no part in it.
//
// Cuts and import completions (CompleteImport: a page per 2 GiB of the
// snapshot) are the operations whose length grows with a volume and the
// store's speed. The other users of the plain lease (lease()) do a fixed,
// small amount of work between the read they depend on and their PUT, so
// L (minutes) is ample: creating or cloning a volume and attaching one
// (one root PUT), putting an imported block (one block PUT), snapshotting
// a retained recovery point (one record PUT after its history walk).

// cutLeaseKey is the context key of the lease of the cut in progress.
type cutLeaseKey struct{}

// cutLease is one attempt of one cut.
type cutLease struct {
	now    func() time.Time
	grace  time.Duration   // G
	margin time.Duration   // taken off every bound, for clock skew (gcSkewLimit)
	reuse  time.Duration   // an object older than this is stored again, not reused
	store  blob.Store      // the engine's store
	prefix string          // volumes/<volume>/cuts/<seq>-<nonce>-
	ctx    context.Context // the cut's, without the lease: checkpoints' PUTs
	cancel context.CancelCauseFunc
	quit   chan struct{}
	done   chan struct{}
	// ckMu is held while a checkpoint is considered and written; stopped
	// (under it) ends them.
	ckMu    sync.Mutex
	stopped bool

	ended atomic.Bool // set by stop: the store no longer applies the lease

	mu      sync.Mutex
	seen    map[hash]bool
	all     []hash      // every object recorded, in order
	fresh   []time.Time // fresh[i] is all[i]'s freshness
	covered int         // all[:covered] is in the last landed checkpoint
	oldest  time.Time   // the least of fresh[covered:] (zero: none)
	last    time.Time   // when that checkpoint's PUT started (zero: none yet)
	n       int         // checkpoints written
	// rewritten: objects found older than the cut may reuse, which it
	// therefore stores again (checkRewritten).
	rewritten []string
}

// startCutLease returns ctx carrying a new lease for the cut of volume vol
// at seq, and starts the lease's checkpoints. A checkpoint that fails
// cancels ctx with its cause (an ErrLeaseExpired, or the store's error).
func (e *Engine) startCutLease(ctx context.Context, vol string, seq uint64) (context.Context, *cutLease) {
	ctx, cancel := context.WithCancelCause(ctx)
	l := e.lease()
	cl := &cutLease{now: e.now, grace: e.cfg.GCGrace, margin: e.gcSkewLimit(), reuse: l - e.gcSkewLimit(),
		store: e.store, prefix: fmt.Sprintf("volumes/%s/cuts/%016x-%s-", vol, seq, randomHex(4)),
		ctx: ctx, cancel: cancel, quit: make(chan struct{}), done: make(chan struct{}), seen: map[hash]bool{}}
	go cl.run(max(10*time.Millisecond, l/8))
	return context.WithValue(ctx, cutLeaseKey{}, cl), cl
}

// record notes that the cut stored or reused the object key, protected
// by G from f on.
func (cl *cutLease) record(key string, f time.Time) {
	h, ok := contentHash(key)
	if !ok {
		return
	}
	cl.mu.Lock()
	if !cl.seen[h] {
		cl.seen[h] = true
		cl.all = append(cl.all, h)
		cl.fresh = append(cl.fresh, f)
		if cl.oldest.IsZero() || f.Before(cl.oldest) {
			cl.oldest = f
		}
	}
	cl.mu.Unlock()
	cl.maybeCheckpoint()
}

// expiry is when the oldest protection the cut holds runs out (zero if it
// holds none): a round starting after it may sweep what it covers.
// cl.mu held.
func (cl *cutLease) expiry() time.Time {
	oldest := cl.oldest
	if !cl.last.IsZero() && (oldest.IsZero() || cl.last.Before(oldest)) {
		oldest = cl.last
	}
	if oldest.IsZero() {
		return oldest
	}
	return oldest.Add(cl.grace - cl.margin)
}

// run looks for a checkpoint to write every tick, until stop: the cut may
// be waiting on a PUT, recording nothing, while its protection runs out.
func (cl *cutLease) run(tick time.Duration) {
	defer close(cl.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-cl.quit:
			return
		case <-cl.ctx.Done():
			return
		case <-t.C:
			cl.maybeCheckpoint()
		}
	}
}

// maybeCheckpoint writes a checkpoint if the oldest protection the cut
// holds is within L/2 of running out. It runs at each record, in the
// recording PUT's goroutine (so a cut's progress, or a test's clock, is
// followed without a goroutine's delay), and at each tick. A checkpoint
// that fails cancels the cut.
func (cl *cutLease) maybeCheckpoint() {
	if !cl.ckMu.TryLock() {
		return // one being written
	}
	defer cl.ckMu.Unlock()
	if cl.stopped || cl.ctx.Err() != nil {
		return
	}
	cl.mu.Lock()
	exp := cl.expiry()
	cl.mu.Unlock()
	if exp.IsZero() || cl.now().Before(exp.Add(-cl.grace/4)) {
		return
	}
	if err := cl.checkpoint(cl.ctx); err != nil {
		cl.cancel(err)
	}
}

// stop ends the checkpoints (waiting for one being written).
func (cl *cutLease) stop() {
	select {
	case <-cl.quit:
	default:
		close(cl.quit)
	}
	<-cl.done
	cl.ckMu.Lock()
	cl.stopped = true
	cl.ckMu.Unlock()
	cl.ended.Store(true)
}

// end stops the checkpoints and lets the context go. Once the cut is
// published its last checkpoint is removed (GC would, after G).
func (cl *cutLease) end(ctx context.Context, published bool) {
	cl.stop()
	if published && cl.n > 0 {
		_ = cl.store.Delete(ctx, fmt.Sprintf("%s%d", cl.prefix, cl.n))
	}
	cl.cancel(nil)
}

// checkpoint writes every hash recorded so far under a new key, then
// removes the previous checkpoint, which it supersedes.
func (cl *cutLease) checkpoint(ctx context.Context) error {
	cl.mu.Lock()
	n := len(cl.all)
	data := make([]byte, 0, len(checkpointMagic)+n*len(hash{}))
	data = append(data, checkpointMagic...)
	for _, h := range cl.all[:n] {
		data = append(data, h[:]...)
	}
	cl.n++
	key, prev := fmt.Sprintf("%s%d", cl.prefix, cl.n), ""
	if cl.n > 1 {
		prev = fmt.Sprintf("%s%d", cl.prefix, cl.n-1)
	}
	cl.mu.Unlock()
	start := cl.now()
	if _, err := cl.store.Put(ctx, key, data, blob.PutOptions{}); err != nil {
		return fmt.Errorf("volume: cut checkpoint %s: %w", key, err)
	}
	if err := cl.landed(start, cl.now(), n); err != nil {
		return err
	}
	if prev != "" {
		// A round that listed prev and reads it after this finds it gone
		// and fails, deleting nothing (gc.go).
		_ = cl.store.Delete(ctx, prev)
	}
	return nil
}

// landed checks that an object naming all[:n] (a checkpoint, or the cut's
// root) whose PUT started at start and returned at end took over before
// any protection it replaces ran out, and records it as the protection
// of all[:n]. An error (ErrLeaseExpired) means a round may have swept
// something the cut names: the cut must be abandoned.
func (cl *cutLease) landed(start, end time.Time, n int) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if exp := cl.expiry(); !exp.IsZero() && end.After(exp) {
		return fmt.Errorf("%w: a cut's objects were unprotected for %v (grace %v)", ErrLeaseExpired, end.Sub(exp)+cl.grace-cl.margin, cl.grace)
	}
	if n < cl.covered {
		n = cl.covered
	}
	// all[n:] stays protected by its own freshness; the checkpoint for
	// it is checked when it lands.
	cl.covered, cl.last, cl.oldest = n, start, time.Time{}
	for _, f := range cl.fresh[n:] {
		if cl.oldest.IsZero() || f.Before(cl.oldest) {
			cl.oldest = f
		}
	}
	return nil
}

// landedAll is landed for the cut's root, which names everything recorded.
func (cl *cutLease) landedAll(start, end time.Time) error {
	cl.mu.Lock()
	n := len(cl.all)
	cl.mu.Unlock()
	return cl.landed(start, end, n)
}

// checkRewritten returns an error (ErrLeaseExpired) if an object the cut
// stored again over an older copy is gone once the root has landed. A GC
// round that listed the older copy, unmarked and older than G, before the
// cut's PUT may delete it after: the PUT refreshed the object, not the
// round's listing (TestGCSweepRacesRewrite). The round looks at each
// object again right before deleting it (GC, G4), which leaves only the
// time between that look and its DELETE; a DELETE that lands in it and
// before this check fails the cut here, and the retry stores the object
// afresh, rather than publishing a root that names nothing.
func (cl *cutLease) checkRewritten(ctx context.Context) error {
	cl.mu.Lock()
	keys := slices.Clone(cl.rewritten)
	cl.mu.Unlock()
	for _, k := range keys {
		_, err := cl.store.Stat(ctx, k)
		if errors.Is(err, blob.ErrNotFound) {
			return fmt.Errorf("%w: %s was deleted by a GC round after this cut stored it again", ErrLeaseExpired, k)
		}
		if err != nil {
			return fmt.Errorf("volume: checking %s: %w", k, err)
		}
	}
	return nil
}

// checkpointMagic starts every checkpoint object; 32-byte hashes follow.
const checkpointMagic = "volgw-cut-checkpoint-1\n"

func isCheckpointKey(key string) bool { return strings.Contains(key, "/cuts/") }

func decodeCheckpoint(b []byte) ([]hash, error) {
	if !strings.HasPrefix(string(b[:min(len(b), len(checkpointMagic))]), checkpointMagic) || (len(b)-len(checkpointMagic))%len(hash{}) != 0 {
		return nil, fmt.Errorf("%w: a cut checkpoint of %d bytes", ErrCorrupt, len(b))
	}
	b = b[len(checkpointMagic):]
	hs := make([]hash, len(b)/len(hash{}))
	for i := range hs {
		copy(hs[i][:], b[i*len(hash{}):])
	}
	return hs, nil
}

// contentHash is the hash a blocks/ or pages/ key names.
func contentHash(key string) (hash, bool) {
	if !strings.HasPrefix(key, "blocks/") && !strings.HasPrefix(key, "pages/") {
		return hash{}, false
	}
	h, err := parseHash(key[strings.LastIndexByte(key, '/')+1:])
	return h, err == nil
}

// leaseStore is the engine's store. Inside a cut (a context carrying its
// cutLease) it records every block and page the cut stores or reuses, and
// makes a reuse follow the lease: an existing object older than the lease
// (less the skew margin) now, rather than at the cut's start, reads as
// absent, so that putContent writes it again. That keeps the freshness of
// a reuse late in a long cut, which checkpoints then carry.
type leaseStore struct{ blob.Store }

func (s leaseStore) Put(ctx context.Context, key string, data []byte, o blob.PutOptions) (blob.ObjectInfo, error) {
	cl, _ := ctx.Value(cutLeaseKey{}).(*cutLease)
	if cl == nil || cl.ended.Load() {
		return s.Store.Put(ctx, key, data, o)
	}
	sent := cl.now()
	info, err := s.Store.Put(ctx, key, data, o)
	if err == nil {
		cl.record(key, sent)
	}
	return info, err
}

func (s leaseStore) Stat(ctx context.Context, key string) (blob.ObjectInfo, error) {
	info, err := s.Store.Stat(ctx, key)
	cl, _ := ctx.Value(cutLeaseKey{}).(*cutLease)
	if err != nil || cl == nil || cl.ended.Load() {
		return info, err
	}
	if _, ok := contentHash(key); !ok {
		return info, nil
	}
	if info.ModTime.Before(cl.now().Add(-cl.reuse)) {
		cl.mu.Lock()
		cl.rewritten = append(cl.rewritten, key)
		cl.mu.Unlock()
		return blob.ObjectInfo{}, fmt.Errorf("volume: %s is older than a cut may reuse: %w", key, blob.ErrNotFound)
	}
	cl.record(key, info.ModTime)
	return info, nil
}
