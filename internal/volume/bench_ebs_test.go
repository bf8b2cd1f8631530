package volume

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// BenchmarkEBSChangedBlocks: ListChangedBlocks' walk between two snapshots
// of a 16 TiB volume (8192 pages, each 10% full: 3.4 million blocks),
// with 1% or 0.01% of its blocks changed between them, at random places
// or in one run. The trees (pages, roots, records) are built with the
// engine's own encoders in a real file store; the block objects are not
// written (the walk reads none), so the volume is sparse. Reported: the
// time of the whole listing (pages of 10000, as a backup tool pages),
// pages loaded (both versions of each differing page) and blocks listed.
// Each round starts with a cold page cache.
func BenchmarkEBSChangedBlocks(b *testing.B) {
	const (
		size     = 16 << 40
		npages   = size / BlockSize / pageBlocks
		perPage  = pageBlocks / 10
		nblocks  = size / BlockSize
		pageSize = 10000
	)
	ctx := context.Background()
	store := blobtest.NewFS(b)
	e := benchEngine(b, store, 64<<20, 64<<20, -1)
	rng := rand.New(rand.NewPCG(1, 2))
	randHash := func() hash {
		var h hash
		for i := 0; i < len(h); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				h[i+j] = byte(v >> (8 * j))
			}
		}
		return h
	}
	start := time.Now()
	base := make([]*page, npages)
	for pi := range base {
		p := &page{blocks: make(map[uint16]hash, perPage), zeros: map[uint16]bool{}}
		for len(p.blocks) < perPage {
			p.blocks[uint16(rng.IntN(pageBlocks))] = randHash()
		}
		base[pi] = p
	}
	// writeTree stores the pages (changed: block index → new hash over
	// base) and a completed snapshot record naming their root.
	writeTree := func(id string, changed map[int64]hash) {
		byPage := map[int][]int64{}
		for i := range changed {
			byPage[int(i/pageBlocks)] = append(byPage[int(i/pageBlocks)], i)
		}
		r := &root{Volume: "vol-BENCH", Seq: uint64(len(id)), Size: size, CutTime: time.Now(), Owner: "bench", Token: newToken(), Pages: map[uint32]pageRef{}}
		for pi, bp := range base {
			p := bp
			if idx := byPage[pi]; len(idx) > 0 {
				p = &page{blocks: make(map[uint16]hash, len(bp.blocks)+len(idx)), zeros: map[uint16]bool{}}
				for k, v := range bp.blocks {
					p.blocks[k] = v
				}
				for _, i := range idx {
					p.blocks[uint16(i%pageBlocks)] = changed[i]
				}
			}
			enc := encodePage(p)
			sum := sha256.Sum256(enc)
			if _, err := e.putContent(ctx, pageKey(sum), enc, time.Now(), &sum); err != nil {
				b.Fatal(err)
			}
			r.Pages[uint32(pi)] = pageRef{Hash: sum, Blocks: len(p.blocks), Touched: len(p.blocks)}
		}
		if err := e.put(ctx, r.key(), encodeRoot(r), blobPutNew()); err != nil {
			b.Fatal(err)
		}
		rec, _ := json.Marshal(snapRecord{ID: id, VolumeID: "vol-BENCH", SizeBytes: size, StartTime: time.Now(), Status: string(control.SnapshotCompleted), Root: r.key(), Owner: "bench"})
		if err := e.put(ctx, snapshotKey(id), rec, blobPutNew()); err != nil {
			b.Fatal(err)
		}
	}
	writeTree("snap-base", nil)
	changes := []struct {
		name  string
		count int
		run   bool
	}{
		{"1pct_random", nblocks / 100, false},
		{"0.01pct_random", nblocks / 10000, false},
		{"1pct_one_run", nblocks / 100, true},
		{"0.01pct_one_run", nblocks / 10000, true},
	}
	for _, c := range changes {
		changed := map[int64]hash{}
		first := rng.Int64N(nblocks - int64(c.count))
		for len(changed) < c.count {
			i := first + int64(len(changed))
			if !c.run {
				i = rng.Int64N(nblocks)
			}
			changed[i] = randHash()
		}
		writeTree("snap-"+c.name, changed)
	}
	b.Logf("built 5 trees of a 16 TiB volume in %v", time.Since(start).Round(time.Second))
	baseTree, err := e.OpenSnapshotTree(ctx, "snap-base")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range changes {
		b.Run(c.name, func(b *testing.B) {
			var st TreeStats
			listed := 0
			for range b.N {
				b.StopTimer()
				e.pages = newPageCache(128)
				b.StartTimer()
				t, err := e.OpenSnapshotTree(ctx, "snap-"+c.name)
				if err != nil {
					b.Fatal(err)
				}
				st, listed = TreeStats{}, 0
				for from := int64(0); from >= 0; {
					out, next, s, err := t.ChangedBlocks(ctx, baseTree, from, pageSize)
					if err != nil {
						b.Fatal(err)
					}
					st.PagesLoaded += s.PagesLoaded
					listed += len(out)
					from = next
				}
			}
			if listed != c.count {
				b.Fatalf("listed %d changed blocks; changed %d", listed, c.count)
			}
			b.ReportMetric(float64(st.PagesLoaded), "pages_loaded")
			b.ReportMetric(float64(2*npages), "pages_total")
			b.ReportMetric(float64(listed), "blocks_listed")
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s")
		})
	}
}

func blobPutNew() blob.PutOptions { return blob.PutOptions{IfNoneMatch: true} }
