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
//	 0,  1  N = 4096: the main loop, each lane to the same lane 512 bytes on
//	 2,  3  N = 2048: Z0-Z3 into Z10-Z13 after the loop (256 bytes on)
//	 4,  5  N = 1024: Z10 into Z12 and Z11 into Z13
//	 6,  7  N =  512: Z12 into Z13
//	 8..15  N = 384, 256, 128, and zero: lanes 0, 1, 2 of Z13 into lane 3
//
// Eight chains of folds, 512 bytes per step: one step keeps the
// multiplier busy about as long as the 32 crc32 instructions that
// sectorsMix runs beside it.
//
// The last 16 bytes are reduced by the crc32 instruction (SSE4.2), which
// computes exactly the CRC-32C register of 8 bytes from a register value.
DATA foldK<>+0(SB)/8, $0x75bda45400000000
DATA foldK<>+8(SB)/8, $0xe986c14800000000
DATA foldK<>+16(SB)/8, $0xe9a5d8be00000000
DATA foldK<>+24(SB)/8, $0x1426a81500000000
DATA foldK<>+32(SB)/8, $0x6577b24500000000
DATA foldK<>+40(SB)/8, $0x7417153f00000000
DATA foldK<>+48(SB)/8, $0x1c19243b00000000
DATA foldK<>+56(SB)/8, $0x75bba45b00000000
DATA foldK<>+64(SB)/8, $0xa46ef4aa00000000
DATA foldK<>+72(SB)/8, $0x6051243f00000000
DATA foldK<>+80(SB)/8, $0x33ccbbbc00000000
DATA foldK<>+88(SB)/8, $0xa2158b3400000000
DATA foldK<>+96(SB)/8, $0x3743f7bd00000000
DATA foldK<>+104(SB)/8, $0x3171d43000000000
DATA foldK<>+112(SB)/8, $0
DATA foldK<>+120(SB)/8, $0
GLOBL foldK<>(SB), RODATA|NOPTR, $128

// LOAD_FIRST loads the first 512 bytes at SI into the eight chains and
// xors the starting register (in X4, zero above its low 32 bits) into the
// first 4 bytes.
#define LOAD_FIRST \
	VMOVDQU64 0(SI), Z0; \
	VMOVDQU64 64(SI), Z1; \
	VMOVDQU64 128(SI), Z2; \
	VMOVDQU64 192(SI), Z3; \
	VMOVDQU64 256(SI), Z10; \
	VMOVDQU64 320(SI), Z11; \
	VMOVDQU64 384(SI), Z12; \
	VMOVDQU64 448(SI), Z13; \
	VPXORQ    Z4, Z0, Z0; \
	ADDQ      $512, SI

// FOLD_STEP folds the eight chains 512 bytes on (constant in Z8) and adds
// the 512 bytes at SI.
#define FOLD_STEP \
	VPCLMULQDQ $0x00, Z8, Z0, Z4; \
	VPCLMULQDQ $0x11, Z8, Z0, Z0; \
	VPCLMULQDQ $0x00, Z8, Z1, Z5; \
	VPCLMULQDQ $0x11, Z8, Z1, Z1; \
	VPCLMULQDQ $0x00, Z8, Z2, Z6; \
	VPCLMULQDQ $0x11, Z8, Z2, Z2; \
	VPCLMULQDQ $0x00, Z8, Z3, Z7; \
	VPCLMULQDQ $0x11, Z8, Z3, Z3; \
	VPCLMULQDQ $0x00, Z8, Z10, Z14; \
	VPCLMULQDQ $0x11, Z8, Z10, Z10; \
	VPCLMULQDQ $0x00, Z8, Z11, Z15; \
	VPCLMULQDQ $0x11, Z8, Z11, Z11; \
	VPCLMULQDQ $0x00, Z8, Z12, Z16; \
	VPCLMULQDQ $0x11, Z8, Z12, Z12; \
	VPCLMULQDQ $0x00, Z8, Z13, Z17; \
	VPCLMULQDQ $0x11, Z8, Z13, Z13; \
	VPTERNLOGQ $0x96, 0(SI), Z4, Z0; \
	VPTERNLOGQ $0x96, 64(SI), Z5, Z1; \
	VPTERNLOGQ $0x96, 128(SI), Z6, Z2; \
	VPTERNLOGQ $0x96, 192(SI), Z7, Z3; \
	VPTERNLOGQ $0x96, 256(SI), Z14, Z10; \
	VPTERNLOGQ $0x96, 320(SI), Z15, Z11; \
	VPTERNLOGQ $0x96, 384(SI), Z16, Z12; \
	VPTERNLOGQ $0x96, 448(SI), Z17, Z13; \
	ADDQ       $512, SI

