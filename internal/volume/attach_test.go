package volume

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// moveRef is what a moved volume must read: every acknowledged write.
type moveRef struct {
	t   *testing.T
	ref []byte
}

func newMoveRef(t *testing.T, size int) *moveRef { return &moveRef{t: t, ref: make([]byte, size)} }

// write writes p at off and, if flush, flushes; either way it is
// acknowledged, so it must survive the move.
func (m *moveRef) write(ctx context.Context, v *Volume, seed byte, off int64, n int, flush bool) {
	m.t.Helper()
	p := pattern(seed, n)
	if err := v.WriteAt(ctx, p, off); err != nil {
		m.t.Fatalf("write at %d: %v", off, err)
	}
	if flush {
		if err := v.Flush(ctx); err != nil {
			m.t.Fatal(err)
		}
	}
	copy(m.ref[off:], p)
}

func (m *moveRef) check(v *Volume, where string) {
	m.t.Helper()
	if got := mustRead(m.t, v, 0, len(m.ref)); !bytes.Equal(got, m.ref) {
		m.t.Fatalf("%s: the volume does not read every acknowledged write", where)
	}
}

// TestMoveBetweenEngines moves a volume A→B→C→A over one store with writes
// on each engine between moves (some flushed, some only acknowledged), and
// checks after every move that it reads every acknowledged write, that the
// old engine no longer holds it, that GC keeps a detached volume's root,
// and that Check (every head names an existing root) holds.
func TestMoveBetweenEngines(t *testing.T) {
	ctx := context.Background()
	store := blobtest.NewFS(t)
	engines := []*testEngine{newTestEngine(t, store, engineOpts{}), newTestEngine(t, store, engineOpts{}), newTestEngine(t, store, engineOpts{})}
	const vol = "vol-00000000000000AB1"
	const span = 8 << 20 // the part of the 1 GiB volume written
	if err := engines[0].CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	m := newMoveRef(t, span)
	for i := range 4 {
		from, to := engines[i%3], engines[(i+1)%3]
		v := from.vol(vol)
		m.write(ctx, v, byte(10*i+1), int64(i)*BlockSize, BlockSize, true)
		m.write(ctx, v, byte(10*i+2), int64(i)*BlockSize+4096, 3*4096, false) // acknowledged only
		m.write(ctx, v, byte(10*i+3), span-int64(i+1)*BlockSize-512, 1024, false)
		note := []byte("note " + string(rune('0'+i)))
		if err := from.DetachVolume(ctx, vol, note); err != nil {
			t.Fatalf("move %d: detach: %v", i, err)
		}
		if _, err := from.Volume(vol); !errors.Is(err, control.ErrVolumeNotFound) {
			t.Fatalf("move %d: the detaching engine still holds the volume: %v", i, err)
		}
		if err := v.WriteAt(ctx, pattern(99, 512), 0); err == nil {
			t.Fatalf("move %d: a write to the detached volume's old handle was taken", i)
		}
		if _, err := from.GC(ctx); err != nil {
			t.Fatal(err)
		}
		if err := from.Check(ctx); err != nil {
			t.Fatalf("move %d: %v", i, err)
		}
		d, err := to.DetachedVolume(ctx, vol)
		if err != nil || d.SizeBytes != gib || string(d.Note) != string(note) {
			t.Fatalf("move %d: DetachedVolume: %+v %v", i, d, err)
		}
		if _, err := to.AttachVolume(ctx, vol); err != nil {
			t.Fatalf("move %d: attach: %v", i, err)
		}
		if _, err := from.DetachedVolume(ctx, vol); !errors.Is(err, control.ErrVolumeInUse) {
			t.Fatalf("move %d: an attached volume is offered as detached: %v", i, err)
		}
		m.check(to.vol(vol), "after move")
		to.reopen()
		m.check(to.vol(vol), "after move and restart")
	}
	if _, err := engines[0].AttachVolume(ctx, vol); !errors.Is(err, control.ErrVolumeInUse) {
		t.Fatalf("attaching a volume another engine holds: %v", err)
	}
	if _, err := engines[0].AttachVolume(ctx, "vol-000000000000NOPE1"); !errors.Is(err, control.ErrVolumeNotFound) {
		t.Fatalf("attaching an unknown volume: %v", err)
	}
}

