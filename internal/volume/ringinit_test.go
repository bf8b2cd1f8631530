package volume

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// pendingOnDisk lists what the file system says the ring's disks have never
// had written; the test is skipped where extents cannot be listed.
func pendingOnDisk(t *testing.T, j *journal) int64 {
	t.Helper()
	var n int64
	for _, d := range j.disks {
		spans, err := unwrittenSpans(d.f, d.size)
		if err != nil {
			t.Skipf("extents cannot be listed here: %v", err)
		}
		for _, s := range spans {
			n += s.end - s.off
		}
	}
	return n
}

func waitInit(t *testing.T, j *journal) {
	t.Helper()
	select {
	case <-j.initDone():
	case <-time.After(time.Minute):
		w, left := j.initState()
		t.Fatalf("initialisation did not end: %d bytes written, %d left", w, left)
	}
}

// TestJournalInitNeverClobbers: on a real two-disk ring whose files start
// preallocated (unwritten), the initialiser zeros the ring while writers
// append records of every size and the tail is released behind them, so
// that the ring laps and the fence meets the head. Both policies: zeroing
// only while the journal is idle (the writers pause now and then), and
// zeroing all along (always: every chunk races the writers). Throughout,
// the ring's valid records reach every acknowledged one (a checker reads
// the ring as replay does); at the end the file system has no unwritten
// block left, and a reopened journal replays every acknowledged record not
// released, with its data.
func TestJournalInitNeverClobbers(t *testing.T) {
	for _, policy := range []string{"idle", "always"} {
		t.Run(policy, func(t *testing.T) {
			dir := t.TempDir()
			sizes := []int64{24 << 20, 16 << 20}
			j := openModeJournal(t, dir, "direct", sizes)
			if err := j.replay(func(*record) error { return nil }); err != nil {
				t.Fatal(err)
			}
			before := pendingOnDisk(t, j)
			if before < j.capacity/2 {
				t.Skipf("the file system left only %d of %d bytes unwritten after preallocation", before, j.capacity)
			}
			j.init.always = policy == "always"
			j.startInit(quietLog)

			acked, wait := appendConcurrently(t, j, 4, 120, 7, 4, 600, func(i int, rng *rand.Rand) {
				if i%10 == 9 && policy == "idle" {
					time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
				}
			})
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { // the cuts: release all but the last 4 MiB, now and then
				defer close(done)
				for {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
					if h := j.headLSN(); h > 4<<20 {
						// An LSN at a record's start: the oldest acknowledged
						// one within the last 4 MiB.
						lsns, _ := acked.snapshot()
						to := h
						for _, lsn := range lsns {
							if lsn+4<<20 >= h && lsn < to {
								to = lsn
							}
						}
						if err := j.release(to); err != nil {
							t.Error(err)
							return
						}
					}
					_, want := acked.snapshot()
					if got := validEnd(t, j); got < want {
						t.Errorf("records are acknowledged up to %d but the ring's valid records end at %d", want, got)
						return
					}
				}
			}()
			wait()
			close(stop)
			<-done
			if t.Failed() {
				j.close()
				return
			}
			waitInit(t, j)
			written, left := j.initState()
			if left != 0 || written == 0 {
				t.Fatalf("initialised %d bytes, %d left", written, left)
			}
			if n := pendingOnDisk(t, j); n != 0 {
				t.Fatalf("the file system still has %d unwritten bytes in the ring after initialisation", n)
			}
			if err := j.sync(); err != nil {
				t.Fatal(err)
			}
			tail, waits := j.sb.TailLSN, j.init.fenceWaits
			j.close()

			j = openModeJournal(t, dir, "direct", sizes)
			defer j.close()
			got := map[int]bool{}
			for _, id := range replayedIDs(t, j) {
				got[id] = true
			}
			missing := 0
			all, _ := acked.snapshot()
			for id, lsn := range all {
				if lsn >= tail && !got[id] {
					missing++
				}
			}
			if missing > 0 {
				t.Fatalf("%d acknowledged records after the tail (%d) are not replayed (%d are)", missing, tail, len(got))
			}
			t.Logf("%s: %d of %d bytes zeroed by the initialiser, the rest written by the writers; %d reservations waited for a chunk; %d records replayed",
				policy, written, before, waits, len(got))
		})
	}
}

