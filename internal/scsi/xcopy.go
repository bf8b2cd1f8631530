package scsi

import (
	"bytes"
	"context"
)

// EXTENDED COPY (LID1) limits reported by RECEIVE COPY RESULTS.
const (
	xcopyMaxTargets     = 2
	xcopyMaxSegments    = 64
	xcopyMaxDescListLen = 4096
	xcopyChunk          = 1 << 20 // bytes copied per backend read/write

	opExtendedCopy      = 0x83
	opReceiveCopyResult = 0x84
	saCopyStatus        = 0x00
	saOperatingParams   = 0x03

	senseCopyAborted byte = 0x0a

	descIdentification = 0xe4 // identification descriptor target descriptor
	segBlockToBlock    = 0x02 // block device to block device segment

	ascTooManyTargetDescs  ASC = 0x2606
	ascUnsupportedTgtDesc  ASC = 0x2607
	ascTooManySegmentDescs ASC = 0x2608
	ascUnsupportedSegDesc  ASC = 0x2609
	ascCopyTargetNotReach  ASC = 0x0d02
)

// copyStatus is the outcome of one EXTENDED COPY whose results the
// initiator asked to be held (LIST ID USAGE 00b or 01b).
type copyStatus struct {
	ok       bool
	segments uint16
	bytes    uint64
}

// copyKey identifies held copy results: per nexus and list identifier.
type copyKey struct {
	nexus string
	list  byte
}

// maxHeldCopies bounds the copy results kept; the oldest are forgotten.
const maxHeldCopies = 64

// extendedCopy implements EXTENDED COPY (LID1), SPC-4 6.4, for
// block-to-block segments whose source and destination are this logical
// unit. The copy runs synchronously: no copy is ever "in progress" when
// the command has completed.
func (d *Device) extendedCopy(ctx context.Context, cmd *Command) (Response, error) {
	cdb := cmd.CDB
	if cdb[1]&0x1f != 0 { // LID4 and others: not supported
		return Response{}, invalidCDB(1, 4)
	}
	plen := int(getU32(cdb[10:]))
	if plen == 0 {
		return good, nil
	}
	if plen < 16 || len(cmd.DataOut) < plen {
		return Response{}, errParamListLen
	}
	p := cmd.DataOut[:plen]
	listID, usage := p[0], (p[1]>>3)&3
	if p[1]&0x20 != 0 { // STR: no stream devices
		return Response{}, invalidParam(1, 5)
	}
	tgtLen, segLen, inlineLen := int(getU16(p[2:])), int(getU32(p[8:])), int(getU32(p[12:]))
	if tgtLen+segLen > xcopyMaxDescListLen || 16+tgtLen+segLen+inlineLen > plen {
		return Response{}, errParamListLen
	}
	if tgtLen%32 != 0 {
		return Response{}, invalidParam(2, -1)
	}
	if tgtLen/32 > xcopyMaxTargets {
		return Response{}, checkCond(SenseIllegalRequest, ascTooManyTargetDescs)
	}
	targets := p[16 : 16+tgtLen]
	segs := p[16+tgtLen : 16+tgtLen+segLen]
	nsegs := 0
	for off := 0; off < len(segs); {
		if len(segs)-off < 4 {
			return Response{}, errParamListLen
		}
		n := 4 + int(getU16(segs[off+2:]))
		if off+n > len(segs) {
			return Response{}, errParamListLen
		}
		off += n
		nsegs++
	}
	if nsegs > xcopyMaxSegments {
		return Response{}, checkCond(SenseIllegalRequest, ascTooManySegmentDescs)
	}
	// Each target descriptor must name this logical unit.
	self := make([]bool, tgtLen/32)
	for i := range self {
		t := targets[32*i:]
		if t[0] != descIdentification {
			return Response{}, checkCond(SenseIllegalRequest, ascUnsupportedTgtDesc)
		}
		if t[1]&0x1f != 0 { // peripheral device type: block devices only
			return Response{}, checkCond(SenseIllegalRequest, ascUnsupportedTgtDesc)
		}
		self[i] = d.designates(t[4:28])
		if self[i] && getU24(t[29:]) != d.bs {
			return Response{}, invalidParam(16+32*i+29, -1)
		}
	}
	for off := 0; off < len(segs); {
		if segs[off] != segBlockToBlock {
			return Response{}, checkCond(SenseIllegalRequest, ascUnsupportedSegDesc)
		}
		off += 4 + int(getU16(segs[off+2:]))
	}
	if d.writeProtected() {
		return Response{}, errWriteProtected
	}
	st := copyStatus{ok: true}
	var err error
	for off := 0; off < len(segs); {
		s := segs[off:]
		off += 4 + int(getU16(s[2:]))
		if getU16(s[2:]) != 0x18 {
			err = invalidParam(16+tgtLen+off+2, -1)
			break
		}
		src, dst := int(getU16(s[4:])), int(getU16(s[6:]))
		if src >= len(self) || dst >= len(self) || !self[src] || !self[dst] {
			err = checkCond(senseCopyAborted, ascCopyTargetNotReach)
			break
		}
		n := uint64(getU16(s[10:]))
		srcLBA, dstLBA := getU64(s[12:]), getU64(s[20:])
		if d.checkRange(srcLBA, n) != nil || d.checkRange(dstLBA, n) != nil {
			// The segment addresses blocks the copy target does not
			// have; SPC-4 reports that as an aborted copy.
			err = checkCond(senseCopyAborted, ASCNoAdditionalSense)
			break
		}
		if e := d.copyBlocks(ctx, srcLBA, dstLBA, n); e != nil {
			err = checkCond(senseCopyAborted, e.asc)
			break
		}
		st.segments++
		st.bytes += n << d.bsShift
	}
	if err != nil {
		st.ok = false
	}
	if usage == 0 || usage == 1 {
		d.mu.Lock()
		if d.copies == nil {
			d.copies = make(map[copyKey]copyStatus)
		}
		if len(d.copies) >= maxHeldCopies {
			clear(d.copies)
		}
		d.copies[copyKey{cmd.Nexus, listID}] = st
		d.mu.Unlock()
	}
	if err != nil {
		return Response{}, err
	}
	if d.writeCacheOff() {
		if e := d.b.Flush(ctx); e != nil {
			return Response{}, backendError(e, true)
		}
	}
	return good, nil
}

