package scsi

import (
	"bytes"
	"testing"
)

// xcopyParams builds an EXTENDED COPY parameter list with one
// identification target descriptor naming naa and the given block-to-block
// segments (src index, dst index, blocks, src LBA, dst LBA).
func xcopyParams(naa []byte, listID byte, segs ...[5]uint64) []byte {
	p := make([]byte, 16+32+28*len(segs))
	p[0] = listID
	putU16(p[2:], 32)
	putU32(p[8:], uint32(28*len(segs)))
	t := p[16:]
	t[0] = descIdentification
	t[4], t[5], t[7] = 0x01, 0x03, 8
	copy(t[8:], naa)
	t[30] = 0x02 // block length 512
	for i, s := range segs {
		d := p[48+28*i:]
		d[0] = segBlockToBlock
		putU16(d[2:], 0x18)
		putU16(d[4:], uint16(s[0]))
		putU16(d[6:], uint16(s[1]))
		putU16(d[10:], uint16(s[2]))
		putU64(d[12:], s[3])
		putU64(d[20:], s[4])
	}
	return p
}

func xcopyCDB(n int) []byte {
	c := make([]byte, 16)
	c[0] = opExtendedCopy
	putU32(c[10:], uint32(n))
	return c
}

func TestExtendedCopy(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	src := pattern(40*512, 5)
	h.wantGood(h.run(cdb10(opWrite10, 0, 0, 40), src))
	p := xcopyParams(h.d.naa[:], 1, [5]uint64{0, 0, 40, 0, 1000}, [5]uint64{0, 0, 10, 0, 5})
	h.wantGood(h.run(xcopyCDB(len(p)), p))
	if got := h.run(cdb10(opRead10, 0, 1000, 40), nil).DataIn; !bytes.Equal(got, src) {
		t.Fatalf("copied blocks differ")
	}
	// The overlapping second segment copies as if through a buffer.
	if got := h.run(cdb10(opRead10, 0, 5, 10), nil).DataIn; !bytes.Equal(got, src[:10*512]) {
		t.Fatalf("overlapping copy differs")
	}
	// The held status reports two segments and the bytes moved, once.
	rcr := make([]byte, 16)
	rcr[0], rcr[1], rcr[2] = opReceiveCopyResult, saCopyStatus, 1
	putU32(rcr[10:], 64)
	r := h.run(rcr, nil)
	h.wantGood(r)
	if r.DataIn[4] != 1 || getU16(r.DataIn[5:]) != 2 || getU32(r.DataIn[8:]) != 50*512 {
		t.Fatalf("COPY STATUS % x", r.DataIn)
	}
	h.wantSense(h.run(rcr, nil), SenseIllegalRequest, ASCInvalidFieldInCDB)

	// Errors: unknown target, bad index, beyond the end, wrong types, length.
	other := xcopyParams([]byte{0x31, 2, 3, 4, 5, 6, 7, 8}, 2, [5]uint64{0, 0, 1, 0, 10})
	h.wantSense(h.run(xcopyCDB(len(other)), other), senseCopyAborted, ascCopyTargetNotReach)
	bad := xcopyParams(h.d.naa[:], 2, [5]uint64{0, 1, 1, 0, 10})
	h.wantSense(h.run(xcopyCDB(len(bad)), bad), senseCopyAborted, ascCopyTargetNotReach)
	eol := xcopyParams(h.d.naa[:], 2, [5]uint64{0, 0, 2, 0, testBlocks - 1})
	h.wantSense(h.run(xcopyCDB(len(eol)), eol), senseCopyAborted, ASCNoAdditionalSense)
	typ := bytes.Clone(p)
	typ[16] = 0xe0
	h.wantSense(h.run(xcopyCDB(len(typ)), typ), SenseIllegalRequest, ascUnsupportedTgtDesc)
	typ = bytes.Clone(p)
	typ[48] = 0x09
	h.wantSense(h.run(xcopyCDB(len(typ)), typ), SenseIllegalRequest, ascUnsupportedSegDesc)
	h.wantSense(h.run(xcopyCDB(len(p)-1), p[:len(p)-1]), SenseIllegalRequest, ASCParameterListLengthError)
	h.wantGood(h.run(xcopyCDB(0), nil))

	rcr[1] = saOperatingParams
	r = h.run(rcr, nil)
	h.wantGood(r)
	if getU16(r.DataIn[8:]) != xcopyMaxTargets || getU16(r.DataIn[10:]) != xcopyMaxSegments || r.DataIn[43] != 2 {
		t.Fatalf("OPERATING PARAMETERS % x", r.DataIn)
	}
}
