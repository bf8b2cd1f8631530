package volume

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// quietEngine is a test engine on a fake clock whose own uploader makes no
// periodic cuts (CutInterval -1), so that a test's uploadSched, driven
// step by step, is the only one cutting on pauses.
func quietEngine(t *testing.T, vols int) (*testEngine, *fakeClock, []*Volume) {
	t.Helper()
	clock := newFakeClock()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	te.Engine.Close()
	te.cfg.Now = clock.now
	te.open()
	var vs []*Volume
	for i := range vols {
		id := fmt.Sprintf("vol-000000000000QUIET%d", i)
		if err := te.CreateVolume(context.Background(), control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, te.vol(id))
	}
	return te, clock, vs
}

// step scans once at the fake clock's time and lets every cut it launched
// end; it returns the volumes cut and when the scan asked to be run again.
func step(t *testing.T, s *uploadSched, ctx context.Context) (cut []*Volume, next time.Time) {
	t.Helper()
	next = s.scan(ctx, false, false)
	for s.running > 0 {
		v := <-s.done
		s.finished(v)
		if err := s.vols[v].err; err != nil {
			t.Fatalf("cut of %s: %v", v.id, err)
		}
		cut = append(cut, v)
	}
	return cut, next
}

func seqOf(v *Volume) uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.base.Seq
}

// TestQuietCut: the uploader's rule for a volume whose writes pause
// (uploadSched.scan, driven scan by scan on a fake clock). A volume
// written once is not cut while the clock stands, asks for a scan exactly
// quietAfter after its write, and is cut then. One that writes, pauses
// 2×quietAfter, writes again, is cut at most once per quietSpacing,
// and once its writer has come back right after the pauses it was cut on,
// those pauses no longer count; a pause that lasts makes them count again.
// One written every 20 ms (never quiet) is not cut by the pause rule.
func TestQuietCut(t *testing.T) {
	ctx := context.Background()
	te, clock, vols := quietEngine(t, 1)
	v := vols[0]
	const interval = 5 * time.Second
	s := &uploadSched{e: te.Engine, interval: interval, vols: map[*Volume]*volSched{}, done: make(chan *Volume)}
	write := func(seed byte) {
		t.Helper()
		if err := v.WriteAt(ctx, pattern(seed, 4096), int64(seed)*BlockSize); err != nil {
			t.Fatal(err)
		}
	}

	// Written once, then quiet.
	seq0 := seqOf(v)
	write(1)
	wrote := clock.now()
	cut, next := step(t, s, ctx)
	if len(cut) != 0 {
		t.Fatalf("cut at once, during the write's burst")
	}
	if want := wrote.Add(quietAfter); !next.Equal(want) {
		t.Fatalf("next scan at %v, want quietAfter after the write (%v)", next, want)
	}
	clock.advance(quietAfter - time.Millisecond)
	if cut, _ := step(t, s, ctx); len(cut) != 0 {
		t.Fatalf("cut %v after the write, before quietAfter", quietAfter-time.Millisecond)
	}
	clock.advance(time.Millisecond)
	if cut, _ := step(t, s, ctx); len(cut) != 1 || seqOf(v) != seq0+1 {
		t.Fatalf("not cut quietAfter after its write: cut %d, seq %d → %d", len(cut), seq0, seqOf(v))
	}
	if rp, _ := te.RecoveryPoint(ctx, v.id); !rp.Time.Equal(clock.now()) {
		t.Fatalf("recovery point %v, want %v (the cut's start)", rp.Time, clock.now())
	}

	// A trickle: a write, a 2×quietAfter pause, over 3 s. The writer came
	// back at once after the pause above was cut on, so a pause now takes
	// 2×quietAfter: these still count, and the volume is cut again a
	// quietSpacing after the last cut, not before. Its writer comes back
	// again: now such pauses are part of its burst, and the trickle is
	// left to the interval.
	spacing := quietSpacing(interval)
	pause := 2 * quietAfter
	steps := int(3 * time.Second / pause)
	lastCut := clock.now()
	var cutAt []int
	for i := range steps {
		write(byte(2 + i%8))
		clock.advance(pause)
		cut, _ := step(t, s, ctx)
		if len(cut) > 0 {
			if d := clock.now().Sub(lastCut); d < spacing {
				t.Fatalf("trickle step %d: cut %v after the last cut; quietSpacing is %v", i, d, spacing)
			}
			lastCut = clock.now()
			cutAt = append(cutAt, i)
		}
	}
	if want := int(spacing/pause) - 1; len(cutAt) != 1 || cutAt[0] != want {
		t.Fatalf("trickle cut at steps %v; want only at step %d (a second after the last cut)", cutAt, want)
	}
	if q := s.vols[v].quiet; q != 4*quietAfter {
		t.Fatalf("pause taken as a burst's end %v after the writer came back twice; want %v", q, 4*quietAfter)
	}

	// A pause that lasts (a second, with no write) halves it again.
	clock.advance(4 * quietAfter)
	if cut, _ := step(t, s, ctx); len(cut) != 1 {
		t.Fatalf("not cut %v after the trickle's last write", 4*quietAfter)
	}
	clock.advance(quietBack)
	step(t, s, ctx)
	if q := s.vols[v].quiet; q != 2*quietAfter {
		t.Fatalf("pause taken as a burst's end %v after a pause that lasted; want %v", q, 2*quietAfter)
	}

	// Writes 20 ms apart: never quiet, so only the interval would cut.
	// The recovery point is the last cut's, and the interval is far off.
	for i := range 100 {
		write(byte(10 + i%8))
		clock.advance(20 * time.Millisecond)
		if cut, _ := step(t, s, ctx); len(cut) != 0 {
			t.Fatalf("busy step %d: cut while written every 20 ms", i)
		}
	}
}

