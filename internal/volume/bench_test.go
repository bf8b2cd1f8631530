package volume

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// Benchmarks of the engine, each measured side by side with its peer in the
// same run and reported as custom metrics: "engine", "peer" and
// "engine/peer". bench/engine.sh runs them (-benchtime=1x: each iteration
// is a complete fixed workload) and prints the table for BENCHMARKS.md.

func benchEngine(b *testing.B, store blob.Store, cacheBytes, bufferBytes int64, interval time.Duration, tweak ...func(*Config)) *Engine {
	b.Helper()
	dir := b.TempDir()
	cfg := Config{Dir: filepath.Join(dir, "engine"), Store: store, CutInterval: interval,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, f := range tweak {
		f(&cfg)
	}
	e, err := Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	for _, d := range []control.Disk{
		{ID: "c", Path: filepath.Join(dir, "cache0.img"), SizeBytes: cacheBytes, Use: control.DiskUseCache},
		{ID: "u", Path: filepath.Join(dir, "buffer0.img"), SizeBytes: bufferBytes, Use: control.DiskUseUploadBuffer},
	} {
		if err := e.AddDisk(context.Background(), d); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

func report(b *testing.B, engine, peer float64) {
	b.ReportMetric(engine, "engine")
	b.ReportMetric(peer, "peer")
	b.ReportMetric(engine/peer, "engine/peer")
}

func randomBytes(b *testing.B, n int) []byte {
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkEngineLocalIO: sequential writes (then Flush) and reads of 256 MiB
// through a volume, against pwrite/pread (then fsync) of a plain file in the
// same directory, in MB/s. The engine writes every byte twice (journal and
// cache slot). Writes go into an empty 1 GiB upload buffer: this is the
// burst rate, before backpressure; once the buffer is full, writes proceed
// at the upload rate (BenchmarkEngineUpload). The buffer is new but
// initialised (ringinit.go: every block written once), as a gateway's is
// once its initialisation has ended; BenchmarkEngineFirstLap writes before
// that. Reads are of clean cached blocks (every 4 KiB sector's CRC
// checked).
func BenchmarkEngineLocalIO(b *testing.B) {
	const total = 256 << 20
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		ctx := context.Background()
		data := randomBytes(b, size)
		var e *Engine
		var v *Volume
		var raw *os.File
		setup := func(b *testing.B) {
			dir := b.TempDir()
			store := blobtest.NewFS(b)
			e = benchEngine(b, store, 1<<30, 1<<30, 5*time.Second)
			awaitRingInit(b, e)
			if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-BENCH", SizeBytes: gib}); err != nil {
				b.Fatal(err)
			}
			v, _ = e.Volume("vol-BENCH")
			var err error
			if raw, err = os.OpenFile(filepath.Join(dir, "raw.img"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { raw.Close() })
		}
		engineWrite := func() float64 {
			start := time.Now()
			for off := int64(0); off < total; off += int64(size) {
				if err := v.WriteAt(ctx, data, off); err != nil {
					b.Fatal(err)
				}
			}
			if err := v.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			return total / time.Since(start).Seconds() / 1e6
		}
		rawWrite := func() float64 {
			start := time.Now()
			for off := int64(0); off < total; off += int64(size) {
				if _, err := raw.WriteAt(data, off); err != nil {
					b.Fatal(err)
				}
			}
			if err := raw.Sync(); err != nil {
				b.Fatal(err)
			}
			return total / time.Since(start).Seconds() / 1e6
		}
		buf := make([]byte, size)
		engineRead := func() float64 {
			start := time.Now()
			for off := int64(0); off < total; off += int64(size) {
				if err := v.ReadAt(ctx, buf, off); err != nil {
					b.Fatal(err)
				}
			}
			return total / time.Since(start).Seconds() / 1e6
		}
		rawRead := func() float64 {
			start := time.Now()
			for off := int64(0); off < total; off += int64(size) {
				if _, err := raw.ReadAt(buf, off); err != nil {
					b.Fatal(err)
				}
			}
			return total / time.Since(start).Seconds() / 1e6
		}
		b.Run(fmt.Sprintf("write_%dKiB_MBps", size>>10), func(b *testing.B) {
			// Medians, each round on a fresh engine and file, alternating
			// which goes first: the second runs while the kernel writes
			// back what the first left dirty (the engine's cache slots are
			// never synced), and each side takes that turn as often.
			var eng, peer []float64
			for i := range 5 * b.N {
				setup(b)
				if i%2 == 0 {
					peer = append(peer, rawWrite())
					eng = append(eng, engineWrite())
				} else {
					eng = append(eng, engineWrite())
					peer = append(peer, rawWrite())
				}
				e.Close()
			}
			report(b, median(eng), median(peer))
		})
		b.Run(fmt.Sprintf("read_%dKiB_MBps", size>>10), func(b *testing.B) {
			setup(b)
			engineWrite()
			rawWrite()
			// Upload first, so nothing runs in the background and the engine
			// reads its clean cache (with the CRC check on every sector).
			if err := e.Cut(ctx, "vol-BENCH"); err != nil {
				b.Fatal(err)
			}
			engineRead() // warm both page caches alike
			rawRead()
			var eng, peer []float64
			for i := range 5 * b.N { // alternate which goes first; medians
				if i%2 == 0 {
					peer = append(peer, rawRead())
					eng = append(eng, engineRead())
				} else {
					eng = append(eng, engineRead())
					peer = append(peer, rawRead())
				}
			}
			report(b, median(eng), median(peer))
		})
	}
}

// awaitRingInit waits until the engine's upload buffer is initialised
// (nothing to wait for where the file system cannot tell).
func awaitRingInit(b *testing.B, e *Engine) {
	if done := e.jr.initDone(); done != nil {
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatal("the upload buffer's initialisation did not end")
		}
	}
}

// BenchmarkEngineFirstLap: LocalIO's write rows on a gateway that writes
// as soon as its 1 GiB upload buffer is added, while the buffer's
// initialisation has not ended (what a product benchmark that creates a
// gateway and writes at once sees; "init_MiB" is what the initialiser had
// zeroed, from the head on, when the first write came), with the
// initialiser's two policies:
// "idle" (the engine's: it zeros only while the journal is idle, so the
// writes land on never-written blocks) and "always" (it zeros ahead of the
// head while the writes go on). Medians of 5, each round on a fresh engine
// and plain file, the plain file's writes before the engine is created or
// after its writes, in turn; "engine/peer" is the ratio to the plain
// file's pwrite + fsync.
func BenchmarkEngineFirstLap(b *testing.B) {
	const total = 256 << 20
	ctx := context.Background()
	for _, size := range []int{4 << 10, 1 << 20} {
		data := randomBytes(b, size)
		for _, policy := range []string{"idle", "always"} {
			b.Run(fmt.Sprintf("write_%dKiB_%s_MBps", size>>10, policy), func(b *testing.B) {
				var eng, peer, inited []float64
				for i := range 5 * b.N {
					dir := b.TempDir()
					raw, err := os.OpenFile(filepath.Join(dir, "raw.img"), os.O_RDWR|os.O_CREATE, 0o600)
					if err != nil {
						b.Fatal(err)
					}
					run := func(w func([]byte, int64) error, sync func() error) float64 {
						start := time.Now()
						for off := int64(0); off < total; off += int64(size) {
							if err := w(data, off); err != nil {
								b.Fatal(err)
							}
						}
						if err := sync(); err != nil {
							b.Fatal(err)
						}
						return total / time.Since(start).Seconds() / 1e6
					}
					plain := func() float64 {
						return run(func(p []byte, off int64) error { _, err := raw.WriteAt(p, off); return err }, raw.Sync)
					}
					// The engine writes as soon as it is created; the plain
					// file goes before it or after it, in turn.
					if i%2 == 1 {
						peer = append(peer, plain())
					}
					e := benchEngine(b, blobtest.NewFS(b), 1<<30, 1<<30, 5*time.Second)
					e.jr.mu.Lock()
					e.jr.init.always = policy == "always"
					e.jr.mu.Unlock()
					if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-LAP", SizeBytes: gib}); err != nil {
						b.Fatal(err)
					}
					v, _ := e.Volume("vol-LAP")
					w, _ := e.jr.initState()
					inited = append(inited, float64(w)/(1<<20))
					eng = append(eng, run(func(p []byte, off int64) error { return v.WriteAt(ctx, p, off) }, func() error { return v.Flush(ctx) }))
					if i%2 == 0 {
						peer = append(peer, plain())
					}
					raw.Close()
					e.Close()
				}
				report(b, median(eng), median(peer))
				b.ReportMetric(median(inited), "init_MiB")
			})
		}
	}
}

// BenchmarkEngineFlushEach: writes each followed by Flush, one at a time
// (a database's commits: every Flush an fdatasync of the journal), 16 MiB
// of them, on a new gateway's 1 GiB upload buffer: "initialised" once its
// initialisation has ended (ringinit.go), "at_once" as soon as the buffer
// is added and a volume created (the initialiser zeros from the head on
// until the first write, then yields to the writes: "init_MiB" is what it
// had done by then), against pwrite +
// fdatasync of a plain file in the same directory whose blocks were
// written once before (as a ring's are after a lap), in MB/s. The two
// take turns op by op (an fsync's latency moves with the machine's other
// disk traffic, which then hits both alike); medians of 5 rounds, each on
// a new engine and file.
func BenchmarkEngineFlushEach(b *testing.B) {
	const total = 16 << 20
	ctx := context.Background()
	for _, size := range []int{4 << 10, 64 << 10} {
		data := randomBytes(b, size)
		for _, state := range []string{"at_once", "initialised"} {
			b.Run(fmt.Sprintf("write_%dKiB_%s_MBps", size>>10, state), func(b *testing.B) {
				var eng, peer, inited []float64
				for range 5 * b.N {
					dir := b.TempDir()
					raw, err := os.OpenFile(filepath.Join(dir, "raw.img"), os.O_RDWR|os.O_CREATE, 0o600)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := raw.WriteAt(make([]byte, total), 0); err != nil {
						b.Fatal(err)
					}
					if err := fdatasyncFile(raw); err != nil {
						b.Fatal(err)
					}
					e := benchEngine(b, blobtest.NewFS(b), 1<<30, 1<<30, 5*time.Second)
					if state == "initialised" {
						awaitRingInit(b, e)
					}
					if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-SYNC", SizeBytes: gib}); err != nil {
						b.Fatal(err)
					}
					v, _ := e.Volume("vol-SYNC")
					w, _ := e.jr.initState()
					inited = append(inited, float64(w)/(1<<20))
					var te, tp time.Duration
					for off := int64(0); off < total; off += int64(size) {
						start := time.Now()
						if err := v.WriteAt(ctx, data, off); err != nil {
							b.Fatal(err)
						}
						if err := v.Flush(ctx); err != nil {
							b.Fatal(err)
						}
						mid := time.Now()
						if _, err := raw.WriteAt(data, off); err != nil {
							b.Fatal(err)
						}
						if err := fdatasyncFile(raw); err != nil {
							b.Fatal(err)
						}
						te, tp = te+mid.Sub(start), tp+time.Since(mid)
					}
					eng = append(eng, total/te.Seconds()/1e6)
					peer = append(peer, total/tp.Seconds()/1e6)
					raw.Close()
					e.Close()
				}
				report(b, median(eng), median(peer))
				b.ReportMetric(median(inited), "init_MiB")
			})
		}
	}
}

