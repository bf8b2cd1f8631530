#include "textflag.h"

// CRC-32C by folding with VPCLMULQDQ (AVX-512).
//
// The bit order is the reflected one of CRC-32C: the first bit of the data
// (bit 0 of byte 0) is the highest power of x. A 128-bit little-endian load
// puts data bit i (bit i%8 of byte i/8) in register bit i, which stands for
// x^(127-i) times x^(8 * bytes after the 16).
//
// Folding. The CRC is the remainder of M(x)*x^32 mod P, so any M' congruent
// to M mod P has the same CRC. A 128-bit lane S that lies N bits before a
// later lane D of the same position in the stride is S*x^N away from it.
// With L = S's low 64 bits and H = its high 64 bits, S = L*x^64 + H, so
// S*x^N = L*x^(64+N) + H*x^N. A carry-less product of two 64-bit values
// in this order (bit j for x^(63-j)) comes out with bit m for x^(126-m):
// read as a 128-bit lane (bit m for x^(127-m)) it is the product times x.
// So the constants are
//
//	K_L(N) = x^(N+63) mod P,  K_H(N) = x^(N-1) mod P,
//
// each written with bit j for x^(63-j) (bit-reversed into 64 bits, so the
// 32-bit remainder sits in the high half), and
//
//	D' = D xor clmul(L, K_L(N)) xor clmul(H, K_H(N))
//
// is congruent to S*x^N + D and 128 bits wide again. TestFoldConstants
// computes them from the polynomial 0x1EDC6F41 and compares with this
// table.
//
// Table (words of 64 bits, low then high of each 128-bit constant):
//
//	 0,  1  N = 2048: the main loop, each lane to the same lane 256 bytes on
//	 2,  3  N = 1024: Z0 into Z2 and Z1 into Z3 after the loop
//	 4,  5  N =  512: Z2 into Z3
//	 6..13  N = 384, 256, 128, and zero: lanes 0, 1, 2 of Z3 into lane 3
//
// The last 16 bytes are reduced by the crc32 instruction (SSE4.2), which
// computes exactly the CRC-32C register of 8 bytes from a register value.
DATA foldK<>+0(SB)/8, $0xe9a5d8be00000000
DATA foldK<>+8(SB)/8, $0x1426a81500000000
DATA foldK<>+16(SB)/8, $0x6577b24500000000
DATA foldK<>+24(SB)/8, $0x7417153f00000000
DATA foldK<>+32(SB)/8, $0x1c19243b00000000
DATA foldK<>+40(SB)/8, $0x75bba45b00000000
DATA foldK<>+48(SB)/8, $0xa46ef4aa00000000
DATA foldK<>+56(SB)/8, $0x6051243f00000000
DATA foldK<>+64(SB)/8, $0x33ccbbbc00000000
DATA foldK<>+72(SB)/8, $0xa2158b3400000000
DATA foldK<>+80(SB)/8, $0x3743f7bd00000000
DATA foldK<>+88(SB)/8, $0x3171d43000000000
DATA foldK<>+96(SB)/8, $0
DATA foldK<>+104(SB)/8, $0
GLOBL foldK<>(SB), RODATA|NOPTR, $112

// func fold(crc uint32, p *byte, n int) uint32
TEXT ·fold(SB), NOSPLIT, $0-28
	MOVL crc+0(FP), AX
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), CX

	// Sixteen 128-bit lanes of running remainder, 256 bytes; the starting
	// register is xored into the first 4 bytes of the data.
	VMOVDQU64 0(SI), Z0
	VMOVDQU64 64(SI), Z1
	VMOVDQU64 128(SI), Z2
	VMOVDQU64 192(SI), Z3
	VMOVD     AX, X4
	VPXORQ    Z4, Z0, Z0
	ADDQ      $256, SI
	SUBQ      $256, CX
	JZ        reduce

	VBROADCASTI32X4 foldK<>+0(SB), Z8

loop:
	VPCLMULQDQ $0x00, Z8, Z0, Z4
	VPCLMULQDQ $0x11, Z8, Z0, Z0
	VPCLMULQDQ $0x00, Z8, Z1, Z5
	VPCLMULQDQ $0x11, Z8, Z1, Z1
	VPCLMULQDQ $0x00, Z8, Z2, Z6
	VPCLMULQDQ $0x11, Z8, Z2, Z2
	VPCLMULQDQ $0x00, Z8, Z3, Z7
	VPCLMULQDQ $0x11, Z8, Z3, Z3
	VPTERNLOGQ $0x96, 0(SI), Z4, Z0
	VPTERNLOGQ $0x96, 64(SI), Z5, Z1
	VPTERNLOGQ $0x96, 128(SI), Z6, Z2
	VPTERNLOGQ $0x96, 192(SI), Z7, Z3
	ADDQ       $256, SI
	SUBQ       $256, CX
	JNZ        loop

reduce:
	// Z0 into Z2 and Z1 into Z3 (128 bytes on), then Z2 into Z3 (64).
	VBROADCASTI32X4 foldK<>+16(SB), Z8
	VPCLMULQDQ      $0x00, Z8, Z0, Z4
	VPCLMULQDQ      $0x11, Z8, Z0, Z0
	VPCLMULQDQ      $0x00, Z8, Z1, Z5
	VPCLMULQDQ      $0x11, Z8, Z1, Z1
	VPTERNLOGQ      $0x96, Z4, Z0, Z2
	VPTERNLOGQ      $0x96, Z5, Z1, Z3
	VBROADCASTI32X4 foldK<>+32(SB), Z8
	VPCLMULQDQ      $0x00, Z8, Z2, Z4
	VPCLMULQDQ      $0x11, Z8, Z2, Z2
	VPTERNLOGQ      $0x96, Z4, Z2, Z3

	// Lanes 0, 1, 2 of Z3 into lane 3 (48, 32, 16 bytes on); lane 3 has
	// zero constants, so its products are zero and it is added as it is.
	VMOVDQU64      foldK<>+48(SB), Z8
	VPCLMULQDQ     $0x00, Z8, Z3, Z4
	VPCLMULQDQ     $0x11, Z8, Z3, Z5
	VPXORQ         Z5, Z4, Z4
	VEXTRACTI32X4  $3, Z3, X6
	VEXTRACTI64X4  $1, Z4, Y5
	VPXOR          Y5, Y4, Y4
	VEXTRACTI128   $1, Y4, X5
	VPXOR          X5, X4, X4
	VPXOR          X6, X4, X4

	// The CRC register of the remaining 16 bytes from zero.
	VMOVQ   X4, AX
	VPEXTRQ $1, X4, BX
	XORL    DX, DX
	CRC32Q  AX, DX
	CRC32Q  BX, DX
	MOVL    DX, ret+24(FP)
	VZEROUPPER
	RET

// func foldConstants() *[foldConstantWords]uint64
TEXT ·foldConstants(SB), NOSPLIT, $0-8
	LEAQ foldK<>(SB), AX
	MOVQ AX, ret+0(FP)
	RET
