package scsi

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func TestFileBackend(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vol.img")
	const size = 4 << 20
	b, err := OpenFileBackend(path, size)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Size() != size {
		t.Fatalf("size %d", b.Size())
	}
	data := pattern(2<<20, 9)
	if err := b.WriteAt(ctx, data, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Out of range, partly or wholly, is ErrOutOfRange.
	if err := b.WriteAt(ctx, data, size-512); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("write past the end: %v", err)
	}
	if err := b.ReadAt(ctx, make([]byte, 512), -512); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read before the start: %v", err)
	}

	for _, punch := range []bool{true, false} {
		b.noPunch.Store(!punch)
		if err := b.WriteAt(ctx, data, 1<<20); err != nil {
			t.Fatal(err)
		}
		// Unmap 1 MiB in the middle, and a 512-byte piece of a 4 KiB page.
		if err := b.Unmap(ctx, 1<<20+256<<10, 1<<20); err != nil {
			t.Fatal(err)
		}
		if err := b.Unmap(ctx, 3<<20-1024, 512); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 2<<20)
		if err := b.ReadAt(ctx, got, 1<<20); err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(data)
		clear(want[256<<10 : 256<<10+1<<20])
		clear(want[2<<20-1024 : 2<<20-512])
		if !bytes.Equal(got, want) {
			t.Fatalf("punch=%v: unmapped ranges do not read as zeros, or more was zeroed", punch)
		}
	}

	// Reopening with size 0 takes the file's size; data persists.
	b.Close()
	b2, err := OpenFileBackend(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if b2.Size() != size {
		t.Fatalf("reopened size %d", b2.Size())
	}
	got := make([]byte, 512)
	if err := b2.ReadAt(ctx, got, 1<<20); err != nil || !bytes.Equal(got, data[:512]) {
		t.Fatalf("data lost across reopen: %v", err)
	}
	// The untouched start is a hole and reads as zeros.
	if err := b2.ReadAt(ctx, got, 0); err != nil || !allZero(got) {
		t.Fatalf("hole reads % x, %v", got[:8], err)
	}
	mapped, n, err := b2.BlockStatus(ctx, 0)
	if err != nil || mapped || n != 1<<20 {
		t.Logf("BlockStatus(0) = %v, %d, %v (file system without SEEK_HOLE detail)", mapped, n, err)
	}
	mapped, n, err = b2.BlockStatus(ctx, 1<<20)
	if err != nil || !mapped || n <= 0 {
		t.Fatalf("BlockStatus at data = %v, %d, %v", mapped, n, err)
	}
}
