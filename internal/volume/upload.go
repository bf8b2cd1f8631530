package volume

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/volgw/volgw/internal/blob"
)

// uploader cuts volumes: periodically, when a volume has many dirty blocks,
// when the journal or the cache is under pressure, and for snapshots.
func (e *Engine) uploader(ctx context.Context) {
	defer e.wg.Done()
	var tick <-chan time.Time
	if e.cfg.CutInterval > 0 {
		t := time.NewTicker(e.cfg.CutInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		all := false
		select {
		case <-ctx.Done():
			return
		case <-tick:
			all = true
		case <-e.pressure:
			all = true
		case <-e.kick:
		}
		if all {
			e.refreshLedger(false)
		}
		for _, v := range e.volumes() {
			v.mu.Lock()
			if all {
				v.noteClean()
			}
			due := v.usable() == nil &&
				(v.cut != nil || len(v.pendingSnaps) > 0 || len(v.dirty) >= e.dirtyThreshold() || (all && len(v.dirty) > 0))
			v.mu.Unlock()
			if !due {
				continue
			}
			if err := e.cutVolume(ctx, v, false); err != nil && ctx.Err() == nil {
				e.log.Warn("volume: cut failed; will retry", "volume", v.id, "err", err)
			}
		}
	}
}

// cutVolume freezes the volume's dirty blocks as of now, uploads them and
// publishes the new root. If a previous cut failed half-way, that same
// frozen set is retried first (its cut time and LSN do not change). With
// force, a root is published even if nothing is dirty. Returns when the cut
// is published or failed.
//
// Invariant (recovery point): the cut is taken under v.mu, which every
// journal append for the volume also holds, so the records before cut.lsn
// are exactly those whose effects are in frozen (on top of base). The new
// root holds base plus frozen, and is published (head replaced) only after
// every block and page it names is in the store: blocks, then pages, then
// the root, then head. So the published root is always a crash-consistent
// prefix: exactly the writes acknowledged before the cut. Only after
// publication is the journal released up to the cut.
func (e *Engine) cutVolume(ctx context.Context, v *Volume, force bool) error {
	for {
		retried, err := e.cutOnce(ctx, v, force)
		if err != nil || !retried {
			return err
		}
		// That was an earlier cut's retry; now cut what is dirty now.
	}
}

func (e *Engine) cutOnce(ctx context.Context, v *Volume, force bool) (retried bool, err error) {
	v.cutMu.Lock()
	defer v.cutMu.Unlock()
	v.mu.Lock()
	if err := v.usable(); err != nil {
		v.mu.Unlock()
		return false, err
	}
	retried = v.cut != nil
	if v.cut == nil {
		if len(v.dirty) == 0 && !force {
			snaps := v.pendingSnaps
			v.pendingSnaps = nil
			v.noteClean()
			base, t := v.base, v.recoveryTime()
			v.mu.Unlock()
			// Nothing dirty: the published root is the volume as of now.
			return false, e.completeSnapshots(ctx, snaps, base, t)
		}
		lsn := e.jr.headLSN()
		if e.replaying {
			lsn = e.replayLSN
		}
		v.cut = &cutState{lsn: lsn, time: e.now(), snaps: v.pendingSnaps, token: newToken()}
		v.frozen, v.dirty = v.dirty, make(map[uint64]blockState)
		v.frozenFrom, v.dirtyFrom = v.dirtyFrom, noLSN
		v.pendingSnaps = nil
	}
	cut, base, etag := v.cut, v.base, v.headETag
	frozen := make(map[uint64]blockState, len(v.frozen))
	for b, st := range v.frozen {
		frozen[b] = st
	}
	v.mu.Unlock()

	newRoot, crcs, err := e.upload(ctx, v, base, cut, frozen)
	if err != nil {
		return retried, err
	}
	// Fencing (fence.go): the token is recorded before the PUT, so that
	// this data dir knows the head as its own even if the answer is lost
	// or it dies right after.
	if err := e.notePublishing(v, base, newRoot.Seq, newRoot.Token, false); err != nil {
		return retried, err
	}
	hb, _ := json.Marshal(head{Seq: newRoot.Seq, Owner: e.state.Owner, Token: newRoot.Token})
	info, err := e.store.Put(ctx, headKey(v.id), hb, blob.PutOptions{IfMatch: etag})
	if errors.Is(err, blob.ErrPreconditionFailed) {
		// Either another writer published, or our own PUT landed and its
		// retry (after a lost answer) found the new ETag: the token says
		// which. (An owner ID cannot: a copy of this data dir has ours.)
		h, cur, herr := e.getHead(ctx, v.id)
		switch {
		case herr != nil:
			return retried, fmt.Errorf("volume: publishing %s seq %d: %w", v.id, newRoot.Seq, herr)
		case h.Token == newRoot.Token && !h.Deleted:
			info.ETag, err = cur, nil
		default:
			e.fence(v, fmt.Sprintf("publishing seq %d over seq %d, found the head replaced by seq %d of %q (token %q, deleted %v): "+
				"another writer has published the volume (a copy of this data dir, this data dir restored from an older backup, or another gateway)",
				newRoot.Seq, base.Seq, h.Seq, h.Owner, h.Token, h.Deleted))
			return retried, v.Fenced()
		}
	}
	if err != nil {
		return retried, fmt.Errorf("volume: publishing %s seq %d: %w", v.id, newRoot.Seq, err)
	}

	v.mu.Lock()
	v.base, v.headETag = newRoot, info.ETag
	for b, st := range frozen {
		switch _, rewritten := v.dirty[b]; {
		case st.zero:
		case rewritten || v.deleted:
			e.cache.release(st.slot)
		default:
			// The frozen slot holds exactly the uploaded block.
			e.cache.makeClean(st.slot, v.key(b), crcs[b])
		}
	}
	v.frozen, v.cut, v.frozenFrom = nil, nil, noLSN
	v.noteClean()
	close(v.published)
	v.published = make(chan struct{})
	v.mu.Unlock()
	e.releaseJournal()
	// Still under cutMu: the head is newRoot while the records are written.
	return retried, e.completeSnapshots(ctx, cut.snaps, newRoot, cut.time)
}

// upload stores the frozen blocks, the pages they change and the new root
// (not yet the head), and returns the root and each block's sector CRCs.
func (e *Engine) upload(ctx context.Context, v *Volume, base *root, cut *cutState, frozen map[uint64]blockState) (*root, map[uint64][]uint32, error) {
	start := e.now()
	blocks := make([]uint64, 0, len(frozen))
	for b := range frozen {
		blocks = append(blocks, b)
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i] < blocks[j] })
	hashes := make(map[uint64]hash, len(blocks))
	crcs := make(map[uint64][]uint32, len(blocks))
	v.cutTotal.Store(int64(len(blocks)))
	v.cutDone.Store(0)

	var mu sync.Mutex // guards hashes, crcs, firstErr
	var firstErr error
	work := make(chan uint64)
	var wg sync.WaitGroup
	for range e.cfg.UploadConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, BlockSize)
			for b := range work {
				st := frozen[b]
				var h hash
				var c []uint32
				var err error
				if !st.zero {
					// A frozen slot is never written (copy-on-write), so it
					// is read without v.mu.
					if err = e.cache.readSlot(st.slot, buf, 0); err == nil {
						h = sha256.Sum256(buf)
						if h == zeroHash {
							h = hash{} // zeros are not stored
						} else {
							_, err = e.putContent(ctx, blockKey(h), buf, start)
						}
						c = sectorCRCs(buf)
					}
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				hashes[b], crcs[b] = h, c
				mu.Unlock()
				v.cutDone.Add(1)
			}
		}()
	}
	for _, b := range blocks {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		work <- b
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return nil, nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}

	r := &root{Volume: v.id, Seq: base.Seq + 1, Size: v.size, CutTime: cut.time, Owner: e.state.Owner, Token: cut.token, JournalLSN: cut.lsn, Pages: make(map[uint32]pageRef, len(base.Pages))}
	for i, p := range base.Pages {
		r.Pages[i] = p
	}
	for i := 0; i < len(blocks); {
		pi := uint32(blocks[i] / pageBlocks)
		np := &page{blocks: map[uint16]hash{}, zeros: map[uint16]bool{}}
		if pr, ok := base.Pages[pi]; ok {
			old, err := e.loadPage(ctx, pr.Hash)
			if err != nil {
				return nil, nil, err
			}
			maps.Copy(np.blocks, old.blocks)
			maps.Copy(np.zeros, old.zeros)
		}
		for ; i < len(blocks) && uint32(blocks[i]/pageBlocks) == pi; i++ {
			k := uint16(blocks[i] % pageBlocks)
			h := hashes[blocks[i]]
			delete(np.blocks, k)
			delete(np.zeros, k)
			switch {
			case frozen[blocks[i]].zero: // unmapped whole: freed, untouched
			case h.isZero():
				np.zeros[k] = true // written with zeros: still touched
			default:
				np.blocks[k] = h
			}
		}
		if np.touched() == 0 {
			delete(r.Pages, pi)
			continue
		}
		data := encodePage(np)
		ph := hash(sha256.Sum256(data))
		if _, err := e.putContent(ctx, pageKey(ph), data, start); err != nil {
			return nil, nil, err
		}
		e.pages.add(ph, np)
		r.Pages[pi] = pageRef{Hash: ph, Blocks: len(np.blocks), Touched: np.touched()}
	}
	// The key carries the cut's token, so no other writer's root is
	// replaced; an earlier attempt of this same cut wrote the same bytes.
	if err := e.put(ctx, r.key(), encodeRoot(r), blob.PutOptions{}); err != nil {
		return nil, nil, err
	}
	// GC rule G3c: the objects reused above are safe only for the lease.
	if e.now().Sub(start) > e.lease() {
		return nil, nil, fmt.Errorf("%w: cut of %s took %v", ErrLeaseExpired, v.id, e.now().Sub(start))
	}
	return r, crcs, nil
}

var zeroHash = hash(sha256.Sum256(zeroBlock))