// REDUCE folds the eight chains into one 128-bit value in X4 and leaves
// the CRC register of those 16 bytes, from zero, in AX (uses R13).
//
// First Z0-Z3 into Z10-Z13 (256 bytes on), then Z10 into Z12 and Z11 into
// Z13 (128), then Z12 into Z13 (64), then lanes 0, 1, 2 of Z13 into lane 3
// (48, 32, 16 bytes on; lane 3 has zero constants, so its products are
// zero and it is added as it is), then the crc32 instruction on the 16
// bytes left.
#define REDUCE \
	VBROADCASTI32X4 foldK<>+16(SB), Z8; \
	VPCLMULQDQ      $0x00, Z8, Z0, Z4; \
	VPCLMULQDQ      $0x11, Z8, Z0, Z0; \
	VPCLMULQDQ      $0x00, Z8, Z1, Z5; \
	VPCLMULQDQ      $0x11, Z8, Z1, Z1; \
	VPCLMULQDQ      $0x00, Z8, Z2, Z6; \
	VPCLMULQDQ      $0x11, Z8, Z2, Z2; \
	VPCLMULQDQ      $0x00, Z8, Z3, Z7; \
	VPCLMULQDQ      $0x11, Z8, Z3, Z3; \
	VPTERNLOGQ      $0x96, Z4, Z0, Z10; \
	VPTERNLOGQ      $0x96, Z5, Z1, Z11; \
	VPTERNLOGQ      $0x96, Z6, Z2, Z12; \
	VPTERNLOGQ      $0x96, Z7, Z3, Z13; \
	VBROADCASTI32X4 foldK<>+32(SB), Z8; \
	VPCLMULQDQ      $0x00, Z8, Z10, Z4; \
	VPCLMULQDQ      $0x11, Z8, Z10, Z10; \
	VPCLMULQDQ      $0x00, Z8, Z11, Z5; \
	VPCLMULQDQ      $0x11, Z8, Z11, Z11; \
	VPTERNLOGQ      $0x96, Z4, Z10, Z12; \
	VPTERNLOGQ      $0x96, Z5, Z11, Z13; \
	VBROADCASTI32X4 foldK<>+48(SB), Z8; \
	VPCLMULQDQ      $0x00, Z8, Z12, Z4; \
	VPCLMULQDQ      $0x11, Z8, Z12, Z12; \
	VPTERNLOGQ      $0x96, Z4, Z12, Z13; \
	VMOVDQU64       foldK<>+64(SB), Z8; \
	VPCLMULQDQ      $0x00, Z8, Z13, Z4; \
	VPCLMULQDQ      $0x11, Z8, Z13, Z5; \
	VPXORQ          Z5, Z4, Z4; \
	VEXTRACTI32X4   $3, Z13, X6; \
	VEXTRACTI64X4   $1, Z4, Y5; \
	VPXOR           Y5, Y4, Y4; \
	VEXTRACTI128    $1, Y4, X5; \
	VPXOR           X5, X4, X4; \
	VPXOR           X6, X4, X4; \
	VMOVQ           X4, R13; \
	XORL            AX, AX; \
	CRC32Q          R13, AX; \
	VPEXTRQ         $1, X4, R13; \
	CRC32Q          R13, AX

