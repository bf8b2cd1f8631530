package volume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// The model test drives the engine with random writes, unmaps, flushes,
// cuts, snapshots (pinned and forced), clones, restores, deletions, GC
// rounds, restarts and restores on a second gateway, and after every step
// compares what the engine reads with a reference model: a byte array per
// volume over the first modelBytes of its (sparse, 1 GiB or larger) size.
// Set VOLGW_SEED to replay a run; VOLGW_LONG=1 runs more steps.

const modelBytes = 16 * BlockSize // 8 MiB tracked per volume

type modelVol struct {
	data []byte // what the volume reads now
	rp   []byte // what its recovery point holds (as of its last cut)
	size int64
}

type modelSnap struct {
	data []byte
	size int64
}

type modelRun struct {
	t     *testing.T
	small bool // tiny cache and journal: background cuts happen any time
	rng   *rand.Rand
	ctx   context.Context
	te    *testEngine
	skew  *atomic.Int64 // added to the engine's clock, to age objects for GC
	vols  map[string]*modelVol
	snaps map[string]*modelSnap
	n     int
}

func TestModel(t *testing.T) {
	for name, newStore := range map[string]func(testing.TB) blob.Store{"fs": blobtest.NewFS, "s3": blobtest.NewS3} {
		t.Run(name, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			if s := os.Getenv("VOLGW_SEED"); s != "" {
				var err error
				if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
					t.Fatalf("VOLGW_SEED: %v", err)
				}
			}
			steps := 250
			if os.Getenv("VOLGW_LONG") != "" {
				steps = 3000
			}
			t.Logf("seed %d (replay with VOLGW_SEED=%d)", seed, seed)
			runModel(t, newStore(t), seed, steps, false)
		})
	}
}

// TestModelSmallDisks is the model test with a cache of 10 slots and a
// 3 MiB upload buffer: writers wait for uploads, clean blocks are evicted,
// and cuts happen under pressure at moments the test does not choose (so
// operations that depend on the recovery point cut explicitly first).
func TestModelSmallDisks(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("VOLGW_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("VOLGW_SEED: %v", err)
		}
	}
	steps := 200
	if os.Getenv("VOLGW_LONG") != "" {
		steps = 2000
	}
	t.Logf("seed %d (replay with VOLGW_SEED=%d)", seed, seed)
	runModel(t, blobtest.NewFS(t), seed, steps, true)
}

