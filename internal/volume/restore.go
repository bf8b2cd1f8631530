package volume

import (
	"context"
	"slices"
	"sync/atomic"
	"time"
)

// A volume created from a snapshot (or cloned from another volume) holds
// its source's data from the start: its first root names the source's
// pages. What it lacks is that data near at hand. It is RESTORING until
// every non-zero block of the source has been fetched from the store once
// and verified against its SHA-256 (so the restore is known readable end
// to end), each one kept in the cache while the cache has free slots (a
// restore never evicts what someone reads). A block the volume rewrote, or
// already has in its cache, counts as done without a fetch. It walks the
// volume's published root as the restore starts (at creation, exactly the
// source's pages; blocks rewritten since are skipped). A restart resumes
// it (the ledger names the volumes still restoring) from the start: the
// cache is cold after a restart anyway.
//
// That is this engine's meaning of "hydrated" for a cached volume: the
// data is all in the store and verified there, and as much of it as fits
// is local.
type restoreState struct {
	total, done atomic.Int64
	finished    atomic.Bool
}

func (r *restoreState) progress() float64 {
	t := r.total.Load()
	if t == 0 {
		return 0
	}
	return min(99, 100*float64(r.done.Load())/float64(t))
}

// startRestore begins restoring v in the background (at Open, for the
// volumes the ledger names); the engine's Close stops it.
func (e *Engine) startRestore(v *Volume) {
	r := &restoreState{}
	v.mu.Lock()
	v.restore = r
	v.mu.Unlock()
	e.background(func(ctx context.Context) { e.runRestore(ctx, v, r) })
}

// startRestoreLocked is startRestore for CreateVolume: e.mu held, and v
// not yet reachable by anyone else (so v.mu is not needed, and Engine.mu
// is never held while taking a volume lock).
func (e *Engine) startRestoreLocked(v *Volume) {
	if e.closed {
		return
	}
	r := &restoreState{}
	v.restore = r
	e.backgroundLocked(func(ctx context.Context) { e.runRestore(ctx, v, r) })
}

// runRestore restores v until it is done or ctx ends (the engine closes).
func (e *Engine) runRestore(ctx context.Context, v *Volume, r *restoreState) {
	for ctx.Err() == nil {
		err := e.restore(ctx, v, r)
		if err == nil {
			r.finished.Store(true)
			e.refreshLedger(true)
			return
		}
		if ctx.Err() != nil {
			return
		}
		v.mu.Lock()
		gone := v.deleted
		v.mu.Unlock()
		if gone {
			return
		}
		e.log.Warn("volume: restore: will retry", "volume", v.id, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}

// restore walks the volume's root once; r.done counts blocks settled.
func (e *Engine) restore(ctx context.Context, v *Volume, r *restoreState) error {
	v.mu.Lock()
	src := v.base
	v.mu.Unlock()
	var total int64
	for _, pr := range src.Pages {
		total += int64(pr.Blocks)
	}
	r.total.Store(total)
	r.done.Store(0)
	pis := make([]uint32, 0, len(src.Pages))
	for pi := range src.Pages {
		pis = append(pis, pi)
	}
	slices.Sort(pis)
	for _, pi := range pis {
		p, err := e.loadPage(ctx, src.Pages[pi].Hash)
		if err != nil {
			return err
		}
		for _, k := range p.stored() {
			// The block is fetched and verified unless the volume
			// rewrote it or has it cached, and cached if a slot is free.
			if _, err := e.prefetchBlock(ctx, v, uint64(pi)*pageBlocks+uint64(k), false); err != nil {
				return err
			}
			r.done.Add(1)
		}
	}
	return nil
}
