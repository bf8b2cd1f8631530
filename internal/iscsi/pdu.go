package iscsi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/volgw/volgw/internal/scsi"
)

// Opcodes (RFC 7143 11.2.1.2). Initiator opcodes have the high bits clear;
// target opcodes have 0x20 set.
const (
	opNopOut     = 0x00
	opSCSICmd    = 0x01
	opTMFReq     = 0x02
	opLoginReq   = 0x03
	opTextReq    = 0x04
	opDataOut    = 0x05
	opLogoutReq  = 0x06
	opSNACK      = 0x10
	opNopIn      = 0x20
	opSCSIResp   = 0x21
	opTMFResp    = 0x22
	opLoginResp  = 0x23
	opTextResp   = 0x24
	opDataIn     = 0x25
	opLogoutResp = 0x26
	opR2T        = 0x31
	opAsync      = 0x32
	opReject     = 0x3f
)

// Header flags.
const (
	flagImmediate = 0x40 // byte 0: immediate delivery
	flagFinal     = 0x80 // byte 1: F bit
	flagContinue  = 0x40 // byte 1 of Login/Text: C bit
	flagRead      = 0x40 // byte 1 of SCSI Command: R bit
	flagWrite     = 0x20 // byte 1 of SCSI Command: W bit
	flagTransit   = 0x80 // byte 1 of Login: T bit

	// Data-In and SCSI Response residual and status flags.
	flagAck       = 0x40
	flagOverflow  = 0x04
	flagUnderflow = 0x02
	flagStatus    = 0x01
)

// Reject reasons (RFC 7143 11.17.1).
const (
	rejectDataDigest   = 0x02
	rejectProtocol     = 0x04
	rejectNotSupported = 0x05
	rejectInvalidField = 0x09
)

const (
	bhsLen = 48
	// reservedTag is the all-ones ITT/TTT meaning "none".
	reservedTag = 0xffffffff
	// maxAHSLen bounds the additional header segments we accept: the
	// 8-bit TotalAHSLength in words allows 1020 bytes, which is also all a
	// CDB can use.
	maxAHSLen = 255 * 4
)

