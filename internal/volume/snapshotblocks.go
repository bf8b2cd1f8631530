package volume

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/control"
)

// Reading a completed snapshot block by block, for the EBS direct APIs
// (internal/ebsapi): its record names a root, the root its pages, a page
// the content address of each non-zero block. Nothing here writes.

// ErrSnapshotNotReadable: the snapshot exists but is not completed (EBS
// reads completed snapshots only).
var ErrSnapshotNotReadable = errors.New("volume: snapshot is not completed")

// ErrBlockMismatch: the block asked for is not the snapshot's block at
// that index (a stale or foreign block token).
var ErrBlockMismatch = errors.New("volume: not the snapshot's block at that index")

// SnapshotTree is a completed snapshot opened for reading.
type SnapshotTree struct {
	ID        string
	VolumeID  string
	SizeBytes int64
	e         *Engine
	r         *root
}

// SnapshotBlockRef is one non-zero block of a snapshot: its index and the
// name of its content (the SHA-256 of its 524288 bytes for a block stored
// whole; for a patched one, its patch's name, which names the base too:
// patch.go).
type SnapshotBlockRef struct {
	Index int64
	Hash  [32]byte
}

// ChangedBlockRef is a block that differs between two snapshots; a zero
// hash is a block absent (all zeros) on that side.
type ChangedBlockRef struct {
	Index         int64
	First, Second [32]byte
}

// TreeStats counts what a walk read, for benchmarks and logs.
type TreeStats struct {
	PagesCompared int // page pairs looked at
	PagesLoaded   int // pages decoded (from the page cache or the store)
}

// OpenSnapshotTree reads snapshot id's record and root. A deleted or
// unknown snapshot is control.ErrSnapshotNotFound; a pending or failed
// one ErrSnapshotNotReadable.
func (e *Engine) OpenSnapshotTree(ctx context.Context, id string) (*SnapshotTree, error) {
	if id == "" || blob.ValidateKey(snapshotKey(id)) != nil || strings.Contains(id, "/") {
		return nil, fmt.Errorf("%w: %q", control.ErrSnapshotNotFound, id)
	}
	rec, err := e.readRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.Status != string(control.SnapshotCompleted) || rec.Root == "" {
		return nil, fmt.Errorf("%w: %s is %s", ErrSnapshotNotReadable, id, rec.Status)
	}
	r, err := e.ebs.roots.load(ctx, e, rec.Root)
	if err != nil {
		return nil, err
	}
	return &SnapshotTree{ID: id, VolumeID: rec.VolumeID, SizeBytes: rec.SizeBytes, e: e, r: r}, nil
}

// Blocks returns the snapshot's non-zero blocks from index from on, in
// index order, at most max of them, and the index to continue from (-1
// when there are no more).
func (t *SnapshotTree) Blocks(ctx context.Context, from int64, max int) ([]SnapshotBlockRef, int64, error) {
	var out []SnapshotBlockRef
	for _, pi := range sortedPages(t.r.Pages, nil, from) {
		p, err := t.e.loadPage(ctx, t.r.Pages[pi].Hash)
		if err != nil {
			return nil, 0, err
		}
		for _, i := range sortedBlocks(p, nil) {
			idx := int64(pi)*pageBlocks + int64(i)
			if idx < from {
				continue
			}
			if len(out) == max {
				return out, idx, nil
			}
			out = append(out, SnapshotBlockRef{Index: idx, Hash: p.ref(i).id()})
		}
	}
	return out, -1, nil
}

// ChangedBlocks returns the blocks whose content differs between first
// (nil: an empty volume, so every block of t) and t, from index from on,
// at most max, and the index to continue from (-1 when done). It walks
// the two roots' page lists together and skips a page whose hash is the
// same in both without loading it, so its cost grows with the pages that
// changed, not with the volume.
func (t *SnapshotTree) ChangedBlocks(ctx context.Context, first *SnapshotTree, from int64, max int) ([]ChangedBlockRef, int64, TreeStats, error) {
	var st TreeStats
	var firstPages map[uint32]pageRef
	if first != nil {
		firstPages = first.r.Pages
	}
	var out []ChangedBlockRef
	for _, pi := range sortedPages(t.r.Pages, firstPages, from) {
		a, inA := firstPages[pi]
		b, inB := t.r.Pages[pi]
		st.PagesCompared++
		if inA && inB && a.Hash == b.Hash {
			continue
		}
		pa, pb := &page{}, &page{}
		var err error
		if inA {
			if pa, err = t.e.loadPage(ctx, a.Hash); err != nil {
				return nil, 0, st, err
			}
			st.PagesLoaded++
		}
		if inB {
			if pb, err = t.e.loadPage(ctx, b.Hash); err != nil {
				return nil, 0, st, err
			}
			st.PagesLoaded++
		}
		for _, i := range sortedBlocks(pa, pb) {
			ha, hb := pa.ref(i).id(), pb.ref(i).id()
			if ha == hb {
				continue
			}
			idx := int64(pi)*pageBlocks + int64(i)
			if idx < from {
				continue
			}
			if len(out) == max {
				return out, idx, st, nil
			}
			out = append(out, ChangedBlockRef{Index: idx, First: ha, Second: hb})
		}
	}
	return out, -1, st, nil
}