// TestAttachRace: two engines attach the same detached volume at once;
// exactly one wins, the other is told the volume is in use, and only the
// winner can write it.
func TestAttachRace(t *testing.T) {
	ctx := context.Background()
	for round := range 5 {
		store := blobtest.NewFS(t)
		a := newTestEngine(t, store, engineOpts{})
		const vol = "vol-00000000000000AC1"
		if err := a.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
			t.Fatal(err)
		}
		m := newMoveRef(t, 2*BlockSize)
		m.write(ctx, a.vol(vol), 7, 0, BlockSize, false)
		if err := a.DetachVolume(ctx, vol, nil); err != nil {
			t.Fatal(err)
		}
		bs := []*testEngine{newTestEngine(t, store, engineOpts{}), newTestEngine(t, store, engineOpts{})}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, b := range bs {
			wg.Go(func() { _, errs[i] = b.AttachVolume(ctx, vol) })
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won < 0:
				won = i
			case err == nil:
				t.Fatalf("round %d: both engines attached the volume", round)
			case !errors.Is(err, control.ErrVolumeInUse):
				t.Fatalf("round %d: the loser got %v, want ErrVolumeInUse", round, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: nobody attached: %v", round, errs)
		}
		lost := bs[1-won]
		if _, err := lost.Volume(vol); !errors.Is(err, control.ErrVolumeNotFound) {
			t.Fatalf("round %d: the loser holds the volume", round)
		}
		lost.reopen() // its intent file is gone: nothing adopted
		if ids, _ := lost.LocalVolumes(ctx); len(ids) != 0 {
			t.Fatalf("round %d: after a restart the loser holds %v", round, ids)
		}
		m.check(bs[won].vol(vol), "winner")
		m.write(ctx, bs[won].vol(vol), 8, BlockSize, BlockSize, true)
		if err := bs[won].Cut(ctx, vol); err != nil {
			t.Fatal(err)
		}
	}
}

// loseHeadPut lets skip PUTs of vol's head through, then makes the next
// fail: before it reaches the store (applied false) or after (the answer lost); with headGone, reading
// the head fails too until cleared, so the engine cannot tell what
// happened (as when the process dies right after the PUT).
func loseHeadPut(fs *blobtest.Faulty, vol string, skip int, applied, headGone bool) {
	var mu sync.Mutex
	put := false
	fs.SetHook(func(op blobtest.Op, key string) *blobtest.Fault {
		if !strings.HasSuffix(key, vol+"/head") {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case op == blobtest.OpPut && !put && skip > 0:
			skip--
		case op == blobtest.OpPut && !put:
			put = true
			return &blobtest.Fault{AfterApply: applied}
		case headGone && put:
			return &blobtest.Fault{}
		}
		return nil
	})
}

// TestDetachCrashPoints kills a detach (an error, then a restart from what
// the data dir holds) at each of its steps: the volume is either still
// attached to the old engine with every acknowledged write, or detached
// and attachable elsewhere with every acknowledged write — never both.
func TestDetachCrashPoints(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name              string
		applied, headGone bool
		detached          bool // after the restart
	}{
		{"head PUT never landed", false, false, false},
		{"head PUT never landed, head unreadable", false, true, false},
		{"head PUT landed, answer lost", true, false, true},
		{"head PUT landed, then the process died", true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := blobtest.NewFaulty(blobtest.NewFS(t))
			a := newTestEngine(t, fs, engineOpts{})
			b := newTestEngine(t, fs, engineOpts{})
			const vol = "vol-00000000000000DC1"
			if err := a.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
				t.Fatal(err)
			}
			m := newMoveRef(t, 4*BlockSize)
			m.write(ctx, a.vol(vol), 1, 0, BlockSize, true)
			m.write(ctx, a.vol(vol), 2, 2*BlockSize+512, 4096, false)
			loseHeadPut(fs, vol, 1, tc.applied, tc.headGone) // after the cut of the writes above
			err := a.DetachVolume(ctx, vol, []byte("n"))
			fs.SetHook(nil)
			switch {
			case tc.applied && !tc.headGone:
				// The engine read the head and found its own detached head.
				if err != nil {
					t.Fatalf("detach whose answer was lost: %v", err)
				}
			case err == nil:
				t.Fatal("the failed PUT was not reported")
			}
			a.reopen()
			_, held := a.Volume(vol)
			_, attachErr := b.AttachVolume(ctx, vol)
			if tc.detached {
				if held == nil || attachErr != nil {
					t.Fatalf("after the restart: old engine holds it %v, attach elsewhere %v; want detached", held == nil, attachErr)
				}
				m.check(b.vol(vol), "attached elsewhere")
				return
			}
			if held != nil || !errors.Is(attachErr, control.ErrVolumeInUse) {
				t.Fatalf("after the restart: old engine %v, attach elsewhere %v; want still attached to the old one", held, attachErr)
			}
			m.check(a.vol(vol), "still attached")
			m.write(ctx, a.vol(vol), 3, BlockSize, 4096, false)
			if err := a.DetachVolume(ctx, vol, nil); err != nil {
				t.Fatalf("detach retried after the restart: %v", err)
			}
			if _, err := b.AttachVolume(ctx, vol); err != nil {
				t.Fatal(err)
			}
			m.check(b.vol(vol), "moved after the retry")
		})
	}
}

