package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// fakeClock is a test's clock, shared by an engine (Config.Now) and the
// store's object times (clockStore), moved only by the test.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// clockStore stamps objects with a fake clock's time at their PUT (its
// start: the oldest a store could stamp), so GC ages them as the engine's
// clock moves. before, if set, runs before each PUT (a slow store).
type clockStore struct {
	blob.Store
	clock  *fakeClock
	before func(key string)
	mu     sync.Mutex
	mt     map[string]time.Time
}

func newClockStore(s blob.Store, c *fakeClock) *clockStore {
	return &clockStore{Store: s, clock: c, mt: map[string]time.Time{}}
}

func (s *clockStore) Put(ctx context.Context, key string, data []byte, o blob.PutOptions) (blob.ObjectInfo, error) {
	t := s.clock.now()
	if s.before != nil {
		s.before(key)
	}
	info, err := s.Store.Put(ctx, key, data, o)
	if err == nil {
		s.mu.Lock()
		s.mt[key] = t
		s.mu.Unlock()
		info.ModTime = t
	}
	return info, err
}

func (s *clockStore) stamp(o blob.ObjectInfo) blob.ObjectInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.mt[o.Key]; ok {
		o.ModTime = t
	}
	return o
}

func (s *clockStore) Stat(ctx context.Context, key string) (blob.ObjectInfo, error) {
	info, err := s.Store.Stat(ctx, key)
	if err != nil {
		return info, err
	}
	return s.stamp(info), nil
}

func (s *clockStore) List(ctx context.Context, prefix string, fn func(blob.ObjectInfo) error) error {
	return s.Store.List(ctx, prefix, func(o blob.ObjectInfo) error { return fn(s.stamp(o)) })
}

func (s *clockStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	delete(s.mt, key)
	s.mu.Unlock()
	return s.Store.Delete(ctx, key)
}

func (s *clockStore) exists(t *testing.T, key string) bool {
	t.Helper()
	_, err := s.Store.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// newClockedEngine is a test engine whose clock is c, as is its store's.
func newClockedEngine(t *testing.T, store blob.Store, c *fakeClock, grace time.Duration) *testEngine {
	t.Helper()
	return newClockedEngineWith(t, store, c, engineOpts{grace: grace})
}

// newClockedEngineWith is newClockedEngine with o's disks and grace.
func newClockedEngineWith(t *testing.T, store blob.Store, c *fakeClock, o engineOpts) *testEngine {
	t.Helper()
	te := newTestEngine(t, store, o)
	te.cfg.Now = c.now
	te.cfg.GCClockSkew = o.grace / 10 // the store's clock is the engine's: the check runs
	te.reopen()
	return te
}

func blockObject(p []byte) string { return blockKey(hash(sha256.Sum256(p))) }

// TestGCReclaimsZeroedAndUnmappedBlocks: a block written with zeros and a
// block unmapped leave their old objects named by nothing; a GC round G
// after they were superseded deletes them, and not before. The volume
// reads zeros there, before and after.
func TestGCReclaimsZeroedAndUnmappedBlocks(t *testing.T) {
	ctx := context.Background()
	const grace = 4 * time.Minute
	clock := newFakeClock()
	store := newClockStore(blobtest.NewFS(t), clock)
	te := newClockedEngine(t, store, clock, grace)
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-Z", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-Z")
	zeroed, unmapped, kept := pattern(1, BlockSize), pattern(2, BlockSize), pattern(3, BlockSize)
	for i, p := range [][]byte{zeroed, unmapped, kept} {
		if err := v.WriteAt(ctx, p, int64(i)*BlockSize); err != nil {
			t.Fatal(err)
		}
	}
	if err := te.Cut(ctx, "vol-Z"); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]byte{zeroed, unmapped, kept} {
		if !store.exists(t, blockObject(p)) {
			t.Fatalf("block %s not stored by the cut", blockObject(p))
		}
	}
	clock.advance(time.Minute)
	if err := v.WriteAt(ctx, make([]byte, BlockSize), 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Unmap(ctx, BlockSize, BlockSize); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-Z"); err != nil {
		t.Fatal(err)
	}
	// Younger than G: awaiting reclaim, not reclaimed.
	clock.advance(grace - 2*time.Minute)
	st, err := te.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.DeletedBlocks != 0 || st.Awaiting.Blocks != 2 || st.Awaiting.BlockBytes != 2*BlockSize {
		t.Fatalf("GC before the grace ran out: deleted %d blocks, awaiting %+v; want 0 deleted, the 2 superseded awaiting", st.DeletedBlocks, st.Awaiting)
	}
	awaiting := func() (objs, bytes float64) {
		t.Helper()
		m := gather(t, te.Engine)
		for _, o := range m["volgw_store_awaiting_reclaim_objects"] {
			if o.GetLabel()[0].GetValue() == "block" {
				objs = o.GetGauge().GetValue()
			}
		}
		for _, o := range m["volgw_store_awaiting_reclaim_bytes"] {
			if o.GetLabel()[0].GetValue() == "block" {
				bytes = o.GetGauge().GetValue()
			}
		}
		return objs, bytes
	}
	if objs, bytes := awaiting(); objs != 2 || bytes != 2*BlockSize {
		t.Fatalf("metrics: %v blocks, %v bytes awaiting reclaim; want 2 blocks", objs, bytes)
	}
	clock.advance(2 * time.Minute)
	st, err = te.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.DeletedBlocks != 2 || st.ReclaimedBlockBytes != 2*BlockSize || st.Awaiting.Blocks != 0 {
		t.Fatalf("GC after the grace: %+v; want the 2 superseded blocks deleted", st)
	}
	if objs, bytes := awaiting(); objs != 0 || bytes != 0 {
		t.Fatalf("metrics after reclaim: %v blocks, %v bytes awaiting", objs, bytes)
	}
	for _, c := range []struct {
		p    []byte
		want bool
	}{{zeroed, false}, {unmapped, false}, {kept, true}} {
		if got := store.exists(t, blockObject(c.p)); got != c.want {
			t.Errorf("block %s exists=%v after GC; want %v", blockObject(c.p), got, c.want)
		}
	}
	te.reopen()
	v = te.vol("vol-Z")
	if got := mustRead(t, v, 0, 3*BlockSize); !bytes.Equal(got[:2*BlockSize], make([]byte, 2*BlockSize)) || !bytes.Equal(got[2*BlockSize:], kept) {
		t.Fatal("the volume does not read zeros, zeros, the kept block after GC")
	}
	if err := te.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestGCCutOutlivesLease: on a store so slow that a cut takes several
