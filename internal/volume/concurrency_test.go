package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// TestConcurrentBackpressureAndGC runs writers on disjoint regions of two
// volumes with a journal and a cache far smaller than what they write, so
// writers must wait for uploads (backpressure) — never fail — while the
// uploader cuts every few milliseconds, snapshots are taken (pending, then
// completed by background cuts) and GC rounds with a short grace run all
// along. Afterwards every byte must read back, before and after a restart
// (which drops the cache, so reads come from the store), and Check must
// find nothing named that is missing.
func TestConcurrentBackpressureAndGC(t *testing.T) {
	// Writers waiting on backpressure give up (and fail) rather than hang.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store := blobtest.NewFS(t)
	dir := t.TempDir()
	cfg := Config{Dir: filepath.Join(dir, "engine"), Store: store, CutInterval: 5 * time.Millisecond,
		GCGrace: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { e.Close() }()
	// Cache slots start as garbage, as after a restart (sparse.go).
	garbageFile(t, filepath.Join(dir, "cache0.img"), 6*BlockSize)
	garbageFile(t, filepath.Join(dir, "cache1.img"), 6*BlockSize)
	for _, d := range []control.Disk{
		{ID: "c", Path: filepath.Join(dir, "cache0.img"), SizeBytes: 6 * BlockSize, Use: control.DiskUseCache},
		{ID: "c2", Path: filepath.Join(dir, "cache1.img"), SizeBytes: 6 * BlockSize, Use: control.DiskUseCache},
		{ID: "u", Path: filepath.Join(dir, "buffer0.img"), SizeBytes: 3 << 20, Use: control.DiskUseUploadBuffer},
	} {
		if err := e.AddDisk(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	vols := []string{"vol-0000000000000CC01", "vol-0000000000000CC02"}
	for _, id := range vols {
		if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
			t.Fatal(err)
		}
	}
	const writers, region, writesEach = 4, 3 * BlockSize, 150
	models := make([][]byte, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers+2)
	for w := range writers {
		models[w] = make([]byte, region)
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _ := e.Volume(vols[w%2])
			base := int64(w/2) * region
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range writesEach {
				off := rng.IntN(region/512) * 512
				n := min((1+rng.IntN(512))*512, region-off)
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				if err := v.WriteAt(ctx, p, base+int64(off)); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				copy(models[w][off:], p)
				if rng.IntN(10) == 0 {
					if err := v.Flush(ctx); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { // GC rounds all along
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.GC(ctx); err != nil {
				errs <- fmt.Errorf("GC: %w", err)
				return
			}
		}
	}()
	snaps := 0
	go func() { // snapshots forcing cuts, completed in the background
		defer bg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			s, err := e.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: fmt.Sprintf("snap-cc%d", i), VolumeID: vols[i%2]})
			if err != nil {
				errs <- fmt.Errorf("CreateSnapshot: %w", err)
				return
			}
			if s.Status != control.SnapshotPending && s.Status != control.SnapshotCompleted {
				errs <- fmt.Errorf("snapshot status %q", s.Status)
				return
			}
			snaps++
		}
	}()
	wg.Wait()
	close(stop)
	bg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	check := func(when string) {
		for w := range writers {
			v, err := e.Volume(vols[w%2])
			if err != nil {
				t.Fatal(err)
			}
			got := mustRead(t, v, int64(w/2)*region, region)
			if !bytes.Equal(got, models[w]) {
				t.Fatalf("%s: writer %d's region differs at %d", when, w, firstDiff(got, models[w]))
			}
		}
		if err := e.Check(ctx); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	check("before restart")
	parallelCheck := func(when string) {
		// Every writer's region read by 3 readers at once, in 64 KiB pieces
		// in different orders: concurrent misses of the same blocks.
		var rg sync.WaitGroup
		fail := make(chan error, 3*writers)
		for w := range writers {
			for r := range 3 {
				rg.Add(1)
				go func() {
					defer rg.Done()
					v, err := e.Volume(vols[w%2])
					if err != nil {
						fail <- err
						return
					}
					const piece = 64 << 10
					buf := make([]byte, piece)
					for k := range region / piece {
						i := (k*(2*r+1) + r) % (region / piece)
						if err := v.ReadAt(ctx, buf, int64(w/2)*region+int64(i*piece)); err != nil {
							fail <- err
							return
						}
						if !bytes.Equal(buf, models[w][i*piece:(i+1)*piece]) {
							fail <- fmt.Errorf("%s: reader %d of writer %d's region: piece %d differs", when, r, w, i)
							return
						}
					}
				}()
			}
		}
		rg.Wait()
		close(fail)
		for err := range fail {
			t.Fatal(err)
		}
	}
	// Every pending snapshot completes in the background: the uploader cuts
	// every 5 ms, so a generous deadline (a loaded 2-core machine) only
	// turns a snapshot that never completes into a failure with a message.
	deadline := time.Now().Add(2 * time.Minute)
	for i := range snaps {
		id := fmt.Sprintf("snap-cc%d", i)
		for {
			s, err := e.Snapshot(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if s.Status == control.SnapshotCompleted {
				break
			}
			if s.Progress < 0 || s.Progress > 99 {
				t.Fatalf("pending snapshot with progress %d", s.Progress)
			}
			if time.Now().After(deadline) {
				t.Fatalf("snapshot %s still %s (%d%%) after 2 minutes", id, s.Status, s.Progress)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Upload everything, then GC with everything aged past the grace.
	for _, id := range vols {
		if err := e.Cut(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Now = func() time.Time { return time.Now().Add(time.Hour) }
	cfg.CutInterval = -1
	if e, err = Open(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	st, err := e.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d snapshots; final GC: %+v", snaps, st)
	parallelCheck("after restart and GC, cold cache")
	check("after restart and GC")

	// Cold cache again: partial writes (read-modify-write of blocks that
	// are only in the store) race with readers of the same blocks.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if e, err = Open(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	var rw sync.WaitGroup
	rwErr := make(chan error, 2*writers)
	for w := range writers {
		rw.Add(2)
		go func() {
			defer rw.Done()
			v, _ := e.Volume(vols[w%2])
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for range 20 {
				off := rng.IntN(region/512) * 512
				n := min((1+rng.IntN(16))*512, region-off)
				p := bytes.Repeat([]byte{byte(rng.Uint32())}, n)
				if err := v.WriteAt(ctx, p, int64(w/2)*region+int64(off)); err != nil {
					rwErr <- err
					return
				}
				copy(models[w][off:], p)
			}
		}()
		go func() {
			defer rw.Done()
			v, _ := e.Volume(vols[w%2])
			buf := make([]byte, 8192)
			for k := range 40 {
				if err := v.ReadAt(ctx, buf, int64(w/2)*region+int64(k*8192%region)); err != nil {
					rwErr <- err
					return
				}
			}
		}()
	}
	rw.Wait()
	close(rwErr)
	for err := range rwErr {
		t.Fatal(err)
	}
	check("after read-modify-writes on a cold cache")
}

// TestCacheCorruptionRefetch: a clean cached block whose bytes on the cache
// disk go bad is detected by its sector CRCs and fetched again.
func TestCacheCorruptionRefetch(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-CRC", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-CRC")
	want := pattern(3, BlockSize)
	if err := v.WriteAt(ctx, want, 0); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-CRC"); err != nil { // the slot is now clean
		t.Fatal(err)
	}
	te.cache.mu.Lock()
	_, cached := te.cache.clean[v.key(0)]
	te.cache.mu.Unlock()
	if !cached {
		t.Fatal("the uploaded block is not a clean cache slot")
	}
	// Scribble over the whole cache disk.
	f, err := os.OpenFile(filepath.Join(te.dir, "cache0.img"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0xA5}, 1<<20)
	for off := int64(0); off < 64<<20; off += int64(len(junk)) {
		if _, err := f.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if got := mustRead(t, v, 0, BlockSize); !bytes.Equal(got, want) {
		t.Fatalf("corrupt cache served: differs at %d", firstDiff(got, want))
	}
	if got := mustRead(t, v, 4096, 512); !bytes.Equal(got, want[4096:4608]) {
		t.Fatal("second read differs")
	}
}

// TestFencing: when another gateway replaces a volume's head, the next cut
// fails with ErrFenced instead of overwriting it, and I/O stops.
func TestFencing(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-FENCE", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-FENCE")
	if err := v.WriteAt(ctx, pattern(1, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := te.store.Put(ctx, headKey("vol-FENCE"), []byte(`{"seq":0,"owner":"gw-other"}`), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-FENCE"); !errors.Is(err, ErrFenced) {
		t.Fatalf("cut after takeover: %v, want ErrFenced", err)
	}
	if err := v.WriteAt(ctx, pattern(2, 4096), 0); !errors.Is(err, ErrFenced) {
		t.Fatalf("write after takeover: %v, want ErrFenced", err)
	}
	b, err := te.store.Get(ctx, headKey("vol-FENCE"))
	if err != nil || !bytes.Contains(b, []byte("gw-other")) {
		t.Fatalf("the other gateway's head was overwritten: %s %v", b, err)
	}
}

// TestAddUploadBufferDrains: adding an upload-buffer disk while the journal
// holds unpublished writes drains it first; nothing is lost, and the new
// layout survives a restart.
func TestAddUploadBufferDrains(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-DRAIN", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-DRAIN")
	want := pattern(5, 3*BlockSize)
	if err := v.WriteAt(ctx, want, BlockSize); err != nil {
		t.Fatal(err)
	}
	if err := te.AddDisk(ctx, control.Disk{ID: "buf1", Path: filepath.Join(te.dir, "buffer1.img"), SizeBytes: 16 << 20, Use: control.DiskUseUploadBuffer}); err != nil {
		t.Fatal(err)
	}
	more := pattern(6, 4096)
	if err := v.WriteAt(ctx, more, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	te.reopen()
	v = te.vol("vol-DRAIN")
	if got := mustRead(t, v, BlockSize, len(want)); !bytes.Equal(got, want) {
		t.Fatal("drained data lost")
	}
	if got := mustRead(t, v, 0, 4096); !bytes.Equal(got, more) {
		t.Fatal("write after the new layout lost")
	}
	if _, capacity := te.jr.usage(); capacity != 48<<20 {
		t.Fatalf("journal capacity %d after adding a disk", capacity)
	}
}

// TestRejects: bad input returns errors, never panics.
func TestRejects(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	if err := te.AddDisk(ctx, control.Disk{ID: "cache0", Path: filepath.Join(te.dir, "cache0.img"), SizeBytes: 128 << 20, Use: control.DiskUseCache}); err == nil {
		t.Error("a disk was added twice with different sizes")
	}
	if err := te.AddDisk(ctx, control.Disk{ID: "cache0", Path: filepath.Join(te.dir, "cache0.img"), SizeBytes: 64 << 20, Use: control.DiskUseCache}); err != nil {
		t.Errorf("re-adding a disk as it was: %v", err)
	}
	for _, spec := range []control.VolumeSpec{
		{VolumeID: "vol-SMALL", SizeBytes: gib - 512},
		{VolumeID: "vol-HUGE", SizeBytes: MaxVolumeSize + BlockSize},
		{VolumeID: "vol-ODD", SizeBytes: gib + 1},
		{VolumeID: "../x", SizeBytes: gib},
		{VolumeID: "", SizeBytes: gib},
		{VolumeID: "vol-NOSNAP", SizeBytes: gib, Source: control.VolumeSource{SnapshotID: "snap-none"}},
		{VolumeID: "vol-NOSRC", SizeBytes: gib, Source: control.VolumeSource{SourceVolumeID: "vol-none"}},
	} {
		if err := te.CreateVolume(ctx, spec); err == nil {
			t.Errorf("CreateVolume(%+v) succeeded", spec)
		}
	}
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-OK", SizeBytes: 2 * gib}); err != nil {
		t.Fatal(err)
	}
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-OK", SizeBytes: 2 * gib}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-a", VolumeID: "vol-OK", FromRecoveryPoint: true}); err != nil {
		t.Fatal(err)
	}
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-SHRINK", SizeBytes: gib, Source: control.VolumeSource{SnapshotID: "snap-a"}}); !errors.Is(err, ErrInvalidSize) {
		t.Fatalf("restore smaller than the snapshot: %v", err)
	}
	v := te.vol("vol-OK")
	buf := make([]byte, 4096)
	for _, off := range []int64{-512, 1, 2*gib - 512, 2 * gib} {
		if err := v.ReadAt(ctx, buf, off); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("ReadAt(%d): %v", off, err)
		}
		if err := v.WriteAt(ctx, buf, off); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("WriteAt(%d): %v", off, err)
		}
	}
	if err := v.Unmap(ctx, 0, -512); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Unmap negative: %v", err)
	}
	if err := v.WriteAt(ctx, buf[:100], 0); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("unaligned length: %v", err)
	}
	if _, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-a", VolumeID: "vol-OK", FromRecoveryPoint: true}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate snapshot: %v", err)
	}
	if err := te.DeleteSnapshot(ctx, "snap-a"); err != nil {
		t.Fatal(err)
	}
	if err := te.DeleteSnapshot(ctx, "snap-a"); !errors.Is(err, control.ErrSnapshotNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if err := te.SetSnapshotTags(ctx, "snap-a", nil); !errors.Is(err, control.ErrSnapshotNotFound) {
		t.Errorf("tags on deleted: %v", err)
	}
	if err := te.DeleteVolume(ctx, "vol-OK"); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteAt(ctx, buf, 0); !errors.Is(err, control.ErrVolumeNotFound) {
		t.Errorf("write to deleted volume: %v", err)
	}
	if err := te.DeleteVolume(ctx, "vol-OK"); !errors.Is(err, control.ErrVolumeNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

// TestDedupRefreshesOldObjects checks GC rule G3c: a cut reuses an existing
// block only while it is young; an older copy (which a concurrent sweep may
// be about to delete) is written again, refreshing its ModTime.
func TestDedupRefreshesOldObjects(t *testing.T) {
	ctx := context.Background()
	var skew atomic.Int64
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{grace: time.Minute})
	te.Engine.Close()
	te.cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	te.open()
	data := pattern(42, BlockSize)
	key := blockKey(hash(sha256.Sum256(data)))
	write := func(vol string) {
		t.Helper()
		if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
			t.Fatal(err)
		}
		if err := te.vol(vol).WriteAt(ctx, data, 0); err != nil {
			t.Fatal(err)
		}
		if err := te.Cut(ctx, vol); err != nil {
			t.Fatal(err)
		}
	}
	write("vol-DEDUP1")
	first, err := te.store.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	write("vol-DEDUP2") // young copy: reused, not rewritten
	second, err := te.store.Stat(ctx, key)
	if err != nil || second.ETag != first.ETag {
		t.Fatalf("a young block was written again: %+v -> %+v (%v)", first, second, err)
	}
	skew.Store(int64(10 * time.Minute)) // the copy is now older than the lease
	write("vol-DEDUP3")
	third, err := te.store.Stat(ctx, key)
	if err != nil || third.ETag == first.ETag {
		t.Fatalf("an old block was reused without refreshing it: %+v -> %+v (%v)", first, third, err)
	}
}
