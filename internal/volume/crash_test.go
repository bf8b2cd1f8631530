package volume

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/blob/fs"
	"github.com/volgw/volgw/internal/blob/s3"
	"github.com/volgw/volgw/internal/control"
)

// The crash test re-executes the test binary as a child that runs a
// deterministic sequence of operations (op i depends only on the seed and
// i) against one volume, and kills it with SIGKILL at a random instant. The
// parent then reopens the engine on the same state dir and store, and
// checks the invariants of a crash:
//   - the engine opens (journal replayed) and Check passes: no root, head or
//     snapshot in the store names a missing object;
//   - the volume reads as the state after some prefix of the operations,
//     at least up to the last Flush that returned;
//   - its recovery point (read through a clone) is the state after a
//     prefix no longer than that, and never goes backwards;
//   - the newest snapshot holds the state after some prefix.
// The next child continues from the recovered prefix.

const (
	crashVolume = "vol-00000000000000C0A"
	crashBytes  = 8 * BlockSize // tracked region
)

type crashOp struct {
	kind     int // opWrite, opUnmap, opFlush, opCut, opSnap
	off, n   int
	fill     uint64
	snapshot string
}

const (
	opWrite = iota
	opUnmap
	opFlush
	opCut
	opSnap
)

func crashOpAt(seed uint64, i int) crashOp {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	op := crashOp{}
	switch x := r.IntN(100); {
	case x < 70:
		op.kind = opWrite
	case x < 78:
		op.kind = opUnmap
	case x < 92:
		op.kind = opFlush
	case x < 98:
		op.kind = opCut
	default:
		op.kind = opSnap
		op.snapshot = fmt.Sprintf("snap-%017x", i)
	}
	op.off = r.IntN(crashBytes/512) * 512
	op.n = (1 + r.IntN(256)) * 512
	if r.IntN(4) == 0 {
		op.off, op.n = r.IntN(crashBytes/BlockSize)*BlockSize, BlockSize
	}
	op.n = min(op.n, crashBytes-op.off)
	op.fill = r.Uint64()
	return op
}

func (op crashOp) data() []byte {
	p := make([]byte, op.n)
	r := rand.New(rand.NewPCG(op.fill, 1))
	for i := 0; i < len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], r.Uint64())
	}
	return p
}

type crashEnv struct {
	Dir   string    // engine state dir and disks
	Store string    // "fs" or "s3"
	FSDir string    // fs store directory
	S3    s3.Config // s3 store
	Seed  uint64
	Start int
}