// TestQuietCutParallel: many volumes quiet at once share the uploader's
// ParallelCuts; the ones left over are cut as the first ones end, and a
// volume whose cut is running is not cut again meanwhile.
func TestQuietCutParallel(t *testing.T) {
	ctx := context.Background()
	te, clock, vols := quietEngine(t, 6)
	parallel := te.Engine.cfg.ParallelCuts
	s := &uploadSched{e: te.Engine, interval: 5 * time.Second, vols: map[*Volume]*volSched{}, done: make(chan *Volume)}
	for i, v := range vols {
		if err := v.WriteAt(ctx, pattern(byte(i), BlockSize), 0); err != nil {
			t.Fatal(err)
		}
	}
	clock.advance(quietAfter)
	s.scan(ctx, false, false)
	if s.running != parallel {
		t.Fatalf("%d cuts launched for %d quiet volumes; ParallelCuts is %d", s.running, len(vols), parallel)
	}
	cut := map[*Volume]int{}
	for s.running > 0 {
		v := <-s.done
		s.finished(v)
		if err := s.vols[v].err; err != nil {
			t.Fatal(err)
		}
		cut[v]++
		s.scan(ctx, false, false)
	}
	for _, v := range vols {
		if cut[v] != 1 {
			t.Errorf("%s cut %d times; want once", v.id, cut[v])
		}
	}
}

// TestQuietCutUploader: the engine's own uploader (CutInterval 5 s, a fake
// clock) cuts a volume once its writes have paused for quietAfter, with the
// clock standing there: nothing but the pause rule can cut it then (the
// interval is 5 s away), and it is not left for a later tick.
func TestQuietCutUploader(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	te.Engine.Close()
	te.cfg.Now, te.cfg.CutInterval = clock.now, 5*time.Second
	te.open()
	const id = "vol-00000000000000QUIETU"
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol(id)
	if err := v.WriteAt(ctx, pattern(7, 64<<10), 0); err != nil {
		t.Fatal(err)
	}
	clock.advance(quietAfter)
	want := clock.now()
	deadline := time.Now().Add(time.Minute) // a bound on waiting, not a timing check
	for {
		rp, err := te.RecoveryPoint(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rp.Time.Equal(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recovery point still %v a minute after the volume went quiet at %v", rp.Time, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := mustRead(t, v, 0, 64<<10); string(got) != string(pattern(7, 64<<10)) {
		t.Fatal("read back differs")
	}
}

// TestDirtyCountCut: a volume is cut for its count of dirty blocks alone
// (dirtyDue) once they hold a quarter of the cache's slots, but only while
// dirty blocks hold half the cache: a volume holding more than a quarter of
// a cache that is mostly free or clean is left to its interval, and is cut
// as soon as another volume's writes make slots short; the other volume,
// under a quarter, is not.
func TestDirtyCountCut(t *testing.T) {
	ctx := context.Background()
	te, _, vols := quietEngine(t, 2)
	a, b := vols[0], vols[1]
	all := te.cache.nslots() // 128 for the test engine's 64 MiB
	// No interval, no pause rule: only the count can make a cut due.
	s := &uploadSched{e: te.Engine, interval: -1, vols: map[*Volume]*volSched{}, done: make(chan *Volume)}
	writeBlocks := func(v *Volume, n int) {
		t.Helper()
		for i := range n {
			if err := v.WriteAt(ctx, pattern(byte(i+1), 4096), int64(i)*BlockSize); err != nil {
				t.Fatal(err)
			}
		}
	}
	seqA, seqB := seqOf(a), seqOf(b)
	writeBlocks(a, all/4+all/16) // over a quarter, the cache mostly free
	if cut, _ := step(t, s, ctx); len(cut) != 0 {
		t.Fatalf("cut %d volumes with %d of %d slots dirty", len(cut), all/4+all/16, all)
	}
	writeBlocks(b, all/4-1) // under a quarter; now over half the slots are dirty
	cut, _ := step(t, s, ctx)
	if len(cut) != 1 || cut[0] != a || seqOf(a) != seqA+1 || seqOf(b) != seqB {
		t.Fatalf("with %d of %d slots dirty: cut %d volumes, seq a %d → %d, b %d → %d; want a cut once, b not",
			all/2+all/16-1, all, len(cut), seqA, seqOf(a), seqB, seqOf(b))
	}
}
