package volume

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// BenchmarkRebuildAfterReset: ResetCache then AddDisk with 64 MiB of
// acknowledged writes only in the journal: the time the volumes are down
// once a cache disk is added, i.e. the journal replay. MB/s is of journal
// replayed.
func BenchmarkRebuildAfterReset(b *testing.B) {
	ctx := context.Background()
	const dirty = 64 << 20
	te := newTestEngine(b, blobtest.NewFS(b), engineOpts{cacheBytes: 256 << 20, bufferBytes: 256 << 20})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-B", SizeBytes: gib}); err != nil {
		b.Fatal(err)
	}
	v := te.vol("vol-B")
	if err := v.WriteAt(ctx, pattern(1, dirty), 0); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(dirty)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if _, err := te.ResetCache(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		path := filepath.Join(te.dir, "cache0.img")
		if err := te.AddDisk(ctx, control.Disk{ID: "cache0", Path: path, SizeBytes: 256 << 20, Use: control.DiskUseCache}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrub: the maintenance scrub of 256 clean slots (128 MiB),
// unpaced: what a disk delivers to it (the default pace is 64 MiB/s).
func BenchmarkScrub(b *testing.B) {
	ctx := context.Background()
	te := newTestEngine(b, blobtest.NewFS(b), engineOpts{cacheBytes: 256 << 20, bufferBytes: 256 << 20})
	te.cfg.ScrubRate = -1
	te.reopen()
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-S", SizeBytes: gib}); err != nil {
		b.Fatal(err)
	}
	v := te.vol("vol-S")
	if err := v.WriteAt(ctx, pattern(2, 128<<20), 0); err != nil {
		b.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-S"); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(128 << 20)
	b.ResetTimer()
	for range b.N {
		if n, bad, err := te.scrub(ctx); err != nil || n != 256 || bad != 0 {
			b.Fatalf("scrub: %d slots, %d bad, %v", n, bad, err)
		}
	}
}
