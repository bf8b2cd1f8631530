package volume

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// TestCacheDiskFailureResetCache: a cache disk whose reads fail (its file
// truncated under the engine: every read past its end is an I/O error)
// takes every volume down loudly — errors, never wrong data, an ERROR
// naming the disk, PASS THROUGH, flushes of what was acknowledged still
// answered — and ResetCache then AddDisk of the same
// disk brings back every acknowledged write: those cut and those only in
// the journal, across a restart in between or not.
func TestCacheDiskFailureResetCache(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "live", true: "restart"}[restart], func(t *testing.T) {
			ctx := context.Background()
			log := &logBuf{}
			te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
			te.cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
			te.reopen()
			if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-R", SizeBytes: gib}); err != nil {
				t.Fatal(err)
			}
			v := te.vol("vol-R")
			a, b := pattern(3, 4*BlockSize), pattern(5, 2*BlockSize+4096)
			if err := v.WriteAt(ctx, a, 0); err != nil {
				t.Fatal(err)
			}
			if err := te.Cut(ctx, "vol-R"); err != nil { // a: clean slots
				t.Fatal(err)
			}
			if err := v.WriteAt(ctx, b, 3*BlockSize); err != nil { // b: dirty, journal only
				t.Fatal(err)
			}
			want := append(append([]byte{}, a[:3*BlockSize]...), b...)

			cachePath := filepath.Join(te.dir, "cache0.img")
			if err := os.Truncate(cachePath, 0); err != nil {
				t.Fatal(err)
			}
			p := make([]byte, len(want))
			if err := v.ReadAt(ctx, p, 0); !errors.Is(err, ErrCacheDisk) {
				t.Fatalf("read of a failed cache disk = %v, want ErrCacheDisk", err)
			}
			if err := v.WriteAt(ctx, pattern(7, 4096), 0); !errors.Is(err, ErrCacheDisk) || !errors.Is(err, control.ErrVolumeNotReady) {
				t.Fatalf("write with a failed cache disk = %v", err)
			}
			// b was acknowledged before the disk failed: a flush now
			// makes it durable (it is in the journal), and says so.
			if err := v.Flush(ctx); err != nil {
				t.Fatalf("flush of acknowledged writes with a failed cache disk = %v", err)
			}
			if !strings.Contains(log.String(), "level=ERROR") || !strings.Contains(log.String(), cachePath) {
				t.Fatalf("no ERROR naming %s in the log:\n%s", cachePath, log)
			}
			if f := te.FailedCacheDisks(); len(f) != 1 || f[0] != cachePath {
				t.Fatalf("FailedCacheDisks = %v", f)
			}
			cond, err := te.VolumeStatus(ctx, "vol-R")
			if err != nil || cond.Status != control.VolumePassThrough || !strings.Contains(cond.Reason, cachePath) {
				t.Fatalf("status with a failed cache disk = %+v, %v", cond, err)
			}

			disks, err := te.ResetCache(ctx)
			if err != nil || len(disks) != 1 || disks[0] != cachePath {
				t.Fatalf("ResetCache = %v, %v", disks, err)
			}
			if err := v.ReadAt(ctx, p, 0); !errors.Is(err, ErrCacheDisk) {
				t.Fatalf("read with no cache disk = %v", err)
			}
			if f := te.FailedCacheDisks(); len(f) != 0 {
				t.Fatalf("FailedCacheDisks after the reset = %v", f)
			}
			if restart {
				te.reopen()
				v = te.vol("vol-R")
				if err := v.ReadAt(ctx, p, 0); !errors.Is(err, ErrCacheDisk) {
					t.Fatalf("read with no cache disk after a restart = %v", err)
				}
			}
			if err := te.AddDisk(ctx, control.Disk{ID: "cache0", Path: cachePath, SizeBytes: 64 << 20, Use: control.DiskUseCache}); err != nil {
				t.Fatalf("AddDisk after the reset: %v", err)
			}
			if got := mustRead(t, v, 0, len(want)); !bytes.Equal(got, want) {
				t.Fatal("after ResetCache and AddDisk the volume differs from what was acknowledged")
			}
			cond, _ = te.VolumeStatus(ctx, "vol-R")
			if cond.Status != control.VolumeAvailable {
				t.Fatalf("status after AddDisk = %+v", cond)
			}
			// Writable again, and everything survives a cut and a restart.
			if err := v.WriteAt(ctx, pattern(9, 4096), 0); err != nil {
				t.Fatal(err)
			}
			copy(want, pattern(9, 4096))
			if err := te.Cut(ctx, "vol-R"); err != nil {
				t.Fatal(err)
			}
			te.reopen()
			if got := mustRead(t, te.vol("vol-R"), 0, len(want)); !bytes.Equal(got, want) {
				t.Fatal("after a restart the volume differs")
			}
			if err := te.Check(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCacheWriteFailure: a cache file that refuses writes (read-only
// under the engine) fails the write that met it, and the volume then
// refuses I/O rather than serve a block the cache could not hold.
func TestCacheWriteFailure(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-W", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-W")
	ro, err := os.Open(filepath.Join(te.dir, "cache0.img"))
	if err != nil {
		t.Fatal(err)
	}
	te.cache.mu.Lock()
	good := te.cache.files[0].f
	te.cache.files[0].f = ro
	te.cache.mu.Unlock()
	defer good.Close()
	if err := v.WriteAt(ctx, pattern(1, BlockSize), 0); !errors.Is(err, ErrCacheDisk) {
		t.Fatalf("write to a read-only cache file = %v", err)
	}
	if err := v.ReadAt(ctx, make([]byte, 4096), 0); !errors.Is(err, ErrCacheDisk) {
		t.Fatalf("read after the cache failed = %v", err)
	}
	if _, err := te.ResetCache(ctx); err != nil {
		t.Fatal(err)
	}
	if err := te.AddDisk(ctx, control.Disk{ID: "cache1", Path: filepath.Join(te.dir, "cache1.img"), SizeBytes: 32 << 20, Use: control.DiskUseCache}); err != nil {
		t.Fatal(err)
	}
	// The write failed after its record was journaled: it was not
	// acknowledged, so either content is allowed; the volume must serve
	// one of them consistently and take writes again.
	if err := v.WriteAt(ctx, pattern(2, BlockSize), 0); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, v, 0, BlockSize); !bytes.Equal(got, pattern(2, BlockSize)) {
		t.Fatal("read after recovery differs")
	}
}

