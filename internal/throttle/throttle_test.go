package throttle

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
)

// TestNeverFasterThanTheRate: n bytes through a limiter at r take at
// least (n - one burst) / r. (A slow machine makes it slower, never
// faster: this bound cannot flake.)
func TestNeverFasterThanTheRate(t *testing.T) {
	const rate = 4 << 20 // 4 MiB/s
	l := NewLimiter(rate)
	start := time.Now()
	if err := l.WaitN(context.Background(), 2<<20); err != nil {
		t.Fatal(err)
	}
	min := time.Duration(float64(2<<20-rate*burst.Seconds()) / rate * float64(time.Second))
	if d := time.Since(start); d < min {
		t.Fatalf("2 MiB at 4 MiB/s passed in %v, less than %v", d, min)
	}
	if l.Passed() != 2<<20 {
		t.Fatalf("Passed = %d", l.Passed())
	}
}

// TestRateChangeWakesWaiters: a taker waiting at a tiny rate goes on as
// soon as the limit is lifted, and a cancelled one returns its ctx's
// error without counting what it did not pass.
func TestRateChangeWakesWaiters(t *testing.T) {
	l := NewLimiter(1024) // 64 KiB would take a minute
	done := make(chan error, 1)
	go func() { done <- l.WaitN(context.Background(), 64<<10) }()
	time.Sleep(50 * time.Millisecond)
	l.SetRate(0)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lifting the limit did not wake the waiter")
	}

	l.SetRate(1024)
	before := l.Passed()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- l.WaitN(ctx, 64<<10) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cancelling did not end the wait")
	}
	if got := l.Passed() - before; got >= 64<<10 {
		t.Fatalf("a cancelled wait counted %d bytes", got)
	}
}

// TestStorePacesBodies: Put bodies pass the upload limiter and Get results
// the download one; the objects are unchanged.
func TestStorePacesBodies(t *testing.T) {
	ctx := context.Background()
	up, down := NewLimiter(0), NewLimiter(0)
	s := Store{Store: blobtest.NewFS(t), Upload: up, Download: down}
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i)
	}
	if _, err := s.Put(ctx, "blocks/x", data, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "blocks/x")
	if err != nil || string(got) != string(data) {
		t.Fatalf("Get: %d bytes, %v", len(got), err)
	}
	if up.Passed() != int64(len(data)) || down.Passed() != int64(len(data)) {
		t.Fatalf("passed up %d down %d, want %d each", up.Passed(), down.Passed(), len(data))
	}
}
