package volume

import (
	"context"
	"sync"
)

// Read-ahead: a cold sequential read (after a restart, on a restored or
// attached volume, or of data evicted long ago) would otherwise wait for
// one GET per 512 KiB block, one after the other, as far as the initiator's
// queue depth lets it. A volume watches where its reads go; once two runs
// in a row continue where the one before ended and a block had to come
// from the store, it fetches the blocks ahead of the reader into the
// cache, in parallel, in a window that doubles while the stream goes on.
//
// It changes no invariant: a prefetched block goes into the cache exactly
// as a read miss's does (prefetchBlock: fetched and checked against its
// hash with no lock held, then made clean under the volume lock only if
// the block is still that hash and not dirty or frozen), and a reader that
// misses on a block being prefetched shares its GET (fetches).

const (
	// raMinWindow and raMaxWindow bound the read-ahead window in blocks
	// (1 MiB to 16 MiB).
	raMinWindow = 2
	raMaxWindow = 32
	// raSlack is how far (in blocks) a run may start from where the
	// stream is expected and still belong to it: with several commands in
	// flight an initiator's sequential reads arrive a little out of order.
	raSlack = 16
	// raFetches bounds the prefetch GETs in flight across the engine.
	raFetches = 8
)

// readAhead is one volume's view of its reader; guarded by Volume.mu.
type readAhead struct {
	next   uint64 // the block a sequential reader reads next
	seq    int    // runs in a row that continued the stream
	missed bool   // a block of the stream came from the store
	end    uint64 // blocks before end are prefetched or being prefetched
	window uint64
}

// noteRun is told of every read run, blocks [first, last], with v.mu held,
// and starts prefetching when the run continues a stream that misses.
// Reads that keep hitting the cache cost two comparisons.
func (v *Volume) noteRun(first, last uint64) {
	ra := &v.ra
	if first+raSlack < ra.next || first > ra.next+raSlack {
		*ra = readAhead{next: last + 1}
		return
	}
	ra.next = max(ra.next, last+1)
	ra.seq++
	if ra.seq < 2 || !ra.missed {
		return
	}
	if ra.end > ra.next+ra.window/2 {
		return // the window ahead is still mostly unread
	}
	ra.window = min(max(2*ra.window, raMinWindow), raMaxWindow)
	from := max(ra.end, ra.next)
	to := min(ra.next+ra.window, v.blocks())
	if from >= to {
		return
	}
	ra.end = to
	ra.missed = false // the next window needs a miss of its own, or a block it had to fetch
	v.e.startPrefetch(v, from, to)
}

// blocks is the volume's size in blocks.
func (v *Volume) blocks() uint64 { return uint64((v.size + BlockSize - 1) / BlockSize) }

// startPrefetch fetches blocks [from, to) of v into the cache in the
// background; the engine's Close stops it.
func (e *Engine) startPrefetch(v *Volume, from, to uint64) {
	e.background(func(ctx context.Context) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(v.fencedCtx, cancel)
		defer stop()
		var wg sync.WaitGroup
		for b := from; b < to && ctx.Err() == nil; b++ {
			select {
			case e.raSem <- struct{}{}:
			case <-ctx.Done():
				continue
			}
			wg.Add(1)
			go func() {
				defer func() { <-e.raSem; wg.Done() }()
				fetched, err := e.prefetchBlock(ctx, v, b, true)
				if err != nil && ctx.Err() == nil {
					e.log.Debug("volume: read-ahead", "volume", v.id, "block", b, "err", err)
				}
				if fetched {
					// The stream still reaches the store: keep reading ahead.
					v.mu.Lock()
					v.ra.missed = true
					v.mu.Unlock()
				}
			}()
		}
		wg.Wait()
	})
}

// background runs fn in a goroutine that Close waits for, on a context
// that ends when Close begins; once the engine is closed it runs nothing.
func (e *Engine) background(fn func(ctx context.Context)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.backgroundLocked(fn)
}

// backgroundLocked is background with e.mu held.
func (e *Engine) backgroundLocked(fn func(ctx context.Context)) {
	if e.closed {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-e.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		fn(ctx)
	}()
}

