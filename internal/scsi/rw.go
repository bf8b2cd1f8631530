package scsi

import (
	"bytes"
	"context"
)

// Flag bits of byte 1 of the READ/WRITE/VERIFY family (SBC-4 5.x).
const (
	flagProtect = 0xe0 // RDPROTECT / WRPROTECT / VRPROTECT
	flagDPO     = 0x10
	flagFUA     = 0x08
)

// lbaRange decodes the LOGICAL BLOCK ADDRESS and TRANSFER LENGTH (or
// NUMBER OF LOGICAL BLOCKS) of the 10-, 12- and 16-byte CDBs that share the
// READ (10/12/16) layout, and of READ (6)/WRITE (6).
func lbaRange(cdb []byte) (lba uint64, n uint32) {
	switch cdbLength(cdb[0]) {
	case 6:
		lba = uint64(getU24(cdb[1:4]) & 0x1fffff)
		n = uint32(cdb[4])
		if n == 0 && (cdb[0] == opRead6 || cdb[0] == opWrite6) {
			n = 256 // SBC-4 5.16: zero means 256 blocks for READ/WRITE (6)
		}
	case 10:
		lba, n = uint64(getU32(cdb[2:])), uint32(getU16(cdb[7:]))
	case 12:
		lba, n = uint64(getU32(cdb[2:])), getU32(cdb[6:])
	case 16:
		lba, n = getU64(cdb[2:]), getU32(cdb[10:])
	}
	return lba, n
}

// checkRange fails with LBA OUT OF RANGE unless [lba, lba+n) lies within
// the medium. A zero-length range at the very end is allowed.
func (d *Device) checkRange(lba uint64, n uint64) *checkError {
	end := d.blocks()
	if lba > end || n > end-lba {
		return errLBAOutOfRange
	}
	return nil
}

// writeProtected reports whether the medium refuses writes now.
func (d *Device) writeProtected() bool { return d.opts.ReadOnly || d.swp.Load() }

// writeCacheOff reports whether WCE is clear, so every write is flushed.
func (d *Device) writeCacheOff() bool { return !d.wce.Load() }

// spare, when large enough, is the transport's pooled buffer
// (Command.DataInBuffer), used instead of allocating one.
func (d *Device) read(ctx context.Context, cdb []byte, spare []byte) (Response, error) {
	lba, n := lbaRange(cdb)
	if cdbLength(cdb[0]) > 6 && cdb[1]&flagProtect != 0 {
		// No protection information is formatted (READ CAPACITY PROT_EN=0).
		return Response{}, invalidCDB(1, 7)
	}
	if e := d.checkRange(lba, uint64(n)); e != nil {
		return Response{}, e
	}
	if n > d.opts.MaxTransferBlocks {
		return Response{}, invalidCDB(transferLengthByte(cdb[0]), -1)
	}
	if n == 0 {
		return good, nil
	}
	// The only allocation on the read path, when the transport offers no
	// buffer: the one the data goes out in.
	size := int(n) << d.bsShift
	var buf []byte
	if cap(spare) >= size {
		buf = spare[:size]
	} else {
		buf = make([]byte, size)
	}
	if err := d.b.ReadAt(ctx, buf, int64(lba)<<d.bsShift); err != nil {
		d.log.Warn("scsi: backend read failed", "lba", lba, "blocks", n, "err", err)
		return Response{}, backendError(err, false)
	}
	return Response{Status: StatusGood, DataIn: buf}, nil
}

// transferLengthByte is the first byte of the TRANSFER LENGTH field, for
// the sense-key-specific field pointer.
func transferLengthByte(op byte) int {
	switch cdbLength(op) {
	case 6:
		return 4
	case 10:
		return 7
	case 12:
		return 6
	}
	return 10
}

// dataOut returns the n-block data the command carries, for commands
// that must have all of it (VERIFY, ORWRITE): when the initiator sent less
// than the CDB asks for (iSCSI EDTL < SPDTL) the command is refused before
// it changes anything, with INVALID FIELD IN COMMAND INFORMATION UNIT. Any
// excess beyond the CDB's length (EDTL > SPDTL) is ignored.
func (d *Device) dataOut(cmd *Command, n uint64) ([]byte, *checkError) {
	need := n << d.bsShift
	if uint64(len(cmd.DataOut)) < need {
		return nil, errInvalidIU
	}
	return cmd.DataOut[:need], nil
}

