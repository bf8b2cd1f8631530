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
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/blob/fs"
	"github.com/volgw/volgw/internal/blob/s3"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/seal"
	"github.com/volgw/volgw/internal/seal/sealtest"
)

// The crash test re-executes the test binary as a child that runs a
// deterministic sequence of operations (op i depends only on the seed and
// i) against one volume, and kills it with SIGKILL at a random instant. The
// parent then reopens the engine on the same state dir and store, and
// checks the invariants of a crash:
//   - the child died of the SIGKILL (a panic or an exit is a failure);
//   - the engine opens (journal replayed) and Check passes: no root, head or
//     snapshot in the store names a missing object;
//   - the volume reads as the state after some prefix of the operations,
//     at least up to the last one acknowledged: a SIGKILL loses no
//     acknowledged write (the journal's pages survive the process), flushed
//     or not;
//   - its recovery point (read through a clone) is the state after a
//     prefix no longer than that, and never goes backwards;
//   - the newest snapshot holds the state after some prefix.
// The next child continues from the recovered prefix. Over the run the
// recovery point and the snapshots must advance (uploads happen), so the
// test fails if cuts stop working. Then two more faults run against what
// the cycles left: a copy of the data dir writing beside the original (one
// of them is fenced, the other intact), and a backup of the data dir taken
// a few cycles earlier, restored (fenced at Open).
//
// Every parent call has a deadline (the store's calls each have one, and a
// watchdog ends a stuck cycle with its goroutines printed), so a hang fails
// with a message rather than the binary's timeout, which prints none of the
// subtest's log.

const (
	crashVolume = "vol-00000000000000C0A"
	crashBytes  = 8 * BlockSize // tracked region
)

// The companion volume: whole-block writes of companionBlock to its first
// companionBlocks blocks.
const (
	companionVolume = "vol-00000000000000C0B"
	companionBlocks = 2
)

// companionBlock is block b's content at write n: (b, n) repeated.
func companionBlock(b, n uint64) []byte {
	p := make([]byte, BlockSize)
	for off := 0; off < BlockSize; off += 16 {
		binary.LittleEndian.PutUint64(p[off:], b)
		binary.LittleEndian.PutUint64(p[off+8:], n)
	}
	return p
}

// checkCompanion: each of the companion's blocks, and of its recovery
// point (through a clone), is either never written (zeros) or one whole
// write of that block: no block torn, mixed up with another or another
// volume's, whatever cuts of the two volumes were in flight at the kill.
func checkCompanion(ctx context.Context, e *Engine, cycle int) error {
	if _, err := e.Volume(companionVolume); err != nil {
		return nil // killed before it was created
	}
	clone := fmt.Sprintf("vol-%017X", cycle+1+2<<40)
	if err := createRetrying(ctx, e, control.VolumeSpec{VolumeID: clone, SizeBytes: gib, Source: control.VolumeSource{SourceVolumeID: companionVolume}}); err != nil {
		return fmt.Errorf("companion clone: %w", err)
	}
	defer e.DeleteVolume(ctx, clone)
	for _, id := range []string{companionVolume, clone} {
		v, _ := e.Volume(id)
		got := make([]byte, BlockSize)
		for b := range uint64(companionBlocks) {
			if err := v.ReadAt(ctx, got, int64(b)*BlockSize); err != nil {
				return fmt.Errorf("%s block %d: %w", id, b, err)
			}
			if bytes.Equal(got, zeroBlock) {
				continue
			}
			n := binary.LittleEndian.Uint64(got[8:])
			if !bytes.Equal(got, companionBlock(b, n)) {
				return fmt.Errorf("%s block %d is not one whole write of it (starts %x)", id, b, got[:16])
			}
		}
	}
	return nil
}

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
	// Companion: the child also writes a second volume, so that cuts of
	// two volumes run at once when the kill strikes (checkCompanion).
	Companion bool
	// Move, in the move phase (crashMove): the child detaches the volume
	// after Move-1 operations. A child that finds the volume detached
	// attaches it first.
	Move int
	// Keyring, if set, is a keyring (seal.ParseKeyring) whose key "crash"
	// is the default: every volume is sealed. Compress compresses.
	Keyring  string
	Compress bool
	// ChildGC runs GC in the child too, every ChildGC, with the verifier's
	// short grace, so that kills land in the middle of GC rounds racing
	// cuts and snapshots.
	ChildGC time.Duration
}

func (c *crashEnv) store(t testing.TB) blob.Store {
	if c.Store == "fs" {
		s, err := fs.New(c.FSDir)
		if err != nil {
			t.Fatal(err)
		}
		return deadlineStore{s, time.Minute}
	}
	s, err := s3.New(context.Background(), c.S3)
	if err != nil {
		t.Fatal(err)
	}
	return deadlineStore{s, time.Minute}
}

