package volume

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// inFlight counts the block and page PUTs in flight and remembers the most
// seen at once: of whole blocks, and of small objects (patches, pages),
// which have PUT slots of their own (uploadPool).
type inFlight struct {
	blob.Store
	now, most           atomic.Int64
	smallNow, smallMost atomic.Int64
}

func (s *inFlight) Put(ctx context.Context, key string, data []byte, o blob.PutOptions) (blob.ObjectInfo, error) {
	if strings.HasPrefix(key, "blocks/") || strings.HasPrefix(key, "pages/") {
		now, most := &s.now, &s.most
		if len(data) < BlockSize/2 { // a patch is at most a quarter block and its header
			now, most = &s.smallNow, &s.smallMost
		}
		n := now.Add(1)
		defer now.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		// Linger a little, so that PUTs overlap and an unbounded uploader
		// would show it.
		time.Sleep(time.Millisecond)
	}
	return s.Store.Put(ctx, key, data, o)
}

// TestParallelCuts: several volumes written at once, the uploader cutting
// them in parallel (cut interval 5 ms, a small cache and journal so cuts
// also come from pressure), explicit Cuts racing the uploader on the same
// volumes. The block and page PUTs in flight never exceed the engine-wide
// UploadConcurrency whatever the number of volumes cut at once; every byte
// reads back before and after a restart (then from the store), and Check
// finds nothing named that is missing. Run it with -race.
func TestParallelCuts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store := &inFlight{Store: blobtest.NewFS(t)}
	dir := t.TempDir()
	cfg := Config{Dir: filepath.Join(dir, "engine"), Store: store, CutInterval: 5 * time.Millisecond,
		UploadConcurrency: 3, ParallelCuts: 4, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { e.Close() }()
	for _, d := range []control.Disk{
		{ID: "c", Path: filepath.Join(dir, "cache0.img"), SizeBytes: 48 * BlockSize, Use: control.DiskUseCache},
		{ID: "u", Path: filepath.Join(dir, "buffer0.img"), SizeBytes: 16 << 20, Use: control.DiskUseUploadBuffer},
	} {
		if err := e.AddDisk(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	const vols, blocks, writes = 6, 4, 40
	want := make([][]byte, vols)
	ids := make([]string, vols)
	for i := range vols {
		ids[i] = fmt.Sprintf("vol-0000000000000PC%02d", i)
		if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: ids[i], SizeBytes: gib}); err != nil {
			t.Fatal(err)
		}
		want[i] = make([]byte, blocks*BlockSize)
	}
	var wg sync.WaitGroup
	for i := range vols {
		v, _ := e.Volume(ids[i])
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for n := range writes {
				// Whole blocks and pieces of them, some spanning two.
				off := rng.IntN(blocks*BlockSize/512-128) * 512
				size := min(blocks*BlockSize-off, (1+rng.IntN(3*BlockSize/1024))*512)
				p := bytes.Repeat([]byte{byte(n + 1), byte(i)}, size/2+1)[:size]
				if err := v.WriteAt(ctx, p, int64(off)); err != nil {
					t.Error(err)
					return
				}
				copy(want[i][off:], p)
				if n%10 == 9 {
					if err := e.Cut(ctx, ids[i]); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	check := func(when string) {
		t.Helper()
		for i, id := range ids {
			v, err := e.Volume(id)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, blocks*BlockSize)
			if err := v.ReadAt(ctx, got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want[i]) {
				t.Fatalf("%s: %s does not read back what was written", when, id)
			}
		}
		if err := e.Check(ctx); err != nil {
			t.Fatalf("%s: Check: %v", when, err)
		}
	}
	for _, id := range ids {
		if err := e.Cut(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	check("after the cuts")
	if most := store.most.Load(); most > int64(cfg.UploadConcurrency) {
		t.Errorf("%d whole-block PUTs in flight at once; UploadConcurrency is %d", most, cfg.UploadConcurrency)
	}
	if most := store.smallMost.Load(); most > int64(cfg.UploadConcurrency*smallPuts) {
		t.Errorf("%d patch or page PUTs in flight at once; UploadConcurrency is %d, %d small ones each", most, cfg.UploadConcurrency, smallPuts)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if e, err = Open(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	check("after a restart")
}
