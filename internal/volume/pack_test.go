package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/seal/sealtest"
)

// TestPackPageEncoding: a page naming patches in packs (VPG4) round-trips,
// with patches stored alone beside them; bad pack sections are refused.
func TestPackPageEncoding(t *testing.T) {
	h := func(b byte) hash { return hash(sha256.Sum256([]byte{b})) }
	p := emptyPage()
	p.set(1, blockRef{Base: h(1)})
	p.set(2, blockRef{})
	p.set(7, blockRef{Base: h(2), Patch: h(3), Mask: maskOf(0, 5), Pack: packLoc{Hash: h(10), Size: 9000, Off: 100, Len: 8248}})
	p.set(8, blockRef{Patch: h(4), Mask: maskOf(64), Pack: packLoc{Hash: h(11), Size: 4148, Off: 0, Len: 4148}})
	p.set(9, blockRef{Patch: h(5), Mask: maskOf(3)}) // stored alone (before packs)
	p.set(11, blockRef{Base: h(6), Patch: h(7), Mask: maskOf(9), Pack: packLoc{Hash: h(10), Size: 9000, Off: 8348, Len: 4148 - 3500}})
	got, enc := roundTripPage(t, p, "VPG4")
	if ps := got.packs(); len(ps) != 2 {
		t.Fatalf("packs() = %+v, want 2", ps)
	}
	if len(enc) > maxPageBytes {
		t.Fatalf("a page of %d bytes is over maxPageBytes %d", len(enc), maxPageBytes)
	}
	// Where the first patch entry's pack number, offset and length are
	// (entries are in index order: 7 is first).
	patches := len(enc) - 4*pagePatchEntry
	for name, mut := range map[string]func([]byte) []byte{
		"past the pack's end": func(b []byte) []byte { b[patches+pagePatchEntry-6] = 0xff; return b },
		"no such pack":        func(b []byte) []byte { b[patches+pagePatchEntry-10] = 5; return b },
		"empty length":        func(b []byte) []byte { clear(b[patches+pagePatchEntry-4 : patches+pagePatchEntry]); return b },
		"packs out of order":  func(b []byte) []byte { b[patches-2*pagePackEntry] ^= 0xff; return b },
		"truncated":           func(b []byte) []byte { return b[:len(b)-1] },
	} {
		if _, err := decodePage(mut(bytes.Clone(enc))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: decodePage = %v, want ErrCorrupt", name, err)
		}
	}
	// A page whose patches all stand alone is VPG3, as before packs.
	p.set(7, blockRef{Base: h(2), Patch: h(3), Mask: maskOf(0, 5)})
	p.set(8, blockRef{Patch: h(4), Mask: maskOf(64)})
	p.set(11, blockRef{Base: h(6)})
	if enc := encodePage(p); string(enc[:4]) != "VPG3" {
		t.Fatalf("magic %q, want VPG3", enc[:4])
	}
}

// packsOf returns the packs the pages of v's recovery point name, with the
// bytes of patches each page uses in each, and checks the rule of
// pack.go: in every page, every pack is at least half used.
func packsOf(t *testing.T, v *Volume) map[hash]packLoc {
	t.Helper()
	v.mu.Lock()
	base := v.base
	v.mu.Unlock()
	out := map[hash]packLoc{}
	for pi, pr := range base.Pages {
		p, err := v.e.loadPage(context.Background(), pr.Hash)
		if err != nil {
			t.Fatal(err)
		}
		used := map[hash]uint32{}
		for _, pt := range p.patches {
			if !pt.Pack.Hash.isZero() {
				used[pt.Pack.Hash] += pt.Pack.Len
			}
		}
		for _, pl := range p.packs() {
			if 2*used[pl.Hash] < pl.Size {
				t.Fatalf("page %d uses %d bytes of pack %s of %d: less than half", pi, used[pl.Hash], pl.Hash, pl.Size)
			}
			pl.Len = used[pl.Hash]
			out[pl.Hash] = pl
		}
	}
	return out
}

