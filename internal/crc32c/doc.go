// Package crc32c computes CRC-32C (Castagnoli, reflected polynomial
// 0x82F63B78), the checksum the volume engine keeps for every 4 KiB sector
// of its cache and journal, bit for bit the value of hash/crc32 with
// crc32.MakeTable(crc32.Castagnoli).
//
// It exists for speed: a cached read checks the CRC of every sector it
// returns, and hash/crc32's SSE4.2 path (one crc32 instruction per 8 bytes,
// three streams) runs at about the speed of pread itself, so the check
// alone halved a cached read. On amd64 with AVX-512 and VPCLMULQDQ the data
// is folded by carry-less multiplication, 512 bytes per step in thirty-two
// 128-bit lanes, and only the last 16 bytes go through the crc32
// instruction; Sectors also runs plain crc32 streams over other sectors
// beside the folds, on otherwise idle execution units. Everywhere else
// (other CPUs, other architectures, inputs too short to fold) it is
// hash/crc32.
//
// The folding constants are powers of x modulo the polynomial; how they are
// derived is written next to them in crc32c_amd64.s, and TestFoldConstants
// derives them again and compares.
package crc32c
