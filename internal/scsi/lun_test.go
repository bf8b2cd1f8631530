package scsi

import (
	"bytes"
	"context"
	"testing"
)

func TestLUNTable(t *testing.T) {
	h0 := newHarness(t, DeviceOptions{SerialNumber: "vol-a"})
	h1 := newHarness(t, DeviceOptions{SerialNumber: "vol-b"})
	tab := NewLUNTable(map[uint64]LogicalUnit{0: h0.d, 300: h1.d})
	run := func(lun uint64, cdb []byte) Response {
		return tab.Execute(context.Background(), &Command{Nexus: h0.nexus, LUN: lun, CDB: cdb, ExpectedDataTransferLength: 4096, Read: true})
	}
	rl := make([]byte, 12)
	rl[0] = opReportLUNs
	putU32(rl[6:], 4096)
	// REPORT LUNS works on any LUN, present or not.
	for _, lun := range []uint64{0, 300, 7} {
		r := run(lun, rl)
		h0.wantGood(r)
		want := []byte{0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x41, 0x2c, 0, 0, 0, 0, 0, 0}
		if !bytes.Equal(r.DataIn, want) {
			t.Fatalf("REPORT LUNS via LUN %d: % x", lun, r.DataIn)
		}
	}
	putU32(rl[6:], 15)
	h0.wantSense(run(7, rl), SenseIllegalRequest, ASCInvalidFieldInCDB)
	// Absent LUN: INQUIRY answers qualifier 011b / type 1Fh, others fail.
	r := run(7, []byte{opInquiry, 0, 0, 0, 96, 0})
	h0.wantGood(r)
	if r.DataIn[0] != 0x7f {
		t.Fatalf("absent LUN INQUIRY byte 0 = %#x", r.DataIn[0])
	}
	h0.wantSense(run(7, []byte{opTestUnitReady, 0, 0, 0, 0, 0}), SenseIllegalRequest, ASCLogicalUnitNotSupported)
	h0.wantSense(run(7, cdb10(opRead10, 0, 0, 1)), SenseIllegalRequest, ASCLogicalUnitNotSupported)
	// Present LUNs reach their own device.
	r = run(300, []byte{opInquiry, 1, 0x80, 0, 255, 0})
	h0.wantGood(r)
	if string(r.DataIn[4:]) != "vol-b" {
		t.Fatalf("LUN 300 serial %q", r.DataIn[4:])
	}
	// Reset fans out: another nexus sees the reset on both units.
	other := "iqn.other,i,9"
	for _, lun := range []uint64{0, 300} {
		tab.Execute(context.Background(), &Command{Nexus: other, LUN: lun, CDB: []byte{0, 0, 0, 0, 0, 0}})
	}
	tab.Reset(h0.nexus)
	for _, lun := range []uint64{0, 300} {
		r := tab.Execute(context.Background(), &Command{Nexus: other, LUN: lun, CDB: []byte{0, 0, 0, 0, 0, 0}})
		h0.wantSense(r, SenseUnitAttention, ASCBusDeviceResetOccurred)
	}
}

func TestLUNEncoding(t *testing.T) {
	for _, lun := range []uint64{0, 1, 255, 256, 300, 16383} {
		b := EncodeLUN(lun)
		got, ok := DecodeLUN(b)
		if !ok || got != lun {
			t.Fatalf("DecodeLUN(EncodeLUN(%d)) = %d, %v (% x)", lun, got, ok, b)
		}
	}
	if b := EncodeLUN(5); b != [8]byte{0, 5} {
		t.Fatalf("LUN 5 = % x, want peripheral addressing", b)
	}
	if _, ok := DecodeLUN([8]byte{0x80, 1}); ok {
		t.Fatalf("logical unit addressing accepted")
	}
	if _, ok := DecodeLUN([8]byte{0, 1, 0, 2}); ok {
		t.Fatalf("second-level LUN accepted")
	}
}
