package volume

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// BenchmarkEngineRandomWrite: 4 KiB writes at random 4 KiB-aligned offsets,
// QD32 (32 goroutines), on a fresh 4 GiB volume, in IOPS (acknowledged
// writes, no Flush), as the product path's random-write row issues them,
// with the default 10 GiB cache disk. Two references in the same run,
// interleaved: the same workload confined to the first 64 MiB of a fresh
// volume (few blocks, so few first writes to a block), and pwrite to a
// plain 4 GiB file at the same offsets. The spread row is where the first
// write to a block since the last cut costs the most: nearly every write
// lands on a block not yet dirty, first never written (sparse.go), then
// frozen by a cut in flight (copy-on-write) or clean.
func BenchmarkEngineRandomWrite(b *testing.B) {
	const (
		volSize = 4 << 30
		narrow  = 64 << 20
		writes  = 65536 // 256 MiB per run: each block of the 4 GiB volume ~8 times, over several cuts
		qd      = 32
		ioSize  = 4 << 10
	)
	ctx := context.Background()
	data := randomBytes(b, ioSize)
	offsets := func(span int64, seed uint64) []int64 { return randomOffsets(seed, writes, span, ioSize) }
	run := func(w func(int64) error, offs []int64) float64 {
		start := time.Now()
		atDepth(b, qd, offs, w)
		return float64(len(offs)) / time.Since(start).Seconds()
	}
	engine := func(span int64, seed uint64) float64 {
		e := benchEngine(b, blobtest.NewFS(b), 10<<30, 2<<30, 5*time.Second)
		defer e.Close()
		if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-RND", SizeBytes: volSize}); err != nil {
			b.Fatal(err)
		}
		v, _ := e.Volume("vol-RND")
		return run(func(off int64) error { return v.WriteAt(ctx, data, off) }, offsets(span, seed))
	}
	plain := func(seed uint64) float64 {
		f := plainFile(b, volSize)
		defer f.Close()
		return run(func(off int64) error { _, err := f.WriteAt(data, off); return err }, offsets(volSize, seed))
	}
	var spread, confined, peer []float64
	rotate(3*b.N,
		func(seed uint64) { spread = append(spread, engine(volSize, seed)) },
		func(seed uint64) { confined = append(confined, engine(narrow, seed)) },
		func(seed uint64) { peer = append(peer, plain(seed)) })
	b.ReportMetric(median(spread), "spread_IOPS")
	b.ReportMetric(median(confined), "64MiB_IOPS")
	b.ReportMetric(median(peer), "peer_IOPS")
	b.ReportMetric(median(spread)/median(peer), "spread/peer")
	b.ReportMetric(median(spread)/median(confined), "spread/64MiB")
}

// BenchmarkEngineRandomWriteDurable: the product path's random-write row
// until the writes are in the store. 50 000 writes of 4 KiB, QD32, at
// random aligned offsets over a fresh 4 GiB volume (file store, 5 s cut
// interval: cuts run while the writes do), then a Cut: the rate is writes
// per second from the first write until that cut is published. Blocks
// changed in a few sectors go up as patches (patch.go) or, with
// Config.WholeBlocks, whole, as before patches; the peer is pwrite to a
// plain file at the same offsets and its fsync (durable on the local disk
// only). Three rounds, rotating order; also the bytes uploaded per write.
func BenchmarkEngineRandomWriteDurable(b *testing.B) {
	const (
		volSize = 4 << 30
		writes  = 50000
		qd      = 32
		ioSize  = 4 << 10
	)
	ctx := context.Background()
	data := randomBytes(b, ioSize)
	offsets := func(seed uint64) []int64 { return randomOffsets(seed, writes, volSize, ioSize) }
	run := func(w func(int64) error, offs []int64) { atDepth(b, qd, offs, w) }
	engine := func(whole bool, seed uint64) (iops, perWrite float64) {
		e := benchEngine(b, blobtest.NewFS(b), 10<<30, 2<<30, 5*time.Second, func(c *Config) { c.WholeBlocks = whole })
		defer e.Close()
		if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-RND", SizeBytes: volSize}); err != nil {
			b.Fatal(err)
		}
		v, _ := e.Volume("vol-RND")
		up := e.uploadedStored.Load()
		start := time.Now()
		run(func(off int64) error { return v.WriteAt(ctx, data, off) }, offsets(seed))
		if err := e.Cut(ctx, "vol-RND"); err != nil {
			b.Fatal(err)
		}
		return writes / time.Since(start).Seconds(), float64(e.uploadedStored.Load()-up) / writes
	}
	plain := func(seed uint64) float64 {
		f := plainFile(b, volSize)
		defer f.Close()
		start := time.Now()
		run(func(off int64) error { _, err := f.WriteAt(data, off); return err }, offsets(seed))
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		return writes / time.Since(start).Seconds()
	}
	var patched, whole, peer, patchedBytes, wholeBytes []float64
	rotate(3*b.N,
		func(seed uint64) {
			r, n := engine(false, seed)
			patched, patchedBytes = append(patched, r), append(patchedBytes, n)
		},
		func(seed uint64) {
			r, n := engine(true, seed)
			whole, wholeBytes = append(whole, r), append(wholeBytes, n)
		},
		func(seed uint64) { peer = append(peer, plain(seed)) })
	b.ReportMetric(median(patched), "patches_IOPS")
	b.ReportMetric(median(whole), "whole_IOPS")
	b.ReportMetric(median(peer), "peer_IOPS")
	b.ReportMetric(median(patched)/median(peer), "patches/peer")
	b.ReportMetric(median(whole)/median(peer), "whole/peer")
	b.ReportMetric(median(patchedBytes), "patches_B/write")
	b.ReportMetric(median(wholeBytes), "whole_B/write")
}

// randomOffsets is n random size-aligned offsets in [0, span), the same
// for the same seed (each peer of a round writes at the same places).
func randomOffsets(seed uint64, n int, span, size int64) []int64 {
	r := rand.New(rand.NewPCG(seed, 1))
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = r.Int64N(span/size) * size
	}
	return offs
}

// atDepth calls w for every offset, qd at a time, as an initiator with
// qd commands in flight issues them.
func atDepth(b *testing.B, qd int, offs []int64, w func(int64) error) {
	var wg sync.WaitGroup
	for q := range qd {
		wg.Go(func() {
			for i := q; i < len(offs); i += qd {
				if err := w(offs[i]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// rotate runs each measurement once per round, round i with seed i, the
// one that goes first rotating from round to round: the machine is shared
// and noisy, and none should always run on the quietest (or busiest) turn.
func rotate(rounds int, measure ...func(seed uint64)) {
	for i := range rounds {
		for j := range measure {
			measure[(i+j)%len(measure)](uint64(i))
		}
	}
}

// plainFile is the peer of a volume in the random-write benchmarks: an
// empty file of size bytes in a fresh directory.
func plainFile(b *testing.B, size int64) *os.File {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "raw.img"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return f
}