// TestJournalInitRestart: a ring initialised once is not initialised again
// by the next start (the file system says every block is written); one
// whose initialisation a close cut short is finished by the next start,
// which writes only what was left.
func TestJournalInitRestart(t *testing.T) {
	dir := t.TempDir()
	sizes := []int64{32 << 20}
	open := func() *journal {
		j := openModeJournal(t, dir, "direct", sizes)
		if err := j.replay(func(*record) error { return nil }); err != nil {
			t.Fatal(err)
		}
		return j
	}
	j := open()
	total := pendingOnDisk(t, j)
	if total < j.capacity/2 {
		t.Skipf("the file system left only %d of %d bytes unwritten after preallocation", total, j.capacity)
	}
	appendPatterned(t, j, 1, 64<<10) // a record to keep across the restarts
	// Stop the first run after a few chunks: a close cuts it short.
	j.init.always = true
	j.startInit(quietLog)
	for {
		if w, _ := j.initState(); w >= 3*initChunk {
			break
		}
		time.Sleep(time.Millisecond)
	}
	j.close()
	first, _ := j.initState()

	j = open()
	left := pendingOnDisk(t, j)
	if left >= total-first+initChunk || left == 0 {
		t.Fatalf("after %d of %d bytes were zeroed, %d are still unwritten", first, total, left)
	}
	j.startInit(quietLog)
	waitInit(t, j)
	second, _ := j.initState()
	if second > left {
		t.Fatalf("the second start zeroed %d bytes, more than the %d left", second, left)
	}
	if first+second >= total {
		t.Fatalf("the two starts zeroed %d + %d bytes of a %d-byte ring: work was done twice", first, second, total)
	}
	if ids := replayedIDs(t, j); len(ids) != 1 || ids[0] != 1 {
		t.Fatalf("replay after initialisation gives %v, want the one record", ids)
	}
	j.close()

	j = open()
	defer j.close()
	if n := pendingOnDisk(t, j); n != 0 {
		t.Fatalf("%d bytes unwritten after initialisation ended", n)
	}
	j.startInit(quietLog)
	waitInit(t, j)
	if third, _ := j.initState(); third != 0 {
		t.Fatalf("a start after initialisation ended zeroed %d bytes again", third)
	}
	if ids := replayedIDs(t, j); len(ids) != 1 || ids[0] != 1 {
		t.Fatalf("replay gives %v, want the one record", ids)
	}
}

// TestJournalInitYields: while a writer keeps the journal busy, an
// initialiser that yields zeros nothing; once the journal is idle it
// finishes.
func TestJournalInitYields(t *testing.T) {
	dir := t.TempDir()
	j := openModeJournal(t, dir, "direct", []int64{16 << 20})
	defer j.close()
	if err := j.replay(func(*record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if pendingOnDisk(t, j) == 0 {
		t.Skip("no unwritten extents here")
	}
	ctx := context.Background()
	busy := make(chan struct{})
	held := make(chan struct{})
	go func() {
		// A writer that holds a reservation: the journal is not idle.
		if err := j.reserve(ctx, 4096, func() {}); err != nil {
			t.Error(err)
		}
		close(held)
		<-busy
		j.unreserve(4096)
	}()
	<-held
	j.startInit(quietLog)
	time.Sleep(10 * initPause)
	if w, _ := j.initState(); w != 0 {
		t.Fatalf("the initialiser zeroed %d bytes while a write was under way", w)
	}
	close(busy)
	waitInit(t, j)
	if w, left := j.initState(); w != j.capacity || left != 0 {
		t.Fatalf("initialised %d of %d bytes, %d left", w, j.capacity, left)
	}
}
