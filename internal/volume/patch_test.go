package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

func maskOf(sectors ...int) sectorMask {
	var m sectorMask
	for _, s := range sectors {
		m.addRange(s*sectorSize, 1)
	}
	return m
}

// TestPatchPageEncoding: pages with patches (over stored and over zero
// blocks, with and without touched zero blocks) round-trip; pages without
// encode exactly as before patches existed; malformed patch sections are
// refused.
func TestPatchPageEncoding(t *testing.T) {
	h := func(b byte) hash { return hash(sha256.Sum256([]byte{b})) }
	plain := emptyPage()
	plain.set(1, blockRef{Base: h(1)})
	plain.set(2, blockRef{})
	if enc := encodePage(plain); string(enc[:4]) != "VPG2" {
		t.Fatalf("a page without patches encodes as %q, want VPG2 as before", enc[:4])
	}
	for _, zeros := range []bool{false, true} {
		p := emptyPage()
		p.set(1, blockRef{Base: h(1)})
		p.set(7, blockRef{Base: h(2), Patch: h(3), Mask: maskOf(0, 5, 127)})
		p.set(9, blockRef{Patch: h(4), Mask: maskOf(64)}) // over the zero block
		if zeros {
			p.set(3, blockRef{})
		}
		got, _ := roundTripPage(t, p, "VPG3")
		if got.nonZero() != 3 || got.touched() != 3+len(p.zeros) {
			t.Fatalf("counts %d non-zero, %d touched", got.nonZero(), got.touched())
		}
		if s := got.stored(); len(s) != 3 || s[0] != 1 || s[1] != 7 || s[2] != 9 {
			t.Fatalf("stored() = %v", s)
		}
	}
	bad := emptyPage()
	bad.set(7, blockRef{Base: h(2), Patch: h(3), Mask: maskOf(1)})
	enc := encodePage(bad)
	for name, mut := range map[string]func([]byte) []byte{
		"empty mask":     func(b []byte) []byte { clear(b[len(b)-sectorMaskBytes:]); return b },
		"truncated":      func(b []byte) []byte { return b[:len(b)-1] },
		"trailing bytes": func(b []byte) []byte { return append(b, 0) },
		"zero count":     func(b []byte) []byte { return append(b[:len(b)-(2+32+sectorMaskBytes)-4], 0, 0, 0, 0) },
		"index range":    func(b []byte) []byte { b[len(b)-(2+32+sectorMaskBytes)] = 0xff; return b },
	} {
		if _, err := decodePage(mut(bytes.Clone(enc))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: decodePage = %v, want ErrCorrupt", name, err)
		}
	}
}

