package volume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// TestRetentionGC: with a retention window every point of a volume's
// history is listed, snapshots of each restore to what was written then,
// a fork (the cut of a fenced copy of the data dir) is never offered and is
// swept after the grace period while the history is kept, and once the
// window has passed GC sweeps the history as it would without retention.
func TestRetentionGC(t *testing.T) {
	for name, newStore := range map[string]func(testing.TB) blob.Store{"fs": blobtest.NewFS, "s3": blobtest.NewS3} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var skew atomic.Int64 // the engines' clock runs this far ahead
			now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
			a := newTestEngine(t, newStore(t), engineOpts{grace: time.Minute})
			a.cfg.RecoveryPointRetention, a.cfg.Now = time.Hour, now
			a.reopen()
			const vol = "vol-0000000000000C0D0"
			if err := a.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
				t.Fatal(err)
			}
			// states[i]: the first two blocks after cut i (i = 0 is the create).
			states := [][]byte{make([]byte, 2*BlockSize)}
			for i := 1; i <= 4; i++ {
				st := bytes.Clone(states[i-1])
				p := pattern(byte(i), BlockSize)
				off := (i % 2) * BlockSize
				copy(st[off:], p)
				if err := a.vol(vol).WriteAt(ctx, p, int64(off)); err != nil {
					t.Fatal(err)
				}
				if err := a.Cut(ctx, vol); err != nil {
					t.Fatal(err)
				}
				states = append(states, st)
			}
			// A copy of the data dir publishes first; a's next cut is a fork.
			var blog logBuf
			b := openCopy(t, a, t.TempDir(), &blog)
			if err := b.vol(vol).WriteAt(ctx, pattern(20, BlockSize), 0); err != nil {
				t.Fatal(err)
			}
			if err := b.Cut(ctx, vol); err != nil {
				t.Fatal(err)
			}
			winner := bytes.Clone(states[4])
			copy(winner, pattern(20, BlockSize))
			states = append(states, winner)
			if err := a.vol(vol).WriteAt(ctx, pattern(30, BlockSize), BlockSize); err != nil {
				t.Fatal(err)
			}
			if err := a.Cut(ctx, vol); !errors.Is(err, ErrFenced) {
				t.Fatalf("the copy's cut: %v, want fenced", err)
			}
			if _, err := a.RetainedRecoveryPoints(ctx, vol); !errors.Is(err, control.ErrVolumeNotReady) {
				t.Fatalf("a fenced volume's points: %v, want VolumeNotReady", err)
			}
			roots := func() map[string]bool {
				out := map[string]bool{}
				if err := b.store.List(ctx, "volumes/"+vol+"/roots/", func(o blob.ObjectInfo) error { out[o.Key] = true; return nil }); err != nil {
					t.Fatal(err)
				}
				return out
			}
			if n := len(roots()); n != len(states)+1 {
				t.Fatalf("%d roots in the store, want %d points and one fork", n, len(states))
			}

			check := func(when string, want []int) {
				t.Helper()
				pts, err := b.RetainedRecoveryPoints(ctx, vol)
				if err != nil {
					t.Fatalf("%s: %v", when, err)
				}
				if len(pts) != len(want) {
					t.Fatalf("%s: %d points %+v, want %d", when, len(pts), pts, len(want))
				}
				for i, p := range pts {
					if p.Seq != uint64(want[i]) || p.Current != (i == len(pts)-1) || p.SizeBytes != gib ||
						i > 0 && !p.Time.After(pts[i-1].Time) {
						t.Fatalf("%s: point %d is %+v, want seq %d (all %+v)", when, i, p, want[i], pts)
					}
					// By sequence and by time: the same point, restored.
					for _, bySeq := range []bool{true, false} {
						id := fmt.Sprintf("snap-%s%d%v", strings.ReplaceAll(when, " ", ""), i, bySeq)
						s, pt, err := b.SnapshotRetainedRecoveryPoint(ctx, control.RetainedSnapshotRequest{SnapshotID: id, VolumeID: vol,
							Seq: p.Seq, BySeq: bySeq, At: p.Time})
						if err != nil || s.Status != control.SnapshotCompleted || !s.RecoveryPointTime.Equal(p.Time) || pt != p {
							t.Fatalf("%s: snapshot of %+v: %+v of %+v, %v", when, p, s, pt, err)
						}
						rv := "vol-" + strings.TrimPrefix(id, "snap-")
						if err := b.CreateVolume(ctx, control.VolumeSpec{VolumeID: rv, SizeBytes: gib, Source: control.VolumeSource{SnapshotID: id}}); err != nil {
							t.Fatal(err)
						}
						if got := mustRead(t, b.vol(rv), 0, 2*BlockSize); !bytes.Equal(got, states[want[i]]) {
							t.Fatalf("%s: point seq %d restores to other data", when, p.Seq)
						}
						if err := b.DeleteVolume(ctx, rv); err != nil {
							t.Fatal(err)
						}
						if err := b.DeleteSnapshot(ctx, id); err != nil {
							t.Fatal(err)
						}
					}
				}
				_, _, err = b.SnapshotRetainedRecoveryPoint(ctx, control.RetainedSnapshotRequest{SnapshotID: "snap-none", VolumeID: vol, At: pts[0].Time.Add(-time.Second)})
				if !errors.Is(err, control.ErrNoRetainedRecoveryPoint) {
					t.Fatalf("%s: a time before every point: %v", when, err)
				}
				if err := b.Check(ctx); err != nil {
					t.Fatal(err)
				}
			}
			check("now", []int{0, 1, 2, 3, 4, 5})

			// Past the grace period: the fork goes, the history stays.
			skew.Store(int64(10 * time.Minute))
			if _, err := b.GC(ctx); err != nil {
				t.Fatal(err)
			}
			if n := len(roots()); n != len(states) {
				t.Fatalf("after GC, %d roots, want the %d points of the history", n, len(states))
			}
			check("after GC", []int{0, 1, 2, 3, 4, 5})

			// Past the window: only the current point is left, as with no
			// retention.
			skew.Store(int64(3 * time.Hour))
			if _, err := b.GC(ctx); err != nil {
				t.Fatal(err)
			}
			if n := len(roots()); n != 1 {
				t.Fatalf("after the window, %d roots, want 1", n)
			}
			check("after the window", []int{5})
		})
	}
}