// CRC_STREAMS_64 advances four single crc32 streams, in R8-R11, by 64
// bytes each: the sectors at DI, DI+4096, DI+8192 and DI+12288.
#define CRC_STREAMS_64 \
	CRC32Q 0(DI), R8; CRC32Q 4096(DI), R9; CRC32Q 8192(DI), R10; CRC32Q 12288(DI), R11; \
	CRC32Q 8(DI), R8; CRC32Q 4104(DI), R9; CRC32Q 8200(DI), R10; CRC32Q 12296(DI), R11; \
	CRC32Q 16(DI), R8; CRC32Q 4112(DI), R9; CRC32Q 8208(DI), R10; CRC32Q 12304(DI), R11; \
	CRC32Q 24(DI), R8; CRC32Q 4120(DI), R9; CRC32Q 8216(DI), R10; CRC32Q 12312(DI), R11; \
	CRC32Q 32(DI), R8; CRC32Q 4128(DI), R9; CRC32Q 8224(DI), R10; CRC32Q 12320(DI), R11; \
	CRC32Q 40(DI), R8; CRC32Q 4136(DI), R9; CRC32Q 8232(DI), R10; CRC32Q 12328(DI), R11; \
	CRC32Q 48(DI), R8; CRC32Q 4144(DI), R9; CRC32Q 8240(DI), R10; CRC32Q 12336(DI), R11; \
	CRC32Q 56(DI), R8; CRC32Q 4152(DI), R9; CRC32Q 8248(DI), R10; CRC32Q 12344(DI), R11; \
	ADDQ $64, DI

// func fold(crc uint32, p *byte, n int) uint32
TEXT ·fold(SB), NOSPLIT, $0-28
	MOVL crc+0(FP), AX
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), CX
	VMOVD AX, X4
	LOAD_FIRST
	SUBQ $512, CX
	JZ   reduce
	VBROADCASTI32X4 foldK<>+0(SB), Z8

loop:
	FOLD_STEP
	SUBQ $512, CX
	JNZ  loop

reduce:
	REDUCE
	MOVL AX, ret+24(FP)
	VZEROUPPER
	RET

// func sectorsMix(p *byte, out *uint32, groups int)
//
// Each group is twelve 4 KiB sectors: the first eight folded one after
// another, and beside them the last four in four plain crc32 streams, one
// sector each, 64 bytes of each stream per fold step. The crc32
// instruction runs on other execution units than the carry-less
// multiplier, so the streams' 16 KiB cost little time next to the folds'
// 32 KiB; one stream per sector needs no combining.
TEXT ·sectorsMix(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ out+8(FP), DX
	MOVQ groups+16(FP), R12

group:
	LEAQ  32768(SI), DI
	MOVL  $0xffffffff, R8
	MOVL  $0xffffffff, R9
	MOVL  $0xffffffff, R10
	MOVL  $0xffffffff, R11
	MOVQ  $8, BX

sector:
	MOVL  $0xffffffff, AX
	VMOVD AX, X4
	LOAD_FIRST
	CRC_STREAMS_64
	VBROADCASTI32X4 foldK<>+0(SB), Z8
	MOVQ  $7, CX

step:
	FOLD_STEP
	CRC_STREAMS_64
	DECQ CX
	JNZ  step

	REDUCE
	NOTL AX
	MOVL AX, 0(DX)
	ADDQ $4, DX
	DECQ BX
	JNZ  sector

	// Eight sectors folded (SI is at the first streamed one) and the four
	// streams through their 4096 bytes.
	NOTL R8
	NOTL R9
	NOTL R10
	NOTL R11
	MOVL R8, 0(DX)
	MOVL R9, 4(DX)
	MOVL R10, 8(DX)
	MOVL R11, 12(DX)
	ADDQ $16, DX
	ADDQ $16384, SI
	DECQ R12
	JNZ  group

	VZEROUPPER
	RET

// func foldConstants() *[foldConstantWords]uint64
TEXT ·foldConstants(SB), NOSPLIT, $0-8
	LEAQ foldK<>(SB), AX
	MOVQ AX, ret+0(FP)
	RET
