package volume

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestWriteSmallFolios checks that a slot write split into folio-sized
// pieces lands exactly as one write would, at any offset and length, into
// an uncached range (split) and a cached one (one write).
func TestWriteSmallFolios(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 4 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		n := 1 + r.IntN(3*folioBytes)
		if i%4 == 0 {
			n = BlockSize
		}
		off := r.Int64N(size - int64(n))
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		if err := writeSmallFolios(f, p, off); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], p)
	}
	got := make([]byte, size)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("file differs from the writes")
	}
}

// TestPageCached checks the test writeSmallFolios makes: a hole is not in
// the page cache, a range just written is.
func TestPageCached(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("cachestat is Linux's")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(4 * BlockSize); err != nil {
		t.Fatal(err)
	}
	if pageCached(f, BlockSize, BlockSize) {
		t.Fatal("a hole never read counts as cached")
	}
	if err := writeSmallFolios(f, bytes.Repeat([]byte{7}, BlockSize), BlockSize); err != nil {
		t.Fatal(err)
	}
	if !pageCached(f, BlockSize, BlockSize) {
		t.Skip("cachestat refused here (kernel before 6.5?): every large write is split")
	}
	if pageCached(f, BlockSize, 2*BlockSize) {
		t.Fatal("a range half cached counts as cached")
	}
}
