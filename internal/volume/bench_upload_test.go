package volume

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// Upload benchmarks: how close the uploader comes to the object store's own
// rate. Each peer is plain Puts of fresh 512 KiB objects to the same store,
// 8 at once (the engine's default UploadConcurrency), measured in the same
// run, interleaved with the engine (A B A B ...); the reported figures are
// medians.

// freshData hands out data no earlier call (in this process) produced: a
// random base with a counter and a random nonce stamped into every block,
// so nothing dedups in the store and no block is all zeros, without paying
// for crypto/rand on every byte.
type freshData struct {
	mu    sync.Mutex
	base  []byte
	nonce uint64
	n     uint64
}

func newFreshData(b *testing.B) *freshData {
	base := randomBytes(b, 64*BlockSize)
	return &freshData{base: base, nonce: binary.LittleEndian.Uint64(base)}
}

// fill overwrites p (a multiple of BlockSize) with fresh blocks.
func (f *freshData) fill(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for off := 0; off < len(p); off += BlockSize {
		src := int(f.n%64) * BlockSize
		copy(p[off:off+BlockSize], f.base[src:src+BlockSize])
		binary.LittleEndian.PutUint64(p[off:], f.n)
		binary.LittleEndian.PutUint64(p[off+8:], f.nonce)
		f.n++
	}
}

