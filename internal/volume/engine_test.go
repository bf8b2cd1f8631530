package volume

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/scsi"
)

var _ scsi.Backend = (*Volume)(nil)

const gib = int64(1) << 30

// testEngine is an engine on a state dir with one cache and one upload
// buffer disk, reopenable on the same dir and store.
type testEngine struct {
	t     testing.TB
	dir   string
	store blob.Store
	cfg   Config
	*Engine
}

type engineOpts struct {
	cacheBytes, bufferBytes int64
	grace                   time.Duration
}

func newTestEngine(t testing.TB, store blob.Store, o engineOpts) *testEngine {
	t.Helper()
	if o.cacheBytes == 0 {
		o.cacheBytes = 64 << 20
	}
	if o.bufferBytes == 0 {
		o.bufferBytes = 32 << 20
	}
	dir := t.TempDir()
	te := &testEngine{t: t, dir: dir, store: store, cfg: Config{
		Dir: filepath.Join(dir, "engine"), Store: store, CutInterval: -1, GCGrace: o.grace,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
	te.open()
	ctx := context.Background()
	for _, d := range []control.Disk{
		{ID: "cache0", Path: filepath.Join(dir, "cache0.img"), SizeBytes: o.cacheBytes, Use: control.DiskUseCache},
		{ID: "buf0", Path: filepath.Join(dir, "buffer0.img"), SizeBytes: o.bufferBytes, Use: control.DiskUseUploadBuffer},
	} {
		if err := te.AddDisk(ctx, d); err != nil {
			t.Fatalf("AddDisk: %v", err)
		}
	}
	t.Cleanup(func() {
		if te.Engine != nil {
			te.Engine.Close()
		}
	})
	return te
}

func (te *testEngine) open() {
	te.t.Helper()
	e, err := Open(context.Background(), te.cfg)
	if err != nil {
		te.t.Fatalf("Open: %v", err)
	}
	te.Engine = e
}

func (te *testEngine) reopen() {
	te.t.Helper()
	if err := te.Engine.Close(); err != nil {
		te.t.Fatalf("Close: %v", err)
	}
	te.open()
}

func (te *testEngine) vol(id string) *Volume {
	te.t.Helper()
	v, err := te.Volume(id)
	if err != nil {
		te.t.Fatalf("Volume(%s): %v", id, err)
	}
	return v
}

func pattern(seed byte, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i*7) + byte(i>>9)
	}
	return p
}

func mustRead(t testing.TB, v *Volume, off int64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if err := v.ReadAt(context.Background(), p, off); err != nil {
		t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
	}
	return p
}

