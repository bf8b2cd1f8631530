package crc32c

import (
	"math/bits"
	"testing"
)

// archImplementations adds the folding path when this machine can run it.
func archImplementations() map[string]func(uint32, []byte) uint32 {
	if !canFold() {
		return nil
	}
	return map[string]func(uint32, []byte) uint32{"fold": updateFold}
}

// archSectorImplementations adds the interleaved folding path, and the
// folding path one sector at a time, when this machine can run them.
func archSectorImplementations() map[string]func([]byte, []uint32) {
	if !canFold() {
		return nil
	}
	return map[string]func([]byte, []uint32){
		"fold":      sectorsFold,
		"fold-each": func(data []byte, out []uint32) { sectors(data, out, updateFold) },
	}
}

// xPowMod returns x^e mod P for the CRC-32C polynomial
// P = x^32 + 0x1EDC6F41 (normal bit order, bit d for x^d).
func xPowMod(e int) uint64 {
	r := uint64(1)
	for range e {
		r <<= 1
		if r&(1<<32) != 0 {
			r ^= 1<<32 | 0x1EDC6F41
		}
	}
	return r
}

// TestFoldConstants derives the assembly's constants as its comment says
// (K_L(N) = x^(N+63) mod P, K_H(N) = x^(N-1) mod P, bit-reversed into 64
// bits) and compares them with its table.
func TestFoldConstants(t *testing.T) {
	var want [foldConstantWords]uint64
	for i, n := range []int{4096, 2048, 1024, 512, 384, 256, 128} {
		want[2*i] = bits.Reverse64(xPowMod(n + 63))
		want[2*i+1] = bits.Reverse64(xPowMod(n - 1))
	}
	// Words 14 and 15 stay zero: lane 3 is not moved.
	if got := foldConstants(); *got != want {
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("word %d: %#016x, derived %#016x", i, got[i], want[i])
			}
		}
	}
	if 0x82F63B78 != bits.Reverse32(0x1EDC6F41) {
		t.Fatal("the reflected polynomial is not the reversal of the normal one")
	}
}