// plainPuts stores data as 512 KiB objects under prefix, 8 at once, and
// returns the rate in MB/s: the peer of every upload benchmark.
func plainPuts(b *testing.B, store blob.Store, prefix string, data []byte) float64 {
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for k := range work {
				if _, err := store.Put(ctx, fmt.Sprintf("%s/%d", prefix, k), data[k*BlockSize:(k+1)*BlockSize], blob.PutOptions{}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for k := range len(data) / BlockSize {
		work <- k
	}
	close(work)
	wg.Wait()
	return float64(len(data)) / time.Since(start).Seconds() / 1e6
}

// BenchmarkEngineUpload: one cut of 64 MiB of dirty blocks (fresh data, so
// nothing dedups) to a versitygw, against plain PUTs of as many fresh
// blocks to the same server, 8 at once, in MB/s; 5 rounds interleaved.
func BenchmarkEngineUpload(b *testing.B) {
	srv := blobtest.StartVersityGW(b)
	benchCutUpload(b, srv.Store)
}

// BenchmarkEngineUploadFS: the same on the file store, against plain Puts
// of the file store, 8 at once.
func BenchmarkEngineUploadFS(b *testing.B) {
	benchCutUpload(b, blobtest.NewFS)
}

func benchCutUpload(b *testing.B, newStore func(testing.TB) blob.Store) {
	const blocks = 128
	ctx := context.Background()
	fresh := newFreshData(b)
	data := make([]byte, blocks*BlockSize)
	store := newStore(b)
	var eng, peer []float64
	for i := range 5 * b.N {
		// A 1 GiB cache: 128 dirty blocks stay under the threshold (a
		// quarter of the slots) that would start the cut in the
		// background before the clock does.
		e := benchEngine(b, store, 1<<30, 256<<20, -1)
		// The upload buffer's initialisation (ringinit.go) zeros the
		// ring with direct writes while the journal is idle: done first,
		// so that it lands on neither side's clock.
		awaitRingInit(b, e)
		id := fmt.Sprintf("vol-UP%d", i)
		if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
			b.Fatal(err)
		}
		v, _ := e.Volume(id)
		fresh.fill(data)
		if err := v.WriteAt(ctx, data, 0); err != nil {
			b.Fatal(err)
		}
		if err := v.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		// Both start with no dirty page cache: the writeback of the
		// volume's journal and cache is the writes' cost, not the upload's
		// (on the file store it would otherwise land on the first fsyncs
		// of whichever runs first).
		syscall.Sync()
		peerData := make([]byte, len(data))
		fresh.fill(peerData)
		peer = append(peer, plainPuts(b, store, fmt.Sprintf("plain/%d", i), peerData))
		syscall.Sync()
		start := time.Now()
		if err := e.Cut(ctx, id); err != nil {
			b.Fatal(err)
		}
		eng = append(eng, float64(len(data))/time.Since(start).Seconds()/1e6)
		e.Close()
	}
	report(b, median(eng), median(peer))
}

// BenchmarkEngineSustained: 512 MiB of fresh data written through a
// 128 MiB upload buffer (4× its size, so writers wait for uploads most of
// the time) to a versitygw, in MB/s from the first write until the last
// byte is published in the store, against plain PUTs of 128 MiB of fresh
// blocks to the same server, 8 at once; 3 rounds interleaved. One writer,
// 1 MiB writes, 5 s cut interval.
func BenchmarkEngineSustained(b *testing.B) {
	const buffer, total, write = 128 << 20, 512 << 20, 1 << 20
	ctx := context.Background()
	srv := blobtest.StartVersityGW(b)
	store := srv.Store(b)
	fresh := newFreshData(b)
	peerData := make([]byte, buffer)
	buf := make([]byte, write)
	var eng, peer []float64
	for i := range 3 * b.N {
		fresh.fill(peerData)
		peer = append(peer, plainPuts(b, store, fmt.Sprintf("plain/%d", i), peerData))

		e := benchEngine(b, store, 2*buffer, buffer, 5*time.Second)
		id := fmt.Sprintf("vol-SUS%d", i)
		if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
			b.Fatal(err)
		}
		v, _ := e.Volume(id)
		start := time.Now()
		for off := int64(0); off < total; off += write {
			fresh.fill(buf)
			if err := v.WriteAt(ctx, buf, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := v.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if err := e.Cut(ctx, id); err != nil {
			b.Fatal(err)
		}
		eng = append(eng, total/time.Since(start).Seconds()/1e6)
		e.Close()
	}
	report(b, median(eng), median(peer))
}

// BenchmarkEngineRecoveryLag: one volume on a versitygw receives 64 MiB/s
// of fresh data (1 MiB writes, paced) for 40 s with a 5 s cut interval;
// every 100 ms the lag, now minus the volume's recovery point, is sampled.
// Reported: the lag's p50, p99 and max in seconds ("engine" is the p99),
// against the target bound, cut interval + 1 s ("peer": a bound, not a
// measurement). The machine's load shows in how far the max strays.
func BenchmarkEngineRecoveryLag(b *testing.B) {
	const interval, rate, write, run = 5 * time.Second, 64 << 20, 1 << 20, 40 * time.Second
	ctx := context.Background()
	srv := blobtest.StartVersityGW(b)
	fresh := newFreshData(b)
	var lags []float64
	for i := range b.N {
		e := benchEngine(b, srv.Store(b), 1<<30, 1<<30, interval)
		id := fmt.Sprintf("vol-LAG%d", i)
		if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: 4 * gib}); err != nil {
			b.Fatal(err)
		}
		v, _ := e.Volume(id)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			buf := make([]byte, write)
			start := time.Now()
			for n := int64(0); ; n++ {
				// Paced: write n is due at start + n/rate; a writer that
				// falls behind (backpressure) catches up without bursting
				// past the rate.
				if d := time.Until(start.Add(time.Duration(n) * time.Second * write / rate)); d > 0 {
					select {
					case <-stop:
						return
					case <-time.After(d):
					}
				}
				select {
				case <-stop:
					return
				default:
				}
				fresh.fill(buf)
				if err := v.WriteAt(ctx, buf, (n*write)%(4*gib)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		t := time.NewTicker(100 * time.Millisecond)
		end := time.Now().Add(run)
		// The first interval is start-up (the first cut starts from an
		// empty volume); sample after it.
		warm := time.Now().Add(interval)
		for now := range t.C {
			if now.After(end) {
				break
			}
			rp, err := e.RecoveryPoint(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if now.After(warm) {
				lags = append(lags, time.Since(rp.Time).Seconds())
			}
		}
		t.Stop()
		close(stop)
		wg.Wait()
		e.Close()
	}
	slices.Sort(lags)
	q := func(p float64) float64 { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	b.ReportMetric(q(0.5), "p50_s")
	b.ReportMetric(q(0.99), "p99_s")
	b.ReportMetric(lags[len(lags)-1], "max_s")
	report(b, q(0.99), (interval + time.Second).Seconds())
}
