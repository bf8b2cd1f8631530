package volume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// slowStore delays every block PUT, so that a cut of many blocks takes
// longer than the lease; it counts the cuts' checkpoints.
type slowStore struct {
	blob.Store
	delay       time.Duration
	checkpoints atomic.Int64
}

func (s *slowStore) Put(ctx context.Context, key string, data []byte, o blob.PutOptions) (blob.ObjectInfo, error) {
	switch {
	case strings.HasPrefix(key, "blocks/"):
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return blob.ObjectInfo{}, ctx.Err()
		}
	case isCheckpointKey(key):
		s.checkpoints.Add(1)
	}
	return s.Store.Put(ctx, key, data, o)
}

// TestGCUnderLoadShortGrace: with a grace of one second (a lease of half
// that) on the real clock, a store slow enough that many cuts outlast the
// lease, and GC rounds back to back, writers write two volumes while
// snapshots are taken and cloned, and volumes cloned. Afterwards, and
// after rounds past the grace have swept everything superseded, Check
// finds nothing missing, every volume as stored equals what was written,
// every snapshot reads back whole from the store, and every clone equals
// its snapshot.
func TestGCUnderLoadShortGrace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const grace = time.Second
	store := &slowStore{Store: blobtest.NewFS(t), delay: 20 * time.Millisecond}
	te := newTestEngine(t, store, engineOpts{grace: grace, cacheBytes: 256 << 20, bufferBytes: 128 << 20})
	te.cfg.CutInterval, te.cfg.UploadConcurrency = 5*time.Millisecond, 2
	if testing.Verbose() {
		te.cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	te.reopen()
	if te.Engine.cfg.GCClockSkew != grace/10 {
		t.Fatalf("clock check limit %v; want it on (G/10)", te.Engine.cfg.GCClockSkew)
	}
	const region = 24 * BlockSize // per writer
	vols := []string{"vol-0000000000000LD01", "vol-0000000000000LD02"}
	for _, id := range vols {
		if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
			t.Fatal(err)
		}
	}
	const writers = 4
	models := make([][]byte, writers)
	errs := make(chan error, 16)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var wg, bg sync.WaitGroup
	until := time.Now().Add(8 * grace) // writes go on for several grace periods
	for w := range writers {
		models[w] = make([]byte, region)
		wg.Go(func() {
			v, _ := te.Volume(vols[w%2])
			base := int64(w/2) * region
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			for i := 0; time.Now().Before(until); i++ {
				off := rng.IntN(region/4096) * 4096
				p := make([]byte, 4096)
				for j := range p {
					p[j] = byte(rng.Uint32())
				}
				if err := v.WriteAt(ctx, p, base+int64(off)); err != nil {
					report(fmt.Errorf("writer %d: %w", w, err))
					return
				}
				copy(models[w][off:], p)
				if i%50 == 49 {
					time.Sleep(30 * time.Millisecond) // let cuts of many blocks start
				}
			}
		})
	}
	var rounds, refusedCkpt atomic.Int64
	bg.Go(func() { // GC rounds back to back
		for !stopped() {
			_, err := te.GC(ctx)
			switch {
			case err == nil:
				rounds.Add(1)
			case strings.Contains(err.Error(), "went away during the round"):
				refusedCkpt.Add(1)
			default:
				report(fmt.Errorf("GC: %w", err))
				return
			}
		}
	})
	var snapMu sync.Mutex
	var snaps []string
	clones := map[string]string{} // clone volume -> its snapshot
	for vi, vol := range vols {
		bg.Go(func() { // snapshots of vol, clones of its completed ones and of it
			for i := 0; !stopped(); i++ {
				time.Sleep(20 * time.Millisecond)
				id := fmt.Sprintf("snap-ld%d-%d", vi, i)
				if _, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: id, VolumeID: vol, FromRecoveryPoint: i%2 == 1}); err != nil {
					report(fmt.Errorf("CreateSnapshot: %w", err))
					return
				}
				snapMu.Lock()
				snaps = append(snaps, id)
				snapMu.Unlock()
				if i%2 != 0 {
					continue
				}
				src := control.VolumeSource{SourceVolumeID: vol}
				if i%4 == 2 {
					src = control.VolumeSource{SnapshotID: fmt.Sprintf("snap-ld%d-%d", vi, i-1)} // a pin: completed
				}
				cid := fmt.Sprintf("vol-0000000000000L%d%02d", vi, i)
				err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: cid, SizeBytes: gib, Source: src})
				if errors.Is(err, ErrLeaseExpired) {
					continue // a clone that took longer than its lease is refused; not this test's subject
				}
				if err != nil {
					report(fmt.Errorf("clone %s of %+v: %w", cid, src, err))
					return
				}
				if src.SnapshotID != "" {
					snapMu.Lock()
					clones[cid] = src.SnapshotID
					snapMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Everything published; then rounds past the grace sweep all that is
	// superseded.
	for _, id := range vols {
		if err := te.Cut(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, id := range snaps {
		for {
			s, err := te.Snapshot(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if s.Status == control.SnapshotCompleted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("snapshot %s still %s", id, s.Status)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for range 2 {
		time.Sleep(grace + grace/2)
		if _, err := te.GC(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d GC rounds (%d failed on a superseded checkpoint), %d snapshots, %d snapshot clones, %d cut checkpoints written",
		rounds.Load(), refusedCkpt.Load(), len(snaps), len(clones), store.checkpoints.Load())
	if err := te.Check(ctx); err != nil {
		t.Fatal(err)
	}
	for w := range writers {
		// Each volume as stored: a snapshot of it, read from the store.
		img := snapshotImage(t, te.Engine, vols[w%2], fmt.Sprintf("snap-final%d", w), 2*region)
		if got := img[int64(w/2)*region:][:region]; !bytes.Equal(got, models[w]) {
			t.Fatalf("writer %d's region as stored differs at %d", w, firstDiff(got, models[w]))
		}
	}
	images := map[string][]byte{}
	for _, id := range snaps {
		images[id] = readSnapshotImage(t, te.Engine, id, 2*region)
	}
	for cid, sid := range clones {
		v := te.vol(cid)
		if got := mustRead(t, v, 0, 2*region); !bytes.Equal(got, images[sid]) {
			t.Fatalf("clone %s of %s differs at %d", cid, sid, firstDiff(got, images[sid]))
		}
	}
}
