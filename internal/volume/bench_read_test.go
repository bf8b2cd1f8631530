package volume

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// BenchmarkEngineColdRead: 128 MiB of fresh data published to a versitygw,
// read back sequentially after a restart (every block from the store) by
// 1 or 8 readers taking 1 MiB commands in order, as an initiator at QD1 or
// QD8 does; against plain GETs of the same block objects from the same
// server, 8 at once, in MB/s; 5 rounds interleaved. This is the component
// under the product path's cold-read row (bench/peers.sh).
func BenchmarkEngineColdRead(b *testing.B) {
	for _, readers := range []int{1, 8} {
		b.Run(fmt.Sprintf("QD%d", readers), func(b *testing.B) { benchColdRead(b, readers, false, nil) })
	}
}

// BenchmarkEngineColdReadCompressed is the cold read of compressible data
// (words drawn at random from a small vocabulary: zstd stores it in about a
// third) stored without and with compression, QD8: what decompressing on
// the read path costs. The "peer" is the plain GETs of the objects as
// stored, so only the engine rates compare across the two.
func BenchmarkEngineColdReadCompressed(b *testing.B) {
	for _, compress := range []bool{false, true} {
		b.Run(fmt.Sprintf("compress=%v", compress), func(b *testing.B) { benchColdRead(b, 8, compress, wordsData) })
	}
}

// wordsData fills p with words drawn at random from a vocabulary of 512.
func wordsData(p []byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := make([][]byte, 512)
	for i := range words {
		w := make([]byte, 3+rng.IntN(8))
		for j := range w {
			w[j] = 'a' + byte(rng.IntN(26))
		}
		words[i] = append(w, ' ')
	}
	for n := 0; n < len(p); {
		n += copy(p[n:], words[rng.IntN(len(words))])
	}
}

func benchColdRead(b *testing.B, readers int, compress bool, fill func([]byte)) {
	const blocks = 256
	ctx := context.Background()
	srv := blobtest.StartVersityGW(b)
	store := srv.Store(b)
	dir := b.TempDir()
	cfg := Config{Dir: filepath.Join(dir, "engine"), Store: store, CutInterval: -1, Compress: compress,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	open := func() *Engine {
		e, err := Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		return e
	}
	e := open()
	for _, d := range []control.Disk{
		{ID: "c", Path: filepath.Join(dir, "cache0.img"), SizeBytes: 1 << 30, Use: control.DiskUseCache},
		{ID: "u", Path: filepath.Join(dir, "buffer0.img"), SizeBytes: 512 << 20, Use: control.DiskUseUploadBuffer},
	} {
		if err := e.AddDisk(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-CR", SizeBytes: gib}); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, blocks*BlockSize)
	if fill == nil {
		fill = newFreshData(b).fill
	}
	fill(data)
	v, _ := e.Volume("vol-CR")
	if err := v.WriteAt(ctx, data, 0); err != nil {
		b.Fatal(err)
	}
	if err := e.Cut(ctx, "vol-CR"); err != nil {
		b.Fatal(err)
	}
	e.Close()
	var keys []string
	if err := store.List(ctx, "blocks/", func(o blob.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil || len(keys) != blocks {
		b.Fatalf("%d block objects, %v", len(keys), err)
	}
	var eng, peer []float64
	for range 5 * b.N {
		peer = append(peer, plainGets(b, store, keys))
		e := open() // a restart: the cache is cold
		v, _ := e.Volume("vol-CR")
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range readers {
			wg.Go(func() {
				p := make([]byte, 1<<20)
				for {
					off := next.Add(1<<20) - 1<<20
					if off >= int64(len(data)) {
						return
					}
					if err := v.ReadAt(ctx, p, off); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		eng = append(eng, float64(len(data))/time.Since(start).Seconds()/1e6)
		e.Close()
	}
	report(b, median(eng), median(peer))
}

// plainGets reads the objects, 8 at once, and returns the rate in MB/s.
func plainGets(b *testing.B, store blob.Store, keys []string) float64 {
	ctx := context.Background()
	start := time.Now()
	var n atomic.Int64
	var wg sync.WaitGroup
	work := make(chan string)
	for range 8 {
		wg.Go(func() {
			for k := range work {
				p, err := store.Get(ctx, k)
				if err != nil {
					b.Error(err)
				}
				n.Add(int64(len(p)))
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds() / 1e6
}