// deadlineStore bounds every call: a request a server never answers fails
// (with a message) instead of hanging the test.
type deadlineStore struct {
	s blob.Store
	d time.Duration
}

func (s deadlineStore) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.s.Get(ctx, key)
}

func (s deadlineStore) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.s.GetRange(ctx, key, off, n)
}

func (s deadlineStore) Put(ctx context.Context, key string, data []byte, o blob.PutOptions) (blob.ObjectInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.s.Put(ctx, key, data, o)
}

func (s deadlineStore) Stat(ctx context.Context, key string) (blob.ObjectInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.s.Stat(ctx, key)
}

func (s deadlineStore) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.s.Delete(ctx, key)
}

func (s deadlineStore) List(ctx context.Context, prefix string, fn func(blob.ObjectInfo) error) error {
	ctx, cancel := context.WithTimeout(ctx, 5*s.d)
	defer cancel()
	return s.s.List(ctx, prefix, fn)
}

// config is the child's: frequent cuts at random moments. The parent's
// verifying engine makes no cuts of its own (verifier true), so it can
// finish an operation the crash tore before anything is published.
func (c *crashEnv) config(store blob.Store, verifier bool) Config {
	cfg := Config{Dir: filepath.Join(c.Dir, "engine"), Store: store, CutInterval: 15 * time.Millisecond,
		DirtyBlocksCut: 4, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		// Retention on, short: a few cycles' points are retained, so
		// checkRetained sees points of earlier children too.
		RecoveryPointRetention: crashRetention}
	if c.Keyring != "" {
		kr, err := seal.ParseKeyring(strings.NewReader(c.Keyring))
		if err != nil {
			panic(err)
		}
		if err := kr.SetDefault("crash"); err != nil {
			panic(err)
		}
		cfg.Keys = kr
	}
	cfg.Compress = c.Compress
	if c.ChildGC > 0 {
		cfg.GCGrace, cfg.GCInterval = crashGCGrace, c.ChildGC
	}
	if verifier {
		// A short grace so that GC after each cycle keeps the store (and
		// Check's walk of it) small. Safe: the child is dead meanwhile.
		cfg.CutInterval, cfg.DirtyBlocksCut, cfg.GCGrace, cfg.GCInterval = -1, 1<<30, crashGCGrace, 0
	}
	return cfg
}

// crashGCGrace is the GC grace of the verifier, and of a child that runs
// GC: short, so that rounds reclaim within the test.
const crashGCGrace = 2 * time.Second

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
		if c.Move > 0 {
			// The parent handed it back detached (crashMove).
			if _, err := e.AttachVolume(ctx, crashVolume); err != nil {
				t.Fatalf("child AttachVolume: %v", err)
			}
		} else if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: crashVolume, SizeBytes: gib}); err != nil {
			t.Fatalf("child CreateVolume: %v", err)
		}
	}
	v, err := e.Volume(crashVolume)
	if err != nil {
		t.Fatal(err)
	}
	if c.Companion {
		startCompanion(ctx, t, e, c.Start)
	}
	// Open and recovery are done: the parent may now time its kill from
	// here (killCrashChild).
	if err := os.WriteFile(filepath.Join(c.Dir, "ready"), nil, 0o600); err != nil {
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
		if c.Move > 0 && i == c.Start+c.Move-1 {
			mark(16, i+1) // detach issued after ops [0, i)
			if err := e.DetachVolume(ctx, crashVolume, nil); err != nil {
				t.Fatalf("child DetachVolume: %v", err)
			}
			mark(24, 1)           // detach returned
			time.Sleep(time.Hour) // until the kill
		}
		mark(8, i+1) // issued: op i may have taken effect
		op := crashOpAt(c.Seed, i)
		switch op.kind {
		case opWrite:
			err = v.WriteAt(ctx, op.data(), int64(op.off))
		case opUnmap:
			err = v.Unmap(ctx, int64(op.off), int64(op.n))
		case opFlush:
			err = v.Flush(ctx)
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
		mark(0, i+1) // acknowledged: every op before i+1 returned
	}
}

