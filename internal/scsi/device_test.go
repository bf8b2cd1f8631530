package scsi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
)

const testBlocks = 2048 // 1 MiB at 512-byte blocks

// countingBackend wraps a FileBackend, counting flushes and optionally
// failing operations, so tests can see what reached the backend.
type countingBackend struct {
	*FileBackend
	flushes atomic.Int64
	unmaps  atomic.Int64
	failErr atomic.Pointer[error] // when set, every I/O fails with it
}

func (c *countingBackend) fail() error {
	if p := c.failErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *countingBackend) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := c.fail(); err != nil {
		return err
	}
	return c.FileBackend.ReadAt(ctx, p, off)
}

func (c *countingBackend) WriteAt(ctx context.Context, p []byte, off int64) error {
	if err := c.fail(); err != nil {
		return err
	}
	return c.FileBackend.WriteAt(ctx, p, off)
}

func (c *countingBackend) Flush(ctx context.Context) error {
	c.flushes.Add(1)
	if err := c.fail(); err != nil {
		return err
	}
	return c.FileBackend.Flush(ctx)
}

func (c *countingBackend) Unmap(ctx context.Context, off, n int64) error {
	c.unmaps.Add(1)
	return c.FileBackend.Unmap(ctx, off, n)
}

type harness struct {
	t     *testing.T
	d     *Device
	b     *countingBackend
	nexus string
}

func newHarness(t testing.TB, opts DeviceOptions) *harness {
	t.Helper()
	fb, err := OpenFileBackend(filepath.Join(t.TempDir(), "lun0.img"), testBlocks*512)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fb.Close() })
	cb := &countingBackend{FileBackend: fb}
	if opts.SerialNumber == "" {
		opts.SerialNumber = "vol-0123456789abcdef0"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d, err := NewDevice(cb, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{d: d, b: cb, nexus: "iqn.1993-08.org.debian:01:test,i,0x23d000000001"}
	if tt, ok := t.(*testing.T); ok {
		h.t = tt
		// A new nexus starts without a unit attention (see Device.seen).
		h.wantGood(h.run([]byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil))
	}
	return h
}

func (h *harness) runOn(nexus string, cdb []byte, out []byte) Response {
	cmd := &Command{Nexus: nexus, CDB: cdb, DataOut: out, ExpectedDataTransferLength: uint32(len(out)), Write: len(out) > 0}
	if len(out) == 0 {
		cmd.ExpectedDataTransferLength = 1 << 20
		cmd.Read = true
	}
	return h.d.Execute(context.Background(), cmd)
}

func (h *harness) run(cdb []byte, out []byte) Response { return h.runOn(h.nexus, cdb, out) }

func (h *harness) wantGood(r Response) {
	h.t.Helper()
	if r.Status != StatusGood {
		h.t.Fatalf("status %#x sense % x, want GOOD", r.Status, r.Sense)
	}
}

// wantSense checks a CHECK CONDITION with fixed-format sense key/ASC/ASCQ.
func (h *harness) wantSense(r Response, key byte, asc ASC) {
	h.t.Helper()
	if r.Status != StatusCheckCondition {
		h.t.Fatalf("status %#x, want CHECK CONDITION key %#x asc %#04x", r.Status, key, uint16(asc))
	}
	gotKey, gotASC := parseSense(r.Sense)
	if gotKey != key || gotASC != asc {
		h.t.Fatalf("sense key %#x asc %#04x, want %#x %#04x (% x)", gotKey, uint16(gotASC), key, uint16(asc), r.Sense)
	}
}

func parseSense(s []byte) (byte, ASC) {
	switch {
	case len(s) >= 14 && s[0]&0x7f == 0x70:
		return s[2] & 0xf, ASC(s[12])<<8 | ASC(s[13])
	case len(s) >= 4 && s[0]&0x7f == 0x72:
		return s[1] & 0xf, ASC(s[2])<<8 | ASC(s[3])
	}
	return 0xff, 0xffff
}

func cdb10(op byte, flags byte, lba uint32, n uint16) []byte {
	c := make([]byte, 10)
	c[0], c[1] = op, flags
	putU32(c[2:], lba)
	putU16(c[7:], n)
	return c
}

func cdb12(op byte, flags byte, lba uint32, n uint32) []byte {
	c := make([]byte, 12)
	c[0], c[1] = op, flags
	putU32(c[2:], lba)
	putU32(c[6:], n)
	return c
}

func cdb16(op byte, flags byte, lba uint64, n uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = op, flags
	putU64(c[2:], lba)
	putU32(c[10:], n)
	return c
}

func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i*7)
	}
	return p
}

