package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// blockGets counts GETs of blocks by key.
type blockGets struct {
	blob.Store
	mu   sync.Mutex
	gets map[string]int
}

func (s *blockGets) Get(ctx context.Context, key string) ([]byte, error) {
	if strings.HasPrefix(key, "blocks/") {
		s.mu.Lock()
		s.gets[key]++
		s.mu.Unlock()
	}
	return s.Store.Get(ctx, key)
}

func (s *blockGets) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[key]
}

// coldVolume writes n distinct blocks to a new volume, publishes them and
// reopens the engine, so that every block must come from the store.
func coldVolume(t *testing.T, te *testEngine, id string, n int) {
	t.Helper()
	ctx := context.Background()
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol(id)
	for b := range n {
		if err := v.WriteAt(ctx, pattern(byte(b+1), BlockSize), int64(b)*BlockSize); err != nil {
			t.Fatal(err)
		}
	}
	if err := te.Cut(ctx, id); err != nil {
		t.Fatal(err)
	}
	te.reopen()
}

// TestReadAheadFetchesAhead: a cold sequential reader finds the blocks
// ahead of it already fetched (each fetched once), and reads right data.
func TestReadAheadFetchesAhead(t *testing.T) {
	store := &blockGets{Store: blobtest.NewFS(t), gets: map[string]int{}}
	te := newTestEngine(t, store, engineOpts{})
	const n = 24
	coldVolume(t, te, "vol-R", n)
	v := te.vol("vol-R")
	key := func(b int) cacheKey { return v.key(uint64(b)) }
	// Two 1 MiB reads in a row (blocks 0–3), each block a miss: a stream.
	for off := int64(0); off < 4*BlockSize; off += 2 * BlockSize {
		if got := mustRead(t, v, off, 2*BlockSize); !bytes.Equal(got[:BlockSize], pattern(byte(off/BlockSize+1), BlockSize)) {
			t.Fatalf("block %d differs", off/BlockSize)
		}
	}
	// The blocks just ahead arrive in the cache without being read.
	deadline := time.Now().Add(20 * time.Second)
	for _, b := range []int{4, 5} {
		for {
			if _, ok := te.cache.lookup(key(b)); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("block %d was not read ahead", b)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// The whole volume reads right, sequentially, and no block was
	// fetched twice while the reader and read-ahead raced for it.
	for off := int64(0); off < n*BlockSize; off += 2 * BlockSize {
		got := mustRead(t, v, off, 2*BlockSize)
		for i := range 2 {
			b := int(off/BlockSize) + i
			if !bytes.Equal(got[i*BlockSize:(i+1)*BlockSize], pattern(byte(b+1), BlockSize)) {
				t.Fatalf("block %d differs", b)
			}
		}
	}
	te.Close() // waits for read-ahead to finish
	te.Engine = nil
	twice := 0
	for b := range n {
		h := hash(sha256.Sum256(pattern(byte(b+1), BlockSize)))
		if store.count(blockKey(h)) > 1 {
			twice++
		}
	}
	// A block can be fetched twice only if a reader missed on it in the
	// instant between read-ahead's GET returning and its caching: allow
	// one, never a pattern.
	if twice > 1 {
		t.Fatalf("%d of %d blocks were fetched more than once", twice, n)
	}
}

// TestReadAheadRacingWrites: read-ahead never puts stale data in the
// cache. A cold sequential reader runs over blocks a writer keeps
// overwriting; every read of a block returns a version written to it,
// and the last read of every block, after the writer stops, the last
// version.
func TestReadAheadRacingWrites(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{cacheBytes: 16 << 20, bufferBytes: 64 << 20})
	const n = 64
	coldVolume(t, te, "vol-W", n)
	v := te.vol("vol-W")
	var mu sync.Mutex
	versions := make([][]byte, n) // every version of each block, by its first byte
	for b := range n {
		versions[b] = []byte{byte(b + 1)}
	}
	check := func(b int, got []byte, last bool) error {
		mu.Lock()
		vs := versions[b]
		mu.Unlock()
		if last {
			vs = vs[len(vs)-1:]
		}
		for _, s := range vs {
			if bytes.Equal(got, pattern(s, BlockSize)) {
				return nil
			}
		}
		return fmt.Errorf("block %d reads as none of its %d versions", b, len(vs))
	}
	r := rand.New(rand.NewPCG(1, 2))
	seq := 0
	for round := range 3 {
		if round > 0 {
			te.reopen() // cold again
			v = te.vol("vol-W")
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				b := r.IntN(n)
				seq++
				seed := byte(100 + seq%150)
				mu.Lock()
				versions[b] = append(versions[b], seed)
				mu.Unlock()
				if err := v.WriteAt(ctx, pattern(seed, BlockSize), int64(b)*BlockSize); err != nil {
					t.Error(err)
					return
				}
				if i%8 == 7 {
					if err := te.Cut(ctx, "vol-W"); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
		for pass := range 2 {
			for off := int64(0); off < n*BlockSize; off += 2 * BlockSize {
				got := mustRead(t, v, off, 2*BlockSize)
				for i := range 2 {
					if err := check(int(off/BlockSize)+i, got[i*BlockSize:(i+1)*BlockSize], false); err != nil {
						close(stop)
						wg.Wait()
						t.Fatalf("round %d pass %d: %v", round, pass, err)
					}
				}
			}
		}
		close(stop)
		wg.Wait()
		if t.Failed() {
			return
		}
		for b := range n {
			if err := check(b, mustRead(t, v, int64(b)*BlockSize, BlockSize), true); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	if err := te.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// heldGets holds block GETs, once armed, until released, and answers them
// whether or not their context has ended meanwhile (as a GET whose reply
// was already on the wire does).
type heldGets struct {
	blob.Store
	armed   atomic.Bool
	waiting chan struct{}
	release chan struct{}
}

func (s *heldGets) Get(ctx context.Context, key string) ([]byte, error) {
	if strings.HasPrefix(key, "blocks/") && s.armed.CompareAndSwap(true, false) {
		close(s.waiting)
		<-s.release
		return s.Store.Get(context.WithoutCancel(ctx), key)
	}
	return s.Store.Get(ctx, key)
}

// TestFetchOutlivesClose: a block fetch that returns after the engine has
// closed (nothing waits for fetches) caches nothing and does not panic:
// the closed cache's files stay listed and refuse the write.
func TestFetchOutlivesClose(t *testing.T) {
	ctx := context.Background()
	store := &heldGets{Store: blobtest.NewFS(t), waiting: make(chan struct{}), release: make(chan struct{})}
	te := newTestEngine(t, store, engineOpts{})
	const id = "vol-0000000000000FOC01"
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	data := pattern(3, BlockSize)
	if err := te.vol(id).WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, id); err != nil {
		t.Fatal(err)
	}
	te.reopen() // the cache starts empty: block 0 is fetched when read
	store.armed.Store(true)
	readCtx, cancel := context.WithCancel(ctx)
	readDone := make(chan error, 1)
	go func() {
		readDone <- te.vol(id).ReadAt(readCtx, make([]byte, 4096), 0)
	}()
	<-store.waiting
	cancel()
	if err := <-readDone; err == nil {
		t.Fatal("a read whose context ended while its block was fetched succeeded")
	}
	if err := te.Engine.Close(); err != nil {
		t.Fatal(err)
	}
	close(store.release)
	// The fetch goroutine goes on to cache the block into the closed
	// cache; it is done once the shared call is gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		te.fetches.mu.Lock()
		n := len(te.fetches.inflight)
		te.fetches.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fetch never ended")
		}
		time.Sleep(time.Millisecond)
	}
	te.Engine = nil
}