func TestWriteReadCutRestore(t *testing.T) {
	for name, newStore := range map[string]func(testing.TB) blob.Store{"fs": blobtest.NewFS, "s3": blobtest.NewS3} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			te := newTestEngine(t, newStore(t), engineOpts{})
			if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-A", SizeBytes: gib}); err != nil {
				t.Fatal(err)
			}
			rp0, err := te.RecoveryPoint(ctx, "vol-A")
			if err != nil || rp0.UsageBytes != 0 || rp0.SizeBytes != gib {
				t.Fatalf("RecoveryPoint of new volume = %+v, %v", rp0, err)
			}
			v := te.vol("vol-A")
			if got := mustRead(t, v, 0, 8192); !bytes.Equal(got, make([]byte, 8192)) {
				t.Fatal("new volume does not read as zeros")
			}
			a := pattern(1, 4096)
			b := pattern(2, BlockSize+8192)
			if err := v.WriteAt(ctx, a, 512); err != nil {
				t.Fatal(err)
			}
			if err := v.WriteAt(ctx, b, 3*BlockSize-4096); err != nil {
				t.Fatal(err)
			}
			if got := mustRead(t, v, 512, 4096); !bytes.Equal(got, a) {
				t.Fatal("read of dirty data differs")
			}
			if err := te.Cut(ctx, "vol-A"); err != nil {
				t.Fatal(err)
			}
			rp, _ := te.RecoveryPoint(ctx, "vol-A")
			if rp.UsageBytes != 4*BlockSize {
				t.Fatalf("usage after cut = %d, want %d", rp.UsageBytes, 4*BlockSize)
			}
			snap, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-1", VolumeID: "vol-A", FromRecoveryPoint: true, Description: "d"})
			if err != nil || snap.Status != control.SnapshotCompleted {
				t.Fatalf("CreateSnapshot = %+v, %v", snap, err)
			}
			// Overwrite after the snapshot; the snapshot keeps the old data.
			if err := v.WriteAt(ctx, pattern(9, 4096), 512); err != nil {
				t.Fatal(err)
			}
			if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-B", SizeBytes: 2 * gib, Source: control.VolumeSource{SnapshotID: "snap-1"}}); err != nil {
				t.Fatal(err)
			}
			vb := te.vol("vol-B")
			if got := mustRead(t, vb, 512, 4096); !bytes.Equal(got, a) {
				t.Fatal("restored volume differs at a")
			}
			if got := mustRead(t, vb, 3*BlockSize-4096, len(b)); !bytes.Equal(got, b) {
				t.Fatal("restored volume differs at b")
			}
			if vb.Size() != 2*gib {
				t.Fatalf("restored size %d", vb.Size())
			}
			// A fresh engine on the same store sees the snapshot.
			other := newTestEngine(t, te.store, engineOpts{})
			snaps, err := other.Snapshots(ctx)
			if err != nil || len(snaps) != 1 || snaps[0].ID != "snap-1" || snaps[0].Description != "d" {
				t.Fatalf("Snapshots on a second engine = %+v, %v", snaps, err)
			}
			if err := other.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-C", SizeBytes: gib, Source: control.VolumeSource{SnapshotID: "snap-1"}}); err != nil {
				t.Fatal(err)
			}
			if got := mustRead(t, other.vol("vol-C"), 3*BlockSize-4096, len(b)); !bytes.Equal(got, b) {
				t.Fatal("volume restored on a second engine differs")
			}
			// Restart: the unflushed-but-acknowledged write comes back from the journal.
			te.reopen()
			v = te.vol("vol-A")
			if got := mustRead(t, v, 512, 4096); !bytes.Equal(got, pattern(9, 4096)) {
				t.Fatal("write lost across restart")
			}
			if err := te.Check(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := te.Snapshot(ctx, "snap-nope"); !errors.Is(err, control.ErrSnapshotNotFound) {
				t.Fatalf("missing snapshot: %v", err)
			}
			if _, err := te.RecoveryPoint(ctx, "vol-nope"); !errors.Is(err, control.ErrVolumeNotFound) {
				t.Fatalf("missing volume: %v", err)
			}
		})
	}
}

// TestRecoveryPointTimes: a new volume's recovery point is its creation
// time; writes do not move it; a cut moves it to the cut's time; a pinned
// snapshot carries the recovery point's time.
func TestRecoveryPointTimes(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Int64
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	at := func(s int) { clock.Store(t0.Add(time.Duration(s) * time.Second).UnixNano()) }
	at(0)
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	te.Engine.Close()
	te.cfg.Now = func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	te.open()
	rp := func(want int) {
		t.Helper()
		got, err := te.RecoveryPoint(ctx, "vol-RPT")
		if err != nil {
			t.Fatal(err)
		}
		if w := t0.Add(time.Duration(want) * time.Second); !got.Time.Equal(w) {
			t.Fatalf("recovery point %v, want %v", got.Time, w)
		}
	}
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-RPT", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	at(5)
	rp(0)
	if err := te.vol("vol-RPT").WriteAt(ctx, pattern(1, 4096), 0); err != nil {
		t.Fatal(err)
	}
	at(10)
	rp(0)
	if err := te.Cut(ctx, "vol-RPT"); err != nil {
		t.Fatal(err)
	}
	at(15)
	rp(10)
	if err := te.vol("vol-RPT").WriteAt(ctx, pattern(2, 4096), 0); err != nil {
		t.Fatal(err)
	}
	at(20)
	s, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-rpt", VolumeID: "vol-RPT", FromRecoveryPoint: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.RecoveryPointTime.Equal(t0.Add(10*time.Second)) || !s.StartTime.Equal(t0.Add(20*time.Second)) {
		t.Fatalf("snapshot of the recovery point: point %v, started %v", s.RecoveryPointTime, s.StartTime)
	}
	rp(10)

	// A restart with nothing dirty: the volume is consistent as of the
	// restart, not only as of its last cut.
	at(25)
	if err := te.Cut(ctx, "vol-RPT"); err != nil {
		t.Fatal(err)
	}
	rp(25)
	te.Engine.Close()
	at(40)
	te.open()
	rp(40)
	// A restart with replayed writes: the last cut, until the next one.
	if err := te.vol("vol-RPT").WriteAt(ctx, pattern(3, 4096), 0); err != nil {
		t.Fatal(err)
	}
	te.Engine.Close()
	at(50)
	te.open()
	rp(25)
	at(55)
	if err := te.Cut(ctx, "vol-RPT"); err != nil {
		t.Fatal(err)
	}
	rp(55)
}