// grace periods (each block's PUT moves the clock by G/8, and a GC round
// runs after each), the cut keeps what it stored protected with
// checkpoints, publishes, and every block it names is there. Its
// checkpoints are reclaimed afterwards.
func TestGCCutOutlivesLease(t *testing.T) {
	ctx := context.Background()
	const grace = 4 * time.Minute
	const blocks = 48 // 48 × G/8: the cut runs 6 G
	clock := newFakeClock()
	store := newClockStore(blobtest.NewFS(t), clock)
	te := newClockedEngine(t, store, clock, grace)
	// One PUT at a time: each takes G/8 of the clock, from its start to its
	// end (with 8 at once, 8 × G/8).
	te.cfg.UploadConcurrency = 1
	te.reopen()
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-S", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-S")
	// The same content twice: the second PUT of it, later in the cut,
	// finds the first (a reuse) when the lease allows.
	data := make([]byte, blocks*BlockSize)
	for i := range blocks {
		copy(data[i*BlockSize:], pattern(byte(10+i%(blocks-8)), BlockSize))
	}
	if err := v.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	var checkpoints, rounds atomic.Int64
	var gcErrs []error
	var gcMu sync.Mutex
	store.before = func(key string) {
		switch {
		case strings.Contains(key, "/cuts/"):
			checkpoints.Add(1)
		case strings.HasPrefix(key, "blocks/"):
			clock.advance(grace / 8)
			// A round from another gateway, while this PUT is in flight.
			st, err := te.GC(ctx)
			gcMu.Lock()
			if err != nil {
				gcErrs = append(gcErrs, err)
			}
			gcMu.Unlock()
			rounds.Add(1)
			_ = st
		}
	}
	if err := te.Cut(ctx, "vol-S"); err != nil {
		t.Fatalf("a cut longer than its lease: %v", err)
	}
	store.before = nil
	for _, err := range gcErrs {
		// A round may fail when a checkpoint it listed was superseded;
		// nothing else.
		if !strings.Contains(err.Error(), "went away during the round") {
			t.Fatalf("GC during the cut: %v", err)
		}
	}
	if checkpoints.Load() == 0 || rounds.Load() < blocks/2 {
		t.Fatalf("%d checkpoints, %d GC rounds during a cut of %v: the test did not exercise the lease", checkpoints.Load(), rounds.Load(), grace*blocks/8)
	}
	if _, err := te.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if err := te.Check(ctx); err != nil {
		t.Fatalf("after a long cut and GC rounds during it: %v", err)
	}
	// Past G, nothing the head names is lost and the checkpoints are gone.
	clock.advance(2 * grace)
	if _, err := te.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if err := te.Check(ctx); err != nil {
		t.Fatal(err)
	}
	var left []string
	if err := te.store.List(ctx, "volumes/", func(o blob.ObjectInfo) error {
		if isCheckpointKey(o.Key) {
			left = append(left, o.Key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("checkpoints left after the grace: %v", left)
	}
	if got := snapshotImage(t, te.Engine, "vol-S", "snap-long", len(data)); !bytes.Equal(got, data) {
		t.Fatalf("the volume as stored differs at %d after the long cut", firstDiff(got, data))
	}
}

// snapshotImage snapshots volume vol as it is (waiting for the snapshot
// to complete) and returns its first n bytes, read block by block from
// the store through the snapshot's tree: every block its root names must
// be there and hold its hash's bytes.
func snapshotImage(t *testing.T, e *Engine, vol, id string, n int) []byte {
	t.Helper()
	ctx := context.Background()
	if _, err := e.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: id, VolumeID: vol}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		if err := e.Cut(ctx, vol); err != nil {
			t.Fatal(err)
		}
		s, err := e.Snapshot(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Status == control.SnapshotCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %s of %s still %s", id, vol, s.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return readSnapshotImage(t, e, id, n)
}

// readSnapshotImage reads every block of snapshot id from the store and
// returns the snapshot's first n bytes.
func readSnapshotImage(t *testing.T, e *Engine, id string, n int) []byte {
	t.Helper()
	img := make([]byte, n)
	eachSnapshotBlock(t, e, id, func(index int64, b []byte) {
		if off := index * BlockSize; off < int64(n) {
			copy(img[off:], b)
		}
	})
	return img
}

// eachSnapshotBlock calls fn with each non-zero block of snapshot id, read
// from the store (through the EBS direct APIs' tree) and checked against
// its name.
func eachSnapshotBlock(t *testing.T, e *Engine, id string, fn func(index int64, b []byte)) {
	t.Helper()
	ctx := context.Background()
	tree, err := e.OpenSnapshotTree(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for from := int64(0); from >= 0; {
		refs, next, err := tree.Blocks(ctx, from, 256)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range refs {
			b, _, err := tree.Block(ctx, r.Index, r.Hash)
			if err != nil {
				t.Fatalf("snapshot %s block %d: %v", id, r.Index, err)
			}
			fn(r.Index, b)
		}
		from = next
	}
}

// TestGCRefusesOnClockSkew: with the engine's clock ahead of the store's
// by more than the limit, a round deletes nothing (garbage old enough by
// the engine's clock stays), counts the refusal and says why; with the
// clocks together again the next round reclaims.
func TestGCRefusesOnClockSkew(t *testing.T) {
	ctx := context.Background()
	const grace = 4 * time.Minute
	var skew atomic.Int64
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{grace: grace})
	te.cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	te.cfg.GCClockSkew = grace / 10
	te.reopen()
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-K", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-K")
	old := pattern(5, BlockSize)
	for _, p := range [][]byte{old, pattern(6, BlockSize)} {
		if err := v.WriteAt(ctx, p, 0); err != nil {
			t.Fatal(err)
		}
		if err := te.Cut(ctx, "vol-K"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := te.GC(ctx); err != nil {
		t.Fatalf("a round with the clocks together: %v", err)
	}
	skew.Store(int64(2 * grace))
	_, err := te.GC(ctx)
	if !errors.Is(err, ErrClockSkew) {
		t.Fatalf("a round with the engine's clock 2G ahead: %v; want ErrClockSkew", err)
	}
	if _, err := te.store.Stat(ctx, blockObject(old)); err != nil {
		t.Fatalf("the superseded block after the refused round: %v", err)
	}
	if n := te.gcRefused.Load(); n != 1 {
		t.Fatalf("%d refused rounds counted; want 1", n)
	}
	if got := time.Duration(te.gcSkew.Load()); got > -2*grace+time.Minute {
		t.Fatalf("skew measured %v; want about -%v", got, 2*grace)
	}
	// With the check off (as a simulation runs), the same round deletes
	// it: the check is what kept it.
	te.cfg.GCClockSkew = -1
	te.reopen()
	st, err := te.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.DeletedBlocks != 1 {
		t.Fatalf("round after the refusal: deleted %d blocks; want the superseded one", st.DeletedBlocks)
	}
}

// TestGCClockProbeWithinLimit: a round on a store whose clock agrees
// measures no skew and deletes as usual (the real clock, the check on by
// default).
func TestGCClockProbeWithinLimit(t *testing.T) {
	ctx := context.Background()
	for name, newStore := range map[string]func(testing.TB) blob.Store{"fs": blobtest.NewFS, "s3": blobtest.NewS3} {
		t.Run(name, func(t *testing.T) {
			te := newTestEngine(t, newStore(t), engineOpts{grace: time.Minute})
			if te.cfg.GCClockSkew != 0 || te.Engine.cfg.GCClockSkew != 6*time.Second {
				t.Fatalf("the check's limit by default: %v; want G/10", te.Engine.cfg.GCClockSkew)
			}
			if _, err := te.GC(ctx); err != nil {
				t.Fatal(err)
			}
			if !te.gcSkewSet.Load() || time.Duration(te.gcSkew.Load()).Abs() > time.Second {
				t.Fatalf("skew measured %v (set %v) against a store on this machine's clock", time.Duration(te.gcSkew.Load()), te.gcSkewSet.Load())
			}
		})
	}
}

func TestGCClockSkewLimitValidated(t *testing.T) {
	_, err := Open(context.Background(), Config{Dir: t.TempDir(), Store: blobtest.NewFS(t), GCGrace: time.Minute, GCClockSkew: 30 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "GCClockSkew") {
		t.Fatalf("Open with a skew limit of half the grace: %v; want refused", err)
	}
}

// TestGCImportCompletionOutlivesLease: completing an imported snapshot
// whose pages take several grace periods to write (each page's PUT moves
// the clock by G/8, a GC round after each) succeeds, and the snapshot, on
// top of its parent, reads back whole after rounds past the grace.
func TestGCImportCompletionOutlivesLease(t *testing.T) {
	ctx := context.Background()
	const grace = 4 * time.Minute
	const pages = 24 // 24 × G/8: the completion runs 3 G
	clock := newFakeClock()
	store := newClockStore(blobtest.NewFS(t), clock)
	te := newClockedEngine(t, store, clock, grace)
	size := int64(pages) * pageBlocks * BlockSize
	put := func(id string, index int64, seed byte) {
		t.Helper()
		data := pattern(seed, BlockSize)
		if err := te.PutImportBlock(ctx, id, index, data, sha256.Sum256(data), -1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := te.StartImport(ctx, ImportRequest{SnapshotID: "snap-p", SizeBytes: size, Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for i := range int64(pages) {
		put("snap-p", i*pageBlocks+1, byte(100+i))
	}
	if _, err := te.CompleteImport(ctx, "snap-p", pages, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := te.StartImport(ctx, ImportRequest{SnapshotID: "snap-c", SizeBytes: size, ParentID: "snap-p", Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for i := range int64(pages) {
		put("snap-c", i*pageBlocks+2, byte(i))
	}
	var rounds atomic.Int64
	store.before = func(key string) {
		if strings.HasPrefix(key, "pages/") {
			clock.advance(grace / 8)
			if _, err := te.GC(ctx); err != nil && !strings.Contains(err.Error(), "went away during the round") {
				t.Errorf("GC during the completion: %v", err)
			}
			rounds.Add(1)
		}
	}
	if _, err := te.CompleteImport(ctx, "snap-c", pages, nil); err != nil {
		t.Fatalf("a completion longer than its lease: %v", err)
	}
	store.before = nil
	if rounds.Load() < pages {
		t.Fatalf("%d GC rounds during the completion", rounds.Load())
	}
	clock.advance(2 * grace)
	if _, err := te.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if err := te.Check(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	eachSnapshotBlock(t, te.Engine, "snap-c", func(index int64, b []byte) {
		seed := byte(index / pageBlocks)
		if index%pageBlocks == 1 {
			seed += 100
		}
		if !bytes.Equal(b, pattern(seed, BlockSize)) {
			t.Fatalf("block %d differs", index)
		}
		n++
	})
	if n != 2*pages {
		t.Fatalf("the snapshot has %d blocks; want %d (its own and its parent's)", n, 2*pages)
	}
}