// TestPatchesPacked: a cut of many blocks each changed in a sector stores
// one pack per page, not an object per block; the volume reads back from
// the store after a restart; when later cuts leave a pack less than half
// used, its patches still used move to a new pack, and GC past the grace
// reclaims the old one while every block still reads back.
func TestPatchesPacked(t *testing.T) {
	ctx := context.Background()
	const grace = 4 * time.Minute
	clock := newFakeClock()
	store := newClockStore(blobtest.NewFS(t), clock)
	// A cache that holds every block written, so that each cut below is
	// the only one.
	te := newClockedEngineWith(t, store, clock, engineOpts{grace: grace, cacheBytes: 1 << 30})
	const size = 3 * gib // two pages
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-K", SizeBytes: size}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-K")
	want := map[int64][]byte{} // block-aligned offset → its content, for the blocks written
	write := func(b uint64, sector int, seed byte) {
		t.Helper()
		off := int64(b)*BlockSize + int64(sector)*sectorSize
		p := pattern(seed, sectorSize)
		if err := v.WriteAt(ctx, p, off); err != nil {
			t.Fatal(err)
		}
		blk := int64(b) * BlockSize
		if want[blk] == nil {
			want[blk] = make([]byte, BlockSize)
		}
		copy(want[blk][sector*sectorSize:], p)
	}
	verify := func(when string) {
		t.Helper()
		for off, w := range want {
			if got := mustRead(t, v, off, BlockSize); !bytes.Equal(got, w) {
				t.Fatalf("%s: block %d reads back wrong", when, off/BlockSize)
			}
		}
		te.mustCheck()
	}
	cut := func() {
		t.Helper()
		if err := te.Cut(ctx, "vol-K"); err != nil {
			t.Fatal(err)
		}
	}

	// 300 blocks of page 0 and 40 of page 1, a sector each.
	for b := range uint64(300) {
		write(b, int(b%128), byte(b))
	}
	for b := range uint64(40) {
		write(pageBlocks+7*b, 3, byte(b+1))
	}
	objects, _ := storeBytes(t, store, "blocks/")
	cut()
	after, _ := storeBytes(t, store, "blocks/")
	if n := after - objects; n != 2 {
		t.Fatalf("a cut of 340 patches in two pages stored %d objects, want 2 packs", n)
	}
	if te.packsStored.Load() != 2 || te.patchesStored.Load() != 340 {
		t.Fatalf("packs %d, patches %d; want 2 and 340", te.packsStored.Load(), te.patchesStored.Load())
	}
	first := packsOf(t, v)
	if len(first) != 2 {
		t.Fatalf("the pages name %d packs, want 2", len(first))
	}
	te.reopen() // nothing cached: each block is its patch read out of a pack
	v = te.vol("vol-K")
	verify("packed, after a restart")

	// Blocks 0..179 of page 0 again: 120 of its first pack's 300 patches
	// are still used, less than half: they move.
	for b := range uint64(180) {
		write(b, int(b+1)%128, byte(b+100))
	}
	cut()
	if te.packsRepacked.Load() != 1 || te.patchesRepacked.Load() != 120 {
		t.Fatalf("repacked %d packs, %d patches; want 1 and 120", te.packsRepacked.Load(), te.patchesRepacked.Load())
	}
	second := packsOf(t, v)
	var old hash
	for h, pl := range first {
		if _, ok := second[h]; !ok {
			old = h
			if pl.Len != pl.Size {
				t.Fatalf("the first pack was not whole when written: %+v", pl)
			}
		}
	}
	if old.isZero() || len(second) != 3 {
		t.Fatalf("after the repack the pages name %d packs (%v), want page 1's, the cut's and the repacked one", len(second), second)
	}
	verify("repacked, from the cache")
	te.reopen()
	v = te.vol("vol-K")
	verify("repacked, after a restart")

	// GC past the grace: the pack nothing names any more goes; the rest
	// stay, and the volume still reads back from the store.
	clock.advance(2 * grace)
	if _, err := te.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Stat(ctx, blockKey(old)); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("the emptied pack after GC: %v, want gone", err)
	}
	for h := range second {
		if _, err := store.Stat(ctx, blockKey(h)); err != nil {
			t.Fatalf("pack %s named by the recovery point: %v", h, err)
		}
	}
	te.reopen()
	v = te.vol("vol-K")
	verify("after GC")
}

