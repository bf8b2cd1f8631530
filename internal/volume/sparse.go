package volume

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/volgw/volgw/internal/crc32c"
)

// Sparse slots. A block's first write, when the block reads as zeros (never
// written, unmapped, or absent from the recovery point), takes a slot
// without filling it: filling 512 KiB with zeros for a 4 KiB write made
// random writes over a large volume 128× more costly than the same writes
// confined to a few blocks. Such a block is sparse: only the 4 KiB sectors
// its valid bitmap names hold its content; the others read as zeros and
// their bytes in the slot are whatever the slot held before. So:
//
//   - a write makes the sectors it touches valid; one that covers only part
//     of an invalid sector writes that whole sector, zeros around its data
//     (one pwrite, composed in memory);
//   - reads, copy-on-write and the uploader read the valid sectors and
//     clear the rest (readLocal), so every reader sees the whole block;
//   - the uploader zeros the invalid sectors of the frozen slot itself
//     (punching holes where the file system can) before the slot becomes
//     clean at publication, so a clean slot still equals its stored block
//     (invariant 4; frozen slots are never written by writers, and readers
//     of a frozen slot skip its invalid sectors, so this races with
//     nothing);
//   - copy-on-write of a frozen sparse block copies only its valid sectors
//     into a new sparse slot; that of a whole one copies nothing: the new
//     slot is over the frozen one (its invalid sectors read from there)
//     until the cut publishes, when the new slot's valid sectors are
//     copied into the frozen slot (settle), which becomes the dirty block's
//     slot — a few sectors' copy, off the write path, instead of 512 KiB
//     read and written by the write that found the block frozen.

// allSectors is the valid bitmap of a block whose sectors are all valid.
var allSectors = [sectorsPerSlot / 64]uint64{^uint64(0), ^uint64(0)}

// sectorValid reports whether sector i of the block's slot holds content.
func (st *blockState) sectorValid(i int) bool {
	return !st.sparse || st.valid[i/64]&(1<<(i%64)) != 0
}

// markValid makes sectors [first, last] valid; a sparse block whose
// sectors are all valid is a plain one.
func (st *blockState) markValid(first, last int) {
	if !st.sparse {
		return
	}
	for i := first; i <= last; i++ {
		st.valid[i/64] |= 1 << (i % 64)
	}
	if st.valid == allSectors {
		st.sparse, st.valid, st.over, st.under = false, [2]uint64{}, false, 0
	}
}

// validSectors counts the sectors holding content.
func (st *blockState) validSectors() int {
	if !st.sparse {
		return sectorsPerSlot
	}
	return bits.OnesCount64(st.valid[0]) + bits.OnesCount64(st.valid[1])
}

// runs calls fn for each maximal run of sectors, all valid or all invalid,
// of the byte range [off, end) of the block, clipped to that range.
func (st *blockState) runs(off, end int, fn func(lo, hi int, valid bool) error) error {
	for s := off / sectorSize; s*sectorSize < end; {
		valid := st.sectorValid(s)
		e := s + 1
		for e*sectorSize < end && st.sectorValid(e) == valid {
			e++
		}
		if err := fn(max(off, s*sectorSize), min(end, e*sectorSize), valid); err != nil {
			return err
		}
		s = e
	}
	return nil
}

// readLocal copies [off, off+len(p)) of a dirty or frozen block's content
// into p: its slot's valid sectors, and for the others zeros or what the
// frozen slot it is over holds.
func (c *cache) readLocal(st blockState, p []byte, off int) error {
	if !st.sparse {
		return c.readSlot(st.slot, p, off)
	}
	return st.runs(off, off+len(p), func(lo, hi int, valid bool) error {
		q := p[lo-off : hi-off]
		switch {
		case valid:
			return c.readSlot(st.slot, q, lo)
		case st.over:
			return c.readSlot(st.under, q, lo)
		}
		clear(q)
		return nil
	})
}

// readFrozen reads into block what a cut needs of frozen block st, and
// returns the block's sector CRCs (the clean slot's once published). With
// only empty, or the CRCs outside st.written unknown, that is the whole
// block. Otherwise (a patch: only holds its sectors, st.written among
// them) only those sectors are read, the rest of block is left as it
// was, and the CRCs are st.known's with the written sectors' recomputed:
// a 4 KiB write costs the cut a few sectors' read, not 512 KiB, most of
// it page-cache pages made for holes.
func (c *cache) readFrozen(st blockState, block []byte, only sectorMask) ([]uint32, error) {
	if only.empty() || st.known == nil {
		if err := c.readLocal(st, block, 0); err != nil {
			return nil, err
		}
		return sectorCRCs(block), nil
	}
	crc := slices.Clone(st.known)
	for first, end := range only.spans() {
		lo, hi := first*sectorSize, end*sectorSize
		if err := c.readLocal(st, block[lo:hi], lo); err != nil {
			return nil, err
		}
		for s := first; s < end; s++ {
			if st.written.has(s) {
				crc32c.Sectors(block[s*sectorSize:(s+1)*sectorSize], crc[s:s+1])
			}
		}
	}
	return crc, nil
}

