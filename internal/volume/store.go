package volume

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/seal"
)

// prefixed puts every key under a prefix, so several deployments can share
// one bucket.
type prefixed struct {
	s      blob.Store
	prefix string
}

func (p prefixed) Get(ctx context.Context, key string) ([]byte, error) {
	return p.s.Get(ctx, p.prefix+key)
}
func (p prefixed) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	return p.s.GetRange(ctx, p.prefix+key, off, n)
}
func (p prefixed) Put(ctx context.Context, key string, data []byte, o blob.PutOptions) (blob.ObjectInfo, error) {
	return p.s.Put(ctx, p.prefix+key, data, o)
}
func (p prefixed) Stat(ctx context.Context, key string) (blob.ObjectInfo, error) {
	return p.s.Stat(ctx, p.prefix+key)
}
func (p prefixed) Delete(ctx context.Context, key string) error { return p.s.Delete(ctx, p.prefix+key) }
func (p prefixed) List(ctx context.Context, prefix string, fn func(blob.ObjectInfo) error) error {
	return p.s.List(ctx, p.prefix+prefix, func(o blob.ObjectInfo) error {
		o.Key = o.Key[len(p.prefix):]
		return fn(o)
	})
}

func (e *Engine) put(ctx context.Context, key string, data []byte, o blob.PutOptions) error {
	if _, err := e.store.Put(ctx, key, data, o); err != nil {
		return fmt.Errorf("volume: put %s: %w", key, err)
	}
	return nil
}

// putContent stores an immutable content-addressed object. It is created
// with If-None-Match, one request when the object is new (the usual case).
// If a copy exists, GC rule G3c decides: it is reused only if its ModTime is
// no older than the cut's start minus the lease, else written again, which
// refreshes it. It reports the bytes actually uploaded.
//
// sum is data's SHA-256 (the name's hash), handed to the store so that an
// S3 store need not hash the body again to sign it.
func (e *Engine) putContent(ctx context.Context, key string, data []byte, cutStart time.Time, sum *[32]byte) (int64, error) {
	_, err := e.store.Put(ctx, key, data, blob.PutOptions{IfNoneMatch: true, SHA256: sum})
	if err == nil {
		return int64(len(data)), nil
	}
	if !errors.Is(err, blob.ErrPreconditionFailed) {
		return 0, fmt.Errorf("volume: put %s: %w", key, err)
	}
	info, err := e.store.Stat(ctx, key)
	switch {
	case err == nil && info.Size == int64(len(data)) && !info.ModTime.Before(cutStart.Add(-e.lease())):
		return 0, nil
	case err == nil, errors.Is(err, blob.ErrNotFound):
	default:
		return 0, fmt.Errorf("volume: stat %s: %w", key, err)
	}
	if err := e.put(ctx, key, data, blob.PutOptions{SHA256: sum}); err != nil {
		return 0, err
	}
	return int64(len(data)), nil
}

func (e *Engine) getHead(ctx context.Context, vol string) (head, string, error) {
	b, err := e.store.Get(ctx, headKey(vol))
	if err != nil {
		return head{}, "", fmt.Errorf("volume: head of %s: %w", vol, err)
	}
	info, err := e.store.Stat(ctx, headKey(vol))
	if err != nil {
		return head{}, "", fmt.Errorf("volume: head of %s: %w", vol, err)
	}
	var h head
	if err := json.Unmarshal(b, &h); err != nil {
		return head{}, "", fmt.Errorf("%w: head of %s: %v", ErrCorrupt, vol, err)
	}
	return h, info.ETag, nil
}

func (e *Engine) loadRoot(ctx context.Context, key string) (*root, error) {
	b, err := e.store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("volume: root %s: %w", key, err)
	}
	b, k, err := e.open(key, b, -1, maxRootBytes)
	if err != nil {
		return nil, fmt.Errorf("volume: root %s: %w", key, err)
	}
	r, err := decodeRoot(b)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", key, err)
	}
	r.sealedWith = k
	return r, nil
}

// fetchBlock reads a block from the store and checks it against its name
// (a patched block: its base and patch, each checked, composed: patch.go).
//
// Concurrent fetches of one block share one GET (fetches, readahead.go);
// the slice returned may be shared and is never written to.
func (e *Engine) fetchBlock(ctx context.Context, ref blockRef) ([]byte, error) {
	return e.fetches.do(ctx, e.fetchCtx, ref.id(), func(ctx context.Context) ([]byte, error) { return e.fetchBlockOnce(ctx, ref) })
}

func (e *Engine) fetchBlockOnce(ctx context.Context, ref blockRef) ([]byte, error) {
	if !ref.Patch.isZero() {
		return e.fetchPatchedOnce(ctx, ref)
	}
	h := ref.Base
	b, err := e.store.Get(ctx, blockKey(h))
	if err != nil {
		return nil, fmt.Errorf("volume: block %s: %w", h, err)
	}
	b, k, err := e.open(blockKey(h), b, BlockSize, BlockSize)
	if err != nil {
		return nil, fmt.Errorf("volume: block %s: %w", h, err)
	}
	if len(b) != BlockSize || !seal.Verify(h, b, k) {
		return nil, fmt.Errorf("%w: block %s has %d bytes that do not match its hash", ErrCorrupt, h, len(b))
	}
	return b, nil
}

// loadPage returns a manifest page, from memory if it is there. Pages are
// immutable, so one decoded copy serves every root that names it.
func (e *Engine) loadPage(ctx context.Context, h hash) (*page, error) {
	if p := e.pages.get(h); p != nil {
		return p, nil
	}
	b, err := e.store.Get(ctx, pageKey(h))
	if err != nil {
		return nil, fmt.Errorf("volume: page %s: %w", h, err)
	}
	b, k, err := e.open(pageKey(h), b, -1, maxPageBytes)
	if err != nil {
		return nil, fmt.Errorf("volume: page %s: %w", h, err)
	}
	if !seal.Verify(h, b, k) {
		return nil, fmt.Errorf("%w: page %s does not match its hash", ErrCorrupt, h)
	}
	p, err := decodePage(b)
	if err != nil {
		return nil, fmt.Errorf("page %s: %w", h, err)
	}
	e.pages.add(h, p)
	return p, nil
}

// blockRef returns how root r names block b (the zero ref: a zero block).
func (e *Engine) blockRef(ctx context.Context, r *root, b uint64) (blockRef, error) {
	pr, ok := r.Pages[uint32(b/pageBlocks)]
	if !ok {
		return blockRef{}, nil
	}
	p, err := e.loadPage(ctx, pr.Hash)
	if err != nil {
		return blockRef{}, err
	}
	return p.ref(uint16(b % pageBlocks)), nil
}

// pageCache keeps recently used decoded pages; memory stays bounded for a
// 32 TiB volume because pages are loaded lazily and evicted LRU.
type pageCache struct {
	mu  sync.Mutex // guards m and lru
	max int
	m   map[hash]*list.Element
	lru *list.List // of *pageEntry, front most recent
}

type pageEntry struct {
	h hash
	p *page
}

func newPageCache(max int) *pageCache {
	return &pageCache{max: max, m: make(map[hash]*list.Element), lru: list.New()}
}

func (c *pageCache) get(h hash) *page {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[h]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*pageEntry).p
	}
	return nil
}

func (c *pageCache) add(h hash, p *page) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[h]; ok {
		return
	}
	c.m[h] = c.lru.PushFront(&pageEntry{h, p})
	for c.lru.Len() > c.max {
		el := c.lru.Back()
		c.lru.Remove(el)
		delete(c.m, el.Value.(*pageEntry).h)
	}
}