func (c *crashEnv) store(t testing.TB) blob.Store {
	if c.Store == "fs" {
		s, err := fs.New(c.FSDir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s, err := s3.New(context.Background(), c.S3)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// config is the child's: frequent cuts at random moments. The parent's
// verifying engine makes no cuts of its own (verifier true), so it can
// finish an operation the crash tore before anything is published.
func (c *crashEnv) config(store blob.Store, verifier bool) Config {
	cfg := Config{Dir: filepath.Join(c.Dir, "engine"), Store: store, CutInterval: 15 * time.Millisecond,
		DirtyBlocksCut: 4, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if verifier {
		// A short grace so that GC after each cycle keeps the store (and
		// Check's walk of it) small. Safe: the child is dead meanwhile.
		cfg.CutInterval, cfg.DirtyBlocksCut, cfg.GCGrace = -1, 1<<30, 2*time.Second
	}
	return cfg
}

func (c *crashEnv) disks() []control.Disk {
	return []control.Disk{
		{ID: "cache0", Path: filepath.Join(c.Dir, "cache0.img"), SizeBytes: 8 << 20, Use: control.DiskUseCache},
		{ID: "buf0", Path: filepath.Join(c.Dir, "buffer0.img"), SizeBytes: 6 << 20, Use: control.DiskUseUploadBuffer},
	}
}

// TestCrashChild is the child side; it only runs when re-executed by
// TestCrash.
func TestCrashChild(t *testing.T) {
	envJSON := os.Getenv("VOLGW_CRASH_CHILD")
	if envJSON == "" {
		t.Skip("runs only as TestCrash's child")
	}
	var c crashEnv
	if err := json.Unmarshal([]byte(envJSON), &c); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e, err := Open(ctx, c.config(c.store(t), false))
	if err != nil {
		t.Fatalf("child Open: %v", err)
	}
	for _, d := range c.disks() {
		if err := e.AddDisk(ctx, d); err != nil {
			t.Fatalf("child AddDisk: %v", err)
		}
	}
	if _, err := e.Volume(crashVolume); err != nil {
		if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: crashVolume, SizeBytes: gib}); err != nil {
			t.Fatalf("child CreateVolume: %v", err)
		}
	}
	v, err := e.Volume(crashVolume)
	if err != nil {
		t.Fatal(err)
	}
	progress, err := os.OpenFile(filepath.Join(c.Dir, "progress"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var word [8]byte
	mark := func(at int64, n int) {
		binary.LittleEndian.PutUint64(word[:], uint64(n))
		if _, err := progress.WriteAt(word[:], at); err != nil {
			t.Fatal(err)
		}
	}
	for i := c.Start; ; i++ {
		mark(8, i+1) // issued: op i may have taken effect
		op := crashOpAt(c.Seed, i)
		switch op.kind {
		case opWrite:
			err = v.WriteAt(ctx, op.data(), int64(op.off))
		case opUnmap:
			err = v.Unmap(ctx, int64(op.off), int64(op.n))
		case opFlush:
			if err = v.Flush(ctx); err == nil {
				mark(0, i+1) // flushed: every op before i+1 is durable
			}
		case opCut:
			err = e.Cut(ctx, crashVolume)
		case opSnap:
			_, err = e.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: op.snapshot, VolumeID: crashVolume, FromRecoveryPoint: true})
			if errors.Is(err, ErrExists) {
				err = nil // redone after a crash
			}
		}
		if err != nil {
			t.Fatalf("child op %d (%+v): %v", i, op.kind, err)
		}
	}
}

// crashModel holds the state after every prefix of the op sequence, as
// hashes, extending itself on demand.
type crashModel struct {
	seed   uint64
	hseed  maphash.Seed
	data   []byte
	hashes []uint64 // hashes[i]: state after ops [0, i)
}

func (m *crashModel) upTo(n int) {
	for len(m.hashes) <= n {
		i := len(m.hashes) - 1
		op := crashOpAt(m.seed, i)
		switch op.kind {
		case opWrite:
			copy(m.data[op.off:], op.data())
		case opUnmap:
			clear(m.data[op.off : op.off+op.n])
		}
		m.hashes = append(m.hashes, maphash.Bytes(m.hseed, m.data))
	}
}

// find returns the largest i in [lo, hi] whose state hashes like data, or
// -1. (Largest, because ops that change nothing — flushes, cuts — make
// consecutive prefixes equal.)
func (m *crashModel) find(data []byte, lo, hi int) int {
	m.upTo(hi)
	h := maphash.Bytes(m.hseed, data)
	for i := hi; i >= lo; i-- {
		if m.hashes[i] == h {
			return i
		}
	}
	return -1
}

func TestCrash(t *testing.T) {
	cycles := 200
	if os.Getenv("VOLGW_LONG") != "" {
		cycles = 2000
	}
	t.Run("fs", func(t *testing.T) {
		c := crashEnv{Dir: t.TempDir(), Store: "fs", FSDir: t.TempDir()}
		runCrash(t, c, cycles)
	})
	t.Run("s3", func(t *testing.T) {
		srv := blobtest.StartVersityGW(t)
		c := crashEnv{Dir: t.TempDir(), Store: "s3", S3: srv.Config("crash")}
		runCrash(t, c, cycles)
	})
}

func runCrash(t *testing.T, c crashEnv, cycles int) {
	c.Seed = uint64(time.Now().UnixNano())
	if s := os.Getenv("VOLGW_SEED"); s != "" {
		var err error
		if c.Seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (replay with VOLGW_SEED=%d)", c.Seed, c.Seed)
	rng := rand.New(rand.NewPCG(c.Seed, 42))
	m := &crashModel{seed: c.Seed, hseed: maphash.MakeSeed(), data: make([]byte, crashBytes)}
	m.hashes = []uint64{maphash.Bytes(m.hseed, m.data)}
	store := c.store(t)
	ctx := context.Background()
	at, rpAt, snapsChecked, maxOps, torn := 0, 0, 0, 0, 0
	lastSnap := ""
	for cycle := range cycles {
		c.Start = at
		env, _ := json.Marshal(c)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "VOLGW_CRASH_CHILD="+string(env))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		// Kill at a random instant: sometimes during Open and replay, mostly
		// in the middle of writes, flushes, cuts and snapshots.
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		cmd.Process.Kill()
		err := cmd.Wait()
		if err == nil {
			t.Fatalf("cycle %d: child exited by itself: %v\n%s", cycle, err, out.Bytes())
		}
		if bytes.Contains(out.Bytes(), []byte("--- FAIL")) {
			t.Fatalf("cycle %d: child failed:\n%s", cycle, out.Bytes())
		}

		var flushed, issued int
		if b, err := os.ReadFile(filepath.Join(c.Dir, "progress")); err == nil && len(b) == 16 {
			flushed, issued = int(binary.LittleEndian.Uint64(b)), int(binary.LittleEndian.Uint64(b[8:]))
		}
		issued = max(issued, at)

		e, err := Open(ctx, c.config(store, true))
		if err != nil {
			t.Fatalf("cycle %d: Open after crash: %v", cycle, err)
		}
		if err := e.Check(ctx); err != nil {
			e.Close()
			t.Fatalf("cycle %d: Check after crash: %v", cycle, err)
		}
		v, err := e.Volume(crashVolume)
		if err != nil { // killed before the volume was created
			e.Close()
			if at != 0 {
				t.Fatalf("cycle %d: volume lost: %v", cycle, err)
			}
			continue
		}
		got := make([]byte, crashBytes)
		if err := v.ReadAt(ctx, got, 0); err != nil {
			t.Fatalf("cycle %d: read: %v", cycle, err)
		}
		now := m.find(got, at, issued)
		if now < 0 && issued > at && m.torn(got, issued-1) {
			// The crash tore the operation in flight (a multi-block write or
			// unmap is one record per block; it was not acknowledged).
			// Finish it, so the state is a prefix again.
			op := crashOpAt(c.Seed, issued-1)
			if op.kind == opWrite {
				err = v.WriteAt(ctx, op.data(), int64(op.off))
			} else {
				err = v.Unmap(ctx, int64(op.off), int64(op.n))
			}
			if err != nil {
				t.Fatal(err)
			}
			now, torn = issued, torn+1
		}
		if now < 0 || now < flushed {
			e.Close()
			m.explain(t, got, at, issued)
			t.Fatalf("cycle %d: volume is not the state after any prefix in [%d, %d] (flushed %d; found %d)", cycle, at, issued, flushed, now)
		}
		// The recovery point, through a clone of it.
		clone := fmt.Sprintf("vol-%017X", cycle+1)
		if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: clone, SizeBytes: gib, Source: control.VolumeSource{SourceVolumeID: crashVolume}}); err != nil {
			t.Fatalf("cycle %d: clone: %v", cycle, err)
		}
		cv, _ := e.Volume(clone)
		if err := cv.ReadAt(ctx, got, 0); err != nil {
			t.Fatalf("cycle %d: read clone: %v", cycle, err)
		}
		rp := m.find(got, rpAt, now)
		if rp < 0 {
			t.Fatalf("cycle %d: recovery point is not a prefix in [%d, %d]", cycle, rpAt, now)
		}
		if err := e.DeleteVolume(ctx, clone); err != nil {
			t.Fatal(err)
		}
		// The newest snapshot, if a new one appeared.
		snaps, err := e.Snapshots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		newest := control.Snapshot{}
		for _, s := range snaps {
			if s.ID > newest.ID {
				newest = s
			}
		}
		if newest.ID > lastSnap {
			lastSnap = newest.ID
			restored := fmt.Sprintf("vol-%017X", cycle+1+1<<40)
			if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: restored, SizeBytes: gib, Source: control.VolumeSource{SnapshotID: newest.ID}}); err == nil {
				sv, _ := e.Volume(restored)
				if err := sv.ReadAt(ctx, got, 0); err != nil {
					t.Fatal(err)
				}
				if m.find(got, 0, now) < 0 {
					t.Fatalf("cycle %d: snapshot %s is not a prefix", cycle, newest.ID)
				}
				if err := e.DeleteVolume(ctx, restored); err != nil {
					t.Fatal(err)
				}
			} else {
				t.Fatalf("cycle %d: restore %s: %v", cycle, newest.ID, err)
			}
			// Keep only the newest, so Check and GC stay quick.
			for _, s := range snaps {
				if s.ID != newest.ID {
					if err := e.DeleteSnapshot(ctx, s.ID); err != nil {
						t.Fatalf("cycle %d: delete %s: %v", cycle, s.ID, err)
					}
				}
			}
			snapsChecked++
		}
		if _, err := e.GC(ctx); err != nil {
			t.Fatalf("cycle %d: GC: %v", cycle, err)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		maxOps = max(maxOps, now-at)
		at, rpAt = now, rp
	}
	t.Logf("%d cycles, %d operations survived in total, at most %d in one cycle, %d torn in flight; recovery point at op %d; %d snapshots checked", cycles, at, maxOps, torn, rpAt, snapsChecked)
}