// putGatedStore holds every block PUT until open is closed (or the PUT's
// context ends): cuts cannot free cache slots meanwhile.
type putGatedStore struct {
	blob.Store
	open chan struct{}
}

func (g putGatedStore) Put(ctx context.Context, key string, data []byte, o blob.PutOptions) (blob.ObjectInfo, error) {
	if strings.HasPrefix(key, "blocks/") {
		select {
		case <-g.open:
		case <-ctx.Done():
			return blob.ObjectInfo{}, ctx.Err()
		}
	}
	return g.Store.Put(ctx, key, data, o)
}

// TestResetCacheEndsWaits: with the store taking no blocks, a writer
// waits for cache space (the cache full of dirty blocks) or for journal
// space (the journal full), and a cut waits for its PUTs; ResetCache ends
// them all (the writer gets ErrCacheDisk, the cut publishes nothing)
// rather than wait for them — a writer left waiting for journal space
// would hold off the rebuild for ever — and AddDisk then brings back
// every acknowledged write.
func TestResetCacheEndsWaits(t *testing.T) {
	for name, o := range map[string]engineOpts{
		"cache":   {cacheBytes: 4 * BlockSize},
		"journal": {cacheBytes: 64 << 20, bufferBytes: 3 << 20},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			gate := make(chan struct{})
			te := newTestEngine(t, putGatedStore{blobtest.NewFS(t), gate}, o)
			if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-F", SizeBytes: gib}); err != nil {
				t.Fatal(err)
			}
			v := te.vol("vol-F")
			want := pattern(6, 4*BlockSize)
			if name == "journal" {
				want = want[:2*BlockSize]
			}
			if err := v.WriteAt(ctx, want, 0); err != nil {
				t.Fatal(err)
			}
			if err := v.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			waiting := make(chan error, 1)
			go func() { waiting <- v.WriteAt(ctx, pattern(7, 8*BlockSize), 8*BlockSize) }()
			select {
			case err := <-waiting:
				t.Fatalf("a write with no space and no cut possible returned %v", err)
			case <-time.After(100 * time.Millisecond): // it waits: a cut is stuck on its PUTs
			}
			if _, err := te.ResetCache(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-waiting; !errors.Is(err, ErrCacheDisk) {
				t.Fatalf("the waiting write ended with %v, want ErrCacheDisk", err)
			}
			close(gate)
			if err := te.AddDisk(ctx, control.Disk{ID: "cache1", Path: filepath.Join(te.dir, "cache1.img"), SizeBytes: 32 * BlockSize, Use: control.DiskUseCache}); err != nil {
				t.Fatal(err)
			}
			if got := mustRead(t, v, 0, len(want)); !bytes.Equal(got, want) {
				t.Fatal("after ResetCache and AddDisk the volume differs")
			}
			if err := te.Cut(ctx, "vol-F"); err != nil {
				t.Fatal(err)
			}
			te.reopen()
			if got := mustRead(t, te.vol("vol-F"), 0, len(want)); !bytes.Equal(got, want) {
				t.Fatal("after a restart the volume differs")
			}
		})
	}
}