// TestRetentionOffIsTodays: without a window only the current point is
// listed, and GC sweeps the older roots after the grace period.
func TestRetentionOffIsTodaysGC(t *testing.T) {
	ctx := context.Background()
	var skew atomic.Int64
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{grace: time.Minute})
	te.cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	te.reopen()
	const vol = "vol-0000000000000C0D1"
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := te.vol(vol).WriteAt(ctx, pattern(byte(i), 4096), 0); err != nil {
			t.Fatal(err)
		}
		if err := te.Cut(ctx, vol); err != nil {
			t.Fatal(err)
		}
	}
	pts, err := te.RetainedRecoveryPoints(ctx, vol)
	if err != nil || len(pts) != 1 || pts[0].Seq != 3 || !pts[0].Current {
		t.Fatalf("points = %+v, %v", pts, err)
	}
	skew.Store(int64(10 * time.Minute))
	st, err := te.GC(ctx)
	if err != nil || st.DeletedRoots != 3 {
		t.Fatalf("GC = %+v, %v; want the 3 old roots swept", st, err)
	}
}

// TestRetentionSnapshotWhileCutting: snapshots of the latest retained point
// ("now") taken while another goroutine writes and cuts: each holds a write
// published before it returned and none cut after it, whether the history
// walk saw the newest cuts or they were added under the cut lock.
func TestRetentionSnapshotWhileCutting(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	te.cfg.RecoveryPointRetention = time.Hour
	te.reopen()
	const vol = "vol-0000000000000C0D2"
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol(vol)
	var published atomic.Int64 // writes [1, published] are in a published root
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for n := int64(1); ; n++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := v.WriteAt(ctx, stamp(n), 0); err != nil {
				done <- err
				return
			}
			if err := te.Cut(ctx, vol); err != nil {
				done <- err
				return
			}
			published.Store(n)
		}
	}()
	for i := range 20 {
		before := published.Load()
		id := fmt.Sprintf("snap-%017d", i)
		s, _, err := te.SnapshotRetainedRecoveryPoint(ctx, control.RetainedSnapshotRequest{SnapshotID: id, VolumeID: vol, At: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		after := published.Load() + 1 // a cut in flight may be published already
		rv := fmt.Sprintf("vol-%017d", i)
		if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: rv, SizeBytes: gib, Source: control.VolumeSource{SnapshotID: id}}); err != nil {
			t.Fatal(err)
		}
		got := mustRead(t, te.vol(rv), 0, 4096)
		n := int64(0)
		for k := int64(1); k <= after; k++ {
			if bytes.Equal(got, stamp(k)) {
				n = k
			}
		}
		if n < before || n > after || n == 0 && before > 0 {
			t.Fatalf("snapshot %d (%v) holds write %d, want one in [%d, %d]", i, s.RecoveryPointTime, n, before, after)
		}
		if err := te.DeleteVolume(ctx, rv); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := te.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// stamp is a 4 KiB sector that says n.
func stamp(n int64) []byte {
	p := make([]byte, 4096)
	copy(p, fmt.Sprintf("write %d", n))
	return p
}
