package volume

import (
	"bytes"
	"testing"
	"time"
)

// Decoders of what is read back from the store never panic on bad input,
// and what they accept encodes back to the same thing.

func FuzzDecodeRoot(f *testing.F) {
	r := &root{Volume: "vol-1", Seq: 3, Size: 2 << 30, CutTime: time.Unix(1700000000, 5).UTC(), Owner: "gw-x", JournalLSN: 99,
		Pages: map[uint32]pageRef{0: {Hash: hash{1}, Blocks: 3, Touched: 3}, 1: {Hash: hash{2}, Blocks: 4094, Touched: 4096}, 2: {Hash: hash{3}, Touched: 1}}}
	f.Add(encodeRoot(r))
	f.Add([]byte(`{"volume":"v","size":1073741824,"pages":[["0","0101010101010101010101010101010101010101010101010101010101010101","1","0"]]}`))
	f.Add([]byte(`{"volume":"v","size":1073741824,"pages":[["0","00","1"]]}`))
	f.Add([]byte(`{"volume":"v","size":-1}`))
	f.Add([]byte(`{"volume":"v","size":1073741824,"pages":[["99999","0101010101010101010101010101010101010101010101010101010101010101","1"]]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRoot(b)
		if err != nil {
			return
		}
		again, err := decodeRoot(encodeRoot(r))
		if err != nil {
			t.Fatalf("re-decoding an accepted root: %v", err)
		}
		if !bytes.Equal(encodeRoot(again), encodeRoot(r)) {
			t.Fatal("root does not round-trip")
		}
	})
}

func FuzzDecodePage(f *testing.F) {
	f.Add(encodePage(&page{blocks: map[uint16]hash{0: {1}, 4095: {2}}}))
	f.Add([]byte("VPG1\x00\x00\x00\x01\x10\x00"))
	f.Add([]byte("VPG1\xff\xff\xff\xff"))
	f.Add(encodePage(&page{blocks: map[uint16]hash{7: {1}}, zeros: map[uint16]bool{0: true, 4095: true}}))
	f.Add([]byte("VPG2\x00\x00\x00\x00\x00\x00\x00\x01\x00\x07"))
	f.Add(encodePage(&page{blocks: map[uint16]hash{7: {1}}, patches: map[uint16]patchRef{7: {Hash: hash{2}, Mask: sectorMask{1}}, 9: {Hash: hash{3}, Mask: sectorMask{0, 1 << 63}}}}))
	f.Add(encodePage(&page{zeros: map[uint16]bool{1: true}, patches: map[uint16]patchRef{2: {Hash: hash{2}, Mask: sectorMask{5}}}}))
	f.Add(encodePage(&page{blocks: map[uint16]hash{7: {1}}, patches: map[uint16]patchRef{7: {Hash: hash{2}, Mask: sectorMask{1}, Pack: packLoc{Hash: hash{9}, Size: 9000, Off: 10, Len: 4148}}, 9: {Hash: hash{3}, Mask: sectorMask{0, 1 << 63}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePage(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodePage(p), b) {
			t.Fatal("an accepted page does not encode back to its bytes (pages are content-addressed)")
		}
	})
}
