package volume

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/scsi"
)

// logBuf collects an engine's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// copyDir copies a data dir, as an operator copying it (or backing it up)
// would.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// copyDataDir copies a data dir whose files name the paths under origin
// (its disks) and rewrites those to dst, as restoring it there would.
func copyDataDir(t testing.TB, src, dst, origin string) {
	t.Helper()
	copyDir(t, src, dst)
	for _, name := range append(stateFiles[:], "journal.json") {
		p := filepath.Join(dst, "engine", name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte(origin), []byte(dst)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// openCopy opens an engine on a copy of te's data dir, logging into log.
func openCopy(t testing.TB, te *testEngine, dst string, log *logBuf) *testEngine {
	t.Helper()
	copyDataDir(t, te.dir, dst, te.dir)
	c := &testEngine{t: t, dir: dst, store: te.store, cfg: te.cfg}
	c.cfg.Dir = filepath.Join(dst, "engine")
	c.cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	c.open()
	t.Cleanup(func() { c.Engine.Close() })
	return c
}

// TestClonedDataDirFenced: a copy of a data dir runs beside the original on
// the same store; both write and flush (neither can know yet). The first
// to publish wins; the other is fenced at its publish: writes, flushes, its
// recovery point and snapshots fail with VolumeNotReady (the initiator gets
// CHECK CONDITION), an ERROR says why, the winner's head and roots are
// untouched, and the loser still reads what it holds — also after a
// restart, since the fence is persisted.
func TestClonedDataDirFenced(t *testing.T) {
	for name, newStore := range map[string]func(testing.TB) blob.Store{"fs": blobtest.NewFS, "s3": blobtest.NewS3} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			a := newTestEngine(t, newStore(t), engineOpts{})
			const vol = "vol-0000000000000C10E"
			if err := a.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
				t.Fatal(err)
			}
			w0 := pattern(1, BlockSize)
			if err := a.vol(vol).WriteAt(ctx, w0, 0); err != nil {
				t.Fatal(err)
			}
			if err := a.Cut(ctx, vol); err != nil {
				t.Fatal(err)
			}
			a.Engine.Close()
			var blog logBuf
			b := openCopy(t, a, t.TempDir(), &blog)
			a.open()

			wa, wb := pattern(2, BlockSize), pattern(3, BlockSize)
			for _, x := range []struct {
				e *testEngine
				p []byte
			}{{a, wa}, {b, wb}} {
				v := x.e.vol(vol)
				if err := v.WriteAt(ctx, x.p, BlockSize); err != nil {
					t.Fatal(err)
				}
				if err := v.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Cut(ctx, vol); err != nil {
				t.Fatalf("winner's cut: %v", err)
			}
			winnerHead, err := a.store.Get(ctx, headKey(vol))
			if err != nil {
				t.Fatal(err)
			}
			err = b.Cut(ctx, vol)
			if !errors.Is(err, ErrFenced) || !errors.Is(err, control.ErrVolumeNotReady) {
				t.Fatalf("loser's cut: %v, want ErrFenced and VolumeNotReady", err)
			}
			if h, _ := a.store.Get(ctx, headKey(vol)); !bytes.Equal(h, winnerHead) {
				t.Fatalf("the loser replaced the winner's head: %s -> %s", winnerHead, h)
			}
			checkFenced := func(when string, lv *Volume, le *testEngine) {
				t.Helper()
				if err := lv.Fenced(); !errors.Is(err, control.ErrVolumeNotReady) {
					t.Fatalf("%s: Fenced() = %v", when, err)
				}
				if err := lv.WriteAt(ctx, pattern(9, 4096), 0); !errors.Is(err, control.ErrVolumeNotReady) {
					t.Fatalf("%s: write on the fenced volume: %v", when, err)
				}
				if err := lv.Unmap(ctx, 0, BlockSize); !errors.Is(err, control.ErrVolumeNotReady) {
					t.Fatalf("%s: unmap on the fenced volume: %v", when, err)
				}
				if err := lv.Flush(ctx); !errors.Is(err, control.ErrVolumeNotReady) {
					t.Fatalf("%s: flush on the fenced volume: %v", when, err)
				}
				if _, err := le.RecoveryPoint(ctx, vol); !errors.Is(err, control.ErrVolumeNotReady) {
					t.Fatalf("%s: recovery point of the fenced volume: %v", when, err)
				}
				for _, fromRP := range []bool{true, false} {
					if _, err := le.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-loser", VolumeID: vol, FromRecoveryPoint: fromRP}); !errors.Is(err, control.ErrVolumeNotReady) {
						t.Fatalf("%s: snapshot of the fenced volume: %v", when, err)
					}
				}
				// What the loser holds is still readable: its own writes,
				// not the winner's.
				if got := mustRead(t, lv, 0, 2*BlockSize); !bytes.Equal(got[:BlockSize], w0) || !bytes.Equal(got[BlockSize:], wb) {
					t.Fatalf("%s: the fenced volume does not read what this data dir holds", when)
				}
				if ids, err := le.LocalVolumes(ctx); err != nil || len(ids) != 1 || ids[0] != vol {
					t.Fatalf("%s: LocalVolumes = %v, %v", when, ids, err)
				}
			}
			checkFenced("after the lost publish", b.vol(vol), b)
			if n := strings.Count(blog.String(), "level=ERROR"); n != 1 || !strings.Contains(blog.String(), "another writer has published") {
				t.Fatalf("want one ERROR saying why, got %d:\n%s", n, blog.String())
			}
			scsiRefuses(t, b.vol(vol))

			// The winner is intact and goes on.
			av := a.vol(vol)
			if got := mustRead(t, av, 0, 2*BlockSize); !bytes.Equal(got[:BlockSize], w0) || !bytes.Equal(got[BlockSize:], wa) {
				t.Fatal("the winner does not read its own writes")
			}
			if _, err := a.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-winner", VolumeID: vol, FromRecoveryPoint: true}); err != nil {
				t.Fatal(err)
			}
			if err := a.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-0000000000000C10F", SizeBytes: gib, Source: control.VolumeSource{SnapshotID: "snap-winner"}}); err != nil {
				t.Fatal(err)
			}
			if got := mustRead(t, a.vol("vol-0000000000000C10F"), BlockSize, BlockSize); !bytes.Equal(got, wa) {
				t.Fatal("the winner's snapshot does not hold the winner's write")
			}
			if err := a.Check(ctx); err != nil {
				t.Fatal(err)
			}

			// The fence survives a restart of the loser.
			b.reopen()
			checkFenced("after a restart", b.vol(vol), b)
			// The way back: delete it there; the winner's head stays.
			if err := b.DeleteVolume(ctx, vol); err != nil {
				t.Fatal(err)
			}
			if h, _ := a.store.Get(ctx, headKey(vol)); !bytes.Equal(h, winnerHead) {
				t.Fatalf("deleting the fenced copy touched the winner's head: %s", h)
			}
			a.reopen()
			if got := mustRead(t, a.vol(vol), BlockSize, BlockSize); !bytes.Equal(got, wa) {
				t.Fatal("the winner lost its write")
			}
		})
	}
}

