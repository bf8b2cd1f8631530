package volume

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"iter"
	"math/bits"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/volgw/volgw/internal/seal"
)

// Patches: a block changed in a few of its 4 KiB sectors since it was last
// stored whole is stored as a patch — those sectors and the name of the
// block they apply to — instead of all 512 KiB again.
//
// Without them a 4 KiB write cost a 512 KiB upload at the next cut: random
// writes spread over a volume made every cut hash and store 128× the bytes
// written, on the cores that serve the writes, and the bucket grew by a
// block per write per cut. A patch costs what was written.
//
// Rules, which keep reads and GC simple:
//
//   - A patch is cumulative: it holds every sector changed since its base
//     was stored whole, so a block is at most two objects (base + patch),
//     never a chain. The next cut of the block stores a new patch with the
//     union of the old one's sectors and the ones written since, taken from
//     the block's slot, which holds the whole current block.
//   - Once that union passes maxPatchSectors the block is stored whole again
//     and the patch is dropped: a patch never costs more than a quarter of
//     the block to upload, and a block rewritten all over ends up whole.
//   - The page names both objects (base hash, patch hash and its sector
//     mask: layout.go), so GC marks both without reading the patch, and a
//     cut knows the old patch's sectors without fetching it. The base of a
//     block first written in a few sectors is the zero block, never stored.
//   - A patch is content-addressed like a block (its name is the SHA-256 of
//     its bytes, or the volume's keyed name when sealed): it names its base
//     inside, so equal names mean equal composed blocks. It is stored in a
//     pack with the other patches of its page that its cut stored
//     (pack.go); patches stored before packs are objects of their own among
//     the blocks (blocks/<name>). A read fetches the base and the patch's
//     bytes, checks each against its name and the patch's base and mask
//     against the page, and composes.

// descCutBlocks counts the changed blocks cuts stored, whole or as patches.
var descCutBlocks = prometheus.NewDesc("volgw_cut_blocks_total",
	"Changed blocks cuts uploaded, by how: whole (512 KiB) or as a patch of the 4 KiB sectors changed since the block was last stored whole.",
	[]string{"as"}, nil)

// maxPatchSectors is the most sectors a patch holds: beyond a quarter of
// the block, the block is stored whole.
const maxPatchSectors = sectorsPerSlot / 4

// sectorMask has bit i set for 4 KiB sector i of a block.
type sectorMask [sectorsPerSlot / 64]uint64

const sectorMaskBytes = sectorsPerSlot / 8

func (m sectorMask) empty() bool { return m == sectorMask{} }

func (m sectorMask) count() int {
	n := 0
	for _, w := range m {
		n += bits.OnesCount64(w)
	}
	return n
}

func (m sectorMask) has(i int) bool { return m[i/64]&(1<<(i%64)) != 0 }

func (m sectorMask) union(o sectorMask) sectorMask {
	for i := range m {
		m[i] |= o[i]
	}
	return m
}

// addRange sets the sectors that bytes [off, off+n) of the block touch.
func (m *sectorMask) addRange(off, n int) {
	for s := off / sectorSize; s*sectorSize < off+n; s++ {
		m[s/64] |= 1 << (s % 64)
	}
}

// spans yields each maximal run [first, end) of the sectors m holds.
func (m sectorMask) spans() iter.Seq2[int, int] {
	return func(yield func(int, int) bool) {
		for s := 0; s < sectorsPerSlot; {
			if !m.has(s) {
				s++
				continue
			}
			e := s + 1
			for e < sectorsPerSlot && m.has(e) {
				e++
			}
			if !yield(s, e) {
				return
			}
			s = e
		}
	}
}

func (m sectorMask) append(b []byte) []byte {
	for _, w := range m {
		b = binary.BigEndian.AppendUint64(b, w)
	}
	return b
}