// designates reports whether the 24-byte designation descriptor names
// this logical unit by one of the designators of VPD page 83h.
func (d *Device) designates(desc []byte) bool {
	n := int(desc[3])
	if 4+n > len(desc) {
		return false
	}
	id := desc[4 : 4+n]
	switch desc[1] & 0x0f {
	case 3: // NAA
		return bytes.Equal(id, d.naa[:])
	}
	return false
}

// copyBlocks copies n blocks from src to dst, front to back or back to
// front so that overlapping ranges copy as if through a buffer.
func (d *Device) copyBlocks(ctx context.Context, src, dst, n uint64) *checkError {
	if n == 0 || src == dst {
		return nil
	}
	d.atomicMu.RLock()
	defer d.atomicMu.RUnlock()
	chunk := uint64(xcopyChunk) >> d.bsShift
	buf := make([]byte, min(n, chunk)<<d.bsShift)
	for done := uint64(0); done < n; {
		c := min(chunk, n-done)
		at := done
		if dst > src {
			at = n - done - c // copy backwards when dst overlaps ahead
		}
		b := buf[:c<<d.bsShift]
		if err := d.b.ReadAt(ctx, b, int64(src+at)<<d.bsShift); err != nil {
			return backendError(err, false)
		}
		if err := d.b.WriteAt(ctx, b, int64(dst+at)<<d.bsShift); err != nil {
			return backendError(err, true)
		}
		done += c
	}
	return nil
}

// receiveCopyResults implements RECEIVE COPY RESULTS, SPC-4 6.27: the
// operating parameters and the held status of finished copies.
func (d *Device) receiveCopyResults(cmd *Command) (Response, error) {
	cdb := cmd.CDB
	alloc := getU32(cdb[10:])
	switch cdb[1] & 0x1f {
	case saOperatingParams:
		b := make([]byte, 46)
		putU32(b, uint32(len(b)-4))
		b[4] = 0x01 // SNLID: supports no list identifier
		putU16(b[8:], xcopyMaxTargets)
		putU16(b[10:], xcopyMaxSegments)
		putU32(b[12:], xcopyMaxDescListLen)
		putU32(b[16:], uint32(min(uint64(0xffff)<<d.bsShift, 0xffffffff)))
		putU16(b[34:], 1)
		b[36] = 1
		b[37] = byte(d.bsShift) // data segment granularity: one block
		b[43] = 2
		b[44], b[45] = segBlockToBlock, descIdentification
		return Response{Status: StatusGood, DataIn: truncate(b, alloc)}, nil
	case saCopyStatus:
		d.mu.Lock()
		st, ok := d.copies[copyKey{cmd.Nexus, cdb[2]}]
		if ok {
			// SPC-4 6.27.2: held results are discarded once reported.
			delete(d.copies, copyKey{cmd.Nexus, cdb[2]})
		}
		d.mu.Unlock()
		if !ok {
			return Response{}, invalidCDB(2, -1)
		}
		b := make([]byte, 12)
		putU32(b, 8)
		b[4] = 0x01 // completed, no errors
		if !st.ok {
			b[4] = 0x02 // completed with errors
		}
		putU16(b[5:], st.segments)
		tc, units := st.bytes, byte(0)
		for tc > 0xffffffff {
			tc >>= 10
			units++ // 01h KiB, 02h MiB, ...
		}
		b[7] = units
		putU32(b[8:], uint32(tc))
		return Response{Status: StatusGood, DataIn: truncate(b, alloc)}, nil
	}
	return Response{}, invalidCDB(1, 4)
}