// scsiRefuses checks that the SCSI layer turns the fenced volume's errors
// into CHECK CONDITION for writes and SYNCHRONIZE CACHE, and still reads.
func scsiRefuses(t *testing.T, v *Volume) {
	t.Helper()
	ctx := context.Background()
	d, err := scsi.NewDevice(v, scsi.DeviceOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	cdb10 := func(op byte, lba uint32, n uint16) []byte {
		c := make([]byte, 10)
		c[0] = op
		binary.BigEndian.PutUint32(c[2:], lba)
		binary.BigEndian.PutUint16(c[7:], n)
		return c
	}
	run := func(cmd *scsi.Command) scsi.Response {
		cmd.Nexus = "test"
		r := d.Execute(ctx, cmd)
		for range 4 { // unit attentions (power on) first
			if r.Status != scsi.StatusCheckCondition || len(r.Sense) < 3 || r.Sense[2]&0x0f != 0x06 {
				break
			}
			r = d.Execute(ctx, cmd)
		}
		return r
	}
	r := run(&scsi.Command{CDB: cdb10(0x2a, 0, 8), Write: true, ExpectedDataTransferLength: 4096, DataOut: make([]byte, 4096)})
	if r.Status != scsi.StatusCheckCondition {
		t.Fatalf("WRITE(10) on a fenced volume: status %#x, want CHECK CONDITION", r.Status)
	}
	if r = run(&scsi.Command{CDB: cdb10(0x35, 0, 0)}); r.Status != scsi.StatusCheckCondition {
		t.Fatalf("SYNCHRONIZE CACHE on a fenced volume: status %#x, want CHECK CONDITION", r.Status)
	}
	if r = run(&scsi.Command{CDB: cdb10(0x28, 0, 8), Read: true, ExpectedDataTransferLength: 4096}); r.Status != 0 || len(r.DataIn) != 4096 {
		t.Fatalf("READ(10) on a fenced volume: status %#x, %d bytes", r.Status, len(r.DataIn))
	}
}

// TestOldBackupFencedAtOpen: a data dir restored from a backup older than
// the volume's head is fenced at Open (it never wrote that head), reads
// what it holds, and takes no writes; the current data dir is unaffected.
func TestOldBackupFencedAtOpen(t *testing.T) {
	ctx := context.Background()
	a := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	const vol = "vol-00000000000000B0C"
	if err := a.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	old, unpublished, later := pattern(4, BlockSize), pattern(5, 4096), pattern(6, BlockSize)
	if err := a.vol(vol).WriteAt(ctx, old, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Cut(ctx, vol); err != nil {
		t.Fatal(err)
	}
	if err := a.vol(vol).WriteAt(ctx, unpublished, 3*BlockSize); err != nil {
		t.Fatal(err)
	}
	a.Engine.Close()
	backup := t.TempDir()
	copyDir(t, a.dir, backup)
	a.open()
	if err := a.vol(vol).WriteAt(ctx, later, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Cut(ctx, vol); err != nil {
		t.Fatal(err)
	}
	a.Engine.Close()

	// Restore the backup in place of the data dir.
	if err := os.RemoveAll(a.dir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, backup, a.dir)
	var log logBuf
	a.cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
	a.open()
	v := a.vol(vol)
	if err := v.Fenced(); !errors.Is(err, control.ErrVolumeNotReady) {
		t.Fatalf("a restored old backup is not fenced: %v", err)
	}
	if !strings.Contains(log.String(), "level=ERROR") || !strings.Contains(log.String(), "was not written by this data dir") {
		t.Fatalf("no ERROR saying why:\n%s", log.String())
	}
	if got := mustRead(t, v, 0, BlockSize); !bytes.Equal(got, old) {
		t.Fatal("the fenced backup does not read its own last recovery point")
	}
	if got := mustRead(t, v, 3*BlockSize, 4096); !bytes.Equal(got, unpublished) {
		t.Fatal("the fenced backup does not read what its journal holds")
	}
	if err := v.WriteAt(ctx, pattern(7, 4096), 0); !errors.Is(err, ErrFenced) {
		t.Fatalf("write on a fenced backup: %v", err)
	}
	if _, err := a.RecoveryPoint(ctx, vol); !errors.Is(err, control.ErrVolumeNotReady) {
		t.Fatalf("recovery point of a fenced backup: %v", err)
	}
	// The head (the newer data dir's) is untouched.
	b, err := a.store.Get(ctx, headKey(vol))
	if err != nil {
		t.Fatal(err)
	}
	var h head
	if err := json.Unmarshal(b, &h); err != nil || h.Seq != 2 {
		t.Fatalf("head after the backup's Open: %s %v", b, err)
	}
}

// TestCreateAdoptsOwnHead: the head PUT of a new volume lands but its
// answer is lost; the create fails, and neither a retry nor a restart is
// stuck with a volume that "exists in the object store": the retry adopts
// the head this engine wrote. Likewise a delete whose tombstone landed
// without an answer completes.
func TestCreateAdoptsOwnHead(t *testing.T) {
	ctx := context.Background()
	fs := blobtest.NewFaulty(blobtest.NewFS(t))
	te := newTestEngine(t, fs, engineOpts{})
	lose := func(suffix string) {
		var once sync.Once
		fs.SetHook(func(op blobtest.Op, key string) *blobtest.Fault {
			var f *blobtest.Fault
			if op == blobtest.OpPut && strings.HasSuffix(key, suffix) {
				once.Do(func() { f = &blobtest.Fault{AfterApply: true} })
			}
			return f
		})
	}
	const vol = "vol-000000000000ADD01"
	lose(vol + "/head")
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err == nil {
		t.Fatal("the lost answer was not reported")
	}
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
		t.Fatalf("retried create: %v", err)
	}
	if err := te.vol(vol).WriteAt(ctx, pattern(1, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, vol); err != nil {
		t.Fatal(err)
	}

	// The same, then a restart instead of a retry.
	const vol2 = "vol-000000000000ADD02"
	lose(vol2 + "/head")
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol2, SizeBytes: gib}); err == nil {
		t.Fatal("the lost answer was not reported")
	}
	te.reopen()
	if ids, _ := te.LocalVolumes(ctx); len(ids) != 2 {
		t.Fatalf("after restart the engine holds %v, want both volumes", ids)
	}
	if err := te.vol(vol2).Fenced(); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, vol2); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, te.vol(vol), 0, 4096); !bytes.Equal(got, pattern(1, 4096)) {
		t.Fatal("write lost")
	}

	// A delete whose tombstone landed unanswered: a restart completes it.
	lose(vol2 + "/head")
	if err := te.DeleteVolume(ctx, vol2); err == nil {
		t.Fatal("the lost answer was not reported")
	}
	fs.SetHook(nil)
	te.reopen()
	if _, err := te.Volume(vol2); !errors.Is(err, control.ErrVolumeNotFound) {
		t.Fatalf("a delete whose tombstone landed is not completed: %v", err)
	}
	// And a retried delete after a lost answer succeeds.
	lose(vol + "/head")
	if err := te.DeleteVolume(ctx, vol); err == nil {
		t.Fatal("the lost answer was not reported")
	}
	fs.SetHook(nil)
	var log logBuf
	te.log = slog.New(slog.NewTextHandler(&log, nil))
	if err := te.DeleteVolume(ctx, vol); err != nil {
		t.Fatalf("retried delete: %v", err)
	}
	if strings.Contains(log.String(), "level=ERROR") {
		t.Fatalf("a retried delete took its own tombstone for another writer's:\n%s", log.String())
	}
	te.reopen()
	if ids, _ := te.LocalVolumes(ctx); len(ids) != 0 {
		t.Fatalf("volumes left: %v", ids)
	}
	if err := te.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestStateFileLost: a deleted state.json is rebuilt from its copy (loudly);
