package crc32c

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// reference is the definition: hash/crc32 with the Castagnoli table.
func reference(crc uint32, b []byte) uint32 {
	return crc32.Update(crc, crc32.MakeTable(crc32.Castagnoli), b)
}

// implementations are every path that computes the checksum: the public
// dispatch, the hash/crc32 fallback that machines without the folding
// instructions take, and whatever this architecture adds (runnable here).
func implementations() map[string]func(uint32, []byte) uint32 {
	m := map[string]func(uint32, []byte) uint32{
		"Update":   Update,
		"fallback": updateGeneric,
	}
	for name, f := range archImplementations() {
		m[name] = f
	}
	return m
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// TestEveryLength compares every implementation with hash/crc32 for every
// length up to 8 KiB (past foldMin and many fold blocks), each at a random
// alignment and from a random starting CRC as well as from zero.
func TestEveryLength(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const maxLen = 8192
	buf := randomBytes(rng, maxLen+64)
	for name, f := range implementations() {
		t.Run(name, func(t *testing.T) {
			for n := 0; n <= maxLen; n++ {
				off := rng.IntN(64)
				b := buf[off : off+n]
				if got, want := f(0, b), reference(0, b); got != want {
					t.Fatalf("len %d offset %d: %08x, want %08x", n, off, got, want)
				}
				start := rng.Uint32()
				if got, want := f(start, b), reference(start, b); got != want {
					t.Fatalf("len %d offset %d from %08x: %08x, want %08x", n, off, start, got, want)
				}
			}
		})
	}
}

// TestKnownValues pins the checksum to published CRC-32C values, so that
// the package and hash/crc32 cannot be wrong together unnoticed.
func TestKnownValues(t *testing.T) {
	for _, tc := range []struct {
		data []byte
		want uint32
	}{
		{[]byte("123456789"), 0xe3069283},            // the check value of the CRC-32C catalogue entry
		{make([]byte, 32), 0x8a9136aa},               // RFC 3720 B.4: 32 bytes of zeros
		{bytes.Repeat([]byte{0xff}, 32), 0x62a8ab43}, // RFC 3720 B.4: 32 bytes of ones
	} {
		if got := Checksum(tc.data); got != tc.want {
			t.Errorf("Checksum(% x): %08x, want %08x", tc.data, got, tc.want)
		}
	}
}

// TestUpdateSplits checks that any split of the data, each part through
// Update, gives the checksum of the whole: the CRC carried into the folding
// path is the part most easily got wrong.
func TestUpdateSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		b := randomBytes(rng, rng.IntN(20000))
		want := reference(0, b)
		var crc uint32
		rest := b
		for len(rest) > 0 {
			n := min(len(rest), rng.IntN(5000)+1)
			crc = Update(crc, rest[:n])
			rest = rest[n:]
		}
		if crc != want {
			t.Fatalf("%d bytes in parts: %08x, want %08x", len(b), crc, want)
		}
	}
}

// sectorImplementations are every path that checksums whole sectors: the
// public function, the fallback's loop, and this architecture's own.
func sectorImplementations() map[string]func([]byte, []uint32) {
	m := map[string]func([]byte, []uint32){
		"Sectors":  Sectors,
		"fallback": func(data []byte, out []uint32) { sectors(data, out, updateGeneric) },
	}
	for name, f := range archSectorImplementations() {
		m[name] = f
	}
	return m
}

func checkAllSectors(t *testing.T, data []byte, out []uint32) {
	t.Helper()
	for i, got := range out {
		if want := reference(0, data[i*SectorSize:(i+1)*SectorSize]); got != want {
			t.Fatalf("%d sectors: sector %d: %08x, want %08x", len(out), i, got, want)
		}
	}
}

// TestSectors checks every sector of random 512 KiB buffers (a cache slot),
// of all-zero and all-one ones, of every count of sectors up to 40 (whole
// groups of the interleaved path and every remainder) and of a buffer that
// is not 64-byte aligned, through every implementation.
func TestSectors(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const size = 512 << 10
	bufs := [][]byte{make([]byte, size), bytes.Repeat([]byte{0xff}, size)}
	for range 8 {
		bufs = append(bufs, randomBytes(rng, size))
	}
	bufs = append(bufs, randomBytes(rng, size+1)[1:])
	for n := range 41 {
		bufs = append(bufs, randomBytes(rng, n*SectorSize))
	}
	for name, f := range sectorImplementations() {
		t.Run(name, func(t *testing.T) {
			for _, buf := range bufs {
				out := make([]uint32, len(buf)/SectorSize)
				f(buf, out)
				checkAllSectors(t, buf, out)
			}
		})
	}
}

func TestSectorsLengthMismatch(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Sectors with 2 sectors of data and 3 outputs did not panic")
		}
	}()
	Sectors(make([]byte, 2*SectorSize), make([]uint32, 3))
}

func FuzzChecksum(f *testing.F) {
	f.Add(uint32(0), []byte("123456789"))
	f.Add(uint32(0xffffffff), make([]byte, 4096))
	f.Add(uint32(0x12345678), bytes.Repeat([]byte{0xa5}, 777))
	f.Fuzz(func(t *testing.T, start uint32, b []byte) {
		want := reference(start, b)
		for name, fn := range implementations() {
			if got := fn(start, b); got != want {
				t.Fatalf("%s: %d bytes from %08x: %08x, want %08x", name, len(b), start, got, want)
			}
		}
	})
}

func BenchmarkSectors(b *testing.B) {
	for _, size := range []int{SectorSize, 64 << 10, 512 << 10, 1 << 20} {
		data := randomBytes(rand.New(rand.NewPCG(7, 8)), size)
		out := make([]uint32, size/SectorSize)
		for _, impl := range []struct {
			name string
			f    func([]byte, []uint32)
		}{
			{"crc32c", Sectors},
			{"hash-crc32", func(data []byte, out []uint32) { sectors(data, out, reference) }},
		} {
			b.Run(impl.name+"/"+sizeName(size), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					impl.f(data, out)
				}
			})
		}
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, size := range []int{64, 512, 4096, 1 << 20} {
		data := randomBytes(rand.New(rand.NewPCG(9, 10)), size)
		for _, impl := range []struct {
			name string
			f    func(uint32, []byte) uint32
		}{{"crc32c", Update}, {"hash-crc32", reference}} {
			b.Run(impl.name+"/"+sizeName(size), func(b *testing.B) {
				b.SetBytes(int64(size))
				for b.Loop() {
					impl.f(0, data)
				}
			})
		}
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
