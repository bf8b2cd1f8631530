package volume

import (
	"context"
	"testing"
	"time"
)

// TestCacheWriteBackOnPause: the uploader starts the cache's write-back
// (cache.startWriteBack) only once a cut has published since the last one
// and no volume has been written for quietAfter: a volume written just now
// holds it back even when another volume's pause is what got a cut; the
// first scan of a pause of all of them starts it, once.
func TestCacheWriteBackOnPause(t *testing.T) {
	ctx := context.Background()
	te, clock, vols := quietEngine(t, 2)
	s := &uploadSched{e: te.Engine, interval: 5 * time.Second, vols: map[*Volume]*volSched{}, done: make(chan *Volume)}
	c := te.cache
	write := func(v *Volume, seed byte) {
		t.Helper()
		if err := v.WriteAt(ctx, pattern(seed, 4096), int64(seed)*BlockSize); err != nil {
			t.Fatal(err)
		}
	}
	if c.writeBackDue.Load() {
		t.Fatal("write-back due before any cut")
	}

	// Volume 0 pauses and is cut: the write-back is due from then.
	write(vols[0], 1)
	clock.advance(quietAfter)
	if cut, _ := step(t, s, ctx); len(cut) != 1 || !c.writeBackDue.Load() {
		t.Fatalf("after the cut of a paused volume: %d cut, write-back due %v; want 1 cut, due", len(cut), c.writeBackDue.Load())
	}
	// Volume 1 is written now: no write-back while it writes.
	write(vols[1], 2)
	clock.advance(quietAfter / 2)
	step(t, s, ctx)
	if !c.writeBackDue.Load() {
		t.Fatal("write-back started while a volume was being written")
	}
	// Both paused: the first scan starts it (the cut of volume 1 that the
	// same scan launches makes it due again), the next one starts it again,
	// and then it is not due until another cut publishes.
	clock.advance(quietAfter / 2)
	if cut, _ := step(t, s, ctx); len(cut) != 1 || !c.writeBackDue.Load() {
		t.Fatalf("scan of a pause of both volumes: %d cut, write-back due %v; want volume 1 cut, due again after its cut", len(cut), c.writeBackDue.Load())
	}
	clock.advance(time.Millisecond)
	if step(t, s, ctx); c.writeBackDue.Load() {
		t.Fatal("write-back still due after a scan of a pause with no cut running")
	}
	// The round ends on its own: it waits for no I/O to complete, though
	// queueing it can block while the disk is congested (another test's
	// or a benchmark's writes), so the bound only catches a hang.
	deadline := time.Now().Add(2 * time.Minute)
	for c.writingBack.Load() {
		if time.Now().After(deadline) {
			t.Fatal("write-back round still running after 2 minutes")
		}
		time.Sleep(time.Millisecond)
	}
}