// prefetchBlock caches block b of v unless it is local, cached, zero or
// being rewritten, and reports whether it had to fetch it. evict says
// whether it may push a clean block out of the cache (read-ahead: the
// reader is about to need it) or only take a free slot (a restore must
// not push out blocks someone reads).
func (e *Engine) prefetchBlock(ctx context.Context, v *Volume, b uint64, evict bool) (fetched bool, err error) {
	v.mu.Lock()
	h, ok, err := v.uncached(ctx, b)
	v.mu.Unlock()
	if !ok || err != nil {
		return false, err
	}
	_, err = e.fetchToCache(ctx, v, b, h, evict)
	return true, err
}

// fetchToCache fetches block b of v, hash h, and caches it (cacheFetched)
// as one shared call (fetches): a reader that misses on a block read-ahead
// is fetching waits for it to be cached instead of fetching it again. The
// caching is best effort here; a caller that needs it (a read) looks the
// block up again and caches it itself if it is not there (the shared call
// may have been another volume's, for a block of the same content).
func (e *Engine) fetchToCache(ctx context.Context, v *Volume, b uint64, h blockRef, evict bool) ([]byte, error) {
	return e.fetches.do(ctx, e.fetchCtx, h.id(), func(ctx context.Context) ([]byte, error) {
		data, err := e.fetchBlockOnce(ctx, h) // checks the SHA-256
		if err != nil {
			return nil, err
		}
		if err := e.cacheFetched(ctx, v, b, h, data, evict); err != nil {
			e.log.Debug("volume: caching a fetched block", "volume", v.id, "block", b, "err", err)
		}
		return data, nil
	})
}

// uncached reports the hash of block b of v if the block is to be fetched
// from the store: it is not dirty, frozen, zero or cached; v.mu held. A
// deleted volume needs nothing; one that cannot be read is an error (a
// restore must not count it done).
func (v *Volume) uncached(ctx context.Context, b uint64) (blockRef, bool, error) {
	if v.deleted {
		return blockRef{}, false, nil
	}
	if err := v.readable(); err != nil {
		return blockRef{}, false, err
	}
	_, dirty := v.dirty[b]
	_, frozen := v.frozen[b]
	if dirty || frozen || v.baseLost {
		return blockRef{}, false, nil
	}
	h, err := v.e.blockRef(ctx, v.base, b)
	if err != nil || h.isZero() {
		return blockRef{}, false, err
	}
	if _, cached := v.e.cache.lookup(v.key(b)); cached {
		return blockRef{}, false, nil
	}
	return h, true, nil
}

// cacheFetched puts data, block b of v fetched as hash h, in the cache if
// a slot can be had (evict: see prefetchBlock) and the block is still h
// and uncached; v.mu not held. The staging slot is the caller's alone
// until it is made clean, so the 512 KiB write happens without the
// volume lock: other I/O to the volume goes on meanwhile.
func (e *Engine) cacheFetched(ctx context.Context, v *Volume, b uint64, h blockRef, data []byte, evict bool) error {
	alloc := e.cache.allocFreeStaging
	if evict {
		alloc = e.cache.allocStaging
	}
	s, ok := alloc()
	if !ok {
		return nil // caching is best effort
	}
	if err := e.cache.writeSlot(s, data, 0); err != nil {
		e.cache.release(s)
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if now, still, err := v.uncached(ctx, b); err != nil || !still || now != h {
		e.cache.release(s)
		return err
	}
	e.cache.makeClean(s, v.key(b), sectorCRCs(data))
	return nil
}

// fetches lets concurrent fetches of one block share a GET: a reader that
// misses on a block read-ahead is already fetching waits for that fetch.
type fetches struct {
	mu       sync.Mutex
	inflight map[hash]*fetchCall
}

type fetchCall struct {
	done chan struct{}
	data []byte
	err  error
}

// do returns fetch(h)'s result, running it once for all the callers that
// ask for h while it runs. The fetch runs on fetchCtx, not on the first
// caller's ctx, whose end must not fail the others; a caller whose ctx
// ends stops waiting.
func (f *fetches) do(ctx, fetchCtx context.Context, h hash, fetch func(context.Context) ([]byte, error)) ([]byte, error) {
	f.mu.Lock()
	if f.inflight == nil {
		f.inflight = make(map[hash]*fetchCall)
	}
	c, ok := f.inflight[h]
	if !ok {
		c = &fetchCall{done: make(chan struct{})}
		f.inflight[h] = c
		go func() {
			c.data, c.err = fetch(fetchCtx)
			f.mu.Lock()
			delete(f.inflight, h)
			f.mu.Unlock()
			close(c.done)
		}()
	}
	f.mu.Unlock()
	select {
	case <-c.done:
		return c.data, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
