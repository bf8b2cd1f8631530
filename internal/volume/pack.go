package volume

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/seal"
)

// Packs: the patches (patch.go) one cut stores for one page go up
// together, in one object of at most about packBytes — a pack — instead of
// one object each.
//
// Why: a cut of random 4 KiB writes stores a patch per block changed, and
// a volume written at random changes thousands of blocks per cut. One PUT
// each cost more than their bytes: on S3 a request billed per thousand (a
// 5-second cut interval of such writes made hundreds of PUTs a second), on
// the file store a file and an fsync each, taken from the writes the cut
// shares the machine with.
//
// Rules:
//
//   - A pack is the concatenation of patch objects exactly as each would be
//     stored alone (sealed under its own key, blocks/<patch name>, and
//     compressed with --compress), so a patch is read out of its pack with
//     one ranged GET and opens and checks as before. The page names, for
//     each patch, its pack, offset and length (layout.go, VPG4), and each
//     pack's size.
//   - A pack is named by the SHA-256 of its bytes and kept among the blocks
//     (blocks/<name>). GC marks it through the pages that name patches in
//     it (patchRef.storedAs), and a cut's lease covers it like any object
//     the cut stores (gclease.go): it is stored before the pages that name
//     it, and they before the root.
//   - A pack holds patches of one page only, so what keeps it alive is
//     local to the page: when a cut rewrites a page, every pack of which
//     the page's patches use less than half (the rest superseded by later
//     cuts of their blocks) has the patches still used copied into a new
//     pack (repack), each checked against its name on the way. In every
//     page of a volume's newest recovery point each pack is thus at least
//     half used: the patch bytes a volume keeps stored are at most twice
//     those it uses, plus what older recovery points and snapshots still
//     name (reclaimed by GC once they go).
//   - A patch that fails its check when repacked stays where it is, and is
//     logged: it is as damaged as before, and a read of it fails loudly;
//     a pack that cannot be read fails the cut (retried), unless it is gone,
//     which is logged the same way.

// packBytes is the size past which a pack is closed and stored. Its PUT
// takes a block's PUT slot; one pack per PUT slot and per hasher may be
// in memory.
const packBytes = 2 << 20

// maxPatchObject is the largest stored patch: sealed, not compressed.
const maxPatchObject = maxPatchBytes + seal.Overhead

// packLoc is where a patch is stored in a pack.
type packLoc struct {
	Hash     hash   // the pack's name; zero: the patch is an object of its own
	Size     uint32 // the pack's length
	Off, Len uint32 // the patch's bytes in it
}

// descPacks counts the packs cuts stored, and the patches repacked.
var (
	descPacks = prometheus.NewDesc("volgw_cut_packs_total",
		"Packs of patches cuts stored: why=\"cut\" with the patches a cut changed, why=\"repack\" with patches copied out of packs their page used less than half of.",
		[]string{"why"}, nil)
	descRepacked = prometheus.NewDesc("volgw_cut_patches_repacked_total",
		"Patches cuts copied into new packs because their page used less than half of the pack they were in.",
		nil, nil)
	descRepackSkipped = prometheus.NewDesc("volgw_cut_patches_repack_failed_total",
		"Patches a cut could not repack because their pack is missing or they do not match their names (each logged): damage in the object store.",
		nil, nil)
)

var packBufs = sync.Pool{New: func() any { b := make([]byte, 0, packBytes+maxPatchObject); return &b }}

// packer gathers the patches of one cut into packs, by page, and stores
// them through the cut's PUT slots.
type packer struct {
	e     *Engine
	v     *Volume
	ctx   context.Context
	start time.Time // the cut's start, for putContent's reuse rule
	pool  *uploadPool
	puts  *sync.WaitGroup
	fail  func(error)

	mu   sync.Mutex
	open map[uint32]*pack // by page index
	left map[uint32]int   // by page index: blocks the hashers have not finished
}

// pack is a pack being filled: its bytes, and where to write its name once
// it has one.
type pack struct {
	buf    *[]byte
	plain  int64
	locs   []*packLoc
	repack bool
}

func newPacker(ctx context.Context, e *Engine, v *Volume, start time.Time, blocks []uint64, puts *sync.WaitGroup, fail func(error)) *packer {
	pk := &packer{e: e, v: v, ctx: ctx, start: start, pool: e.uploads, puts: puts, fail: fail, open: map[uint32]*pack{}, left: map[uint32]int{}}
	for _, b := range blocks {
		pk.left[uint32(b/pageBlocks)]++
	}
	return pk
}

// add appends the stored form of a patch of page pi, of plain bytes
// before sealing; *loc gets its place, and its pack's name and size once
// the pack is stored. It returns the pack to store if it is full.
func (pk *packer) add(pi uint32, stored []byte, plain int, loc *packLoc, repack bool) *pack {
	pk.mu.Lock()
	defer pk.mu.Unlock()
	p := pk.open[pi]
	if p == nil {
		p = &pack{buf: packBufs.Get().(*[]byte), repack: repack}
		*p.buf = (*p.buf)[:0]
		pk.open[pi] = p
	}
	loc.Off, loc.Len = uint32(len(*p.buf)), uint32(len(stored))
	*p.buf = append(*p.buf, stored...)
	p.plain += int64(plain)
	p.locs = append(p.locs, loc)
	if len(*p.buf) < packBytes {
		return nil
	}
	delete(pk.open, pi)
	return p
}

// done says a block of page pi is through the hashers; it returns the
// page's pack to store once all are.
func (pk *packer) done(pi uint32) *pack {
	pk.mu.Lock()
	defer pk.mu.Unlock()
	if pk.left[pi]--; pk.left[pi] > 0 {
		return nil
	}
	return pk.takeLocked(pi)
}