// TestAttachCrashPoints: the same for an attach. Before its head PUT
// lands the volume stays detached (anyone may attach it); once it lands
// the attaching engine adopts it at restart (or on a retried attach) and
// nobody else can take it.
func TestAttachCrashPoints(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name              string
		applied, headGone bool
		retry             bool // retry the attach instead of restarting
	}{
		{"head PUT never landed", false, false, false},
		{"head PUT landed, answer lost", true, false, false},
		{"head PUT landed, then the process died", true, true, false},
		{"head PUT landed, head unreadable, attach retried", true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := blobtest.NewFaulty(blobtest.NewFS(t))
			a := newTestEngine(t, fs, engineOpts{})
			b := newTestEngine(t, fs, engineOpts{})
			c := newTestEngine(t, fs, engineOpts{})
			const vol = "vol-00000000000000AD1"
			if err := a.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
				t.Fatal(err)
			}
			m := newMoveRef(t, 2*BlockSize)
			m.write(ctx, a.vol(vol), 5, 512, 8192, false)
			if err := a.DetachVolume(ctx, vol, nil); err != nil {
				t.Fatal(err)
			}
			loseHeadPut(fs, vol, 0, tc.applied, tc.headGone)
			_, err := b.AttachVolume(ctx, vol)
			fs.SetHook(nil)
			if tc.applied && !tc.headGone {
				if err != nil {
					t.Fatalf("attach whose answer was lost: %v", err)
				}
			} else if err == nil {
				t.Fatal("the failed PUT was not reported")
			}
			if tc.retry {
				if _, err := b.AttachVolume(ctx, vol); err != nil {
					t.Fatalf("retried attach: %v", err)
				}
			} else {
				b.reopen()
			}
			_, cErr := c.AttachVolume(ctx, vol)
			if !tc.applied {
				if _, err := b.Volume(vol); !errors.Is(err, control.ErrVolumeNotFound) || cErr != nil {
					t.Fatalf("attach that never landed: b holds it %v, c's attach %v", err, cErr)
				}
				m.check(c.vol(vol), "attached by another")
				return
			}
			if !errors.Is(cErr, control.ErrVolumeInUse) {
				t.Fatalf("another engine attached a volume b's landed attach owns: %v", cErr)
			}
			m.check(b.vol(vol), "adopted")
			m.write(ctx, b.vol(vol), 6, BlockSize, 4096, true)
			if err := b.Cut(ctx, vol); err != nil {
				t.Fatalf("the adopted volume cannot publish: %v", err)
			}
		})
	}
}

