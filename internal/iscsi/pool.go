package iscsi

import (
	"math/bits"
	"sync"
	"unsafe"
)

// Data-Out buffers come from per-size-class pools (powers of two from 4 KiB
// to 64 MiB), so a steady write load allocates nothing per command.
const (
	minBufShift = 12
	maxBufShift = 26
)

// bufPools holds, per class, pointers to the first byte of free buffers:
// a pointer fits in an interface without allocating, where a slice header
// would be copied to the heap on every put. The pointer keeps the whole
// buffer alive; its capacity is the class size.
var bufPools [maxBufShift - minBufShift + 1]sync.Pool

func bufClass(n int) int {
	if n <= 1<<minBufShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}

// getBuf returns a buffer of length n. Buffers larger than the largest
// class are allocated and never pooled.
func getBuf(n int) []byte {
	c := bufClass(n)
	if c >= len(bufPools) {
		return make([]byte, n)
	}
	if p, ok := bufPools[c].Get().(*byte); ok {
		return unsafe.Slice(p, 1<<(c+minBufShift))[:n]
	}
	return make([]byte, n, 1<<(c+minBufShift))
}

// putBuf returns a buffer from getBuf. Its contents must not be used after.
func putBuf(b []byte) {
	if b == nil {
		return
	}
	c := bufClass(cap(b))
	if c >= len(bufPools) || cap(b) != 1<<(c+minBufShift) {
		return
	}
	bufPools[c].Put(unsafe.SliceData(b))
}