// lostAnswerStore performs a head PUT and then reports it failed, once,
// when armed: the answer lost on the way back.
type lostAnswerStore struct {
	blob.Store
	armed *atomic.Bool
}

func (s lostAnswerStore) Put(ctx context.Context, key string, data []byte, o blob.PutOptions) (blob.ObjectInfo, error) {
	info, err := s.Store.Put(ctx, key, data, o)
	if err == nil && strings.HasSuffix(key, "/head") && s.armed.CompareAndSwap(true, false) {
		return blob.ObjectInfo{}, errors.New("connection reset (the PUT landed)")
	}
	return info, err
}

// TestResetCacheAfterLostHeadAnswer: a cut whose head PUT landed but whose
// answer was lost is abandoned by ResetCache; the head is read again, so
// the rebuilt volume builds on the root that head names, and its next cut
// publishes over it (it is not mistaken for another writer's).
func TestResetCacheAfterLostHeadAnswer(t *testing.T) {
	ctx := context.Background()
	armed := &atomic.Bool{}
	te := newTestEngine(t, lostAnswerStore{blobtest.NewFS(t), armed}, engineOpts{})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-L", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-L")
	want := pattern(8, 2*BlockSize)
	if err := v.WriteAt(ctx, want, 0); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	if err := te.Cut(ctx, "vol-L"); err == nil {
		t.Fatal("the cut whose answer was lost succeeded")
	}
	if _, err := te.ResetCache(ctx); err != nil {
		t.Fatal(err)
	}
	if err := te.AddDisk(ctx, control.Disk{ID: "cache0", Path: filepath.Join(te.dir, "cache0.img"), SizeBytes: 64 << 20, Use: control.DiskUseCache}); err != nil {
		t.Fatal(err)
	}
	copy(want, pattern(9, 4096))
	if err := v.WriteAt(ctx, want[:4096], 0); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-L"); err != nil {
		t.Fatalf("the cut after the reset: %v", err)
	}
	if f := v.Fenced(); f != nil {
		t.Fatalf("fenced by its own head: %v", f)
	}
	te.reopen()
	if got := mustRead(t, te.vol("vol-L"), 0, len(want)); !bytes.Equal(got, want) {
		t.Fatal("after a restart the volume differs")
	}
}