// TestStaleOwnerFencedAfterMove: a copy of gateway A's data dir taken
// while A owned the volume, running after A detached it and B attached it,
// is fenced at its first publish (and a copy opened later, at Open): its
// writes never reach the store, B's data is untouched.
func TestStaleOwnerFencedAfterMove(t *testing.T) {
	ctx := context.Background()
	store := blobtest.NewFS(t)
	a := newTestEngine(t, store, engineOpts{})
	const vol = "vol-00000000000000FE1"
	if err := a.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	m := newMoveRef(t, 2*BlockSize)
	m.write(ctx, a.vol(vol), 1, 0, BlockSize, true)
	if err := a.Cut(ctx, vol); err != nil {
		t.Fatal(err)
	}
	a.Engine.Close()
	backup := &testEngine{t: t, dir: t.TempDir(), store: store, cfg: a.cfg}
	copyDataDir(t, a.dir, backup.dir, a.dir) // A's data dir, backed up now
	var slog1, slog2, slog3 logBuf
	stale := openCopy(t, a, t.TempDir(), &slog1) // A's copy, running now
	a.open()
	if err := a.DetachVolume(ctx, vol, nil); err != nil {
		t.Fatal(err)
	}
	b := newTestEngine(t, store, engineOpts{})
	if _, err := b.AttachVolume(ctx, vol); err != nil {
		t.Fatal(err)
	}
	m.write(ctx, b.vol(vol), 2, BlockSize, 4096, true)
	if err := b.Cut(ctx, vol); err != nil {
		t.Fatal(err)
	}
	// The stale copy still thinks it owns the volume; its first publish
	// finds a head it did not write.
	if err := stale.vol(vol).WriteAt(ctx, pattern(66, BlockSize), 0); err != nil {
		t.Fatalf("the stale copy refused a write before publishing: %v", err)
	}
	if err := stale.Cut(ctx, vol); !errors.Is(err, ErrFenced) || !errors.Is(err, control.ErrVolumeNotReady) {
		t.Fatalf("the stale copy's publish: %v, want ErrFenced", err)
	}
	if err := stale.vol(vol).WriteAt(ctx, pattern(67, 512), 0); !errors.Is(err, ErrFenced) {
		t.Fatalf("a fenced copy took a write: %v", err)
	}
	if !strings.Contains(slog1.String(), "fenced") {
		t.Fatalf("no ERROR says the copy is fenced: %s", slog1.String())
	}
	// A copy of A's data dir from before the detach, opened now: fenced at
	// Open (whether the head is detached or attached elsewhere).
	late := openCopy(t, backup, t.TempDir(), &slog2)
	if err := late.vol(vol).Fenced(); err == nil {
		t.Fatal("a copy opened after the move is not fenced")
	}
	m.check(b.vol(vol), "the new owner")
	b.reopen()
	m.check(b.vol(vol), "the new owner after a restart")
	if err := b.Check(ctx); err != nil {
		t.Fatal(err)
	}
	// And a copy opened while the volume is detached (nobody owns it) is
	// fenced too, even though the detached head carries its last token.
	if err := b.DetachVolume(ctx, vol, nil); err != nil {
		t.Fatal(err)
	}
	old := openCopy(t, backup, t.TempDir(), &slog3)
	if err := old.vol(vol).Fenced(); err == nil || !strings.Contains(err.Error(), "detached") {
		t.Fatalf("a copy opened while the volume is detached is not fenced by the detached head: %v", err)
	}
	if err := old.vol(vol).WriteAt(ctx, pattern(68, 512), 0); !errors.Is(err, ErrFenced) {
		t.Fatalf("a copy opened while detached took a write: %v", err)
	}
	if _, err := a.AttachVolume(ctx, vol); err != nil {
		t.Fatalf("re-attaching on the first engine: %v", err)
	}
	m.check(a.vol(vol), "back on A")
}

// TestGCKeepsDetachedVolume: a GC round long after a detach (every object
// older than the grace period) sweeps the volume's older roots but keeps
// the root the detached head names, with its pages and blocks: another
// engine attaches it afterwards and reads every acknowledged write.
func TestGCKeepsDetachedVolume(t *testing.T) {
	ctx := context.Background()
	store := blobtest.NewFS(t)
	a := newTestEngine(t, store, engineOpts{})
	const vol = "vol-00000000000000GC1"
	if err := a.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	m := newMoveRef(t, 4*BlockSize)
	for i := range 3 {
		m.write(ctx, a.vol(vol), byte(i+1), int64(i)*BlockSize, BlockSize+4096, false)
		if err := a.Cut(ctx, vol); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.DetachVolume(ctx, vol, nil); err != nil {
		t.Fatal(err)
	}
	// Two hours later (grace: one hour).
	a.Engine.Close()
	a.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	a.open()
	st, err := a.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.DeletedRoots == 0 {
		t.Fatalf("GC swept no older root: %+v", st)
	}
	if err := a.Check(ctx); err != nil {
		t.Fatal(err)
	}
	b := newTestEngine(t, store, engineOpts{})
	if _, err := b.AttachVolume(ctx, vol); err != nil {
		t.Fatal(err)
	}
	m.check(b.vol(vol), "attached after GC")
}