// TestPackedSealedCompressed: with a sealed, compressed volume each patch
// in a pack is sealed on its own (nothing in the clear, every pack starts
// as a sealed object), and a snapshot restored on another engine with the
// key reads back.
func TestPackedSealedCompressed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	line := sealtest.Line(t, "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
	arn := strings.Fields(line)[0]
	store := fsStoreAt(t, dir)
	te := newTestEngine(t, store, engineOpts{})
	te.cfg.Keys, te.cfg.Compress = sealtest.Parse(t, line), true
	te.reopen()
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-S", SizeBytes: gib, KMSKey: arn}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-S")
	want := make([]byte, 64*BlockSize)
	for b := range 64 {
		p := []byte(strings.Repeat(sealMarker, sectorSize/len(sealMarker)+1))[:sectorSize]
		if b%2 == 1 {
			p = randomBlock(byte(b))[:sectorSize] // incompressible
		}
		off := b*BlockSize + (b%128)*sectorSize
		if err := v.WriteAt(ctx, p, int64(off)); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], p)
	}
	if err := te.Cut(ctx, "vol-S"); err != nil {
		t.Fatal(err)
	}
	if te.packsStored.Load() != 1 || te.patchesStored.Load() != 64 {
		t.Fatalf("packs %d, patches %d; want 1 and 64", te.packsStored.Load(), te.patchesStored.Load())
	}
	for name, b := range blobtest.Files(t, dir) {
		if bytes.Contains(b, []byte(sealMarker)) {
			t.Errorf("%s holds the data in the clear", name)
		}
		if strings.HasPrefix(name, "blocks/") && !bytes.HasPrefix(b, []byte("VGE1")) {
			t.Errorf("%s is not sealed (%q)", name, b[:min(8, len(b))])
		}
	}
	if _, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-0123456789abcdef1", VolumeID: "vol-S", FromRecoveryPoint: true}); err != nil {
		t.Fatal(err)
	}
	other := newTestEngine(t, store, engineOpts{})
	other.cfg.Keys = sealtest.Parse(t, line)
	other.reopen()
	if err := other.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-R", SizeBytes: gib, KMSKey: arn, Source: control.VolumeSource{SnapshotID: "snap-0123456789abcdef1"}}); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, other.vol("vol-R"), 0, len(want)); !bytes.Equal(got, want) {
		t.Fatal("the sealed snapshot restored on a second engine reads back wrong")
	}
}

// TestPackDamage: a patch damaged inside its pack fails the read of its
// block loudly, and only its block; a repack leaves it where it is (logged
// and counted), moves the others, and the cut succeeds.
func TestPackDamage(t *testing.T) {
	ctx := context.Background()
	store := blobtest.NewFS(t)
	te := newTestEngine(t, store, engineOpts{})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-D", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-D")
	for b := range 10 {
		if err := v.WriteAt(ctx, pattern(byte(b+1), sectorSize), int64(b)*BlockSize); err != nil {
			t.Fatal(err)
		}
	}
	if err := te.Cut(ctx, "vol-D"); err != nil {
		t.Fatal(err)
	}
	r := refOf(t, v, 3)
	if r.Pack.Hash.isZero() {
		t.Fatalf("block 3: %+v, want a patch in a pack", r)
	}
	key := blockKey(r.Pack.Hash)
	b, err := store.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	b[r.Pack.Off+patchHeader+100] ^= 1 // a bit of block 3's sector
	if _, err := store.Put(ctx, key, b, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	te.reopen()
	v = te.vol("vol-D")
	buf := make([]byte, BlockSize)
	if err := v.ReadAt(ctx, buf, 3*BlockSize); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading the block whose patch is damaged: %v, want ErrCorrupt", err)
	}
	for _, blk := range []int{2, 4} {
		if got := mustRead(t, v, int64(blk)*BlockSize, sectorSize); !bytes.Equal(got, pattern(byte(blk+1), sectorSize)) {
			t.Fatalf("block %d, in the same pack, reads back wrong", blk)
		}
	}
	// Rewriting 6 of the 10 blocks leaves the pack 40% used: the cut
	// repacks blocks 0..3 but 3.
	for blk := 4; blk < 10; blk++ {
		if err := v.WriteAt(ctx, pattern(byte(blk+50), sectorSize), int64(blk)*BlockSize+sectorSize); err != nil {
			t.Fatal(err)
		}
	}
	if err := te.Cut(ctx, "vol-D"); err != nil {
		t.Fatal(err)
	}
	if te.patchesRepacked.Load() != 3 || te.repackSkipped.Load() != 1 {
		t.Fatalf("repacked %d, left %d; want 3 and 1", te.patchesRepacked.Load(), te.repackSkipped.Load())
	}
	if got := refOf(t, v, 3); got.Pack != r.Pack {
		t.Fatalf("the damaged patch moved: %+v, was %+v", got.Pack, r.Pack)
	}
	te.reopen()
	v = te.vol("vol-D")
	if err := v.ReadAt(ctx, buf, 3*BlockSize); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("after the repack, reading the damaged block: %v, want ErrCorrupt", err)
	}
	for _, blk := range []int{0, 1, 2} {
		if got := mustRead(t, v, int64(blk)*BlockSize, sectorSize); !bytes.Equal(got, pattern(byte(blk+1), sectorSize)) {
			t.Fatalf("block %d, repacked, reads back wrong", blk)
		}
	}
}