// explain logs how data differs from the states it could have been.
func (m *crashModel) explain(t *testing.T, data []byte, lo, hi int) {
	state := make([]byte, crashBytes)
	for i := 0; i <= hi; i++ {
		if i >= lo {
			var diff []int
			for s := 0; s < crashBytes; s += 512 {
				if !bytes.Equal(state[s:s+512], data[s:s+512]) {
					diff = append(diff, s/512)
				}
			}
			if len(diff) > 12 {
				diff = diff[:12]
			}
			t.Logf("state %d: sectors differing: %v", i, diff)
		}
		if i == hi {
			break
		}
		op := crashOpAt(m.seed, i)
		if i >= lo-20 {
			t.Logf("op %d: kind %d off %d (sector %d) n %d", i, op.kind, op.off, op.off/512, op.n)
		}
		switch op.kind {
		case opWrite:
			copy(state[op.off:], op.data())
		case opUnmap:
			clear(state[op.off : op.off+op.n])
		}
	}
}

// stateAt recomputes the state after ops [0, n).
func (m *crashModel) stateAt(n int) []byte {
	state := make([]byte, crashBytes)
	for i := range n {
		op := crashOpAt(m.seed, i)
		switch op.kind {
		case opWrite:
			copy(state[op.off:], op.data())
		case opUnmap:
			clear(state[op.off : op.off+op.n])
		}
	}
	return state
}

// torn reports whether data is the state before op k with op k applied to
// some of its blocks but not all: what a crash in the middle of it leaves.
func (m *crashModel) torn(data []byte, k int) bool {
	op := crashOpAt(m.seed, k)
	if op.kind != opWrite && op.kind != opUnmap {
		return false
	}
	before := m.stateAt(k)
	after := bytes.Clone(before)
	if op.kind == opWrite {
		copy(after[op.off:], op.data())
	} else {
		clear(after[op.off : op.off+op.n])
	}
	if !bytes.Equal(data[:op.off], before[:op.off]) || !bytes.Equal(data[op.off+op.n:], before[op.off+op.n:]) {
		return false
	}
	for s := op.off; s < op.off+op.n; {
		e := min(op.off+op.n, (s/BlockSize+1)*BlockSize)
		if !bytes.Equal(data[s:e], before[s:e]) && !bytes.Equal(data[s:e], after[s:e]) {
			return false
		}
		s = e
	}
	return true
}