// NamesAreSHA256 reports whether every block of the tree is named by its
// SHA-256, so that a name is also its checksum. A gateway with a keyring
// may hold trees that name blocks by a keyed hash (sealing.go).
func (t *SnapshotTree) NamesAreSHA256() bool { return t.e.cfg.Keys.Len() == 0 }

// Block returns the 524288 bytes of block index, which must be the block
// whose content is named want (ErrBlockMismatch otherwise: the block token
// was not this snapshot's at that index), and their SHA-256. The bytes
// are checked against their names as they are read (fetchBlock); the
// slice may be shared and must not be written to.
func (t *SnapshotTree) Block(ctx context.Context, index int64, want [32]byte) (data []byte, sum [32]byte, err error) {
	if index < 0 || index >= (t.SizeBytes+BlockSize-1)/BlockSize {
		return nil, sum, fmt.Errorf("%w: block %d of %s", ErrOutOfRange, index, t.ID)
	}
	ref, err := t.e.blockRef(ctx, t.r, uint64(index))
	if err != nil {
		return nil, sum, err
	}
	if ref.isZero() || ref.id() != hash(want) {
		return nil, sum, fmt.Errorf("%w: block %d of %s", ErrBlockMismatch, index, t.ID)
	}
	if data, err = t.e.fetchBlock(ctx, ref); err != nil {
		return nil, sum, err
	}
	// The name is the checksum only for a block stored whole and named
	// by its SHA-256 (not sealed: a sealed one's name is keyed).
	if ref.Patch.isZero() && t.NamesAreSHA256() {
		return data, want, nil
	}
	return data, sha256.Sum256(data), nil
}

// sortedPages is the union of a's and b's page indexes that may hold a
// block at or after from, in order.
func sortedPages(a, b map[uint32]pageRef, from int64) []uint32 {
	minPage := uint32(max(from, 0) / pageBlocks)
	out := make([]uint32, 0, len(a)+len(b))
	for i := range a {
		if i >= minPage {
			out = append(out, i)
		}
	}
	for i := range b {
		if _, dup := a[i]; !dup && i >= minPage {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

// sortedBlocks is the union of a's and b's (nil: none) non-zero block
// indexes, in order.
func sortedBlocks(a, b *page) []uint16 {
	out := a.stored()
	if b != nil {
		out = append(out, b.stored()...)
		slices.Sort(out)
		out = slices.Compact(out)
	}
	return out
}

// readRecord reads a live snapshot record with one GET, no Stat: the
// record is not changed here, so its ETag is not needed (getRecord's Stat
// is for updateRecord's swap). A tombstone is control.ErrSnapshotNotFound.
func (e *Engine) readRecord(ctx context.Context, id string) (*snapRecord, error) {
	b, err := e.store.Get(ctx, snapshotKey(id))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", control.ErrSnapshotNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("volume: snapshot %s: %w", id, err)
	}
	rec, err := e.decodeRecord(id, b)
	if err != nil {
		return nil, err
	}
	if rec.Deleted {
		return nil, fmt.Errorf("%w: %s", control.ErrSnapshotNotFound, id)
	}
	return rec, nil
}

// ebsState is what the EBS direct APIs keep in an engine's memory; its
// zero value is ready to use.
type ebsState struct {
	roots rootCache
	// progress is the last Progress a PutSnapshotBlock gave each import
	// in progress here, shown by DescribeSnapshots (withProgress).
	progress sync.Map // snapshot ID → int
}

// rootCache keeps the decoded roots of recently read snapshots: a 16 TiB
// volume's root is hundreds of KiB of JSON, and a reader asks for it once
// per block. Roots are immutable, so a cached one is never stale; its
// zero value is ready to use.
type rootCache struct {
	mu    sync.Mutex
	roots map[string]*root
	order []string // oldest first
}

const rootCacheSize = 16

func (c *rootCache) load(ctx context.Context, e *Engine, key string) (*root, error) {
	c.mu.Lock()
	r := c.roots[key]
	c.mu.Unlock()
	if r != nil {
		return r, nil
	}
	r, err := e.loadRoot(ctx, key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.roots == nil {
		c.roots = map[string]*root{}
	}
	if _, ok := c.roots[key]; !ok {
		c.roots[key] = r
		c.order = append(c.order, key)
		if len(c.order) > rootCacheSize {
			delete(c.roots, c.order[0])
			c.order = c.order[1:]
		}
	}
	return r, nil
}