func readSectorMask(b []byte) sectorMask {
	var m sectorMask
	for i := range m {
		m[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return m
}

// patchRef is a page's entry for a patched block.
type patchRef struct {
	Hash hash
	Mask sectorMask
	Pack packLoc // where it is stored (pack.go); zero: blocks/<Hash>
}

// storedAs is the object that holds the patch: its pack, or itself.
func (pt patchRef) storedAs() hash {
	if !pt.Pack.Hash.isZero() {
		return pt.Pack.Hash
	}
	return pt.Hash
}

// blockRef is how a root names a block: Base, the block stored whole (zero:
// the zero block), and, if Patch is not zero, the patch over it with the
// sectors Mask names. The zero blockRef is a zero block.
type blockRef struct {
	Base  hash
	Patch hash
	Mask  sectorMask
	Pack  packLoc // where the patch is stored (pack.go); zero: blocks/<Patch>
}

func (r blockRef) isZero() bool { return r.Base.isZero() && r.Patch.isZero() }

// id is one name for the block's content: the patch's (which names its
// base) or the base's. Two refs with one id compose to the same bytes.
func (r blockRef) id() hash {
	if !r.Patch.isZero() {
		return r.Patch
	}
	return r.Base
}

// patchHeader: "VPT1", the base's name, the sector mask; then the sectors
// in order.
const patchHeader = 4 + sha256.Size + sectorMaskBytes

// maxPatchBytes is the largest patch object.
const maxPatchBytes = patchHeader + maxPatchSectors*sectorSize

// encodePatch appends to dst the patch of block (its whole current
// content) over base for the sectors of mask.
func encodePatch(dst []byte, base hash, mask sectorMask, block []byte) []byte {
	dst = append(dst, "VPT1"...)
	dst = append(dst, base[:]...)
	dst = mask.append(dst)
	for s := range sectorsPerSlot {
		if mask.has(s) {
			dst = append(dst, block[s*sectorSize:(s+1)*sectorSize]...)
		}
	}
	return dst
}

// applyPatch checks patch against the ref the page gave and writes its
// sectors over block (the base's content).
func applyPatch(block, patch []byte, ref blockRef) error {
	if len(patch) < patchHeader || string(patch[:4]) != "VPT1" {
		return fmt.Errorf("%w: patch %s header", ErrCorrupt, ref.Patch)
	}
	if hash(patch[4:36]) != ref.Base || readSectorMask(patch[36:]) != ref.Mask {
		return fmt.Errorf("%w: patch %s is not over the base and sectors its page names", ErrCorrupt, ref.Patch)
	}
	data := patch[patchHeader:]
	if len(data) != ref.Mask.count()*sectorSize {
		return fmt.Errorf("%w: patch %s has %d bytes of sectors for %d sectors", ErrCorrupt, ref.Patch, len(data), ref.Mask.count())
	}
	for s := range sectorsPerSlot {
		if ref.Mask.has(s) {
			copy(block[s*sectorSize:], data[:sectorSize])
			data = data[sectorSize:]
		}
	}
	return nil
}

// fetchPatchedOnce reads a patched block: its base (through the shared
// fetches) and its patch at once, each checked against its name, composed
// into a new buffer.
func (e *Engine) fetchPatchedOnce(ctx context.Context, ref blockRef) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	baseDone := make(chan result, 1)
	if !ref.Base.isZero() {
		go func() {
			b, err := e.fetchBlock(ctx, blockRef{Base: ref.Base})
			baseDone <- result{b, err}
		}()
	}
	// A patch is sealed under its own name wherever it is stored, so a
	// patch read out of a pack opens as one stored alone.
	key := blockKey(ref.Patch)
	var raw []byte
	var err error
	if ref.Pack.Hash.isZero() {
		raw, err = e.store.Get(ctx, key)
	} else {
		raw, err = e.store.GetRange(ctx, blockKey(ref.Pack.Hash), int64(ref.Pack.Off), int64(ref.Pack.Len))
	}
	var pt []byte
	var k *seal.Key
	if err == nil {
		pt, k, err = e.open(key, raw, -1, maxPatchBytes)
	}
	if err == nil && !seal.Verify(ref.Patch, pt, k) {
		err = fmt.Errorf("%w: patch %s does not match its name", ErrCorrupt, ref.Patch)
	}
	block := make([]byte, BlockSize)
	if !ref.Base.isZero() {
		r := <-baseDone
		if err == nil && r.err != nil {
			err = r.err
		}
		if err == nil {
			copy(block, r.b)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("volume: patched block %s: %w", ref.Patch, err)
	}
	if err := applyPatch(block, pt, ref); err != nil {
		return nil, err
	}
	return block, nil
}