// writeData returns the data a WRITE writes: the CDB's n blocks, or, when
// the initiator sent less (EDTL < SPDTL, an overflow), the whole blocks it
// did send. FCP-4 9.4.2 a) (which libiscsi's residual tests expect):
// process the command normally but transfer nothing beyond EDTL; the
// transport reports the overflow residual so the initiator knows.
func (d *Device) writeData(cmd *Command, n uint64) []byte {
	need := n << d.bsShift
	have := uint64(len(cmd.DataOut)) &^ (uint64(d.bs) - 1)
	return cmd.DataOut[:min(need, have)]
}

func (d *Device) write(ctx context.Context, cmd *Command, verify bool) (Response, error) {
	cdb := cmd.CDB
	lba, n := lbaRange(cdb)
	if cdbLength(cdb[0]) > 6 && cdb[1]&flagProtect != 0 {
		return Response{}, invalidCDB(1, 7)
	}
	if verify && cdb[1]&0x04 != 0 && cdb[1]&0x02 == 0 {
		// BYTCHK 10b is reserved (SBC-4 5.38).
		return Response{}, invalidCDB(1, 2)
	}
	if e := d.checkRange(lba, uint64(n)); e != nil {
		return Response{}, e
	}
	if n > d.opts.MaxTransferBlocks {
		return Response{}, invalidCDB(transferLengthByte(cdb[0]), -1)
	}
	if d.writeProtected() {
		return Response{}, errWriteProtected
	}
	if n == 0 {
		return good, nil
	}
	data := d.writeData(cmd, uint64(n))
	if len(data) == 0 {
		return good, nil
	}
	off := int64(lba) << d.bsShift
	d.atomicMu.RLock()
	err := d.b.WriteAt(ctx, data, off)
	d.atomicMu.RUnlock()
	if err != nil {
		d.log.Warn("scsi: backend write failed", "lba", lba, "blocks", n, "err", err)
		return Response{}, backendError(err, true)
	}
	// FUA, WRITE AND VERIFY (which implies the data reached the medium) and
	// a disabled write cache all require the data be durable before GOOD.
	fua := cdbLength(cdb[0]) > 6 && cdb[1]&flagFUA != 0
	if fua || verify || d.writeCacheOff() {
		if err := d.b.Flush(ctx); err != nil {
			d.log.Warn("scsi: backend flush failed", "err", err)
			return Response{}, backendError(err, true)
		}
	}
	if verify {
		// Verify what the medium now holds against what was sent.
		got := make([]byte, len(data))
		if err := d.b.ReadAt(ctx, got, off); err != nil {
			return Response{}, backendError(err, false)
		}
		if i := firstDiff(got, data); i >= 0 {
			return Response{}, miscompare(uint64(i))
		}
	}
	return good, nil
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// verify implements VERIFY (10/12/16), SBC-4 5.34: BYTCHK 00b checks the
// blocks are readable, 01b compares them with the Data-Out, 11b compares
// each with the single block sent.
func (d *Device) verify(ctx context.Context, cmd *Command) (Response, error) {
	cdb := cmd.CDB
	lba, n := lbaRange(cdb)
	if cdb[1]&flagProtect != 0 {
		return Response{}, invalidCDB(1, 7)
	}
	bytchk := (cdb[1] >> 1) & 3
	if bytchk == 2 {
		return Response{}, invalidCDB(1, 2)
	}
	if e := d.checkRange(lba, uint64(n)); e != nil {
		return Response{}, e
	}
	if n > d.opts.MaxTransferBlocks {
		return Response{}, invalidCDB(transferLengthByte(cdb[0]), -1)
	}
	if n == 0 {
		return good, nil
	}
	var want []byte
	switch bytchk {
	case 1:
		w, e := d.dataOut(cmd, uint64(n))
		if e != nil {
			return Response{}, e
		}
		want = w
	case 3:
		w, e := d.dataOut(cmd, 1)
		if e != nil {
			return Response{}, e
		}
		want = w
	}
	got := make([]byte, int(n)<<d.bsShift)
	if err := d.b.ReadAt(ctx, got, int64(lba)<<d.bsShift); err != nil {
		return Response{}, backendError(err, false)
	}
	switch bytchk {
	case 1:
		if i := firstDiff(got, want); i >= 0 {
			return Response{}, miscompare(uint64(i))
		}
	case 3:
		for off := 0; off < len(got); off += int(d.bs) {
			if i := firstDiff(got[off:off+int(d.bs)], want); i >= 0 {
				return Response{}, miscompare(uint64(off + i))
			}
		}
	}
	return good, nil
}

// syncCache implements SYNCHRONIZE CACHE (10/16). The backend flushes
// everything, which covers any range asked for; IMMED is honoured by
// flushing before answering anyway, which SBC-4 permits.
func (d *Device) syncCache(ctx context.Context, cdb []byte) (Response, error) {
	lba, n := lbaRange(cdb)
	if e := d.checkRange(lba, uint64(n)); e != nil {
		return Response{}, e
	}
	if err := d.b.Flush(ctx); err != nil {
		d.log.Warn("scsi: backend flush failed", "err", err)
		return Response{}, backendError(err, true)
	}
	return good, nil
}

// prefetch implements PRE-FETCH (10/16). The backend keeps its own cache
// and offers no way to load it ahead, so the command only validates: GOOD
// (rather than CONDITION MET) tells the initiator nothing was promised to
// be cached, which SBC-4 5.9 allows.
func (d *Device) prefetch(cdb []byte) (Response, error) {
	lba, n := lbaRange(cdb)
	if e := d.checkRange(lba, uint64(n)); e != nil {
		return Response{}, e
	}
	return good, nil
}

// writeSame implements WRITE SAME (10/16), SBC-4 5.50.
func (d *Device) writeSame(ctx context.Context, cmd *Command) (Response, error) {
	cdb := cmd.CDB
	lba, n := lbaRange(cdb)
	flags := cdb[1]
	if flags&flagProtect != 0 {
		return Response{}, invalidCDB(1, 7)
	}
	if flags&0x10 != 0 { // ANCHOR: ANC_SUP is 0
		return Response{}, invalidCDB(1, 4)
	}
	unmap := flags&0x08 != 0
	ndob := cdb[0] == opWriteSame16 && flags&0x01 != 0
	if unmap && !d.opts.ThinProvisioning {
		return Response{}, invalidCDB(1, 3)
	}
	if e := d.checkRange(lba, uint64(n)); e != nil {
		return Response{}, e
	}
	count := uint64(n)
	if count == 0 {
		// WSNZ=0: zero means through the last block, limited by the
		// MAXIMUM WRITE SAME LENGTH we report.
		count = d.blocks() - lba
	}
	if count > maxWriteSameBlocks {
		return Response{}, invalidCDB(transferLengthByte(cdb[0]), -1)
	}
	if d.writeProtected() {
		return Response{}, errWriteProtected
	}
	var pattern []byte
	if ndob {
		pattern = make([]byte, d.bs)
	} else {
		if len(cmd.DataOut) != int(d.bs) {
			// Exactly one block must be sent; anything else means the
			// initiator and we disagree about the pattern, so nothing is
			// written.
			return Response{}, errInvalidIU
		}
		pattern = cmd.DataOut
	}
	if count == 0 {
		return good, nil
	}
	off := int64(lba) << d.bsShift
	length := int64(count) << d.bsShift
	// UNMAP set: the blocks are unmapped and read back as zeros (LBPRZ=1)
	// whatever the pattern, as Linux LIO does and libiscsi's
	// WriteSame*.UnmapUntilEnd expects; initiators send a zero block with
	// UNMAP anyway.
	d.atomicMu.RLock()
	var err error
	if unmap {
		if e := d.b.Unmap(ctx, off, length); e != nil {
			err = backendError(e, true)
		}
	} else {
		err = d.fillPattern(ctx, pattern, off, length)
	}
	d.atomicMu.RUnlock()
	if err != nil {
		return Response{}, err
	}
	if d.writeCacheOff() {
		if err := d.b.Flush(ctx); err != nil {
			return Response{}, backendError(err, true)
		}
	}
	return good, nil
}

// fillPattern writes pattern repeatedly over [off, off+length) in chunks
// of at most writeSameChunk bytes.
func (d *Device) fillPattern(ctx context.Context, pattern []byte, off, length int64) error {
	chunk := int64(writeSameChunk)
	if length < chunk {
		chunk = length
	}
	buf := make([]byte, chunk)
	for i := 0; i < len(buf); i += len(pattern) {
		copy(buf[i:], pattern)
	}
	for length > 0 {
		w := buf
		if int64(len(w)) > length {
			w = w[:length]
		}
		if err := d.b.WriteAt(ctx, w, off); err != nil {
			d.log.Warn("scsi: backend write failed", "off", off, "err", err)
			return backendError(err, true)
		}
		off += int64(len(w))
		length -= int64(len(w))
	}
	return nil
}

func allZero(p []byte) bool {
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}

// unmap implements UNMAP, SBC-4 5.30.
func (d *Device) unmap(ctx context.Context, cmd *Command) (Response, error) {
	cdb := cmd.CDB
	if !d.opts.ThinProvisioning {
		return Response{}, errInvalidOpcode
	}
	if cdb[1]&0x01 != 0 { // ANCHOR
		return Response{}, invalidCDB(1, 0)
	}
	plen := int(getU16(cdb[7:]))
	if plen == 0 {
		return good, nil
	}
	if plen < 8 {
		return Response{}, errParamListLen
	}
	p := cmd.DataOut
	if len(p) < plen {
		return Response{}, errParamListLen
	}
	p = p[:plen]
	bdl := int(getU16(p[2:]))
	if bdl%16 != 0 {
		// A partial descriptor is ignored per SBC-4 (only whole descriptors
		// count); round down.
		bdl -= bdl % 16
	}
	if 8+bdl > len(p) {
		bdl = (len(p) - 8) &^ 15
	}
	nd := bdl / 16
	if nd > maxUnmapDescriptors {
		return Response{}, invalidParam(2, -1)
	}
	if d.writeProtected() {
		return Response{}, errWriteProtected
	}
	// Validate every descriptor before unmapping any, so a bad list
	// changes nothing.
	var total uint64
	for i := 0; i < nd; i++ {
		desc := p[8+16*i:]
		lba, num := getU64(desc), uint64(getU32(desc[8:]))
		if e := d.checkRange(lba, num); e != nil {
			return Response{}, e
		}
		total += num
		if num > maxUnmapBlocks || total > maxUnmapBlocks {
			return Response{}, invalidParam(8+16*i+8, -1)
		}
	}
	d.atomicMu.RLock()
	defer d.atomicMu.RUnlock()
	for i := 0; i < nd; i++ {
		desc := p[8+16*i:]
		lba, num := getU64(desc), int64(getU32(desc[8:]))
		if num == 0 {
			continue
		}
		if err := d.b.Unmap(ctx, int64(lba)<<d.bsShift, num<<d.bsShift); err != nil {
			d.log.Warn("scsi: backend unmap failed", "lba", lba, "blocks", num, "err", err)
			return Response{}, backendError(err, true)
		}
	}
	return good, nil
}

// compareAndWrite implements COMPARE AND WRITE, SBC-4 5.3: the Data-Out is
// n blocks to compare followed by n blocks to write, atomically.
func (d *Device) compareAndWrite(ctx context.Context, cmd *Command) (Response, error) {
	cdb := cmd.CDB
	if cdb[1]&flagProtect != 0 {
		return Response{}, invalidCDB(1, 7)
	}
	lba := getU64(cdb[2:])
	n := uint64(cdb[13])
	if n > maxCompareWriteBlocks {
		return Response{}, invalidCDB(13, -1)
	}
	if e := d.checkRange(lba, n); e != nil {
		return Response{}, e
	}
	if d.writeProtected() {
		return Response{}, errWriteProtected
	}
	if n == 0 {
		if len(cmd.DataOut) > 0 {
			// Data was sent for a command that asks for none: the
			// initiator's CDB and transfer disagree (libiscsi sends 256
			// blocks this way, NUMBER OF LOGICAL BLOCKS being one byte).
			return Response{}, invalidCDB(13, -1)
		}
		return good, nil
	}
	size := n << d.bsShift
	if uint64(len(cmd.DataOut)) != 2*size {
		// The data must be exactly the verify and the write instance; any
		// other length means the initiator and we disagree about what to
		// write, so nothing is written.
		return Response{}, errInvalidIU
	}
	want, data := cmd.DataOut[:size], cmd.DataOut[size:]
	off := int64(lba) << d.bsShift
	d.atomicMu.Lock()
	defer d.atomicMu.Unlock()
	got := make([]byte, size)
	if err := d.b.ReadAt(ctx, got, off); err != nil {
		return Response{}, backendError(err, false)
	}
	if !bytes.Equal(got, want) {
		return Response{}, miscompare(uint64(firstDiff(got, want)))
	}
	if err := d.b.WriteAt(ctx, data, off); err != nil {
		return Response{}, backendError(err, true)
	}
	if cdb[1]&flagFUA != 0 || d.writeCacheOff() {
		if err := d.b.Flush(ctx); err != nil {
			return Response{}, backendError(err, true)
		}
	}
	return good, nil
}

// orWrite implements ORWRITE (16), SBC-4 5.8, without the multi-command
// BMOP modes: the Data-Out is ORed into the blocks.
func (d *Device) orWrite(ctx context.Context, cmd *Command) (Response, error) {
	cdb := cmd.CDB
	lba, n := lbaRange(cdb)
	if cdb[1]&flagProtect != 0 {
		return Response{}, invalidCDB(1, 7)
	}
	if cdb[14]&0x07 != 0 || cdb[15]&0x40 != 0 {
		// BMOP/ previous generation processing: not supported.
		return Response{}, invalidCDB(14, -1)
	}
	if e := d.checkRange(lba, uint64(n)); e != nil {
		return Response{}, e
	}
	if n > d.opts.MaxTransferBlocks {
		return Response{}, invalidCDB(10, -1)
	}
	if d.writeProtected() {
		return Response{}, errWriteProtected
	}
	if n == 0 {
		return good, nil
	}
	data, e := d.dataOut(cmd, uint64(n))
	if e != nil {
		return Response{}, e
	}
	off := int64(lba) << d.bsShift
	d.atomicMu.Lock()
	defer d.atomicMu.Unlock()
	buf := make([]byte, len(data))
	if err := d.b.ReadAt(ctx, buf, off); err != nil {
		return Response{}, backendError(err, false)
	}
	for i := range buf {
		buf[i] |= data[i]
	}
	if err := d.b.WriteAt(ctx, buf, off); err != nil {
		return Response{}, backendError(err, true)
	}
	if cdb[1]&flagFUA != 0 || d.writeCacheOff() {
		if err := d.b.Flush(ctx); err != nil {
			return Response{}, backendError(err, true)
		}
	}
	return good, nil
}

// readCapacity10 implements READ CAPACITY (10), SBC-4 5.20.
func (d *Device) readCapacity10(cdb []byte) (Response, error) {
	if cdb[8]&0x01 == 0 && getU32(cdb[2:]) != 0 {
		// LOGICAL BLOCK ADDRESS must be zero when PMI is zero.
		return Response{}, invalidCDB(2, -1)
	}
	buf := make([]byte, 8)
	last := d.blocks() - 1
	if d.blocks() == 0 {
		last = 0
	}
	if last > 0xffffffff {
		last = 0xffffffff // tells the initiator to use READ CAPACITY (16)
	}
	putU32(buf, uint32(last))
	putU32(buf[4:], d.bs)
	return Response{Status: StatusGood, DataIn: buf}, nil
}

// readCapacity16 implements READ CAPACITY (16), SBC-4 5.21.
func (d *Device) readCapacity16(cdb []byte) (Response, error) {
	alloc := getU32(cdb[10:])
	buf := make([]byte, 32)
	last := d.blocks() - 1
	if d.blocks() == 0 {
		last = 0
	}
	putU64(buf, last)
	putU32(buf[8:], d.bs)
	buf[13] = d.lbppbExp
	if d.opts.ThinProvisioning {
		buf[14] = 0xc0 // LBPME, LBPRZ: unmapped blocks read as zeros
	}
	return Response{Status: StatusGood, DataIn: truncate(buf, alloc)}, nil
}

func truncate(b []byte, alloc uint32) []byte {
	if uint64(len(b)) > uint64(alloc) {
		return b[:alloc]
	}
	return b
}

// BlockStatuser is an optional Backend extension for GET LBA STATUS: it
// reports whether off is mapped and how many bytes from off share that
// status (at least one block). Backends without it report every block
// mapped, which SBC-4 permits.
type BlockStatuser interface {
	BlockStatus(ctx context.Context, off int64) (mapped bool, length int64, err error)
}

// getLBAStatus implements GET LBA STATUS, SBC-4 5.7.
func (d *Device) getLBAStatus(ctx context.Context, cdb []byte) (Response, error) {
	lba := getU64(cdb[2:])
	alloc := getU32(cdb[10:])
	end := d.blocks()
	if lba >= end {
		return Response{}, errLBAOutOfRange
	}
	if alloc == 0 {
		return good, nil
	}
	mapped, count := true, end-lba
	if bs, ok := d.b.(BlockStatuser); ok && d.opts.ThinProvisioning {
		m, length, err := bs.BlockStatus(ctx, int64(lba)<<d.bsShift)
		if err != nil {
			return Response{}, backendError(err, false)
		}
		mapped = m
		if c := uint64(length) >> d.bsShift; c > 0 && c < count {
			count = c
		}
	}
	if count > 0xffffffff {
		count = 0xffffffff
	}
	buf := make([]byte, 8+16)
	putU32(buf, 4+16) // PARAMETER DATA LENGTH: bytes after this field
	putU64(buf[8:], lba)
	putU32(buf[16:], uint32(count))
	if !mapped {
		buf[20] = 1 // deallocated
	}
	return Response{Status: StatusGood, DataIn: truncate(buf, alloc)}, nil
}