// Errors from reading the wire. Each ends the connection: after them the
// byte stream can no longer be framed (or trusted) at ERL 0.
var (
	ErrHeaderDigest = errors.New("iscsi: header digest mismatch")
	ErrPDUTooLong   = errors.New("iscsi: data segment longer than MaxRecvDataSegmentLength")
	ErrProtocol     = errors.New("iscsi: protocol error")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is one received Basic Header Segment with its AHS. Accessors read
// fields in place; no field is copied out until asked for.
type header struct {
	bhs [bhsLen]byte
	ahs []byte // additional header segments, nil when none
	// ahsBuf backs ahs so that a header with AHS does not allocate.
	ahsBuf [maxAHSLen]byte
}

func (h *header) opcode() byte         { return h.bhs[0] & 0x3f }
func (h *header) immediate() bool      { return h.bhs[0]&flagImmediate != 0 }
func (h *header) flags() byte          { return h.bhs[1] }
func (h *header) final() bool          { return h.bhs[1]&flagFinal != 0 }
func (h *header) dataLen() int         { return int(getU24(h.bhs[5:8])) }
func (h *header) lunField() []byte     { return h.bhs[8:16] }
func (h *header) itt() uint32          { return be32(h.bhs[16:20]) }
func (h *header) ttt() uint32          { return be32(h.bhs[20:24]) }
func (h *header) cmdSN() uint32        { return be32(h.bhs[24:28]) }
func (h *header) expStatSN() uint32    { return be32(h.bhs[28:32]) }
func (h *header) dataSN() uint32       { return be32(h.bhs[36:40]) }
func (h *header) bufferOffset() uint32 { return be32(h.bhs[40:44]) }

// SCSI Command fields.
func (h *header) edtl() uint32 { return be32(h.bhs[20:24]) }

// cdb returns the command descriptor block: 16 bytes in the BHS, extended
// by an Extended CDB AHS (type 1) when the CDB is longer.
func (h *header) cdb(dst []byte) []byte {
	dst = append(dst[:0], h.bhs[32:48]...)
	for a := h.ahs; len(a) >= 4; {
		n := int(be16(a[0:2]))
		typ := a[2]
		body := a[3:]
		if n > len(body) {
			break
		}
		if typ == 1 && n > 1 {
			// The AHS length counts the reserved byte before the CDB
			// remainder (RFC 7143 11.2.2.3).
			dst = append(dst, body[1:n]...)
		}
		adv := 3 + n
		adv = (adv + 3) &^ 3
		if adv > len(a) {
			break
		}
		a = a[adv:]
	}
	return dst
}

// bidiReadLength returns the Bidirectional Expected Read-Data Length AHS
// (type 2), if present.
func (h *header) bidiReadLength() (uint32, bool) {
	for a := h.ahs; len(a) >= 4; {
		n := int(be16(a[0:2]))
		typ := a[2]
		if typ == 2 && n == 5 && len(a) >= 8 {
			return be32(a[4:8]), true
		}
		adv := (3 + n + 3) &^ 3
		if adv > len(a) || adv == 0 {
			break
		}
		a = a[adv:]
	}
	return 0, false
}

// digests records what the connection negotiated.
type digests struct {
	header, data bool
}

// readHeader reads one BHS and its AHS (and header digest) from r into h.
// It does not read the data segment.
func readHeader(r *bufio.Reader, h *header, d digests) error {
	if _, err := io.ReadFull(r, h.bhs[:]); err != nil {
		return err
	}
	ahsLen := int(h.bhs[4]) * 4
	h.ahs = nil
	if ahsLen > 0 {
		if _, err := io.ReadFull(r, h.ahsBuf[:ahsLen]); err != nil {
			return err
		}
		h.ahs = h.ahsBuf[:ahsLen]
	}
	if d.header {
		dig, err := r.Peek(4) // in place: a local array would escape
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		crc := crc32.Update(0, castagnoli, h.bhs[:])
		crc = crc32.Update(crc, castagnoli, h.ahs)
		if got := binary.LittleEndian.Uint32(dig); got != crc {
			return fmt.Errorf("%w: got %#08x, computed %#08x", ErrHeaderDigest, got, crc)
		}
		r.Discard(4)
	}
	return nil
}

// errDataDigest reports a data segment whose digest did not match. The
// segment was consumed, so the stream is still framed.
var errDataDigest = errors.New("iscsi: data digest mismatch")

// readData reads a data segment of len(dst) bytes into dst, then its
// padding and digest. On errDataDigest the stream remains usable.
func readData(r *bufio.Reader, dst []byte, d digests) error {
	if _, err := io.ReadFull(r, dst); err != nil {
		return err
	}
	pad := padLen(len(dst))
	n := pad
	if d.data && len(dst) > 0 {
		n += 4
	}
	if n == 0 {
		return nil
	}
	// The padding and digest are read in place (Peek, then Discard): a
	// local array handed to io.ReadFull would escape, an allocation per
	// data segment.
	tail, err := r.Peek(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if d.data && len(dst) > 0 {
		crc := crc32.Update(0, castagnoli, dst)
		crc = crc32.Update(crc, castagnoli, tail[:pad])
		if binary.LittleEndian.Uint32(tail[pad:pad+4]) != crc {
			r.Discard(n)
			return errDataDigest
		}
	}
	_, err = r.Discard(n)
	return err
}

// discardData skips a data segment of n bytes with its padding and digest.
func discardData(r *bufio.Reader, n int, d digests) error {
	skip := n + padLen(n)
	if d.data && n > 0 {
		skip += 4
	}
	_, err := r.Discard(skip)
	return err
}

func padLen(n int) int { return (4 - n&3) & 3 }

// decodeLUN turns the 8-byte LUN field into a LUN number with
// scsi.DecodeLUN (peripheral and flat space addressing). Any other form is
// returned whole with its top bit set, so it never names a configured LUN
// and the LUN table answers LOGICAL UNIT NOT SUPPORTED.
func decodeLUN(b []byte) uint64 {
	var f [8]byte
	copy(f[:], b)
	if lun, ok := scsi.DecodeLUN(f); ok {
		return lun
	}
	return binary.BigEndian.Uint64(f[:]) | 1<<63
}

func be16(b []byte) uint16     { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32     { return binary.BigEndian.Uint32(b) }
func put16(b []byte, v uint16) { binary.BigEndian.PutUint16(b, v) }
func put32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
func getU24(b []byte) uint32   { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }
func putU24(b []byte, v uint32) {
	b[0], b[1], b[2] = byte(v>>16), byte(v>>8), byte(v)
}

// snLess reports a < b in serial number arithmetic (RFC 1982, 32 bits).
func snLess(a, b uint32) bool { return a != b && int32(a-b) < 0 }