// BenchmarkEngineParallelWrite: the write rows with commands in flight
// together, as an iSCSI initiator sends them: qd writers each write their
// own 256/qd MiB sequentially (4 KiB at 32 in flight, 1 MiB at 8), then
// one Flush, against the same writers' pwrites to a plain file and one
// fsync, in MB/s. Here the journal gathers records into shared batches
// and no command waits on the volume lock for another's I/O.
func BenchmarkEngineParallelWrite(b *testing.B) {
	const total = 256 << 20
	ctx := context.Background()
	for _, c := range []struct{ size, qd int }{{4 << 10, 32}, {1 << 20, 8}} {
		data := randomBytes(b, c.size)
		// MB/s of writing total bytes from qd goroutines with w, then sync.
		run := func(w func([]byte, int64) error, flush func() error) float64 {
			start := time.Now()
			var wg sync.WaitGroup
			for q := range c.qd {
				wg.Add(1)
				go func() {
					defer wg.Done()
					base := int64(q) * (total / int64(c.qd))
					for off := int64(0); off < total/int64(c.qd); off += int64(c.size) {
						if err := w(data, base+off); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if err := flush(); err != nil {
				b.Fatal(err)
			}
			return total / time.Since(start).Seconds() / 1e6
		}
		b.Run(fmt.Sprintf("write_%dKiB_QD%d_MBps", c.size>>10, c.qd), func(b *testing.B) {
			var eng, peer []float64
			for i := range 4 * b.N {
				dir := b.TempDir()
				e := benchEngine(b, blobtest.NewFS(b), 1<<30, 1<<30, 5*time.Second)
				awaitRingInit(b, e)
				if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-PAR", SizeBytes: gib}); err != nil {
					b.Fatal(err)
				}
				v, _ := e.Volume("vol-PAR")
				raw, err := os.OpenFile(filepath.Join(dir, "raw.img"), os.O_RDWR|os.O_CREATE, 0o600)
				if err != nil {
					b.Fatal(err)
				}
				engine := func() float64 {
					return run(func(p []byte, off int64) error { return v.WriteAt(ctx, p, off) }, func() error { return v.Flush(ctx) })
				}
				plain := func() float64 {
					return run(func(p []byte, off int64) error { _, err := raw.WriteAt(p, off); return err }, raw.Sync)
				}
				if i%2 == 0 { // alternating which goes first
					peer = append(peer, plain())
					eng = append(eng, engine())
				} else {
					eng = append(eng, engine())
					peer = append(peer, plain())
				}
				raw.Close()
				e.Close()
			}
			report(b, median(eng), median(peer))
		})
	}
}

// BenchmarkEngineWrappedWrite: the write rows of BenchmarkEngineLocalIO
// on an upload buffer that has wrapped: 1.25 GiB went through the 1 GiB
// ring first (uploaded and released as it went), so every write lands on
// ring blocks written before, in whatever page-cache state the kernel left
// them, as on a gateway that has run for a while; its cache slots are
// recycled ones. LocalIO's rows start on a never-written ring: the two
// together show whether the rate depends on the ring's memory state. The
// peer rewrites one plain file in place every round (its pages may still
// be cached: the strongest peer), then fsyncs. Each engine round is
// uploaded (untimed) before the next.
func BenchmarkEngineWrappedWrite(b *testing.B) {
	const total = 256 << 20
	ctx := context.Background()
	dir := b.TempDir()
	e := benchEngine(b, blobtest.NewFS(b), 1<<30, 1<<30, -1)
	if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-WRAP", SizeBytes: gib}); err != nil {
		b.Fatal(err)
	}
	v, _ := e.Volume("vol-WRAP")
	raw, err := os.OpenFile(filepath.Join(dir, "raw.img"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	// MB/s of writing total bytes with w, then syncing.
	run := func(w func([]byte, int64) error, sync func() error, data []byte) float64 {
		start := time.Now()
		for off := int64(0); off < total; off += int64(len(data)) {
			if err := w(data, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := sync(); err != nil {
			b.Fatal(err)
		}
		return total / time.Since(start).Seconds() / 1e6
	}
	engine := func(data []byte) float64 {
		mbps := run(func(p []byte, off int64) error { return v.WriteAt(ctx, p, off) }, func() error { return v.Flush(ctx) }, data)
		if err := e.Cut(ctx, "vol-WRAP"); err != nil { // releases the ring
			b.Fatal(err)
		}
		return mbps
	}
	peer := func(data []byte) float64 {
		return run(func(p []byte, off int64) error { _, err := raw.WriteAt(p, off); return err }, raw.Sync, data)
	}
	lap := randomBytes(b, 1<<20)
	for range 5 {
		engine(lap)
	}
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		data := randomBytes(b, size)
		b.Run(fmt.Sprintf("write_%dKiB_MBps", size>>10), func(b *testing.B) {
			var eng, pr []float64
			for i := range 4 * b.N { // alternating which goes first
				if i%2 == 0 {
					pr = append(pr, peer(data))
					eng = append(eng, engine(data))
				} else {
					eng = append(eng, engine(data))
					pr = append(pr, peer(data))
				}
			}
			report(b, median(eng), median(pr))
		})
	}
}

// BenchmarkEngineSnapshotPin: CreateSnapshot from the recovery point of a
// 16 TiB volume against the same on a 1 GiB volume (same store, same data:
// 8 blocks; the big volume's spread over 8 pages), in ms per snapshot
// (median of 50 each).
// "engine" is the 16 TiB volume, "peer" the 1 GiB one.
func BenchmarkEngineSnapshotPin(b *testing.B) {
	const snaps = 50
	ctx := context.Background()
	srv := blobtest.StartVersityGW(b)
	e := benchEngine(b, srv.Store(b), 64<<20, 64<<20, -1)
	sizes := map[string]int64{"vol-SMALL": gib, "vol-BIG": 16 << 40}
	for id, size := range sizes {
		if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: size}); err != nil {
			b.Fatal(err)
		}
		v, _ := e.Volume(id)
		for k := range int64(8) {
			if err := v.WriteAt(ctx, randomBytes(b, BlockSize), k*(size/8)); err != nil {
				b.Fatal(err)
			}
		}
		if err := e.Cut(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	n := 0
	pin := func(id string) float64 {
		n++
		start := time.Now()
		if _, err := e.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: fmt.Sprintf("snap-%017x", n), VolumeID: id, FromRecoveryPoint: true}); err != nil {
			b.Fatal(err)
		}
		return float64(time.Since(start).Microseconds()) / 1000
	}
	// Interleaved, alternating which goes first, medians: the machine's
	// noise hits both alike.
	var big, small []float64
	for i := range snaps * b.N {
		if i%2 == 0 {
			small = append(small, pin("vol-SMALL"))
			big = append(big, pin("vol-BIG"))
		} else {
			big = append(big, pin("vol-BIG"))
			small = append(small, pin("vol-SMALL"))
		}
	}
	report(b, median(big), median(small))
}

// BenchmarkEngineIncremental: bytes a second snapshot adds to the store
// after 1% of a volume's 400 written blocks change, as a percentage of the
// volume's data. "peer" is the ideal: the changed blocks' bytes.
func BenchmarkEngineIncremental(b *testing.B) {
	const blocks, changed = 400, 4
	ctx := context.Background()
	srv := blobtest.StartVersityGW(b)
	var eng, peer float64
	for i := range b.N {
		store := srv.Store(b)
		e := benchEngine(b, store, 512<<20, 512<<20, -1)
		id := fmt.Sprintf("vol-INC%d", i)
		if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
			b.Fatal(err)
		}
		v, _ := e.Volume(id)
		if err := v.WriteAt(ctx, randomBytes(b, blocks*BlockSize), 0); err != nil {
			b.Fatal(err)
		}
		if _, err := e.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: fmt.Sprintf("snap-inc%d-1", i), VolumeID: id}); err != nil {
			b.Fatal(err)
		}
		if err := e.Cut(ctx, id); err != nil {
			b.Fatal(err)
		}
		before := storedBytes(b, store)
		for k := range changed {
			if err := v.WriteAt(ctx, randomBytes(b, 4096), int64(k*(blocks/changed))*BlockSize); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := e.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: fmt.Sprintf("snap-inc%d-2", i), VolumeID: id}); err != nil {
			b.Fatal(err)
		}
		if err := e.Cut(ctx, id); err != nil {
			b.Fatal(err)
		}
		s, err := e.Snapshot(ctx, fmt.Sprintf("snap-inc%d-2", i))
		if err != nil || s.Status != control.SnapshotCompleted {
			b.Fatalf("second snapshot: %+v %v", s, err)
		}
		added := storedBytes(b, store) - before
		eng += 100 * float64(added) / float64(blocks*BlockSize)
		peer += 100 * float64(changed*BlockSize) / float64(blocks*BlockSize)
	}
	report(b, eng/float64(b.N), peer/float64(b.N))
}

func storedBytes(b *testing.B, s blob.Store) int64 {
	var n int64
	if err := s.List(context.Background(), "", func(o blob.ObjectInfo) error { n += o.Size; return nil }); err != nil {
		b.Fatal(err)
	}
	return n
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