// startCompanion has the child write a second volume at the same time as
// the first, so that the uploader cuts two volumes at once when the kill
// strikes (checkCompanion checks it).
func startCompanion(ctx context.Context, t *testing.T, e *Engine, start int) {
	if _, err := e.Volume(companionVolume); err != nil {
		if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: companionVolume, SizeBytes: gib}); err != nil {
			t.Fatalf("child CreateVolume: %v", err)
		}
	}
	cv, err := e.Volume(companionVolume)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for n := uint64(start) << 20; ; n++ {
			b := n % companionBlocks
			if err := cv.WriteAt(ctx, companionBlock(b, n), int64(b)*BlockSize); err != nil {
				panic(fmt.Sprintf("companion write: %v", err)) // fails the test: only the kill may end the child
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
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
	// Two volumes written at once: the uploader cuts them in parallel.
	t.Run("fs-two-volumes", func(t *testing.T) {
		c := crashEnv{Dir: t.TempDir(), Store: "fs", FSDir: t.TempDir(), Companion: true}
		runCrash(t, c, cycles/4)
	})
	// Sealed and compressed, with GC running in the child too: kills
	// land in GC rounds racing cuts and snapshots, on objects only the
	// key opens.
	t.Run("fs-sealed-gc", func(t *testing.T) {
		// GC every 200 ms: rounds race cuts in most cycles and leave the
		// child (on 2 loaded vCPUs) time to make progress between kills.
		c := crashEnv{Dir: t.TempDir(), Store: "fs", FSDir: t.TempDir(), Keyring: sealtest.Line(t, "crash"), Compress: true, ChildGC: 200 * time.Millisecond}
		runCrash(t, c, cycles/2)
		sealed := 0
		for name, b := range blobtest.Files(t, c.FSDir) {
			if strings.Contains(name, "/.volgw-tmp-") {
				continue // a PUT the kill cut short (blob/fs): never an object
			}
			if strings.HasPrefix(name, "blocks/") || strings.HasPrefix(name, "pages/") || strings.Contains(name, "/roots/") {
				if !bytes.HasPrefix(b, []byte("VGE1")) {
					t.Errorf("%s is not sealed", name)
				}
				sealed++
			}
		}
		t.Logf("%d sealed objects in the store at the end", sealed)
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
	// Cache slots start as garbage, as after a restart (sparse.go).
	for _, d := range c.disks() {
		if d.Use == control.DiskUseCache {
			garbageFile(t, d.Path, d.SizeBytes)
		}
	}
	at, rpAt, snapsChecked, maxOps, torn, rpMoves := 0, 0, 0, 0, 0, 0
	retainedChecked, retainedOlder := 0, 0
	lastSnap := ""
	var backup crashBackup
	var endCycle func()
	defer func() {
		if endCycle != nil {
			endCycle()
		}
	}()
	for cycle := range cycles {
		// A cycle takes well under a second; one stuck for minutes says
		// where, with the seed, even if the binary's timeout would strike
		// first and swallow the subtest's log.
		watchdog := time.AfterFunc(5*time.Minute, func() {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "%s: cycle %d stuck for 5 minutes (seed %d); goroutines:\n%s\n", t.Name(), cycle, c.Seed, buf)
			panic(fmt.Sprintf("%s: cycle %d stuck (seed %d)", t.Name(), cycle, c.Seed))
		})
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		endCycle = func() { cancel(); watchdog.Stop() }
		c.Start = at
		// Kill at a random instant: in one cycle of four from the child's
		// start (sometimes during Open and replay), in the others once it
		// is ready, so that a slow, loaded machine still lets children
		// make progress. One cycle in five lets the child run until it
		// has acknowledged the next snapshot of its sequence (and then a
		// random instant more): the progress check below must not depend
		// on how fast a loaded machine runs the child.
		minAcked := 0
		if cycle%5 == 4 {
			minAcked = nextSnapshotOp(c.Seed, at) + 1
		}
		killCrashChild(t, c, rng.IntN(4) != 0, minAcked, time.Duration(rng.IntN(150))*time.Millisecond, fmt.Sprintf("cycle %d", cycle))

		var acked, issued int
		if b, err := os.ReadFile(filepath.Join(c.Dir, "progress")); err == nil && len(b) == 16 {
			acked, issued = int(binary.LittleEndian.Uint64(b)), int(binary.LittleEndian.Uint64(b[8:]))
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
		if err := checkCompanion(ctx, e, cycle); err != nil {
			e.Close()
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		v, err := e.Volume(crashVolume)
		if err != nil { // killed before the volume was created
			e.Close()
			if at != 0 {
				t.Fatalf("cycle %d: volume lost: %v", cycle, err)
			}
			endCycle() // or its watchdog fires minutes later, in another test
			continue
		}
		now, fixed, got, err := verifyCrashPrefix(ctx, e, v, m, c.Seed, at, issued, acked)
		if err != nil {
			e.Close()
			if got != nil {
				m.explain(t, got, at, issued)
			}
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		if fixed {
			torn++
		}
		// The recovery point, through a clone of it.
		clone := fmt.Sprintf("vol-%017X", cycle+1)
		if err := createRetrying(ctx, e, control.VolumeSpec{VolumeID: clone, SizeBytes: gib, Source: control.VolumeSource{SourceVolumeID: crashVolume}}); err != nil {
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
		// Retained points (recovery-point retention): a sample restores.
		n, listed, err := checkRetained(ctx, e, m, rng, cycle, rp)
		if err != nil {
			e.Close()
			t.Fatalf("cycle %d: retained points: %v", cycle, err)
		}
		retainedChecked += n
		if listed > 1 {
			retainedOlder++
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
			if err := createRetrying(ctx, e, control.VolumeSpec{VolumeID: restored, SizeBytes: gib, Source: control.VolumeSource{SnapshotID: newest.ID}}); err == nil {
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
		if rp > rpAt {
			rpMoves++
		}
		at, rpAt = now, rp
		if cycle == max(0, cycles-4) {
			// Late, so that its root is usually still in the store (the
			// verifier's GC has a short grace).
			backup = crashBackup{dir: t.TempDir(), at: at}
			copyDir(t, c.Dir, backup.dir)
		}
		endCycle()
	}
	t.Logf("%d cycles, %d operations survived in total, at most %d in one cycle, %d torn in flight; recovery point at op %d, advanced in %d cycles; %d snapshots checked; %d retained points restored, older points listed in %d cycles",
		cycles, at, maxOps, torn, rpAt, rpMoves, snapsChecked, retainedChecked, retainedOlder)
	if retainedOlder < cycles/20 {
		t.Fatalf("retention kept no older point: only %d of %d cycles had one", retainedOlder, cycles)
	}
	// Progress: cuts publish and snapshots complete. A broken uploader
	// leaves the recovery point at the volume's creation and every state
	// above still a valid prefix.
	if rpMoves < cycles/20 || snapsChecked < 2 {
		t.Fatalf("no progress: the recovery point advanced in %d of %d cycles, %d new snapshots", rpMoves, cycles, snapsChecked)
	}
	if c.Companion {
		// The faults below fence a data dir's volumes; a fenced companion
		// would keep its journal records and stall the other's writes (a
		// known limit, doc.go). They are run without it.
		return
	}
	at = crashMove(t, c, store, m, at, cycles/6)
	crashClonedDataDir(t, c, store, m, at) // publishes: the backup is now old
	crashOldBackup(t, c, store, m, backup)
}

// crashRetention is the crash test's recovery-point retention window.
const crashRetention = 2 * time.Second

// checkRetained checks the volume's retained recovery points after a crash:
// the newest is the recovery point (whose prefix, rp, the clone found);
// a sample of them (see below: over the run the points of every age are
// sampled) each restore, through a
// snapshot of the point and a volume made from it, to the state after a
// prefix of the operations no longer than the next sampled point's, so no
// longer than rp: a prefix of acknowledged writes, in order. It returns
// how many points it restored.
func checkRetained(ctx context.Context, e *Engine, m *crashModel, rng *rand.Rand, cycle, rp int) (restored, listed int, err error) {
	pts, err := e.RetainedRecoveryPoints(ctx, crashVolume)
	if err != nil {
		return 0, 0, err
	}
	if len(pts) == 0 || !pts[len(pts)-1].Current {
		return 0, len(pts), fmt.Errorf("%d points, the last not the current one: %+v", len(pts), pts)
	}
	for i := 1; i < len(pts); i++ {
		if pts[i].Seq <= pts[i-1].Seq || pts[i].Time.Before(pts[i-1].Time) {
			return 0, len(pts), fmt.Errorf("points out of order: %+v then %+v", pts[i-1], pts[i])
		}
	}
	// Newest first: every third cycle one older point, every sixth also
	// the current one and a second older one (a restore costs about as
	// much as the rest of a cycle, so this keeps the run's time close to
	// what it was without retention; over 200 cycles points of every age
	// are sampled).
	var sample []int
	if cycle%3 != 0 {
		return 0, len(pts), nil
	}
	if cycle%6 == 0 {
		sample = append(sample, len(pts)-1)
	}
	if k := len(pts) - 1; k > 0 {
		a := rng.IntN(k)
		if b := rng.IntN(k); b != a && cycle%6 == 0 {
			sample = append(sample, max(a, b), min(a, b))
		} else {
			sample = append(sample, a)
		}
	}
	// Pin them all first: the window moves on while they are restored.
	ids := make([]string, len(sample))
	for j, i := range sample {
		p := pts[i]
		id := fmt.Sprintf("snap-rp%05d%d", cycle, j)
		s, pt, err := e.SnapshotRetainedRecoveryPoint(ctx, control.RetainedSnapshotRequest{SnapshotID: id, VolumeID: crashVolume, Seq: p.Seq, BySeq: true})
		for try := 0; errors.Is(err, ErrLeaseExpired) && try < 4; try++ { // abandoned on a loaded machine: retried, as by a client
			s, pt, err = e.SnapshotRetainedRecoveryPoint(ctx, control.RetainedSnapshotRequest{SnapshotID: id, VolumeID: crashVolume, Seq: p.Seq, BySeq: true})
		}
		if i != len(pts)-1 && errors.Is(err, control.ErrNoRetainedRecoveryPoint) {
			continue // it left the window since the listing
		}
		if err != nil {
			return j, len(pts), fmt.Errorf("snapshot of %+v: %w", p, err)
		}
		if !s.RecoveryPointTime.Equal(p.Time) || pt != p {
			return j, len(pts), fmt.Errorf("snapshot of %+v holds the point of %v", p, s.RecoveryPointTime)
		}
		ids[j] = id
	}
	hi := rp
	got := make([]byte, crashBytes)
	for j, i := range sample {
		p, id := pts[i], ids[j]
		if id == "" {
			continue
		}
		restored++
		rv := fmt.Sprintf("vol-%017X", cycle+1+3<<40+j<<44)
		if err := createRetrying(ctx, e, control.VolumeSpec{VolumeID: rv, SizeBytes: gib, Source: control.VolumeSource{SnapshotID: id}}); err != nil {
			return j, len(pts), fmt.Errorf("restore of %+v: %w", p, err)
		}
		rvol, err := e.Volume(rv)
		if err != nil {
			return j, len(pts), err
		}
		if err := rvol.ReadAt(ctx, got, 0); err != nil {
			return j, len(pts), fmt.Errorf("read of %+v: %w", p, err)
		}
		k := m.find(got, 0, hi)
		if k < 0 {
			return j, len(pts), fmt.Errorf("point %+v (of %d) is not the state after a prefix in [0, %d]", p, len(pts), hi)
		}
		if i == len(pts)-1 && k != rp {
			return j, len(pts), fmt.Errorf("the current point %+v is prefix %d, the recovery point %d", p, k, rp)
		}
		hi = k
		if err := e.DeleteVolume(ctx, rv); err != nil {
			return j, len(pts), err
		}
		if err := e.DeleteSnapshot(ctx, id); err != nil {
			return j, len(pts), err
		}
	}
	return restored, len(pts), nil
}

// crashBackup is a copy of the crash's data dir taken between cycles,
// holding the volume as of op at.
type crashBackup struct {
	dir string
	at  int
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

// crashClonedDataDir runs a copy of the crash's data dir beside the
// original, on the same store, both writing and flushing with frequent cuts
// until one is fenced. Then: exactly one is fenced; it acknowledged nothing
// after its first refusal; it still reads every write it acknowledged; the
// winner reads every write it acknowledged, before and after a restart,
// and none of the loser's; the store passes Check; the fence survives a
// restart.
func crashClonedDataDir(t *testing.T, c crashEnv, store blob.Store, m *crashModel, at int) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	envs := []crashEnv{c, c}
	envs[1].Dir = t.TempDir()
	copyDataDir(t, c.Dir, envs[1].Dir, c.Dir)
	type side struct {
		e       *Engine
		log     logBuf
		model   []byte
		acked   int
		refused int
		late    int // acknowledged after a refusal
		err     error
	}
	sides := make([]*side, 2)
	for i, env := range envs {
		sd := &side{model: m.stateAt(at)}
		// No cuts but those the ops below ask for: both sides write and
		// flush before either can publish.
		cfg := env.config(store, true)
		cfg.Logger = slog.New(slog.NewTextHandler(&sd.log, nil))
		e, err := Open(ctx, cfg)
		if err != nil {
			t.Fatalf("clone phase: Open %s: %v", env.Dir, err)
		}
		sd.e = e
		defer func() { sd.e.Close() }()
		sides[i] = sd
	}
	var fencedOnce atomic.Bool
	var wg, ready sync.WaitGroup
	ready.Add(len(sides))
	for i, sd := range sides {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readied := false
			defer func() {
				if !readied {
					ready.Done()
				}
			}()
			v, err := sd.e.Volume(crashVolume)
			if err != nil {
				sd.err = err
				return
			}
			rng := rand.New(rand.NewPCG(c.Seed, uint64(1000+i)))
			after := 0 // ops since either side was refused
			for k := 0; k < 4000 && after < 40; k++ {
				if k == 10 {
					// Both sides have written and flushed; now race.
					ready.Done()
					readied = true
					ready.Wait()
				}
				if fencedOnce.Load() {
					after++
				}
				var err error
				off := rng.IntN(crashBytes/512) * 512
				n := min((1+rng.IntN(256))*512, crashBytes-off)
				var p []byte
				switch x := rng.IntN(20); {
				case k < 10:
					p = make([]byte, n) // first a few writes on both sides
					for j := range p {
						p[j] = byte(rng.Uint32())
					}
					err = v.WriteAt(ctx, p, int64(off))
					if err == nil && k == 9 {
						err = v.Flush(ctx)
					}
				case x < 3:
					err = v.Flush(ctx)
				case x < 6:
					err = sd.e.Cut(ctx, crashVolume)
				default:
					p = make([]byte, n)
					for j := range p {
						p[j] = byte(rng.Uint32())
					}
					err = v.WriteAt(ctx, p, int64(off))
				}
				switch {
				case err == nil && sd.refused > 0:
					sd.late++
				case err == nil:
					sd.acked++
					if p != nil {
						copy(sd.model[off:], p)
					}
				case errors.Is(err, ErrFenced) && errors.Is(err, control.ErrVolumeNotReady):
					sd.refused++
					fencedOnce.Store(true)
				default:
					sd.err = fmt.Errorf("op %d: %w", k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var winner, loser *side
	for _, sd := range sides {
		if sd.err != nil {
			t.Fatalf("clone phase: %v", sd.err)
		}
		v, _ := sd.e.Volume(crashVolume)
		if v.Fenced() != nil {
			loser = sd
		} else {
			winner = sd
		}
	}
	if winner == nil || loser == nil {
		t.Fatalf("clone phase: want one side fenced, got fenced: %v, %v", sides[0].e.vols[crashVolume].Fenced(), sides[1].e.vols[crashVolume].Fenced())
	}
	if loser.late > 0 || loser.refused == 0 {
		t.Fatalf("clone phase: the loser acknowledged %d ops after its first refusal (%d refused)", loser.late, loser.refused)
	}
	if !strings.Contains(loser.log.String(), "level=ERROR") {
		t.Fatalf("clone phase: the loser logged no ERROR:\n%s", loser.log.String())
	}
	read := func(e *Engine) []byte {
		t.Helper()
		v, err := e.Volume(crashVolume)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, crashBytes)
		if err := v.ReadAt(ctx, got, 0); err != nil {
			t.Fatalf("clone phase: read: %v", err)
		}
		return got
	}
	if !bytes.Equal(read(loser.e), loser.model) {
		t.Fatal("clone phase: the fenced copy does not read every write it acknowledged")
	}
	if !bytes.Equal(read(winner.e), winner.model) {
		t.Fatal("clone phase: the winner does not read every write it acknowledged")
	}
	if err := winner.e.Cut(ctx, crashVolume); err != nil {
		t.Fatalf("clone phase: winner's cut: %v", err)
	}
	// Restart both: the winner holds its writes, from its journal and the
	// store; the loser is still fenced and still reads what it holds.
	for i, sd := range sides {
		if err := sd.e.Close(); err != nil {
			t.Fatal(err)
		}
		e, err := Open(ctx, envs[i].config(store, true))
		if err != nil {
			t.Fatalf("clone phase: reopen: %v", err)
		}
		sd.e = e
	}
	if v, _ := loser.e.Volume(crashVolume); v.Fenced() == nil {
		t.Fatal("clone phase: the fence did not survive a restart")
	}
	if !bytes.Equal(read(loser.e), loser.model) {
		t.Fatal("clone phase: after a restart the fenced copy does not read what it holds")
	}
	if !bytes.Equal(read(winner.e), winner.model) {
		t.Fatal("clone phase: after a restart the winner does not read every write it acknowledged")
	}
	if err := winner.e.Check(ctx); err != nil {
		t.Fatalf("clone phase: %v", err)
	}
	// The winner's recovery point, through a clone, is its model (it was
	// cut with nothing written after).
	if err := winner.e.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-000000000000C0A0C", SizeBytes: gib, Source: control.VolumeSource{SourceVolumeID: crashVolume}}); err != nil {
		t.Fatal(err)
	}
	cv, _ := winner.e.Volume("vol-000000000000C0A0C")
	got := make([]byte, crashBytes)
	if err := cv.ReadAt(ctx, got, 0); err != nil || !bytes.Equal(got, winner.model) {
		t.Fatalf("clone phase: the winner's recovery point is not its last cut (%v)", err)
	}
	t.Logf("clone phase: the winner acknowledged %d ops, the loser %d before its fence and refused %d after", winner.acked, loser.acked, loser.refused)
}

// crashOldBackup restores the data dir copied near the end of the cycles:
// the volume's head has moved on since, so it is fenced at Open; it takes
// no writes, reports no recovery point, and reads what the backup held (or,
// if GC has since swept its last root, refuses those reads: never another
// writer's data).
func crashOldBackup(t *testing.T, c crashEnv, store blob.Store, m *crashModel, b crashBackup) {
	if b.dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env := c
	env.Dir = t.TempDir()
	copyDataDir(t, b.dir, env.Dir, c.Dir)
	var log logBuf
	cfg := env.config(store, true)
	cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
	e, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("old backup: Open: %v", err)
	}
	defer e.Close()
	v, err := e.Volume(crashVolume)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Fenced(); !errors.Is(err, control.ErrVolumeNotReady) {
		t.Fatalf("old backup: not fenced at Open: %v", err)
	}
	if !strings.Contains(log.String(), "level=ERROR") {
		t.Fatalf("old backup: no ERROR logged:\n%s", log.String())
	}
	if err := v.WriteAt(ctx, make([]byte, 4096), 0); !errors.Is(err, ErrFenced) {
		t.Fatalf("old backup: write: %v", err)
	}
	if err := v.Flush(ctx); !errors.Is(err, ErrFenced) {
		t.Fatalf("old backup: flush: %v", err)
	}
	if _, err := e.RecoveryPoint(ctx, crashVolume); !errors.Is(err, control.ErrVolumeNotReady) {
		t.Fatalf("old backup: recovery point: %v", err)
	}
	got := make([]byte, crashBytes)
	switch err := v.ReadAt(ctx, got, 0); {
	case err == nil:
		if !bytes.Equal(got, m.stateAt(b.at)) {
			t.Fatalf("old backup: reads something other than what the backup held (op %d; it is op %d's; base %+v; %s)", b.at, m.find(got, 0, b.at+2000), v.base.key(), log.String())
		}
		t.Logf("old backup: fenced, reads the state of op %d it held", b.at)
	case errors.Is(err, ErrFenced):
		t.Logf("old backup: fenced; its last root was swept by GC since: %v", err)
	default:
		t.Fatalf("old backup: read: %v", err)
	}
}

// crashMove is the move phase: a child writes, then detaches the volume,
// and is killed at an instant swept across the cycles (during its Open,
// its attach of the volume handed back, its writes, the detach's cuts and
// head PUT, or after). After each kill, the data dir either still holds
// the volume, reading a prefix that includes every acknowledged write, or
// has let it go, and then another engine on the same store attaches it
// and reads exactly every write made before the detach (all acknowledged:
// a detach publishes them), while this data dir is refused the volume
// (ErrVolumeInUse). That engine detaches it again and the next child
// attaches it back. At the end the volume is attached here again.
func crashMove(t *testing.T, c crashEnv, store blob.Store, m *crashModel, at, cycles int) int {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(c.Seed, 7))
	progressPath := filepath.Join(c.Dir, "progress")
	stayed, moved, handedBack, midDetach := 0, 0, 0, 0
	for cycle := range cycles {
		// Clear the detach marks (offsets 16 and 24).
		if f, err := os.OpenFile(progressPath, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
			t.Fatal(err)
		} else {
			f.WriteAt(make([]byte, 16), 16)
			f.Close()
		}
		cc := c
		cc.Start, cc.Move = at, 1+rng.IntN(30)
		killCrashChild(t, cc, false, 0, time.Duration(cycle%12)*12*time.Millisecond+time.Duration(rng.IntN(25))*time.Millisecond, fmt.Sprintf("move cycle %d", cycle))
		var acked, issued, detachAt, detached int
		if b, err := os.ReadFile(progressPath); err == nil && len(b) == 32 {
			acked, issued = int(binary.LittleEndian.Uint64(b)), int(binary.LittleEndian.Uint64(b[8:]))
			detachAt, detached = int(binary.LittleEndian.Uint64(b[16:])), int(binary.LittleEndian.Uint64(b[24:]))
		}
		issued = max(issued, at)
		if detachAt > 0 && detached == 0 {
			midDetach++
		}
		e, err := Open(ctx, c.config(store, true))
		if err != nil {
			t.Fatalf("move cycle %d: Open after crash: %v", cycle, err)
		}
		if err := e.Check(ctx); err != nil {
			e.Close()
			t.Fatalf("move cycle %d: Check after crash: %v", cycle, err)
		}
		if v, err := e.Volume(crashVolume); err == nil {
			if detached != 0 {
				e.Close()
				t.Fatalf("move cycle %d: DetachVolume returned, yet the data dir still holds the volume", cycle)
			}
			now, _, _, err := verifyCrashPrefix(ctx, e, v, m, c.Seed, at, issued, acked)
			e.Close()
			if err != nil {
				t.Fatalf("move cycle %d: %v", cycle, err)
			}
			at = now
			stayed++
			continue
		}
		// Let go: detached by the child, or never attached back by it.
		want := at
		if detachAt > 0 {
			want = detachAt - 1
			moved++
		} else {
			handedBack++
		}
		if acked > want {
			e.Close()
			t.Fatalf("move cycle %d: the volume left after op %d but op %d was acknowledged", cycle, want, acked)
		}
		other := c
		other.Dir = t.TempDir()
		b, err := Open(ctx, other.config(store, true))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range other.disks() {
			if err := b.AddDisk(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.AttachVolume(ctx, crashVolume); err != nil {
			t.Fatalf("move cycle %d: another engine attaching the volume let go: %v", cycle, err)
		}
		bv, _ := b.Volume(crashVolume)
		got := make([]byte, crashBytes)
		if err := bv.ReadAt(ctx, got, 0); err != nil {
			t.Fatal(err)
		}
		if m.find(got, want, want) < 0 {
			m.explain(t, got, at, issued)
			t.Fatalf("move cycle %d: attached elsewhere, the volume is not the state after op %d (acknowledged %d, issued %d)", cycle, want, acked, issued)
		}
		if _, err := e.AttachVolume(ctx, crashVolume); !errors.Is(err, control.ErrVolumeInUse) {
			t.Fatalf("move cycle %d: the old data dir attaching a volume another engine holds: %v, want ErrVolumeInUse", cycle, err)
		}
		if err := b.DetachVolume(ctx, crashVolume, nil); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(b.Close(), e.Close()); err != nil {
			t.Fatal(err)
		}
		at = want
	}
	t.Logf("move phase: %d cycles, %d killed in the middle of DetachVolume; the volume stayed %d times, left by its detach %d times (each attached elsewhere and checked), before the child's attach %d times",
		cycles, midDetach, stayed, moved, handedBack)
	// The volume home again for the phases after this one.
	e, err := Open(ctx, c.config(store, true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Volume(crashVolume); err != nil {
		if _, err := e.AttachVolume(ctx, crashVolume); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return at
}

// verifyCrashPrefix checks that v reads as the state after some prefix of
// the ops in [at, issued] that includes every acknowledged one and returns
// that prefix and what it read. The crash may have torn the operation in
// flight (a multi-block write or unmap is one record per block; it was not
// acknowledged): it is finished first (fixed), so that the state is a
// prefix again.
func verifyCrashPrefix(ctx context.Context, e *Engine, v *Volume, m *crashModel, seed uint64, at, issued, acked int) (now int, fixed bool, got []byte, err error) {
	got = make([]byte, crashBytes)
	if err := v.ReadAt(ctx, got, 0); err != nil {
		return 0, false, nil, fmt.Errorf("read: %w", err)
	}
	now = m.find(got, at, issued)
	if now < 0 && issued > at && m.torn(got, issued-1) {
		op := crashOpAt(seed, issued-1)
		if op.kind == opWrite {
			err = v.WriteAt(ctx, op.data(), int64(op.off))
		} else {
			err = v.Unmap(ctx, int64(op.off), int64(op.n))
		}
		if err != nil {
			return 0, false, got, err
		}
		now, fixed = issued, true
	}
	if now < 0 || now < acked {
		return 0, false, got, fmt.Errorf("volume is not the state after any prefix in [%d, %d] (acknowledged %d; found %d)", at, issued, acked, now)
	}
	return now, fixed, got, nil
}

// createRetrying creates a volume, again if it outlived its GC lease (a
// loaded machine, with the short grace some subtests run: the engine
// abandons such a create, and a client retries it, as here).
func createRetrying(ctx context.Context, e *Engine, spec control.VolumeSpec) error {
	for try := 0; ; try++ {
		err := e.CreateVolume(ctx, spec)
		if !errors.Is(err, ErrLeaseExpired) || try == 4 {
			return err
		}
	}
}

// nextSnapshotOp is the index of the first snapshot op at or after from in
// seed's sequence (from itself if there is none within 10000).
func nextSnapshotOp(seed uint64, from int) int {
	for i := from; i < from+10000; i++ {
		if crashOpAt(seed, i).kind == opSnap {
			return i
		}
	}
	return from
}

// killCrashChild runs TestCrashChild on c and SIGKILLs it d after it is
// ready (afterReady) or started, and, if minAcked > 0, has acknowledged
// the ops before minAcked (or a minute has passed). Only that SIGKILL may
// end the child: a panic (in any goroutine) or an exit is a failure,
// whatever its output says.
func killCrashChild(t *testing.T, c crashEnv, afterReady bool, minAcked int, d time.Duration, what string) {
	env, _ := json.Marshal(c)
	ready := filepath.Join(c.Dir, "ready")
	if err := os.Remove(ready); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "VOLGW_CRASH_CHILD="+string(env))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	// After ready, or after a minute: a child stuck in Open is killed
	// there, and the cycle checks what it left.
	for deadline := time.Now().Add(time.Minute); afterReady && time.Now().Before(deadline); {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("%s: child ended by itself before it was ready:\n%s", what, out.Bytes())
		case <-time.After(2 * time.Millisecond):
		}
	}
	for deadline := time.Now().Add(time.Minute); minAcked > 0 && time.Now().Before(deadline); {
		if b, err := os.ReadFile(filepath.Join(c.Dir, "progress")); err == nil && len(b) >= 8 && int(binary.LittleEndian.Uint64(b)) >= minAcked {
			break
		}
		select {
		case <-exited:
			t.Fatalf("%s: child ended by itself:\n%s", what, out.Bytes())
		case <-time.After(5 * time.Millisecond):
		}
	}
	time.Sleep(d)
	cmd.Process.Kill()
	<-exited
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s: child ended by itself (%v), not by the kill:\n%s", what, cmd.ProcessState, out.Bytes())
	}
}