// TestUnmapWholeHugeVolume: discarding all of a 32 TiB volume (what mkfs
// does) frees its written blocks and skips the pages that hold none.
func TestUnmapWholeHugeVolume(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-HUGE", SizeBytes: MaxVolumeSize}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-HUGE")
	for _, off := range []int64{0, 100 << 30, MaxVolumeSize - 4096} {
		if err := v.WriteAt(ctx, pattern(1, 4096), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := te.Cut(ctx, "vol-HUGE"); err != nil {
		t.Fatal(err)
	}
	if rp, _ := te.RecoveryPoint(ctx, "vol-HUGE"); rp.UsageBytes != 3*BlockSize {
		t.Fatalf("usage %d before unmap", rp.UsageBytes)
	}
	if err := v.Unmap(ctx, 0, MaxVolumeSize); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-HUGE"); err != nil {
		t.Fatal(err)
	}
	if rp, _ := te.RecoveryPoint(ctx, "vol-HUGE"); rp.UsageBytes != 0 {
		t.Fatalf("usage %d after unmapping everything", rp.UsageBytes)
	}
	for _, off := range []int64{0, 100 << 30, MaxVolumeSize - 4096} {
		if got := mustRead(t, v, off, 4096); !bytes.Equal(got, make([]byte, 4096)) {
			t.Fatalf("block at %d not zero after unmap", off)
		}
	}
}

// TestPrefixIsolation: engines with different key prefixes share a store
// without seeing each other's snapshots or collecting each other's blocks.
func TestPrefixIsolation(t *testing.T) {
	ctx := context.Background()
	store := blobtest.NewFS(t)
	var skew atomic.Int64 // ages site a's objects past the grace for GC
	a := newTestEngine(t, store, engineOpts{})
	a.Engine.Close()
	a.cfg.Prefix, a.cfg.GCGrace = "site-a", time.Minute
	a.cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	a.open()
	b := newTestEngine(t, store, engineOpts{})
	b.Engine.Close()
	b.cfg.Prefix = "site-b/"
	b.open()
	for _, te := range []*testEngine{a, b} {
		if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-P", SizeBytes: gib}); err != nil {
			t.Fatal(err)
		}
		if err := te.vol("vol-P").WriteAt(ctx, pattern(9, BlockSize), 0); err != nil {
			t.Fatal(err)
		}
		if err := te.Cut(ctx, "vol-P"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-p", VolumeID: "vol-P", FromRecoveryPoint: true}); err != nil {
		t.Fatal(err)
	}
	if snaps, err := b.Snapshots(ctx); err != nil || len(snaps) != 0 {
		t.Fatalf("site b sees %d snapshots (%v)", len(snaps), err)
	}
	if err := a.DeleteVolume(ctx, "vol-P"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteSnapshot(ctx, "snap-p"); err != nil {
		t.Fatal(err)
	}
	skew.Store(int64(10 * time.Minute))
	for range 2 { // tombstones, then what they kept
		if _, err := a.GC(ctx); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	if err := store.List(ctx, "site-a/", func(blob.ObjectInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("site a left %d objects (%v)", n, err)
	}
	if got := mustRead(t, b.vol("vol-P"), 0, BlockSize); !bytes.Equal(got, pattern(9, BlockSize)) {
		t.Fatal("site b's data changed")
	}
	b.reopen() // cold cache: from the store
	if got := mustRead(t, b.vol("vol-P"), 0, BlockSize); !bytes.Equal(got, pattern(9, BlockSize)) {
		t.Fatal("site b's block was collected by site a")
	}
	if err := b.Check(ctx); err != nil {
		t.Fatal(err)
	}
}
