package volume

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"
)

// TestCachePinnedSlot: a clean slot a reader has pinned (reads run without
// the volume lock) is never reused under it: dropping it or replacing it
// leaves it out of the index but not free until the pin goes, eviction
// skips it, and taking it for a write waits for the reader.
func TestCachePinnedSlot(t *testing.T) {
	c := newCache()
	if err := c.addDisk(filepath.Join(t.TempDir(), "cache.img"), 4*BlockSize); err != nil {
		t.Fatal(err)
	}
	defer c.close()
	data := bytes.Repeat([]byte{7}, BlockSize)
	clean := func(key cacheKey) int32 {
		s, ok := c.allocStaging()
		if !ok {
			t.Fatal("no slot")
		}
		if err := c.writeSlot(s, data, 0); err != nil {
			t.Fatal(err)
		}
		c.makeClean(s, key, sectorCRCs(data))
		return s
	}
	k := cacheKey{nonce: 1, block: 3}
	s := clean(k)
	pr, ok := c.pinClean(k)
	if !ok || pr.s != s {
		t.Fatalf("pinClean: %v %d, want slot %d", ok, pr.s, s)
	}
	c.drop(k)
	if _, ok := c.lookup(k); ok {
		t.Fatal("dropped block still indexed")
	}
	// Every other slot can be taken; the pinned one cannot.
	for range 3 {
		if got, ok := c.alloc(); !ok || got == s {
			t.Fatalf("alloc: %d %v with slot %d pinned", got, ok, s)
		}
	}
	if got, ok := c.alloc(); ok {
		t.Fatalf("alloc handed out slot %d, pinned", got)
	}
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 8192)
	if good, err := pr.read(c, p, 4096, nil); err != nil || !good || !bytes.Equal(p, data[:8192]) {
		t.Fatalf("read of the pinned slot: %v %v", good, err)
	}
	c.unpin([]pinnedRead{pr}, []bool{false})
	if got, ok := c.alloc(); !ok || got != s {
		t.Fatalf("after unpin, alloc: %d %v, want the freed slot %d", got, ok, s)
	}
	if err := c.check(); err != nil {
		t.Fatal(err)
	}

	// takeClean waits for the reader.
	c2 := newCache()
	if err := c2.addDisk(filepath.Join(t.TempDir(), "cache2.img"), 4*BlockSize); err != nil {
		t.Fatal(err)
	}
	defer c2.close()
	c = c2
	s = clean(k)
	pr, _ = c.pinClean(k)
	took := make(chan int32)
	go func() {
		got, _, _ := c.takeClean(k)
		took <- got
	}()
	select {
	case got := <-took:
		t.Fatalf("takeClean took slot %d while it was pinned", got)
	case <-time.After(50 * time.Millisecond):
	}
	c.unpin([]pinnedRead{pr}, []bool{false})
	if got := <-took; got != s {
		t.Fatalf("takeClean: slot %d, want %d", got, s)
	}
}
