package crc32c

import "golang.org/x/sys/cpu"

// foldBlock is what one step of the folding loop consumes; the folding
// path takes whole multiples of it (at least one) and leaves the rest to
// hash/crc32, which is as fast as folding on shorter inputs.
const foldBlock = 512

func update(crc uint32, b []byte) uint32 {
	if len(b) >= foldBlock && canFold() {
		return updateFold(crc, b)
	}
	return updateGeneric(crc, b)
}

func sectorsArch(data []byte, out []uint32) {
	if canFold() {
		sectorsFold(data, out)
		return
	}
	sectors(data, out, updateGeneric)
}

// mixSectors is the group of sectors sectorsMix takes at a time: eight
// folded and four in crc32 streams beside them.
const mixSectors = 12

// sectorsFold checksums whole groups of sectors with sectorsMix and the
// sectors left over one by one.
func sectorsFold(data []byte, out []uint32) {
	groups := len(out) / mixSectors
	if groups > 0 {
		sectorsMix(&data[0], &out[0], groups)
	}
	for i := groups * mixSectors; i < len(out); i++ {
		out[i] = updateFold(0, data[i*SectorSize:(i+1)*SectorSize])
	}
}

// canFold reports whether this CPU (and OS, for the ZMM state) runs the
// folding assembly: AVX-512F for the 512-bit registers and ternary logic,
// VPCLMULQDQ for the 512-bit carry-less multiplies, SSE4.2 for the crc32
// instruction of the final reduction and the streams. golang.org/x/sys/cpu
// (its module is already required, for x/sys/unix) reads CPUID and XGETBV.
func canFold() bool {
	return cpu.X86.HasAVX512F && cpu.X86.HasAVX512VPCLMULQDQ && cpu.X86.HasSSE42
}

// updateFold folds the longest multiple of foldBlock bytes of b and hands
// the rest to hash/crc32. The assembly works on the raw register, hence the
// inversions around it.
func updateFold(crc uint32, b []byte) uint32 {
	n := len(b) &^ (foldBlock - 1)
	if n > 0 {
		crc = ^fold(^crc, &b[0], n)
	}
	return updateGeneric(crc, b[n:])
}

// fold returns the CRC-32C register after n bytes at p, starting from the
// register value crc, without the inversions of the Castagnoli checksum.
// n is a positive multiple of foldBlock.
//
//go:noescape
func fold(crc uint32, p *byte, n int) uint32

// sectorsMix stores the CRC-32C of each of groups*mixSectors sectors at p
// in out[0:groups*mixSectors].
//
//go:noescape
func sectorsMix(p *byte, out *uint32, groups int)

// foldConstants returns the assembly's table of constants, for
// TestFoldConstants.
func foldConstants() *[foldConstantWords]uint64

// foldConstantWords is the size of the assembly's constant table.
const foldConstantWords = 16