// with both gone, a data dir that was in use is refused with a message
// naming the file and the way back, never opened afresh under a new owner.
func TestStateFileLost(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	const vol = "vol-00000000000005747"
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	want := pattern(8, 8192)
	if err := te.vol(vol).WriteAt(ctx, want, 0); err != nil {
		t.Fatal(err)
	}
	if err := te.vol(vol).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	owner := te.state.Owner
	te.Engine.Close()
	if err := os.Remove(filepath.Join(te.cfg.Dir, "state.json")); err != nil {
		t.Fatal(err)
	}
	var log logBuf
	te.cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
	te.open()
	if te.state.Owner != owner {
		t.Fatalf("owner changed from %s to %s", owner, te.state.Owner)
	}
	if got := mustRead(t, te.vol(vol), 0, len(want)); !bytes.Equal(got, want) {
		t.Fatal("write lost")
	}
	if !strings.Contains(log.String(), "level=ERROR") {
		t.Fatalf("rebuilding state.json was not reported:\n%s", log.String())
	}
	if _, err := os.Stat(filepath.Join(te.cfg.Dir, "state.json")); err != nil {
		t.Fatalf("state.json not rewritten: %v", err)
	}
	te.Engine.Close()
	for _, name := range stateFiles {
		if err := os.Remove(filepath.Join(te.cfg.Dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Open(ctx, te.cfg)
	if !errors.Is(err, ErrStateLost) || !strings.Contains(err.Error(), filepath.Join(te.cfg.Dir, "state.json")) {
		t.Fatalf("Open with its state gone: %v", err)
	}
	te.Engine = nil
	if _, err := os.Stat(filepath.Join(te.cfg.Dir, "state.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused Open wrote a new state.json")
	}
}

// TestFencedWhileWaitingForJournal: a write waiting for journal space when
// the cut that would free it finds the volume fenced fails with ErrFenced
// rather than waiting for space a fenced volume never gets back.
func TestFencedWhileWaitingForJournal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{bufferBytes: 4 << 20})
	const vol = "vol-000000000000F3A17"
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	// Another writer takes the volume; this engine learns it at its next
	// publish, which journal pressure forces.
	if _, err := te.store.Put(ctx, headKey(vol), []byte(`{"seq":0,"owner":"gw-other","token":"0123456789abcdef"}`), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	v := te.vol(vol)
	var err error
	for i := range 64 {
		if err = v.WriteAt(ctx, pattern(byte(i), BlockSize), int64(i)*BlockSize); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFenced) || ctx.Err() != nil {
		t.Fatalf("write once the journal is full and the volume fenced: %v (deadline: %v), want ErrFenced at once", err, ctx.Err())
	}
}

// TestFencedBaseNeverStale: fenced at Open, a data dir whose newest root is
// gone (swept by GC) does not fall back to an older root the journal was
// released past: such reads fail instead of returning stale data.
func TestFencedBaseNeverStale(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	const vol = "vol-00000000000057A1E"
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: vol, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	if err := te.vol(vol).WriteAt(ctx, pattern(3, BlockSize), 0); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, vol); err != nil { // journal released past the first root
		t.Fatal(err)
	}
	newest := te.vol(vol).base.key()
	te.Engine.Close()
	if err := te.store.Delete(ctx, newest); err != nil {
		t.Fatal(err)
	}
	if _, err := te.store.Put(ctx, headKey(vol), []byte(`{"seq":5,"owner":"gw-other","token":"0123456789abcdef"}`), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	te.open()
	v := te.vol(vol)
	if v.Fenced() == nil {
		t.Fatal("not fenced")
	}
	p := make([]byte, 4096)
	if err := v.ReadAt(ctx, p, 0); !errors.Is(err, ErrFenced) {
		t.Fatalf("read of a block only the swept root held: %v (data %x…), want an ErrFenced error", err, p[:8])
	}
}