// take returns page pi's open pack (nil if none) and closes it.
func (pk *packer) take(pi uint32) *pack {
	pk.mu.Lock()
	defer pk.mu.Unlock()
	return pk.takeLocked(pi)
}

func (pk *packer) takeLocked(pi uint32) *pack {
	p := pk.open[pi]
	delete(pk.open, pi)
	return p
}

// store names p, writes its name into the patches' places, and PUTs it
// (asynchronously, counted by puts). A nil p is nothing to store.
func (pk *packer) store(p *pack) {
	if p == nil {
		return
	}
	buf := *p.buf
	h := hash(sha256.Sum256(buf))
	for _, l := range p.locs {
		l.Hash, l.Size = h, uint32(len(buf))
	}
	if err := pk.pool.acquire(pk.ctx, false); err != nil {
		packBufs.Put(p.buf)
		return // the cut is failing: its cause is on ctx
	}
	pk.puts.Go(func() {
		defer pk.pool.release(false)
		defer packBufs.Put(p.buf)
		n, err := pk.e.putContent(pk.ctx, blockKey(h), buf, pk.start, (*[32]byte)(&h))
		if err != nil {
			pk.fail(err)
			return
		}
		if n > 0 {
			pk.e.uploadedPlain.Add(p.plain)
			pk.e.uploadedStored.Add(n)
		}
		if p.repack {
			pk.e.packsRepacked.Add(1)
			pk.e.patchesRepacked.Add(int64(len(p.locs)))
		} else {
			pk.e.packsStored.Add(1)
			pk.e.patchesStored.Add(int64(len(p.locs)))
			pk.v.cutDone.Add(int64(len(p.locs)))
		}
	})
}

// flush stores every pack still open.
func (pk *packer) flush() {
	pk.mu.Lock()
	ps := make([]*pack, 0, len(pk.open))
	for pi, p := range pk.open {
		ps = append(ps, p)
		delete(pk.open, pi)
	}
	pk.mu.Unlock()
	for _, p := range ps {
		pk.store(p)
	}
}

// repackAhead is how many pages a cut repacks at once: each repack of a
// page reads the packs it empties (a GET each), which a cut of random
// writes over a large volume may do for many pages.
const repackAhead = 4

// repackAll repacks the n pages a cut builds (repack; at(i) is the
// i-th and its index), repackAhead at a time, and returns the first error.
func (pk *packer) repackAll(n int, at func(i int) (uint32, *page)) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	sem := make(chan struct{}, repackAhead)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := pk.repack(at(i)); err != nil {
				once.Do(func() { first = err })
			}
		})
	}
	wg.Wait()
	return first
}

// repack keeps the rule that every pack page pi's patches are in is at
// least half used by them: the patches of np (a page this cut builds) in
// packs used less are copied into new packs of the page, and np is made
// to name their new places once those are known. It runs after the cut's
// own patches are packed (their packs are whole: used all).
func (pk *packer) repack(pi uint32, np *page) error {
	used := map[hash]uint64{}
	for _, pt := range np.patches {
		if !pt.Pack.Hash.isZero() {
			used[pt.Pack.Hash] += uint64(pt.Pack.Len)
		}
	}
	var sparse []packLoc
	for _, pl := range np.packs() {
		if 2*used[pl.Hash] < uint64(pl.Size) {
			sparse = append(sparse, pl)
		}
	}
	if len(sparse) == 0 {
		return nil
	}
	type move struct {
		i  uint16
		pt patchRef
	}
	var moves []*move
	for _, pl := range sparse {
		b, err := pk.e.store.Get(pk.ctx, blockKey(pl.Hash))
		if err == nil && len(b) != int(pl.Size) {
			err = fmt.Errorf("%w: pack %s has %d bytes, its page says %d", ErrCorrupt, pl.Hash, len(b), pl.Size)
		}
		if err != nil {
			if !errors.Is(err, blob.ErrNotFound) && !errors.Is(err, ErrCorrupt) {
				return fmt.Errorf("volume: repack of page %d: %w", pi, err)
			}
			n := 0
			for _, pt := range np.patches {
				if pt.Pack.Hash == pl.Hash {
					n++
				}
			}
			pk.e.repackSkipped.Add(int64(n))
			pk.e.log.Error("volume: a pack of patches cannot be read; its patches stay where they are, and reading them fails", "volume", pk.v.id, "page", pi, "pack", pl.Hash, "patches", n, "err", err)
			continue
		}
		for _, i := range sortedKeys(np.patches) {
			pt := np.patches[i]
			if pt.Pack.Hash != pl.Hash {
				continue
			}
			raw := b[pt.Pack.Off : pt.Pack.Off+pt.Pack.Len]
			plain, k, err := pk.e.open(blockKey(pt.Hash), raw, -1, maxPatchBytes)
			if err == nil && !seal.Verify(pt.Hash, plain, k) {
				err = fmt.Errorf("%w: patch %s does not match its name", ErrCorrupt, pt.Hash)
			}
			if err != nil {
				pk.e.repackSkipped.Add(1)
				pk.e.log.Error("volume: a patch in a pack is damaged; it stays where it is, and reading its block fails", "volume", pk.v.id, "page", pi, "block", i, "pack", pl.Hash, "err", err)
				continue
			}
			m := &move{i: i, pt: pt}
			moves = append(moves, m)
			pk.store(pk.add(pi, raw, len(plain), &m.pt.Pack, true))
		}
	}
	pk.store(pk.take(pi))
	if err := context.Cause(pk.ctx); err != nil {
		return err
	}
	for _, m := range moves {
		np.patches[m.i] = m.pt
	}
	return nil
}
