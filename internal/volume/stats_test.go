package volume

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

func cacheStats(t *testing.T, te *testEngine) control.CacheStats {
	t.Helper()
	st, err := te.CacheStats(context.Background())
	if err != nil {
		t.Fatalf("CacheStats: %v", err)
	}
	return st
}

func bufferUsed(t *testing.T, te *testEngine) int64 {
	t.Helper()
	n, err := te.UploadBufferUsedBytes(context.Background())
	if err != nil {
		t.Fatalf("UploadBufferUsedBytes: %v", err)
	}
	return n
}

// TestCacheAndUploadBufferFigures follows DescribeCache's and
// DescribeUploadBuffer's figures through writes, a cut, a restart (cold
// cache: misses) and reads of cached blocks (hits), checking each against
// what the engine holds.
func TestCacheAndUploadBufferFigures(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{}) // 64 MiB: 128 slots
	slots := float64(te.cache.nslots())
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-ST", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	if st := cacheStats(t, te); st != (control.CacheStats{}) {
		t.Fatalf("stats of an unused cache = %+v, want all zero", st)
	}
	if n := bufferUsed(t, te); n != 0 {
		t.Fatalf("upload buffer used before any write = %d", n)
	}

	// Four whole blocks and part of a fifth: five dirty slots.
	v := te.vol("vol-ST")
	data := pattern(5, 4*BlockSize)
	if err := v.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteAt(ctx, pattern(6, 4096), 8*BlockSize); err != nil {
		t.Fatal(err)
	}
	st := cacheStats(t, te)
	if want := 5 * 100 / slots; st.DirtyPercent != want || st.UsedPercent != want {
		t.Fatalf("after writing 5 blocks: %+v, want used = dirty = %v", st, want)
	}
	wantBuf := 4*recordSize(BlockSize) + recordSize(4096)
	if n := bufferUsed(t, te); n < wantBuf {
		t.Fatalf("upload buffer used after writes = %d, want at least %d (the records)", n, wantBuf)
	}

	// Reads of dirty blocks are served from the cache.
	if got := mustRead(t, v, 0, 2*BlockSize); !bytes.Equal(got, data[:2*BlockSize]) {
		t.Fatal("read of dirty blocks differs")
	}
	if st := cacheStats(t, te); st.HitPercent != 100 || st.MissPercent != 0 {
		t.Fatalf("after reading 2 dirty blocks: %+v, want 100%% hits", st)
	}

	// The cut uploads everything: nothing dirty, nothing in the journal,
	// the uploaded blocks stay cached (clean).
	if err := te.Cut(ctx, "vol-ST"); err != nil {
		t.Fatal(err)
	}
	st = cacheStats(t, te)
	if st.DirtyPercent != 0 || st.UsedPercent != 5*100/slots {
		t.Fatalf("after the cut: %+v, want dirty 0 and used %v", st, 5*100/slots)
	}
	if n := bufferUsed(t, te); n != 0 {
		t.Fatalf("upload buffer used after the cut = %d, want 0", n)
	}

	// A restart empties the cache: the first read of each block is a miss
	// (fetched from the store), the second a hit. Zero blocks count as
	// neither.
	te.reopen()
	v = te.vol("vol-ST")
	if st := cacheStats(t, te); st != (control.CacheStats{}) {
		t.Fatalf("stats after a restart = %+v, want all zero", st)
	}
	if got := mustRead(t, v, 0, BlockSize); !bytes.Equal(got, data[:BlockSize]) {
		t.Fatal("read after restart differs")
	}
	mustRead(t, v, 20*BlockSize, BlockSize) // never written
	st = cacheStats(t, te)
	if st.MissPercent != 100 || st.HitPercent != 0 || st.DirtyPercent != 0 || st.UsedPercent != 100/slots {
		t.Fatalf("after one cold read: %+v, want 100%% misses, 1 slot used, none dirty", st)
	}
	for range 3 {
		if got := mustRead(t, v, 0, BlockSize); !bytes.Equal(got, data[:BlockSize]) {
			t.Fatal("cached read differs")
		}
	}
	st = cacheStats(t, te)
	if st.HitPercent != 75 || st.MissPercent != 25 {
		t.Fatalf("after 1 miss and 3 hits: %+v, want 75%% hits, 25%% misses", st)
	}

	// Evicted (dropped) blocks are misses again.
	v.mu.Lock()
	te.cache.drop(v.key(0))
	v.mu.Unlock()
	mustRead(t, v, 0, 4096)
	if st := cacheStats(t, te); st.HitPercent != 60 || st.MissPercent != 40 {
		t.Fatalf("after 2 misses and 3 hits: %+v, want 60%% / 40%%", st)
	}

	// A write makes the cached block dirty again: a clean slot turns owned.
	if err := v.WriteAt(ctx, pattern(7, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if st := cacheStats(t, te); st.DirtyPercent != 100/slots || st.UsedPercent != 100/slots {
		t.Fatalf("after rewriting the cached block: %+v, want 1 slot used and dirty", st)
	}
	if n := bufferUsed(t, te); n != recordSize(4096) {
		t.Fatalf("upload buffer used = %d, want one record of %d", n, recordSize(4096))
	}
	if err := te.Check(ctx); err != nil {
		t.Fatal(err)
	}

	te.Close()
	if _, err := te.CacheStats(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("CacheStats of a closed engine: %v", err)
	}
	te.Engine = nil
}

// TestEngineErrorsAreControlSentinels: the errors control maps to API
// errors are recognisable as control's sentinels.
func TestEngineErrorsAreControlSentinels(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-BIG", SizeBytes: 2 * gib}); err != nil {
		t.Fatal(err)
	}
	if _, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-big", VolumeID: "vol-BIG", FromRecoveryPoint: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		err  error
		is   []error
	}{
		{"duplicate volume", te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-BIG", SizeBytes: gib}), []error{ErrExists, control.ErrVolumeExists}},
		{"restore smaller than the snapshot", te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-SMALL", SizeBytes: gib, Source: control.VolumeSource{SnapshotID: "snap-big"}}), []error{ErrInvalidSize, ErrTooSmall, control.ErrVolumeTooSmall}},
		{"clone smaller than the volume", te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-SMALL", SizeBytes: gib, Source: control.VolumeSource{SourceVolumeID: "vol-BIG"}}), []error{ErrInvalidSize, control.ErrVolumeTooSmall}},
		{"size out of range", te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-TINY", SizeBytes: 1 << 20}), []error{ErrInvalidSize, control.ErrInvalidVolumeSize}},
		{"duplicate snapshot", func() error {
			_, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-big", VolumeID: "vol-BIG", FromRecoveryPoint: true})
			return err
		}(), []error{ErrExists, control.ErrSnapshotExists}},
	} {
		for _, target := range c.is {
			if !errors.Is(c.err, target) {
				t.Errorf("%s: %v is not %v", c.name, c.err, target)
			}
		}
	}
	if errors.Is(ErrInvalidSize, control.ErrVolumeTooSmall) {
		t.Error("every invalid size reads as too small")
	}

	bare := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	bare.Close()
	bare.cfg.Dir = t.TempDir()
	bare.open()
	if err := bare.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-NODISK", SizeBytes: gib}); !errors.Is(err, ErrNoDisks) || !errors.Is(err, control.ErrNoDisks) {
		t.Fatalf("volume without disks: %v", err)
	}
}