// writeLocal writes data at off into a dirty block's slot and marks the
// sectors it touches valid. An invalid sector the write covers only part
// of is written whole: its content (zeros, or the frozen slot's), with the
// data in place.
func (c *cache) writeLocal(st *blockState, data []byte, off int) error {
	end := off + len(data)
	first, last := off/sectorSize, (end-1)/sectorSize
	lo, hi := off, end
	if off%sectorSize != 0 && !st.sectorValid(first) {
		lo = first * sectorSize
	}
	if end%sectorSize != 0 && !st.sectorValid(last) {
		hi = (last + 1) * sectorSize
	}
	buf := data
	if lo != off || hi != end {
		pb := blockPool.Get().(*[]byte)
		defer blockPool.Put(pb)
		buf = (*pb)[:hi-lo]
		head, tail := buf[:off-lo], buf[end-lo:]
		if st.over {
			if err := c.readSlot(st.under, head, lo); err != nil {
				return err
			}
			if err := c.readSlot(st.under, tail, end); err != nil {
				return err
			}
		} else {
			clear(head)
			clear(tail)
		}
		copy(buf[off-lo:], data)
	}
	if err := c.writeSlot(st.slot, buf, lo); err != nil {
		return err
	}
	st.markValid(first, last)
	return nil
}

// copyValid copies the valid sectors of frozen sparse block from into the
// new slot of to, for copy-on-write: to gets from's bitmap.
func (c *cache) copyValid(from blockState, to *blockState) error {
	if !from.sparse || to.slot < 0 {
		panic(fmt.Sprintf("volume: copyValid from %+v to %+v", from, to))
	}
	pb := blockPool.Get().(*[]byte)
	defer blockPool.Put(pb)
	buf := *pb
	err := from.runs(0, BlockSize, func(lo, hi int, valid bool) error {
		if !valid {
			return nil
		}
		if err := c.readSlot(from.slot, buf[lo:hi], lo); err != nil {
			return err
		}
		return c.writeSlot(to.slot, buf[lo:hi], lo)
	})
	if err != nil {
		return err
	}
	to.sparse, to.valid = true, from.valid
	return nil
}

// zeroInvalid makes the invalid sectors of a frozen sparse block's slot
// zeros, so that the slot equals the block the uploader stores and can
// become clean. Holes are punched where the file system can (no data
// written); elsewhere zeros are written.
func (c *cache) zeroInvalid(st blockState) error {
	if !st.sparse {
		return nil
	}
	return st.runs(0, BlockSize, func(lo, hi int, valid bool) error {
		if valid {
			return nil
		}
		c.mu.Lock()
		f, base := c.where(st.slot)
		c.mu.Unlock()
		if !c.noPunch.Load() {
			err := punchHole(f, base+int64(lo), int64(hi-lo))
			if err == nil {
				return nil
			}
			c.noPunch.Store(true) // not on this file system: write zeros
		}
		if err := writeSmallFolios(f, zeroBlock[:hi-lo], base+int64(lo)); err != nil {
			return c.ioError(f, "write", err)
		}
		return nil
	})
}

// settle ends a dirty block's copy-on-write over its frozen slot as the
// cut publishes (v.mu held): the frozen slot, uploaded and needed by no
// cut any more, takes the dirty slot's valid sectors and becomes the
// block's whole dirty slot; the caller releases the dirty one.
func (c *cache) settle(st blockState) (blockState, error) {
	if !st.over {
		panic(fmt.Sprintf("volume: settle of %+v", st))
	}
	pb := blockPool.Get().(*[]byte)
	defer blockPool.Put(pb)
	buf := *pb
	err := st.runs(0, BlockSize, func(lo, hi int, valid bool) error {
		if !valid {
			return nil
		}
		if err := c.readSlot(st.slot, buf[lo:hi], lo); err != nil {
			return err
		}
		return c.writeSlot(st.under, buf[lo:hi], lo)
	})
	return blockState{slot: st.under, written: st.written}, err
}