// TestCompressedPageOfManyPatches: a compressed page naming thousands of
// patches (larger than a page of only whole blocks can be) reads back after
// a restart; its decompression bound once counted whole blocks only.
func TestCompressedPageOfManyPatches(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{cacheBytes: 1 << 30})
	te.cfg.Compress = true
	te.reopen()
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-M", SizeBytes: 2 * gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-M")
	const blocks = 3600
	for b := range blocks {
		if err := v.WriteAt(ctx, pattern(byte(b), 512), int64(b)*BlockSize+int64(b%128)*sectorSize); err != nil {
			t.Fatal(err)
		}
		if b%1000 == 999 || b == blocks-1 {
			if err := te.Cut(ctx, "vol-M"); err != nil {
				t.Fatal(err)
			}
		}
	}
	v.mu.Lock()
	pr := v.base.Pages[0]
	v.mu.Unlock()
	p, err := te.loadPage(ctx, pr.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(encodePage(p)); len(p.patches) != blocks || n <= 8+pageBlocks*(2+sha256.Size)+4+2*pageBlocks {
		t.Fatalf("page of %d patches, %d bytes: not past a page of whole blocks", len(p.patches), n)
	}
	te.reopen()
	v = te.vol("vol-M")
	for _, b := range []int{0, 1234, blocks - 1} {
		want := make([]byte, BlockSize)
		copy(want[(b%128)*sectorSize:], pattern(byte(b), 512))
		if got := mustRead(t, v, int64(b)*BlockSize, BlockSize); !bytes.Equal(got, want) {
			t.Fatalf("block %d reads back wrong", b)
		}
	}
}

// TestPacksRandomCuts: rounds of writes of a few sectors at random over
// blocks of two pages (some growing past a patch, some unmapped), a cut
// after each: after every cut each page's packs are at least half used
// (packsOf), every block reads back, from the cache and, every few rounds,
// after a restart; GC past the grace then leaves a store that still reads
// back and holds no more pack bytes than twice those the volume uses.
func TestPacksRandomCuts(t *testing.T) {
	ctx := context.Background()
	const grace = 4 * time.Minute
	clock := newFakeClock()
	store := newClockStore(blobtest.NewFS(t), clock)
	te := newClockedEngineWith(t, store, clock, engineOpts{grace: grace, cacheBytes: 256 << 20})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-X", SizeBytes: 3 * gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-X")
	blocks := []uint64{}
	for i := range uint64(24) {
		blocks = append(blocks, i*3, pageBlocks+i*5)
	}
	want := map[uint64][]byte{}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	verify := func(when string) {
		t.Helper()
		for _, b := range blocks {
			w := want[b]
			if w == nil {
				w = zeroBlock
			}
			if got := mustRead(t, v, int64(b)*BlockSize, BlockSize); !bytes.Equal(got, w) {
				t.Fatalf("%s: block %d reads back wrong", when, b)
			}
		}
	}
	var packs, repacks, moved int64
	for round := range 30 {
		for range 20 + r.IntN(40) {
			b := blocks[r.IntN(len(blocks))]
			if want[b] == nil {
				want[b] = make([]byte, BlockSize)
			}
			if r.IntN(40) == 0 {
				if err := v.Unmap(ctx, int64(b)*BlockSize, BlockSize); err != nil {
					t.Fatal(err)
				}
				clear(want[b])
				continue
			}
			s, n := r.IntN(sectorsPerSlot), 1+r.IntN(3)
			n = min(n, sectorsPerSlot-s)
			p := pattern(byte(r.IntN(250)+1), n*sectorSize)
			if err := v.WriteAt(ctx, p, int64(b)*BlockSize+int64(s)*sectorSize); err != nil {
				t.Fatal(err)
			}
			copy(want[b][s*sectorSize:], p)
		}
		if err := te.Cut(ctx, "vol-X"); err != nil {
			t.Fatal(err)
		}
		packsOf(t, v)
		verify(fmt.Sprintf("round %d", round))
		if round%10 == 9 {
			packs, repacks, moved = packs+te.packsStored.Load(), repacks+te.packsRepacked.Load(), moved+te.patchesRepacked.Load()
			te.reopen() // (a new engine: its counters start at zero)
			v = te.vol("vol-X")
			verify(fmt.Sprintf("round %d, after a restart", round))
			te.mustCheck()
		}
	}
	if repacks == 0 {
		t.Fatal("30 rounds repacked nothing: the rule was not exercised")
	}
	clock.advance(2 * grace)
	if _, err := te.GC(ctx); err != nil {
		t.Fatal(err)
	}
	var used, stored int64
	for _, pl := range packsOf(t, v) {
		used += int64(pl.Len)
		info, err := store.Stat(ctx, blockKey(pl.Hash))
		if err != nil {
			t.Fatal(err)
		}
		stored += info.Size
	}
	if stored > 2*used {
		t.Fatalf("packs named by the recovery point hold %d bytes for %d used", stored, used)
	}
	t.Logf("%d packs stored, %d repacked (%d patches); pack bytes %d for %d used", packs, repacks, moved, stored, used)
	te.reopen()
	v = te.vol("vol-X")
	verify("after GC")
	te.mustCheck()
}
