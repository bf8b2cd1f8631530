package volume

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// What recovery-point retention costs in the store (retention.go): a
// steady write workload runs for retentionMinutes of simulated time (the
// engine's clock advances 5 s per cut, the default cut interval), once
// with a window that keeps every point and once without, on the file
// store; then GC runs past the grace period and the store is counted.
// The prediction is what retention.go says a point costs: the blocks its
// cut changed (each a fresh object: the data is random) and the pages it
// rewrote, plus its root. The figures are counts, not timings: the
// machine's load does not move them.

const (
	retentionMinutes = 10
	retentionCutSecs = 5
)

type retentionWorkload struct {
	name string
	// write issues the writes of one simulated second (second s).
	write func(ctx context.Context, v *Volume, rng *rand.Rand, s int, touch func(off, n int64)) error
}

type storeCount struct {
	blocks, pages, roots             int
	blockBytes, pageBytes, rootBytes int64
}

func (c storeCount) objects() int { return c.blocks + c.pages + c.roots }
func (c storeCount) bytes() int64 { return c.blockBytes + c.pageBytes + c.rootBytes }
func (c storeCount) sub(o storeCount) storeCount {
	return storeCount{c.blocks - o.blocks, c.pages - o.pages, c.roots - o.roots, c.blockBytes - o.blockBytes, c.pageBytes - o.pageBytes, c.rootBytes - o.rootBytes}
}

func countStore(b *testing.B, s blob.Store) storeCount {
	var c storeCount
	err := s.List(context.Background(), "", func(o blob.ObjectInfo) error {
		switch {
		case strings.HasPrefix(o.Key, "blocks/"):
			c.blocks++
			c.blockBytes += o.Size
		case strings.HasPrefix(o.Key, "pages/"):
			c.pages++
			c.pageBytes += o.Size
		case strings.Contains(o.Key, "/roots/"):
			c.roots++
			c.rootBytes += o.Size
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// runRetention runs w for retentionMinutes with window keep and returns the
// store's count after GC, the user bytes written, and (for keep > 0) the
// predicted block and page bytes of the points beyond the last.
func runRetention(b *testing.B, w retentionWorkload, keep time.Duration) (got storeCount, written int64, predBlocks, predPages int, predPageBytes int64) {
	ctx := context.Background()
	var sim atomic.Int64
	base := time.Now()
	store := blobtest.NewFS(b)
	te := newTestEngine(b, store, engineOpts{grace: time.Minute})
	te.cfg.Now = func() time.Time { return base.Add(time.Duration(sim.Load())) }
	te.cfg.RecoveryPointRetention = keep
	te.reopen()
	const vol = "vol-0000000000000BE01"
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: 8 * gib}); err != nil {
		b.Fatal(err)
	}
	v := te.vol(vol)
	rng := rand.New(rand.NewPCG(1, 2)) // the same writes with and without retention
	inPage := map[uint64]map[uint64]bool{}
	for cut := range retentionMinutes * 60 / retentionCutSecs {
		blocks := map[uint64]bool{}
		touch := func(off, n int64) {
			written += n
			for blk := off / BlockSize; blk <= (off+n-1)/BlockSize; blk++ {
				blocks[uint64(blk)] = true
			}
		}
		for s := range retentionCutSecs {
			if err := w.write(ctx, v, rng, cut*retentionCutSecs+s, touch); err != nil {
				b.Fatal(err)
			}
		}
		sim.Add(int64(retentionCutSecs * time.Second))
		if err := te.Cut(ctx, vol); err != nil {
			b.Fatal(err)
		}
		pages := map[uint64]bool{}
		for blk := range blocks {
			pi := blk / pageBlocks
			if inPage[pi] == nil {
				inPage[pi] = map[uint64]bool{}
			}
			inPage[pi][blk] = true
			pages[pi] = true
		}
		predBlocks += len(blocks)
		predPages += len(pages)
		for pi := range pages {
			predPageBytes += int64(8 + 34*len(inPage[pi]))
		}
	}
	// Past the grace period, then GC: what is left is what retention keeps.
	sim.Add(int64(2 * time.Minute))
	if _, err := te.GC(ctx); err != nil {
		b.Fatal(err)
	}
	if keep > 0 {
		pts, err := te.RetainedRecoveryPoints(ctx, vol)
		if err != nil || len(pts) != retentionMinutes*60/retentionCutSecs+1 {
			b.Fatalf("%d retained points (%v), want every cut's and the create's", len(pts), err)
		}
	}
	return countStore(b, store), written, predBlocks, predPages, predPageBytes
}

func BenchmarkRetentionCost(b *testing.B) {
	for _, w := range []retentionWorkload{
		{name: "random4k", write: func(ctx context.Context, v *Volume, rng *rand.Rand, s int, touch func(off, n int64)) error {
			// One 4 KiB write a second at a random place in a 256 MiB hot region.
			off := rng.Int64N(256<<20/4096) * 4096
			touch(off, 4096)
			return v.WriteAt(ctx, randomBytesRNG(rng, 4096), off)
		}},
		{name: "sequential", write: func(ctx context.Context, v *Volume, rng *rand.Rand, s int, touch func(off, n int64)) error {
			// 64 KiB a second, appended to a 16 MiB log that wraps.
			off := int64(s) * 65536 % (16 << 20)
			touch(off, 65536)
			return v.WriteAt(ctx, randomBytesRNG(rng, 65536), off)
		}},
	} {
		b.Run(w.name, func(b *testing.B) {
			for range b.N {
				off, _, _, _, _ := runRetention(b, w, 0)
				on, written, pb, pp, ppb := runRetention(b, w, retentionMinutes*time.Minute+5*time.Minute)
				if on.blocks != pb || on.pages != pp || on.pageBytes != ppb || on.roots != retentionMinutes*60/retentionCutSecs+1 {
					b.Fatalf("retention kept %d blocks, %d pages (%d bytes), %d roots; the changed blocks and pages are %d, %d (%d bytes), one root a point",
						on.blocks, on.pages, on.pageBytes, on.roots, pb, pp, ppb)
				}
				extra := on.sub(off)
				points := float64(retentionMinutes * 60 / retentionCutSecs)
				b.ReportMetric(float64(written)/points, "user_B/point")
				b.ReportMetric(float64(off.objects()), "off_objects")
				b.ReportMetric(float64(off.bytes()), "off_bytes")
				b.ReportMetric(float64(on.objects()), "on_objects")
				b.ReportMetric(float64(on.bytes()), "on_bytes")
				b.ReportMetric(float64(extra.bytes())/points, "extra_B/point")
				b.ReportMetric(float64(extra.objects())/points, "extra_objects/point")
				b.ReportMetric(float64(on.blocks), "on_blocks")
				b.ReportMetric(float64(pb), "predicted_blocks")
				b.ReportMetric(float64(on.pages), "on_pages")
				b.ReportMetric(float64(pp), "predicted_pages")
				b.ReportMetric(float64(on.pageBytes), "on_page_B")
				b.ReportMetric(float64(ppb), "predicted_page_B")
				b.ReportMetric(float64(on.rootBytes)/float64(on.roots), "root_B")
			}
		})
	}
}

// randomBytesRNG is n bytes from rng: fresh data, never deduplicated.
func randomBytesRNG(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := 0; i < n; i += 8 {
		x := rng.Uint64()
		for k := 0; k < 8 && i+k < n; k++ {
			p[i+k] = byte(x >> (8 * k))
		}
	}
	return p
}