// roundTripPage encodes p, checks the format is magic, decodes it, checks
// every entry came back and re-encodes to the same bytes.
func roundTripPage(t *testing.T, p *page, magic string) (*page, []byte) {
	t.Helper()
	enc := encodePage(p)
	if string(enc[:4]) != magic {
		t.Fatalf("magic %q, want %s", enc[:4], magic)
	}
	got, err := decodePage(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint16(pageBlocks) {
		if got.ref(i) != p.ref(i) || got.zeros[i] != p.zeros[i] {
			t.Fatalf("entry %d: %+v (zero %v), want %+v (zero %v)", i, got.ref(i), got.zeros[i], p.ref(i), p.zeros[i])
		}
	}
	if !bytes.Equal(encodePage(got), enc) {
		t.Fatal("re-encoding differs")
	}
	return got, enc
}

// refOf is how v's recovery point names block b.
func refOf(t *testing.T, v *Volume, b uint64) blockRef {
	t.Helper()
	v.mu.Lock()
	base := v.base
	v.mu.Unlock()
	r, err := v.e.blockRef(context.Background(), base, b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// storeBytes sums the sizes of the objects under prefix.
func storeBytes(t *testing.T, s blob.Store, prefix string) (n int, size int64) {
	t.Helper()
	if err := s.List(context.Background(), prefix, func(o blob.ObjectInfo) error {
		n++
		size += o.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n, size
}

// TestPatchedBlocks: a cut stores a block changed in a few sectors as a
// patch of those sectors over the block stored whole (or over zeros, for a
// block first written in a few sectors, or written after an unmap of the
// whole block); the next cut's patch holds the sectors of both; past a
// quarter of the block it is stored whole again. The volume reads back
// right from its cache, after a restart (every block fetched and composed),
// from a snapshot restored on a second engine, and through the EBS read of
// the snapshot's blocks; GC past the grace keeps every base and patch the
// volume and the snapshot name.
func TestPatchedBlocks(t *testing.T) {
	ctx := context.Background()
	const grace = 4 * time.Minute
	clock := newFakeClock()
	store := newClockStore(blobtest.NewFS(t), clock)
	te := newClockedEngine(t, store, clock, grace)
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-P", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-P")
	const blocks = 4
	want := make([]byte, blocks*BlockSize)
	write := func(off int, p []byte) {
		t.Helper()
		if err := v.WriteAt(ctx, p, int64(off)); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], p)
	}
	verify := func(when string) {
		t.Helper()
		if got := mustRead(t, v, 0, len(want)); !bytes.Equal(got, want) {
			t.Fatalf("%s: the volume reads back wrong", when)
		}
		te.mustCheck()
	}
	cut := func() {
		t.Helper()
		if err := te.Cut(ctx, "vol-P"); err != nil {
			t.Fatal(err)
		}
	}

	write(0, pattern(1, 2*BlockSize)) // blocks 0 and 1 whole
	cut()
	whole0 := hash(sha256.Sum256(want[:BlockSize]))
	if r := refOf(t, v, 0); r != (blockRef{Base: whole0}) {
		t.Fatalf("block 0 after a whole write: %+v, want stored whole", r)
	}
	_, blockBytes := storeBytes(t, store, "blocks/")

	write(5*sectorSize+512, pattern(2, sectorSize))            // block 0, sectors 5 and 6
	write(2*BlockSize+100*512, pattern(3, 512))                // block 2 (fresh), sector 12
	if err := v.Unmap(ctx, BlockSize, BlockSize); err != nil { // block 1 unmapped whole...
		t.Fatal(err)
	}
	clear(want[BlockSize : 2*BlockSize])
	write(BlockSize+7*sectorSize, pattern(4, sectorSize)) // ...then sector 7 written
	patches := te.patchesStored.Load()
	cut()
	for _, c := range []struct {
		b    uint64
		want blockRef
	}{
		{0, blockRef{Base: whole0, Mask: maskOf(5, 6)}},
		{1, blockRef{Mask: maskOf(7)}}, // over zeros: the unmap dropped the old block
		{2, blockRef{Mask: maskOf(12)}},
	} {
		r := refOf(t, v, c.b)
		if r.Patch.isZero() || r.Base != c.want.Base || r.Mask != c.want.Mask {
			t.Fatalf("block %d: %+v, want a patch over %s of sectors %v", c.b, r, c.want.Base, c.want.Mask)
		}
	}
	if n := te.patchesStored.Load() - patches; n != 3 {
		t.Fatalf("%d patches stored, want 3", n)
	}
	cutBlocks := map[string]float64{}
	for _, m := range gather(t, te.Engine)["volgw_cut_blocks_total"] {
		cutBlocks[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	if cutBlocks["whole"] != 2 || cutBlocks["patch"] != 3 {
		t.Fatalf("volgw_cut_blocks_total %v, want 2 whole and 3 patches", cutBlocks)
	}
	// What the cut added to blocks/: the three patches, 4 sectors of data.
	if _, after := storeBytes(t, store, "blocks/"); after-blockBytes > 4*sectorSize+3*patchHeader {
		t.Fatalf("the cut stored %d bytes of blocks for 4 sectors written", after-blockBytes)
	}
	verify("patched, from the cache")

	// Cumulative: the next patch of block 0 holds its old sectors too.
	write(9*sectorSize, pattern(5, sectorSize))
	cut()
	if r := refOf(t, v, 0); r.Base != whole0 || r.Mask != maskOf(5, 6, 9) {
		t.Fatalf("block 0 rewritten: %+v, want a patch over the same base of sectors 5, 6, 9", r)
	}
	snap, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-p", VolumeID: "vol-P", FromRecoveryPoint: true})
	if err != nil || snap.Status != control.SnapshotCompleted {
		t.Fatalf("CreateSnapshot = %+v, %v", snap, err)
	}
	atSnap := bytes.Clone(want)

	te.reopen() // the cache is not kept: every block is fetched and composed
	v = te.vol("vol-P")
	verify("patched, after a restart")

	// Past a quarter of the block, stored whole again.
	for s := 20; s < 20+2*(maxPatchSectors+1); s += 2 {
		write(3*BlockSize+s*sectorSize, pattern(byte(s), 512)) // block 3: a patch over zeros first...
		write(s*sectorSize, pattern(byte(s), 512))             // ...block 0: over its base
	}
	cut()
	for _, b := range []uint64{0, 3} {
		if r := refOf(t, v, b); r != (blockRef{Base: hash(sha256.Sum256(want[b*BlockSize : (b+1)*BlockSize]))}) {
			t.Fatalf("block %d with %d sectors changed: %+v, want stored whole", b, maxPatchSectors+1, r)
		}
	}
	verify("whole again")

	// GC past the grace: the snapshot's patches and bases stay.
	clock.advance(2 * grace)
	if _, err := te.GC(ctx); err != nil {
		t.Fatal(err)
	}
	other := newTestEngine(t, store, engineOpts{})
	if err := other.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-R", SizeBytes: gib, Source: control.VolumeSource{SnapshotID: "snap-p"}}); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, other.vol("vol-R"), 0, len(atSnap)); !bytes.Equal(got, atSnap) {
		t.Fatal("the snapshot restored on a second engine reads back wrong")
	}
	tree, err := other.OpenSnapshotTree(ctx, "snap-p")
	if err != nil {
		t.Fatal(err)
	}
	refs, _, err := tree.Blocks(ctx, 0, 100)
	if err != nil || len(refs) != 3 {
		t.Fatalf("snapshot blocks %+v, %v; want blocks 0, 1, 2", refs, err)
	}
	for _, r := range refs {
		data, sum, err := tree.Block(ctx, r.Index, r.Hash)
		wantBlock := atSnap[r.Index*BlockSize : (r.Index+1)*BlockSize]
		if err != nil || !bytes.Equal(data, wantBlock) || sum != sha256.Sum256(wantBlock) {
			t.Fatalf("EBS read of block %d: err %v, bytes right %v, checksum right %v", r.Index, err, bytes.Equal(data, wantBlock), sum == sha256.Sum256(wantBlock))
		}
	}
	te.reopen()
	v = te.vol("vol-P")
	verify("after GC")
}

// TestWholeBlocksConfig: with Config.WholeBlocks a cut stores every
// changed block whole, as before patches, and its pages are VPG1/VPG2.
func TestWholeBlocksConfig(t *testing.T) {
	ctx := context.Background()
	store := blobtest.NewFS(t)
	te := newTestEngine(t, store, engineOpts{})
	te.cfg.WholeBlocks = true
	te.reopen()
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-W", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-W")
	if err := v.WriteAt(ctx, pattern(1, sectorSize), 3*sectorSize); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-W"); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, BlockSize)
	copy(want[3*sectorSize:], pattern(1, sectorSize))
	if r := refOf(t, v, 0); r != (blockRef{Base: hash(sha256.Sum256(want))}) {
		t.Fatalf("block 0: %+v, want stored whole", r)
	}
	if err := store.List(ctx, "pages/", func(o blob.ObjectInfo) error {
		b, err := store.Get(ctx, o.Key)
		if err == nil && !strings.HasPrefix(string(b), "VPG1") {
			err = errors.New("page is " + string(b[:4]))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
