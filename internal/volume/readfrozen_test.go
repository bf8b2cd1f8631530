package volume

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// TestReadFrozenPatchSectors: a cut of a block taken clean and rewritten
// in a few sectors reads only its patch's sectors and still returns the
// CRCs of the whole new content; without known CRCs, or for a whole
// block, it reads everything.
func TestReadFrozenPatchSectors(t *testing.T) {
	c := newCache()
	if err := c.addDisk(filepath.Join(t.TempDir(), "cache.img"), 4*BlockSize); err != nil {
		t.Fatal(err)
	}
	defer c.close()
	rng := rand.New(rand.NewPCG(1, 2))
	content := make([]byte, BlockSize)
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	s, ok := c.allocStaging()
	if !ok {
		t.Fatal("no slot")
	}
	if err := c.writeSlot(s, content, 0); err != nil {
		t.Fatal(err)
	}
	key := cacheKey{nonce: 1, block: 9}
	c.makeClean(s, key, sectorCRCs(content))
	s, crc, ok := c.takeClean(key)
	if !ok || crc == nil {
		t.Fatalf("takeClean: %v, CRCs %v", ok, crc != nil)
	}
	st := blockState{slot: s, known: crc}
	// Two writes, as applyLocked makes them: sectors 3 and 70-71.
	for _, w := range []struct{ off, n int }{{3 * sectorSize, sectorSize}, {70*sectorSize + 512, 2*sectorSize - 1024}} {
		data := bytes.Repeat([]byte{0xee}, w.n)
		if err := c.writeLocal(&st, data, w.off); err != nil {
			t.Fatal(err)
		}
		copy(content[w.off:], data)
		st.written.addRange(w.off, w.n)
	}
	want := sectorCRCs(content)

	// A patch over an old one of sector 100: the written sectors and 100.
	only := st.written
	only.addRange(100*sectorSize, sectorSize)
	buf := bytes.Repeat([]byte{0x55}, BlockSize)
	got, err := c.readFrozen(st, buf, only)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatal("patch read: CRCs differ from the block's")
	}
	for sec := range sectorsPerSlot {
		part := buf[sec*sectorSize : (sec+1)*sectorSize]
		switch {
		case only.has(sec) && !bytes.Equal(part, content[sec*sectorSize:(sec+1)*sectorSize]):
			t.Fatalf("sector %d of the patch not read", sec)
		case !only.has(sec) && !bytes.Equal(part, bytes.Repeat([]byte{0x55}, sectorSize)):
			t.Fatalf("sector %d outside the patch was read", sec)
		}
	}
	if !slices.Equal(st.known, crc) || &st.known[0] != &crc[0] {
		t.Fatal("known CRCs changed in place")
	}

	// Whole, or CRCs unknown: the whole block.
	for _, tc := range []struct {
		name string
		st   blockState
		only sectorMask
	}{{"whole", st, sectorMask{}}, {"unknown", blockState{slot: s, written: st.written}, only}} {
		buf := bytes.Repeat([]byte{0x55}, BlockSize)
		got, err := c.readFrozen(tc.st, buf, tc.only)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) || !bytes.Equal(buf, content) {
			t.Fatalf("%s: not the whole block", tc.name)
		}
	}
}
