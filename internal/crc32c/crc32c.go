package crc32c

import (
	"fmt"
	"hash/crc32"
)

// SectorSize is the unit Sectors checksums: the volume engine's sector.
const SectorSize = 4096

// Checksum returns the CRC-32C of b.
func Checksum(b []byte) uint32 { return update(0, b) }

// Update returns the CRC-32C of the data whose CRC-32C is crc followed by b,
// as crc32.Update does with the Castagnoli table.
func Update(crc uint32, b []byte) uint32 { return update(crc, b) }

// Sectors stores in out[i] the CRC-32C of the i-th SectorSize bytes of data.
// len(data) must be len(out)*SectorSize.
func Sectors(data []byte, out []uint32) {
	checkSectors(data, out)
	sectorsArch(data, out)
}

func checkSectors(data []byte, out []uint32) {
	if len(data) != len(out)*SectorSize {
		panic(fmt.Sprintf("crc32c: %d bytes of data for %d sectors", len(data), len(out)))
	}
}

// sectors is Sectors with the checksum function given, so that tests can run
// every implementation through the same loop.
func sectors(data []byte, out []uint32, update func(uint32, []byte) uint32) {
	checkSectors(data, out)
	for i := range out {
		out[i] = update(0, data[i*SectorSize:(i+1)*SectorSize])
	}
}

// updateGeneric is hash/crc32, which uses the SSE4.2 crc32 instruction
// where it exists and tables elsewhere. MakeTable returns the same table
// every time for Castagnoli.
func updateGeneric(crc uint32, b []byte) uint32 {
	return crc32.Update(crc, crc32.MakeTable(crc32.Castagnoli), b)
}
