package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// garbageFile makes path a file of size bytes of non-zero garbage, so that
// a cache disk's slots never happen to read as zeros: a sparse slot's
// invalid sectors must never be seen (sparse.go), and a fresh cache file
// would hide that they were.
func garbageFile(t testing.TB, path string, size int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{0xa5, 0x5a, 0xff, 0x01}, BlockSize/4)
	for off := int64(0); off < size; off += int64(len(chunk)) {
		if _, err := f.WriteAt(chunk[:min(int64(len(chunk)), size-off)], off); err != nil {
			t.Fatal(err)
		}
	}
}

// newGarbageEngine is newTestEngine over a cache disk full of garbage.
func newGarbageEngine(t *testing.T, store blob.Store) *testEngine {
	t.Helper()
	dir := t.TempDir()
	te := &testEngine{t: t, dir: dir, store: store, cfg: Config{
		Dir: filepath.Join(dir, "engine"), Store: store, CutInterval: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
	te.open()
	t.Cleanup(func() {
		if te.Engine != nil {
			te.Engine.Close()
		}
	})
	garbageFile(t, filepath.Join(dir, "cache0.img"), 32<<20)
	for _, d := range []control.Disk{
		{ID: "cache0", Path: filepath.Join(dir, "cache0.img"), SizeBytes: 32 << 20, Use: control.DiskUseCache},
		{ID: "buf0", Path: filepath.Join(dir, "buffer0.img"), SizeBytes: 32 << 20, Use: control.DiskUseUploadBuffer},
	} {
		if err := te.AddDisk(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	return te
}

func (te *testEngine) mustCheck() {
	te.t.Helper()
	if err := te.Check(context.Background()); err != nil {
		te.t.Fatal(err)
	}
}

// sparseState is block b's dirty or frozen state.
func sparseState(v *Volume, b uint64) (blockState, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if st, ok := v.dirty[b]; ok {
		return st, true
	}
	st, ok := v.frozen[b]
	return st, ok
}

// storedBlock is block b as v's recovery point has it in the store
// (fetched, checked and, if patched, composed).
func storedBlock(t *testing.T, v *Volume, b uint64) []byte {
	t.Helper()
	ref := refOf(t, v, b)
	if ref.isZero() {
		return make([]byte, BlockSize)
	}
	data, err := v.e.fetchBlockOnce(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSparseBlock: a 512-byte write into a fresh block takes a sparse slot
// and the rest of the block reads as zeros; its upload stores the same
// object as a full write of the same content; after publication the slot
// is clean and passes its CRC check (no refetch); and a restart rebuilds
// it from the journal.
func TestSparseBlock(t *testing.T) {
	ctx := context.Background()
	te := newGarbageEngine(t, blobtest.NewFS(t))
	for _, id := range []string{"vol-SPARSE", "vol-FULL"} {
		if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
			t.Fatal(err)
		}
	}
	v, full := te.vol("vol-SPARSE"), te.vol("vol-FULL")
	const b = 3
	want := make([]byte, BlockSize)
	write := func(p []byte, boff int) {
		t.Helper()
		if err := v.WriteAt(ctx, p, b*BlockSize+int64(boff)); err != nil {
			t.Fatal(err)
		}
		copy(want[boff:], p)
	}
	verify := func(when string) {
		t.Helper()
		if got := mustRead(t, v, b*BlockSize, BlockSize); !bytes.Equal(got, want) {
			t.Fatalf("%s: block reads back wrong", when)
		}
		// Reads that start and end inside sectors, valid or not.
		for _, r := range [][2]int{{1024, 5120}, {1536, 512}, {8192 - 512, 1024}, {40 * 4096, 4096}, {BlockSize - 4608, 4608}} {
			if got := mustRead(t, v, b*BlockSize+int64(r[0]), r[1]); !bytes.Equal(got, want[r[0]:r[0]+r[1]]) {
				t.Fatalf("%s: %d bytes at %d read back wrong", when, r[1], r[0])
			}
		}
		te.mustCheck()
	}

	write(pattern(1, 512), 1536) // part of sector 0
	if st, _ := sparseState(v, b); !st.sparse || st.validSectors() != 1 {
		t.Fatalf("after a 512-byte write into a fresh block: %+v, want sparse with 1 valid sector", st)
	}
	verify("one 512-byte write")
	write(pattern(2, 4096), 10*4096)     // a whole sector
	write(pattern(3, 1024), 20*4096-512) // the ends of two sectors
	write(pattern(4, 512), 1536+512)     // next to the first, in a valid sector
	write(pattern(5, 3*512), BlockSize-3*512)
	if err := v.Unmap(ctx, b*BlockSize+30*4096+512, 512); err != nil { // inside an invalid sector
		t.Fatal(err)
	}
	if st, _ := sparseState(v, b); !st.sparse || st.validSectors() != 6 {
		t.Fatalf("after more writes: %+v (%d valid sectors), want sparse with 6", st, st.validSectors())
	}
	verify("partial writes")

	// Replay rebuilds it: the cache is not persistent, the slots the
	// journal is replayed into hold whatever they held before.
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	te.reopen()
	v, full = te.vol("vol-SPARSE"), te.vol("vol-FULL")
	if st, ok := sparseState(v, b); !ok || !st.sparse {
		t.Fatalf("after replay: %+v %v, want sparse", st, ok)
	}
	verify("after replay")

	// The same content written whole is stored whole; the sparse block,
	// 6 sectors written, as a patch of them over zeros (patch.go).
	if err := full.WriteAt(ctx, want, b*BlockSize); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"vol-SPARSE", "vol-FULL"} {
		if err := te.Cut(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if rs, rf := refOf(t, v, b), refOf(t, full, b); rs.Patch.isZero() || !rs.Base.isZero() || rs.Mask.count() != 6 || rf != (blockRef{Base: hash(sha256.Sum256(want))}) {
		t.Fatalf("sparse block stored as %+v, whole write as %+v; want a patch of 6 sectors over zeros and the block whole", rs, rf)
	}
	if !bytes.Equal(storedBlock(t, v, b), want) || !bytes.Equal(storedBlock(t, full, b), want) {
		t.Fatal("the store does not hold the block as written")
	}

	// Published: the slot is clean and reads pass their CRCs (a mismatch
	// would drop it and fetch the block: a miss).
	if _, ok := te.cache.lookup(v.key(b)); !ok {
		t.Fatal("published sparse block is not cached clean")
	}
	misses, hits := te.cache.misses.Load(), te.cache.hits.Load()
	verify("clean")
	if te.cache.misses.Load() != misses || te.cache.hits.Load() == hits {
		t.Fatalf("clean reads: %d misses, %d hits; want none and some", te.cache.misses.Load()-misses, te.cache.hits.Load()-hits)
	}
	// A partial write takes the clean slot back, whole.
	write(pattern(6, 512), 100*4096)
	if st, _ := sparseState(v, b); st.sparse {
		t.Fatalf("a clean block rewritten: %+v, want a whole slot", st)
	}
	verify("clean, rewritten")
}

// putGate holds every block PUT until open is closed, and says on arrived
// that one came.
type putGate struct {
	blob.Store
	open    chan struct{}
	arrived chan struct{}
}

func (g putGate) Put(ctx context.Context, key string, data []byte, o blob.PutOptions) (blob.ObjectInfo, error) {
	if strings.HasPrefix(key, "blocks/") {
		select {
		case g.arrived <- struct{}{}:
		default:
		}
		select {
		case <-g.open:
		case <-ctx.Done():
			return blob.ObjectInfo{}, ctx.Err()
		}
	}
	return g.Store.Put(ctx, key, data, o)
}

// TestSparseCopyOnWrite: writes to a block while its cut uploads copy
// nothing of a whole frozen block (the new slot is over it) and only the
// valid sectors of a sparse one; the cut stores the block as of the cut,
// the volume reads the later writes on top, before and after publication
// (which settles the copy into the frozen slot).
func TestSparseCopyOnWrite(t *testing.T) {
	for _, whole := range []bool{false, true} {
		t.Run(map[bool]string{false: "sparse", true: "whole"}[whole], func(t *testing.T) { testCopyOnWrite(t, whole) })
	}
}

func testCopyOnWrite(t *testing.T, whole bool) {
	ctx := context.Background()
	gate := putGate{Store: blobtest.NewFS(t), open: make(chan struct{}), arrived: make(chan struct{}, 1)}
	te := newGarbageEngine(t, gate)
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-COW", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-COW")
	const b = 2
	atCut := make([]byte, BlockSize)
	if whole {
		atCut = pattern(9, BlockSize)
		if err := v.WriteAt(ctx, atCut, b*BlockSize); err != nil {
			t.Fatal(err)
		}
	}
	copy(atCut[4096+512:], pattern(1, 512))
	copy(atCut[50*4096:], pattern(2, 8192))
	for _, w := range [][2]int{{4096 + 512, 512}, {50 * 4096, 8192}} {
		if err := v.WriteAt(ctx, atCut[w[0]:w[0]+w[1]], b*BlockSize+int64(w[0])); err != nil {
			t.Fatal(err)
		}
	}
	frozenSlot := -1
	if st, _ := sparseState(v, b); st.sparse == whole {
		t.Fatalf("before the cut: %+v", st)
	} else {
		frozenSlot = int(st.slot)
	}
	cutErr := make(chan error, 1)
	go func() { cutErr <- te.Cut(ctx, "vol-COW") }()
	<-gate.arrived // the block was read, hashed and its slot zeroed
	now := bytes.Clone(atCut)
	for _, w := range [][2]int{{4096, 512}, {51 * 4096, 4096}, {90*4096 + 1024, 512}, {BlockSize - 512, 512}} {
		p := pattern(byte(w[0]), w[1])
		if err := v.WriteAt(ctx, p, b*BlockSize+int64(w[0])); err != nil {
			t.Fatal(err)
		}
		copy(now[w[0]:], p)
	}
	want := 5 // sparse: 1, 50, 51 copied, 90 and 127 written
	if whole {
		want = 4 // 1, 51, 90, 127 written
	}
	if st, ok := sparseState(v, b); !ok || !st.sparse || st.over != whole || st.validSectors() != want {
		t.Fatalf("copy of a frozen block: %+v (%d valid sectors), want sparse with %d, over %v", st, st.validSectors(), want, whole)
	}
	te.mustCheck()
	if got := mustRead(t, v, b*BlockSize, BlockSize); !bytes.Equal(got, now) {
		t.Fatal("block reads back wrong while its cut uploads")
	}
	close(gate.open)
	if err := <-cutErr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(storedBlock(t, v, b), atCut) {
		t.Fatalf("the cut stored %+v, not the block as of the cut", refOf(t, v, b))
	}
	if st, _ := sparseState(v, b); whole && (st.sparse || int(st.slot) != frozenSlot) {
		t.Fatalf("published: %+v, want the frozen slot %d, whole", st, frozenSlot)
	}
	if got := mustRead(t, v, b*BlockSize, BlockSize); !bytes.Equal(got, now) {
		t.Fatal("block reads back wrong after its cut")
	}
	te.mustCheck()
	if err := te.Cut(ctx, "vol-COW"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(storedBlock(t, v, b), now) {
		t.Fatalf("the second cut stored %+v, not the block as written", refOf(t, v, b))
	}
	misses := te.cache.misses.Load()
	if got := mustRead(t, v, b*BlockSize, BlockSize); !bytes.Equal(got, now) || te.cache.misses.Load() != misses {
		t.Fatal("clean block reads back wrong, or was fetched again")
	}
	te.mustCheck()
}