func newModelEngine(t *testing.T, store blob.Store, skew *atomic.Int64, small bool) *testEngine {
	dir := t.TempDir()
	te := &testEngine{t: t, dir: dir, store: store, cfg: Config{
		Dir: filepath.Join(dir, "engine"), Store: store, CutInterval: -1, GCGrace: time.Minute,
		DirtyBlocksCut: 1 << 30,
		Now:            func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
	te.open()
	t.Cleanup(func() {
		if te.Engine != nil {
			te.Engine.Close()
		}
	})
	cacheBytes, bufferBytes := int64(96<<20), int64(128<<20)
	if small {
		cacheBytes, bufferBytes = 10*BlockSize, 3<<20
	}
	// Cache slots start as garbage, as after a restart (sparse.go).
	garbageFile(t, filepath.Join(dir, "cache0.img"), cacheBytes)
	for _, d := range []control.Disk{
		{ID: "cache0", Path: filepath.Join(dir, "cache0.img"), SizeBytes: cacheBytes, Use: control.DiskUseCache},
		{ID: "buf0", Path: filepath.Join(dir, "buffer0.img"), SizeBytes: bufferBytes, Use: control.DiskUseUploadBuffer},
	} {
		if err := te.AddDisk(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	return te
}

func runModel(t *testing.T, store blob.Store, seed uint64, steps int, small bool) {
	m := &modelRun{t: t, small: small, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), ctx: context.Background(),
		skew: new(atomic.Int64), vols: map[string]*modelVol{}, snaps: map[string]*modelSnap{}}
	m.te = newModelEngine(t, store, m.skew, small)
	m.createEmpty()
	for m.n = 0; m.n < steps; m.n++ {
		m.step()
		m.verify(m.n%10 == 0)
	}
	m.finish()
}

func (m *modelRun) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("step %d: %s", m.n, fmt.Sprintf(format, args...))
}

func (m *modelRun) pickVol() (string, *modelVol) {
	ids := sortedKeys(m.vols) // map order is not seeded; sorted order is

	if len(ids) == 0 {
		return "", nil
	}
	id := ids[m.rng.IntN(len(ids))]
	return id, m.vols[id]
}

var idCounter atomic.Int64

func newID(prefix string) string { return fmt.Sprintf("%s-%017X", prefix, idCounter.Add(1)) }

func (m *modelRun) createEmpty() {
	id := newID("vol")
	size := gib * int64(1+m.rng.IntN(2))
	if err := m.te.CreateVolume(m.ctx, control.VolumeSpec{VolumeID: id, SizeBytes: size}); err != nil {
		m.fatalf("CreateVolume: %v", err)
	}
	m.vols[id] = &modelVol{data: make([]byte, modelBytes), rp: make([]byte, modelBytes), size: size}
}

// content makes data that is sometimes a repeat (to exercise dedup) and
// sometimes zeros (to exercise zero detection).
func (m *modelRun) content(n int) []byte {
	p := make([]byte, n)
	switch m.rng.IntN(6) {
	case 0: // zeros
	case 1: // one of a few repeating patterns
		b := byte(m.rng.IntN(3) + 1)
		for i := range p {
			p[i] = b
		}
	default:
		for i := 0; i < n; i += 8 {
			v := m.rng.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				p[i+j] = byte(v >> (8 * j))
			}
		}
	}
	return p
}

func (m *modelRun) randRange(maxLen int) (off, n int) {
	sectors := modelBytes / 512
	switch m.rng.IntN(4) {
	case 0: // whole blocks
		b := m.rng.IntN(modelBytes / BlockSize)
		nb := 1 + m.rng.IntN(2)
		off, n = b*BlockSize, nb*BlockSize
	default:
		off = m.rng.IntN(sectors) * 512
		n = (1 + m.rng.IntN(maxLen/512)) * 512
	}
	if off+n > modelBytes {
		n = modelBytes - off
	}
	return off, n
}

func (m *modelRun) step() {
	ctx := m.ctx
	r := m.rng.IntN(100)
	id, mv := m.pickVol()
	if mv == nil {
		m.createEmpty()
		return
	}
	v := m.te.vol(id)
	if m.small && ((r >= 70 && r < 75) || (r >= 79 && r < 83)) {
		// Pins and clones read the recovery point, which background cuts
		// may have moved: cut now so the model knows it.
		if err := m.te.Cut(ctx, id); err != nil {
			m.fatalf("Cut(%s): %v", id, err)
		}
		mv.rp = bytes.Clone(mv.data)
	}
	maxVols := 5
	if m.small {
		maxVols = 3
	}
	switch {
	case r < 40: // write
		off, n := m.randRange(BlockSize + BlockSize/2)
		p := m.content(n)
		if err := v.WriteAt(ctx, p, int64(off)); err != nil {
			m.fatalf("WriteAt(%s, %d, %d): %v", id, off, n, err)
		}
		copy(mv.data[off:], p)
	case r < 48: // unmap
		off, n := m.randRange(2 * BlockSize)
		if err := v.Unmap(ctx, int64(off), int64(n)); err != nil {
			m.fatalf("Unmap(%s, %d, %d): %v", id, off, n, err)
		}
		clear(mv.data[off : off+n])
	case r < 52: // write at the very end of the volume, then zero it again
		off := v.Size() - 4096
		if err := v.WriteAt(ctx, pattern(7, 4096), off); err != nil {
			m.fatalf("WriteAt end: %v", err)
		}
		got := mustRead(m.t, v, off, 4096)
		if !bytes.Equal(got, pattern(7, 4096)) {
			m.fatalf("end of volume reads back wrong")
		}
		if err := v.Unmap(ctx, off, 4096); err != nil {
			m.fatalf("Unmap end: %v", err)
		}
	case r < 58:
		if err := v.Flush(ctx); err != nil {
			m.fatalf("Flush: %v", err)
		}
	case r < 70: // cut
		if err := m.te.Cut(ctx, id); err != nil {
			m.fatalf("Cut(%s): %v", id, err)
		}
		mv.rp = bytes.Clone(mv.data)
	case r < 75: // snapshot pinning the recovery point
		sid := newID("snap")
		s, err := m.te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: sid, VolumeID: id, FromRecoveryPoint: true})
		if err != nil || s.Status != control.SnapshotCompleted {
			m.fatalf("CreateSnapshot(rp): %+v %v", s, err)
		}
		m.snaps[sid] = &modelSnap{data: bytes.Clone(mv.rp), size: mv.size}
	case r < 79: // snapshot forcing a cut
		sid := newID("snap")
		if _, err := m.te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: sid, VolumeID: id}); err != nil {
			m.fatalf("CreateSnapshot: %v", err)
		}
		if err := m.te.Cut(ctx, id); err != nil {
			m.fatalf("Cut: %v", err)
		}
		s, err := m.te.Snapshot(ctx, sid)
		if err != nil || s.Status != control.SnapshotCompleted || s.Progress != 100 {
			m.fatalf("snapshot after its cut: %+v %v", s, err)
		}
		mv.rp = bytes.Clone(mv.data)
		m.snaps[sid] = &modelSnap{data: bytes.Clone(mv.data), size: mv.size}
	case r < 83 && len(m.vols) < maxVols: // clone a volume's recovery point, maybe larger
		nid := newID("vol")
		size := mv.size + gib*int64(m.rng.IntN(2))
		if err := m.te.CreateVolume(ctx, control.VolumeSpec{VolumeID: nid, SizeBytes: size, Source: control.VolumeSource{SourceVolumeID: id}}); err != nil {
			m.fatalf("clone: %v", err)
		}
		m.vols[nid] = &modelVol{data: bytes.Clone(mv.rp), rp: bytes.Clone(mv.rp), size: size}
	case r < 87 && len(m.vols) < maxVols && len(m.snaps) > 0: // restore a snapshot
		sids := sortedKeys(m.snaps)
		sid := sids[m.rng.IntN(len(sids))]
		ms := m.snaps[sid]
		nid := newID("vol")
		size := ms.size + gib*int64(m.rng.IntN(2))
		if err := m.te.CreateVolume(ctx, control.VolumeSpec{VolumeID: nid, SizeBytes: size, Source: control.VolumeSource{SnapshotID: sid}}); err != nil {
			m.fatalf("restore %s: %v", sid, err)
		}
		m.vols[nid] = &modelVol{data: bytes.Clone(ms.data), rp: bytes.Clone(ms.data), size: size}
	case r < 90 && len(m.vols) > 1: // delete a volume
		if err := m.te.DeleteVolume(ctx, id); err != nil {
			m.fatalf("DeleteVolume: %v", err)
		}
		delete(m.vols, id)
		if _, err := m.te.Volume(id); !errors.Is(err, control.ErrVolumeNotFound) {
			m.fatalf("deleted volume still there: %v", err)
		}
	case r < 93 && len(m.snaps) > 0: // delete a snapshot
		sids := sortedKeys(m.snaps)
		sid := sids[m.rng.IntN(len(sids))]
		if err := m.te.DeleteSnapshot(ctx, sid); err != nil {
			m.fatalf("DeleteSnapshot: %v", err)
		}
		delete(m.snaps, sid)
		if _, err := m.te.Snapshot(ctx, sid); !errors.Is(err, control.ErrSnapshotNotFound) {
			m.fatalf("deleted snapshot still there: %v", err)
		}
	case r < 96: // GC after aging everything past the grace period
		// The clock jumps; no cut may be in flight across the jump, or its
		// objects would look older than the store's clock says (the engine
		// requires the two clocks to agree).
		vols := m.te.volumes()
		for _, v := range vols {
			v.cutMu.Lock()
		}
		m.skew.Add(int64(3 * time.Minute))
		_, err := m.te.GC(ctx)
		for _, v := range vols {
			v.cutMu.Unlock()
		}
		if err != nil {
			m.fatalf("GC: %v", err)
		}
	case r < 98: // restart (drops the cache: reads come from the store)
		m.te.reopen()
	default: // a second gateway restores a snapshot from the store alone
		if len(m.snaps) == 0 {
			return
		}
		sids := sortedKeys(m.snaps)
		sid := sids[m.rng.IntN(len(sids))]
		other := newModelEngine(m.t, m.te.store, m.skew, m.small)
		nid := newID("vol")
		if err := other.CreateVolume(ctx, control.VolumeSpec{VolumeID: nid, SizeBytes: m.snaps[sid].size, Source: control.VolumeSource{SnapshotID: sid}}); err != nil {
			m.fatalf("restore on second gateway: %v", err)
		}
		if got := mustRead(m.t, other.vol(nid), 0, modelBytes); !bytes.Equal(got, m.snaps[sid].data) {
			m.fatalf("snapshot %s restored on a second gateway differs at %d", sid, firstDiff(got, m.snaps[sid].data))
		}
		if err := other.DeleteVolume(ctx, nid); err != nil {
			m.fatalf("delete on second gateway: %v", err)
		}
		other.Close()
		other.Engine = nil
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func (m *modelRun) verify(full bool) {
	for _, id := range sortedKeys(m.vols) {
		mv := m.vols[id]
		v := m.te.vol(id)
		if v.Size() != mv.size {
			m.fatalf("%s size %d, model %d", id, v.Size(), mv.size)
		}
		got := mustRead(m.t, v, 0, modelBytes)
		if !bytes.Equal(got, mv.data) {
			m.fatalf("%s differs from the model at byte %d", id, firstDiff(got, mv.data))
		}
	}
	if !full {
		return
	}
	if err := m.te.Check(m.ctx); err != nil {
		m.fatalf("Check: %v", err)
	}
	snaps, err := m.te.Snapshots(m.ctx)
	if err != nil || len(snaps) != len(m.snaps) {
		m.fatalf("Snapshots: %d listed, model %d, %v", len(snaps), len(m.snaps), err)
	}
}

// finish deletes everything, ages it past the grace period, collects, and
// checks that no block or page is left behind.
func (m *modelRun) finish() {
	ctx := m.ctx
	for _, id := range sortedKeys(m.vols) {
		if err := m.te.DeleteVolume(ctx, id); err != nil {
			m.fatalf("DeleteVolume: %v", err)
		}
	}
	for _, sid := range sortedKeys(m.snaps) {
		if err := m.te.DeleteSnapshot(ctx, sid); err != nil {
			m.fatalf("DeleteSnapshot: %v", err)
		}
	}
	m.skew.Add(int64(3 * time.Minute))
	if _, err := m.te.GC(ctx); err != nil {
		m.fatalf("GC: %v", err)
	}
	m.skew.Add(int64(3 * time.Minute))
	st, err := m.te.GC(ctx)
	if err != nil {
		m.fatalf("GC: %v", err)
	}
	left := 0
	if err := m.te.store.List(ctx, "", func(o blob.ObjectInfo) error { left++; return nil }); err != nil {
		m.fatalf("List: %v", err)
	}
	if left != 0 {
		m.fatalf("%d objects left in the store after deleting everything (last GC %+v)", left, st)
	}
	m.t.Logf("%d steps; store empty after deleting everything", m.n)
}