func TestReadWriteEveryCDBSize(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	cases := []struct {
		name        string
		read, write func(lba uint64, n uint32) []byte
	}{
		{"6", func(l uint64, n uint32) []byte {
			return []byte{opRead6, byte(l >> 16), byte(l >> 8), byte(l), byte(n), 0}
		},
			func(l uint64, n uint32) []byte {
				return []byte{opWrite6, byte(l >> 16), byte(l >> 8), byte(l), byte(n), 0}
			}},
		{"10", func(l uint64, n uint32) []byte { return cdb10(opRead10, 0, uint32(l), uint16(n)) },
			func(l uint64, n uint32) []byte { return cdb10(opWrite10, 0, uint32(l), uint16(n)) }},
		{"12", func(l uint64, n uint32) []byte { return cdb12(opRead12, 0, uint32(l), n) },
			func(l uint64, n uint32) []byte { return cdb12(opWrite12, 0, uint32(l), n) }},
		{"16", func(l uint64, n uint32) []byte { return cdb16(opRead16, 0, l, n) },
			func(l uint64, n uint32) []byte { return cdb16(opWrite16, 0, l, n) }},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			lba, n := uint64(100*i+3), uint32(5)
			data := pattern(int(n)*512, byte(i+1))
			h.wantGood(h.run(c.write(lba, n), data))
			r := h.run(c.read(lba, n), nil)
			h.wantGood(r)
			if !bytes.Equal(r.DataIn, data) {
				t.Fatalf("read back differs")
			}
			// Last block works, one past the end is out of range.
			h.wantGood(h.run(c.write(testBlocks-1, 1), data[:512]))
			h.wantSense(h.run(c.read(testBlocks-1, 2), nil), SenseIllegalRequest, ASCLBAOutOfRange)
			h.wantSense(h.run(c.write(testBlocks, 1), data[:512]), SenseIllegalRequest, ASCLBAOutOfRange)
		})
	}
}

func TestReadWrite6ZeroMeans256Blocks(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	r := h.run([]byte{opRead6, 0, 0, 0, 0, 0}, nil)
	h.wantGood(r)
	if len(r.DataIn) != 256*512 {
		t.Fatalf("READ(6) with length 0 returned %d bytes, want %d", len(r.DataIn), 256*512)
	}
}

func TestZeroLengthAndOutOfRange(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	// Zero blocks at the end is fine; beyond it and at LBA -1 is not.
	h.wantGood(h.run(cdb10(opRead10, 0, testBlocks, 0), nil))
	h.wantSense(h.run(cdb10(opRead10, 0, testBlocks+1, 0), nil), SenseIllegalRequest, ASCLBAOutOfRange)
	h.wantSense(h.run(cdb16(opRead16, 0, ^uint64(0), 1), nil), SenseIllegalRequest, ASCLBAOutOfRange)
	h.wantSense(h.run(cdb16(opRead16, 0, 1, ^uint32(0)), nil), SenseIllegalRequest, ASCLBAOutOfRange)
	h.wantSense(h.run(cdb16(opWrite16, 0, 1<<63, 1), make([]byte, 512)), SenseIllegalRequest, ASCLBAOutOfRange)
	// RDPROTECT/WRPROTECT without protection information.
	h.wantSense(h.run(cdb10(opRead10, 0x20, 0, 1), nil), SenseIllegalRequest, ASCInvalidFieldInCDB)
	h.wantSense(h.run(cdb10(opWrite10, 0x20, 0, 1), make([]byte, 512)), SenseIllegalRequest, ASCInvalidFieldInCDB)
}

func TestMaxTransferLength(t *testing.T) {
	h := newHarness(t, DeviceOptions{MaxTransferBlocks: 16})
	h.wantGood(h.run(cdb10(opRead10, 0, 0, 16), nil))
	h.wantSense(h.run(cdb10(opRead10, 0, 0, 17), nil), SenseIllegalRequest, ASCInvalidFieldInCDB)
}

func TestFUAAndSyncCacheFlush(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	data := pattern(512, 9)
	before := h.b.flushes.Load()
	h.wantGood(h.run(cdb10(opWrite10, 0, 0, 1), data))
	if got := h.b.flushes.Load() - before; got != 0 {
		t.Fatalf("plain write flushed %d times with the write cache on", got)
	}
	h.wantGood(h.run(cdb10(opWrite10, flagFUA, 0, 1), data))
	if got := h.b.flushes.Load() - before; got != 1 {
		t.Fatalf("FUA write flushed %d times, want 1", got)
	}
	h.wantGood(h.run(cdb10(opSyncCache10, 0, 0, 0), nil))
	h.wantGood(h.run(cdb16(opSyncCache16, 0, 0, 0), nil))
	if got := h.b.flushes.Load() - before; got != 3 {
		t.Fatalf("after two SYNCHRONIZE CACHE: %d flushes, want 3", got)
	}
	h.wantSense(h.run(cdb10(opSyncCache10, 0, testBlocks, 1), nil), SenseIllegalRequest, ASCLBAOutOfRange)
}

func TestWriteResiduals(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	// EDTL larger than the CDB asks: GOOD, only the asked blocks written,
	// underflow residual reported.
	h.wantGood(h.run(cdb10(opWrite10, 0, 0, 2), bytes.Repeat([]byte{'a'}, 1024)))
	r := h.run(cdb10(opWrite10, 0, 0, 1), bytes.Repeat([]byte{'b'}, 1024))
	h.wantGood(r)
	if r.DataOutResidual != 512 {
		t.Fatalf("underflow residual %d, want 512", r.DataOutResidual)
	}
	got := h.run(cdb10(opRead10, 0, 0, 2), nil).DataIn
	if !bytes.Equal(got[:512], bytes.Repeat([]byte{'b'}, 512)) || !bytes.Equal(got[512:], bytes.Repeat([]byte{'a'}, 512)) {
		t.Fatalf("underflow wrote beyond the CDB's transfer length")
	}
	// EDTL smaller than the CDB asks: GOOD, only the whole blocks sent are
	// written (FCP-4 9.4.2 a), overflow residual reported.
	r = h.run(cdb10(opWrite10, 0, 0, 2), bytes.Repeat([]byte{'c'}, 512))
	h.wantGood(r)
	if r.DataOutResidual != -512 {
		t.Fatalf("overflow residual %d, want -512", r.DataOutResidual)
	}
	got = h.run(cdb10(opRead10, 0, 0, 2), nil).DataIn
	if got[0] != 'c' || got[512] != 'a' {
		t.Fatalf("overflow wrote %q/%q, want the sent block only", got[0], got[512])
	}
	// Less than a block sent: nothing is written.
	r = h.run(cdb10(opWrite10, 0, 0, 1), bytes.Repeat([]byte{'d'}, 200))
	h.wantGood(r)
	if got := h.run(cdb10(opRead10, 0, 0, 1), nil).DataIn; got[0] != 'c' {
		t.Fatalf("a partial block was written")
	}
	// A WRITE without the W bit and no data: nothing written, the whole
	// transfer is an overflow.
	r = h.d.Execute(context.Background(), &Command{Nexus: h.nexus, CDB: cdb10(opWrite10, 0, 0, 1)})
	h.wantGood(r)
	if r.DataOutResidual != -512 {
		t.Fatalf("W=0 WRITE residual %d, want -512", r.DataOutResidual)
	}
	// Commands that need all their data still refuse a short transfer.
	h.wantSense(h.run(cdb10(opVerify10, 0x02, 0, 2), make([]byte, 512)), SenseIllegalRequest, ASCInvalidFieldInCommandIU)
}

func TestReadCapacity(t *testing.T) {
	h := newHarness(t, DeviceOptions{ThinProvisioning: true, PhysicalBlockSize: 4096})
	r := h.run([]byte{opReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil)
	h.wantGood(r)
	if getU32(r.DataIn) != testBlocks-1 || getU32(r.DataIn[4:]) != 512 {
		t.Fatalf("READ CAPACITY (10) = % x", r.DataIn)
	}
	c := cdb16(opServiceActionIn16, saReadCapacity16, 0, 32)
	r = h.run(c, nil)
	h.wantGood(r)
	if getU64(r.DataIn) != testBlocks-1 || getU32(r.DataIn[8:]) != 512 || r.DataIn[13] != 3 || r.DataIn[14]&0xc0 != 0xc0 {
		t.Fatalf("READ CAPACITY (16) = % x", r.DataIn)
	}
	c = cdb16(opServiceActionIn16, saReadCapacity16, 0, 12)
	if r = h.run(c, nil); len(r.DataIn) != 12 {
		t.Fatalf("allocation length 12 returned %d bytes", len(r.DataIn))
	}
	h.wantSense(h.run(cdb16(opServiceActionIn16, 0x1f, 0, 32), nil), SenseIllegalRequest, ASCInvalidFieldInCDB)
}

func TestUnknownOpcode(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	for _, op := range []byte{0x04, 0x48, 0x9c, 0xc0, 0xff} {
		c := make([]byte, 16)
		c[0] = op
		h.wantSense(h.run(c, nil), SenseIllegalRequest, ASCInvalidCommandOperationCode)
	}
}

func TestUnitAttentions(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	tur := []byte{opTestUnitReady, 0, 0, 0, 0, 0}
	other := "iqn.other,i,0x1"
	// A new nexus starts without a unit attention (iscsi-ls does not retry
	// its first TEST UNIT READY).
	h.wantGood(h.runOn(other, []byte{opInquiry, 0, 0, 0, 96, 0}, nil))
	h.wantGood(h.runOn(other, tur, nil))
	// A reset from h's nexus is reported to every nexus, h's included.
	h.d.Reset(h.nexus)
	h.wantSense(h.run(tur, nil), SenseUnitAttention, ASCBusDeviceResetOccurred)
	h.wantGood(h.run(tur, nil))
	r := h.runOn(other, []byte{opRequestSense, 0, 0, 0, 252, 0}, nil)
	h.wantGood(r)
	if k, a := parseSense(r.DataIn); k != SenseUnitAttention || a != ASCBusDeviceResetOccurred {
		t.Fatalf("REQUEST SENSE after reset: key %#x asc %#04x", k, uint16(a))
	}
	h.wantGood(h.runOn(other, tur, nil))
	// REQUEST SENSE with nothing pending: NO SENSE, descriptor format on DESC.
	r = h.run([]byte{opRequestSense, 1, 0, 0, 252, 0}, nil)
	h.wantGood(r)
	if r.DataIn[0] != 0x72 || r.DataIn[1] != 0 {
		t.Fatalf("REQUEST SENSE DESC=1: % x", r.DataIn)
	}
}

func TestInquiry(t *testing.T) {
	h := newHarness(t, DeviceOptions{ThinProvisioning: true})
	r := h.run([]byte{opInquiry, 0, 0, 0, 255, 0}, nil)
	h.wantGood(r)
	b := r.DataIn
	if len(b) != 96 || b[0] != 0 || b[2] != 6 || b[3]&0x0f != 2 || int(b[4]) != len(b)-5 {
		t.Fatalf("standard INQUIRY: % x", b)
	}
	if string(b[8:16]) != "Amazon  " || string(b[16:32]) != "Storage Gateway " {
		t.Fatalf("identification %q %q", b[8:16], b[16:32])
	}
	if r = h.run([]byte{opInquiry, 0, 0, 0, 5, 0}, nil); len(r.DataIn) != 5 {
		t.Fatalf("allocation length 5 gave %d bytes", len(r.DataIn))
	}
	h.wantSense(h.run([]byte{opInquiry, 0, 0x80, 0, 255, 0}, nil), SenseIllegalRequest, ASCInvalidFieldInCDB)
	h.wantSense(h.run([]byte{opInquiry, 1, 0x42, 0, 255, 0}, nil), SenseIllegalRequest, ASCInvalidFieldInCDB)

	r = h.run([]byte{opInquiry, 1, 0, 0, 255, 0}, nil)
	h.wantGood(r)
	pages := r.DataIn[4:]
	if !bytes.Equal(pages, vpdPages) || int(getU16(r.DataIn[2:])) != len(pages) {
		t.Fatalf("supported VPD pages % x", r.DataIn)
	}
	for _, p := range pages {
		r := h.run([]byte{opInquiry, 1, p, 0x10, 0, 0}, nil)
		h.wantGood(r)
		if r.DataIn[1] != p || int(getU16(r.DataIn[2:]))+4 != len(r.DataIn) {
			t.Fatalf("VPD %#x: bad header % x", p, r.DataIn[:4])
		}
	}
	r = h.run([]byte{opInquiry, 1, 0x80, 0, 255, 0}, nil)
	if string(r.DataIn[4:]) != "vol-0123456789abcdef0" {
		t.Fatalf("serial %q", r.DataIn[4:])
	}
	r = h.run([]byte{opInquiry, 1, 0x83, 0, 255, 0}, nil)
	id := r.DataIn[4:]
	if id[0]&0x0f != 1 || id[1]&0x0f != 3 || id[3] != 8 || id[4]>>4 != 3 {
		t.Fatalf("first designator is not NAA: % x", id)
	}
	// The NAA designator is a function of the device identifier only.
	h2 := newHarness(t, DeviceOptions{})
	r2 := h2.run([]byte{opInquiry, 1, 0x83, 0, 255, 0}, nil)
	if !bytes.Equal(r2.DataIn[8:16], id[4:12]) {
		t.Fatalf("NAA differs between devices with the same serial")
	}
	h3 := newHarness(t, DeviceOptions{SerialNumber: "vol-other"})
	r3 := h3.run([]byte{opInquiry, 1, 0x83, 0, 255, 0}, nil)
	if bytes.Equal(r3.DataIn[8:16], id[4:12]) {
		t.Fatalf("NAA equal for different volumes")
	}
	r = h.run([]byte{opInquiry, 1, 0xb0, 0, 255, 0}, nil)
	if len(r.DataIn) != 64 || getU32(r.DataIn[20:]) != maxUnmapBlocks || getU32(r.DataIn[24:]) != maxUnmapDescriptors {
		t.Fatalf("block limits % x", r.DataIn)
	}
	r = h.run([]byte{opInquiry, 1, 0xb2, 0, 255, 0}, nil)
	if r.DataIn[5]&0x80 == 0 || r.DataIn[5]&0x40 == 0 {
		t.Fatalf("logical block provisioning % x", r.DataIn)
	}
}

func TestUnmapAndWriteSame(t *testing.T) {
	h := newHarness(t, DeviceOptions{ThinProvisioning: true})
	data := pattern(64*512, 3)
	h.wantGood(h.run(cdb10(opWrite10, 0, 0, 64), data))
	param := make([]byte, 8+2*16)
	putU16(param, uint16(len(param)-2))
	putU16(param[2:], 32)
	putU64(param[8:], 4)
	putU32(param[16:], 4)
	putU64(param[24:], 20)
	putU32(param[32:], 2)
	c := make([]byte, 10)
	c[0] = opUnmap
	putU16(c[7:], uint16(len(param)))
	h.wantGood(h.run(c, param))
	got := h.run(cdb10(opRead10, 0, 0, 64), nil).DataIn
	want := bytes.Clone(data)
	clear(want[4*512 : 8*512])
	clear(want[20*512 : 22*512])
	if !bytes.Equal(got, want) {
		t.Fatalf("UNMAP did not zero exactly the two ranges")
	}
	// A descriptor out of range fails the whole command before any unmap.
	putU64(param[24:], testBlocks-1)
	n := h.b.unmaps.Load()
	h.wantSense(h.run(c, param), SenseIllegalRequest, ASCLBAOutOfRange)
	if h.b.unmaps.Load() != n {
		t.Fatalf("a rejected UNMAP unmapped something")
	}
	// Parameter list length 1..7 is an error, 0 is a no-op.
	putU16(c[7:], 4)
	h.wantSense(h.run(c, param[:4]), SenseIllegalRequest, ASCParameterListLengthError)
	putU16(c[7:], 0)
	h.wantGood(h.run(c, nil))

	// WRITE SAME writes the pattern over every block.
	blk := pattern(512, 77)
	h.wantGood(h.run(cdb10(opWriteSame10, 0, 30, 10), blk))
	got = h.run(cdb10(opRead10, 0, 30, 10), nil).DataIn
	if !bytes.Equal(got, bytes.Repeat(blk, 10)) {
		t.Fatalf("WRITE SAME pattern not written")
	}
	// WRITE SAME (16) with UNMAP and a zero block unmaps.
	n = h.b.unmaps.Load()
	h.wantGood(h.run(cdb16(opWriteSame16, 0x08, 30, 10), make([]byte, 512)))
	if h.b.unmaps.Load() != n+1 {
		t.Fatalf("WRITE SAME with UNMAP did not unmap")
	}
	got = h.run(cdb10(opRead10, 0, 30, 10), nil).DataIn
	if !allZero(got) {
		t.Fatalf("unmapped blocks do not read as zeros")
	}
	h.wantSense(h.run(cdb10(opWriteSame10, 0x10, 0, 1), blk), SenseIllegalRequest, ASCInvalidFieldInCDB)
	h.wantSense(h.run(cdb10(opWriteSame10, 0, testBlocks, 1), blk), SenseIllegalRequest, ASCLBAOutOfRange)

	// GET LBA STATUS answers for the file's holes and data.
	r := h.run(cdb16(opServiceActionIn16, saGetLBAStatus, 0, 24), nil)
	h.wantGood(r)
	if getU64(r.DataIn[8:]) != 0 || r.DataIn[20] != 0 {
		t.Fatalf("GET LBA STATUS at 0: % x", r.DataIn)
	}
	h.wantSense(h.run(cdb16(opServiceActionIn16, saGetLBAStatus, testBlocks, 24), nil), SenseIllegalRequest, ASCLBAOutOfRange)
}

func TestUnmapWithoutThinProvisioning(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	c := make([]byte, 10)
	c[0] = opUnmap
	h.wantSense(h.run(c, nil), SenseIllegalRequest, ASCInvalidCommandOperationCode)
	h.wantSense(h.run(cdb10(opWriteSame10, 0x08, 0, 1), make([]byte, 512)), SenseIllegalRequest, ASCInvalidFieldInCDB)
}

func TestCompareAndWriteAndVerify(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	old, nw := pattern(1024, 1), pattern(1024, 2)
	h.wantGood(h.run(cdb10(opWrite10, 0, 8, 2), old))
	caw := cdb16(opCompareAndWrite, 0, 8, 0)
	caw[13] = 2
	h.wantGood(h.run(caw, append(bytes.Clone(old), nw...)))
	if got := h.run(cdb10(opRead10, 0, 8, 2), nil).DataIn; !bytes.Equal(got, nw) {
		t.Fatalf("COMPARE AND WRITE did not write")
	}
	wrong := bytes.Clone(nw)
	wrong[700] ^= 1
	r := h.run(caw, append(wrong, old...))
	h.wantSense(r, SenseMiscompare, ASCMiscompareDuringVerify)
	if r.Sense[0]&0x80 == 0 || getU32(r.Sense[3:]) != 700 {
		t.Fatalf("miscompare offset not in INFORMATION: % x", r.Sense)
	}
	if got := h.run(cdb10(opRead10, 0, 8, 2), nil).DataIn; !bytes.Equal(got, nw) {
		t.Fatalf("COMPARE AND WRITE wrote after a miscompare")
	}
	h.wantSense(h.run(caw, nw), SenseIllegalRequest, ASCInvalidFieldInCommandIU)

	// VERIFY with BYTCHK=1 compares, BYTCHK=0 only reads.
	h.wantGood(h.run(cdb10(opVerify10, 0x02, 8, 2), nw))
	r = h.run(cdb10(opVerify10, 0x02, 8, 2), wrong)
	h.wantSense(r, SenseMiscompare, ASCMiscompareDuringVerify)
	h.wantGood(h.run(cdb10(opVerify10, 0, 8, 2), nil))
	h.wantSense(h.run(cdb10(opVerify10, 0x04, 8, 2), nil), SenseIllegalRequest, ASCInvalidFieldInCDB)
	// WRITE AND VERIFY writes, flushes and checks.
	f := h.b.flushes.Load()
	h.wantGood(h.run(cdb10(opWriteVerify10, 0x02, 8, 2), old))
	if h.b.flushes.Load() != f+1 {
		t.Fatalf("WRITE AND VERIFY did not flush")
	}
	// ORWRITE ORs the data in.
	or := make([]byte, 512)
	or[0] = 0x80
	h.wantGood(h.run(cdb16(opOrWrite16, 0, 8, 1), or))
	if got := h.run(cdb10(opRead10, 0, 8, 1), nil).DataIn; got[0] != old[0]|0x80 || !bytes.Equal(got[1:], old[1:512]) {
		t.Fatalf("ORWRITE result wrong")
	}
}

func TestModeSenseSelect(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	r := h.run([]byte{opModeSense6, 0, pageAll, 0, 255, 0}, nil)
	h.wantGood(r)
	b := r.DataIn
	if int(b[0]) != len(b)-1 || b[3] != 8 || getU32(b[4:]) != testBlocks || getU24(b[9:]) != 512 {
		t.Fatalf("MODE SENSE (6) header/descriptor: % x", b[:12])
	}
	caching := findPage(b[12:], pageCaching)
	if caching == nil || caching[2]&0x04 == 0 {
		t.Fatalf("caching page missing or WCE clear: % x", b)
	}
	// Saved values are not supported; unknown pages are invalid.
	h.wantSense(h.run([]byte{opModeSense6, 0, 0xc0 | pageCaching, 0, 255, 0}, nil), SenseIllegalRequest, ASCSavingParametersUnsupported)
	h.wantSense(h.run([]byte{opModeSense6, 0, 0x19, 0, 255, 0}, nil), SenseIllegalRequest, ASCInvalidFieldInCDB)
	// MODE SENSE (10) with DBD and LLBAA.
	c := []byte{opModeSense10, 0x18, pageControl, 0, 0, 0, 0, 0, 255, 0}
	r = h.run(c, nil)
	h.wantGood(r)
	if getU16(r.DataIn[6:]) != 0 || r.DataIn[8] != pageControl {
		t.Fatalf("MODE SENSE (10) DBD: % x", r.DataIn)
	}

	// Turn D_SENSE and SWP on through MODE SELECT (6).
	r = h.run([]byte{opModeSense6, 0x08, pageControl, 0, 255, 0}, nil)
	page := bytes.Clone(r.DataIn[4:])
	page[2] |= 0x04
	page[4] |= 0x08
	param := append([]byte{0, 0, 0, 0}, page...)
	h.wantGood(h.run([]byte{opModeSelect6, 0x10, 0, 0, byte(len(param)), 0}, param))
	r = h.run(cdb10(opWrite10, 0, 0, 1), make([]byte, 512))
	if r.Status != StatusCheckCondition || r.Sense[0] != 0x72 || r.Sense[1] != SenseDataProtect || r.Sense[2] != 0x27 {
		t.Fatalf("write with SWP and D_SENSE: status %#x sense % x", r.Status, r.Sense)
	}
	h.wantGood(h.run(cdb10(opRead10, 0, 0, 1), nil))
	// Another nexus hears that mode parameters changed.
	other := "iqn.other,i,0x2"
	h.runOn(other, []byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil) // power on UA
	page[2] &^= 0x04
	page[4] &^= 0x08
	param = append([]byte{0, 0, 0, 0}, page...)
	h.wantGood(h.run([]byte{opModeSelect6, 0x10, 0, 0, byte(len(param)), 0}, param))
	h.wantSense(h.runOn(other, []byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil), SenseUnitAttention, ASCModeParametersChanged)
	h.wantGood(h.run(cdb10(opWrite10, 0, 0, 1), make([]byte, 512)))
	// A change to a field that is not changeable is refused.
	page[3] ^= 0x02
	param = append([]byte{0, 0, 0, 0}, page...)
	h.wantSense(h.run([]byte{opModeSelect6, 0x10, 0, 0, byte(len(param)), 0}, param), SenseIllegalRequest, ASCInvalidFieldInParameterList)
	h.wantSense(h.run([]byte{opModeSelect6, 0x11, 0, 0, byte(len(param)), 0}, param), SenseIllegalRequest, ASCInvalidFieldInCDB)
	h.wantSense(h.run([]byte{opModeSelect6, 0x10, 0, 0, 40, 0}, param), SenseIllegalRequest, ASCParameterListLengthError)

	// Clearing WCE makes every write flush.
	r = h.run([]byte{opModeSense6, 0x08, pageCaching, 0, 255, 0}, nil)
	cp := bytes.Clone(r.DataIn[4:])
	cp[2] &^= 0x04
	param = append([]byte{0, 0, 0, 0}, cp...)
	h.wantGood(h.run([]byte{opModeSelect6, 0x10, 0, 0, byte(len(param)), 0}, param))
	f := h.b.flushes.Load()
	h.wantGood(h.run(cdb10(opWrite10, 0, 0, 1), make([]byte, 512)))
	if h.b.flushes.Load() != f+1 {
		t.Fatalf("write with WCE=0 did not flush")
	}
}

func findPage(pages []byte, code byte) []byte {
	for len(pages) >= 2 {
		n := int(pages[1]) + 2
		if n > len(pages) {
			return nil
		}
		if pages[0]&0x3f == code {
			return pages[:n]
		}
		pages = pages[n:]
	}
	return nil
}

func TestReadOnly(t *testing.T) {
	h := newHarness(t, DeviceOptions{ReadOnly: true, ThinProvisioning: true})
	h.wantGood(h.run(cdb10(opRead10, 0, 0, 1), nil))
	h.wantSense(h.run(cdb10(opWrite10, 0, 0, 1), make([]byte, 512)), SenseDataProtect, ASCWriteProtected)
	h.wantSense(h.run(cdb10(opWriteSame10, 0, 0, 1), make([]byte, 512)), SenseDataProtect, ASCWriteProtected)
	r := h.run([]byte{opModeSense6, 0, pageAll, 0, 255, 0}, nil)
	if r.DataIn[2]&0x80 == 0 {
		t.Fatalf("WP bit clear on a read-only device")
	}
}

func TestBackendErrorsBecomeSense(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	cases := []struct {
		err   error
		key   byte
		asc   ASC
		write bool
	}{
		{errors.New("disk on fire"), SenseMediumError, ASCUnrecoveredReadError, false},
		{errors.New("disk on fire"), SenseMediumError, ASCWriteError, true},
		{ErrNotReady, SenseNotReady, ASCLogicalUnitNotReadyManualInt, false},
		{ErrReadOnly, SenseDataProtect, ASCWriteProtected, true},
		{ErrOutOfRange, SenseIllegalRequest, ASCLBAOutOfRange, false},
	}
	for _, c := range cases {
		err := c.err
		h.b.failErr.Store(&err)
		if c.write {
			h.wantSense(h.run(cdb10(opWrite10, 0, 0, 1), make([]byte, 512)), c.key, c.asc)
		} else {
			h.wantSense(h.run(cdb10(opRead10, 0, 0, 1), nil), c.key, c.asc)
		}
	}
	h.b.failErr.Store(nil)
	h.wantGood(h.run(cdb10(opRead10, 0, 0, 1), nil))
}

func TestReportSupportedOpcodes(t *testing.T) {
	h := newHarness(t, DeviceOptions{ThinProvisioning: true})
	c := make([]byte, 12)
	c[0], c[1] = opMaintenanceIn, saReportSupportedOps
	putU32(c[6:], 65535)
	r := h.run(c, nil)
	h.wantGood(r)
	n := int(getU32(r.DataIn))
	if n != len(supportedOps)*8 || len(r.DataIn) != n+4 {
		t.Fatalf("all-commands list: %d bytes, want %d", n, len(supportedOps)*8)
	}
	// Every listed command is also reported on its own, and dispatch
	// knows it (no INVALID COMMAND OPERATION CODE for a listed command).
	for i := 0; i < n/8; i++ {
		desc := r.DataIn[4+8*i:]
		one := bytes.Clone(c)
		one[3] = desc[0]
		putU16(one[4:], getU16(desc[2:]))
		one[2] = 1
		if desc[5]&1 != 0 {
			one[2] = 2
		}
		ro := h.run(one, nil)
		h.wantGood(ro)
		if ro.DataIn[1]&7 != 3 || ro.DataIn[4] != desc[0] || int(getU16(ro.DataIn[2:])) != cdbLength(desc[0]) {
			t.Fatalf("one-command report for %#x: % x", desc[0], ro.DataIn)
		}
		probe := make([]byte, 16)
		probe[0], probe[1] = desc[0], desc[3]
		if pr := h.run(probe, nil); pr.Status == StatusCheckCondition {
			if _, asc := parseSense(pr.Sense); asc == ASCInvalidCommandOperationCode {
				t.Fatalf("listed command %#x/%#x is not dispatched", desc[0], desc[3])
			}
		}
	}
	// With RCTD every descriptor carries a timeouts descriptor.
	c[2] = 0x80
	r = h.run(c, nil)
	if int(getU32(r.DataIn)) != len(supportedOps)*20 {
		t.Fatalf("RCTD list length %d", getU32(r.DataIn))
	}
	// Reporting option 1 on a command with service actions is invalid.
	c[2], c[3] = 1, opPRIn
	h.wantSense(h.run(c, nil), SenseIllegalRequest, ASCInvalidFieldInCDB)
}

func TestNewDeviceRejectsBadOptions(t *testing.T) {
	fb, err := OpenFileBackend(filepath.Join(t.TempDir(), "x"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	for _, o := range []DeviceOptions{{BlockSize: 1000}, {BlockSize: 256}, {BlockSize: 8192}, {VendorID: "much too long"}, {SerialNumber: "bad\x01"}, {PhysicalBlockSize: 768}} {
		if _, err := NewDevice(fb, o); !errors.Is(err, ErrBadOptions) {
			t.Errorf("NewDevice(%+v) = %v, want ErrBadOptions", o, err)
		}
	}
}

func TestWriteSameUnmapIgnoresPattern(t *testing.T) {
	h := newHarness(t, DeviceOptions{ThinProvisioning: true})
	h.wantGood(h.run(cdb10(opWrite10, 0, 0, 8), bytes.Repeat([]byte{0xff}, 8*512)))
	// UNMAP with a non-zero block and 0 blocks: unmap through the end.
	h.wantGood(h.run(cdb10(opWriteSame10, 0x08, 4, 0), bytes.Repeat([]byte{0xff}, 512)))
	got := h.run(cdb10(opRead10, 0, 0, 8), nil).DataIn
	if !bytes.Equal(got[:4*512], bytes.Repeat([]byte{0xff}, 4*512)) || !allZero(got[4*512:]) {
		t.Fatalf("WRITE SAME UNMAP to the end: wrong blocks zeroed")
	}
	// The Data-Out must be exactly one block.
	h.wantSense(h.run(cdb10(opWriteSame10, 0, 0, 1), make([]byte, 1024)), SenseIllegalRequest, ASCInvalidFieldInCommandIU)
	h.wantSense(h.run(cdb10(opWriteSame10, 0, 0, 1), make([]byte, 256)), SenseIllegalRequest, ASCInvalidFieldInCommandIU)
}

func TestCompareAndWriteZeroBlocks(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	caw := cdb16(opCompareAndWrite, 0, 0, 0)
	h.wantGood(h.run(caw, nil))
	// NUMBER OF LOGICAL BLOCKS zero but data sent: the CDB and the
	// transfer disagree, nothing is written.
	h.wantSense(h.run(caw, make([]byte, 1024)), SenseIllegalRequest, ASCInvalidFieldInCDB)
}

func TestNexusComesBack(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	tur := []byte{opTestUnitReady, 0, 0, 0, 0, 0}
	h.wantGood(h.run([]byte{opReserve6, 0, 0, 0, 0, 0}, nil))
	// The session ends: its SPC-2 reservation goes; when it logs in again
	// with the same name and ISID it is the same nexus and sees no new
	// power-on unit attention.
	h.d.NexusLost(h.nexus)
	other := "iqn.other,i,0x7"
	h.wantGood(h.runOn(other, tur, nil))
	h.wantGood(h.runOn(other, []byte{opReserve6, 0, 0, 0, 0, 0}, nil))
	h.wantGood(h.run([]byte{opInquiry, 0, 0, 0, 36, 0}, nil))
	if r := h.run(tur, nil); r.Status != StatusReservationConflict {
		t.Fatalf("returning nexus: status %#x, want RESERVATION CONFLICT", r.Status)
	}
}

func TestDescriptorSenseCarriesFieldPointer(t *testing.T) {
	e := invalidCDB(7, -1)
	s := e.senseData(true)
	if s[0] != 0x72 || int(s[7]) != len(s)-8 || s[8] != 0x02 || s[12]&0xc0 != 0xc0 || getU16(s[13:]) != 7 {
		t.Fatalf("descriptor sense % x", s)
	}
	s = e.senseData(false)
	if s[0] != 0x70 || s[7] != 10 || s[15] != 0xc0 || getU16(s[16:]) != 7 {
		t.Fatalf("fixed sense % x", s)
	}
	m := miscompare(1 << 40).senseData(false)
	if m[0]&0x80 != 0 {
		t.Fatalf("VALID set for an INFORMATION value that does not fit: % x", m)
	}
	m = miscompare(1 << 40).senseData(true)
	if m[8] != 0x00 || getU64(m[12:]) != 1<<40 {
		t.Fatalf("descriptor INFORMATION % x", m)
	}
}

func TestRemovableMedium(t *testing.T) {
	h := newHarness(t, DeviceOptions{Removable: true})
	tur := []byte{opTestUnitReady, 0, 0, 0, 0, 0}
	eject := []byte{opStartStopUnit, 0, 0, 0, 0x02, 0}
	load := []byte{opStartStopUnit, 0, 0, 0, 0x03, 0}
	prevent := []byte{opPreventAllow, 0, 0, 0, 1, 0}
	allow := []byte{opPreventAllow, 0, 0, 0, 0, 0}
	if r := h.run([]byte{opInquiry, 0, 0, 0, 36, 0}, nil); r.DataIn[1]&0x80 == 0 {
		t.Fatalf("RMB clear on a removable device")
	}
	h.wantGood(h.run(prevent, nil))
	h.wantSense(h.run(eject, nil), SenseIllegalRequest, ASCMediumRemovalPrevented)
	h.wantGood(h.run(tur, nil))
	h.wantGood(h.run(allow, nil))
	h.wantGood(h.run(eject, nil))
	h.wantSense(h.run(tur, nil), SenseNotReady, ascMediumNotPresent)
	h.wantSense(h.run(cdb10(opRead10, 0, 0, 1), nil), SenseNotReady, ascMediumNotPresent)
	h.wantGood(h.run([]byte{opInquiry, 0, 0, 0, 36, 0}, nil))
	h.wantGood(h.run(load, nil))
	h.wantGood(h.run(tur, nil))
	// Another nexus's PREVENT holds the medium until that nexus goes.
	other := "iqn.other,i,0x3"
	h.runOn(other, tur, nil)
	h.wantGood(h.runOn(other, prevent, nil))
	h.wantSense(h.run(eject, nil), SenseIllegalRequest, ASCMediumRemovalPrevented)
	h.d.NexusLost(other)
	h.wantGood(h.run(eject, nil))
	h.wantGood(h.run(load, nil))
	// A reset allows removal again.
	h.wantGood(h.run(prevent, nil))
	h.d.Reset(h.nexus)
	h.wantSense(h.run(eject, nil), SenseUnitAttention, ASCBusDeviceResetOccurred)
	h.wantGood(h.run(eject, nil))
	h.wantGood(h.run(load, nil))

	// A fixed medium ignores LOEJ.
	f := newHarness(t, DeviceOptions{})
	f.wantGood(f.run(eject, nil))
	f.wantGood(f.run(tur, nil))
}

func TestCapacityChangeUnitAttention(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	if err := h.b.f.Truncate(2 * testBlocks * 512); err != nil {
		t.Fatal(err)
	}
	h.b.size = 2 * testBlocks * 512
	h.wantSense(h.run([]byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil), SenseUnitAttention, ASCCapacityDataChanged)
	r := h.run([]byte{opReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil)
	h.wantGood(r)
	if getU32(r.DataIn) != 2*testBlocks-1 {
		t.Fatalf("READ CAPACITY after growth: % x", r.DataIn)
	}
	h.wantGood(h.run(cdb10(opWrite10, 0, 2*testBlocks-1, 1), make([]byte, 512)))
}

func TestCDBUsageCoversEverySupportedCommand(t *testing.T) {
	for _, s := range supportedOps {
		u, ok := cdbUsage[s.op]
		if !ok || len(u) != cdbLength(s.op) {
			t.Errorf("opcode %#x: usage data %v for a %d-byte CDB", s.op, u, cdbLength(s.op))
		}
	}
}
