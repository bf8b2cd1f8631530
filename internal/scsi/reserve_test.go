package scsi

import (
	"testing"
)

func proutCDB(sa, typ byte) []byte {
	c := make([]byte, 10)
	c[0], c[1], c[2] = opPROut, sa, typ
	putU32(c[5:], 24)
	return c
}

func proutParam(key, sark uint64) []byte {
	p := make([]byte, 24)
	putU64(p, key)
	putU64(p[8:], sark)
	return p
}

func prinCDB(sa byte) []byte {
	c := make([]byte, 10)
	c[0], c[1] = opPRIn, sa
	putU16(c[7:], 1024)
	return c
}

func TestPersistentReservations(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	a, b, c := h.nexus, "iqn.b,i,1", "iqn.c,i,1"
	for _, n := range []string{b, c} {
		h.runOn(n, []byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil) // power-on UA
	}
	write := cdb10(opWrite10, 0, 0, 1)
	read := cdb10(opRead10, 0, 0, 1)
	blk := make([]byte, 512)

	h.wantGood(h.runOn(a, proutCDB(0, 0), proutParam(0, 0xa)))
	h.wantGood(h.runOn(b, proutCDB(0, 0), proutParam(0, 0xb)))
	// Registering again with the wrong key conflicts.
	if r := h.runOn(b, proutCDB(0, 0), proutParam(0x99, 0xbb)); r.Status != StatusReservationConflict {
		t.Fatalf("register with wrong key: status %#x", r.Status)
	}
	r := h.runOn(c, prinCDB(0), nil)
	h.wantGood(r)
	if getU32(r.DataIn[4:]) != 16 || getU64(r.DataIn[8:]) != 0xa || getU64(r.DataIn[16:]) != 0xb {
		t.Fatalf("READ KEYS % x", r.DataIn)
	}
	gen := getU32(r.DataIn)

	// A holds WRITE EXCLUSIVE: others may read, not write.
	h.wantGood(h.runOn(a, proutCDB(1, prWriteExclusive), proutParam(0xa, 0)))
	h.wantGood(h.runOn(a, write, blk))
	h.wantGood(h.runOn(c, read, nil))
	if r := h.runOn(c, write, blk); r.Status != StatusReservationConflict {
		t.Fatalf("write by a non-holder under WRITE EXCLUSIVE: %#x", r.Status)
	}
	if r := h.runOn(b, write, blk); r.Status != StatusReservationConflict {
		t.Fatalf("write by a registrant under WRITE EXCLUSIVE: %#x", r.Status)
	}
	r = h.runOn(c, prinCDB(1), nil)
	if getU32(r.DataIn[4:]) != 16 || getU64(r.DataIn[8:]) != 0xa || r.DataIn[8+13] != prWriteExclusive {
		t.Fatalf("READ RESERVATION % x", r.DataIn)
	}
	// RELEASE with the wrong type is INVALID RELEASE.
	h.wantSense(h.runOn(a, proutCDB(2, prExclusiveAccess), proutParam(0xa, 0)), SenseIllegalRequest, ascInvalidRelease)
	// B preempts A: A's registration goes, B holds EXCLUSIVE ACCESS.
	h.wantGood(h.runOn(b, proutCDB(4, prExclusiveAccess), proutParam(0xb, 0xa)))
	h.wantSense(h.runOn(a, []byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil), SenseUnitAttention, ASCRegistrationsPreempted)
	if r := h.runOn(a, read, nil); r.Status != StatusReservationConflict {
		t.Fatalf("read by a non-holder under EXCLUSIVE ACCESS: %#x", r.Status)
	}
	h.wantGood(h.runOn(b, read, nil))
	r = h.runOn(c, prinCDB(0), nil)
	if getU32(r.DataIn) <= gen || getU32(r.DataIn[4:]) != 8 {
		t.Fatalf("after preempt READ KEYS % x", r.DataIn)
	}
	// SPC-2 RESERVE conflicts while persistent reservations are in use.
	if r := h.runOn(b, []byte{opReserve6, 0, 0, 0, 0, 0}, nil); r.Status != StatusReservationConflict {
		t.Fatalf("RESERVE (6) with registrations: %#x", r.Status)
	}
	// CLEAR removes everything.
	h.wantGood(h.runOn(b, proutCDB(3, 0), proutParam(0xb, 0)))
	h.wantGood(h.runOn(a, write, blk))
	r = h.runOn(c, prinCDB(0), nil)
	if getU32(r.DataIn[4:]) != 0 {
		t.Fatalf("keys after CLEAR % x", r.DataIn)
	}
	// REPORT CAPABILITIES advertises every type and no persistence.
	r = h.runOn(c, prinCDB(2), nil)
	if getU16(r.DataIn) != 8 || r.DataIn[3]&0x80 == 0 || r.DataIn[2]&0x01 != 0 || r.DataIn[4] != 0xea || r.DataIn[5] != 0x01 {
		t.Fatalf("REPORT CAPABILITIES % x", r.DataIn)
	}
	h.wantSense(h.runOn(c, prinCDB(7), nil), SenseIllegalRequest, ASCInvalidFieldInCDB)
	// APTPL cannot be honoured.
	p := proutParam(0, 0xc)
	p[20] = 1
	h.wantSense(h.runOn(c, proutCDB(0, 0), p), SenseIllegalRequest, ASCInvalidFieldInParameterList)
}

func TestSPC2Reserve(t *testing.T) {
	h := newHarness(t, DeviceOptions{})
	other := "iqn.b,i,1"
	h.runOn(other, []byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil)
	h.wantGood(h.run([]byte{opReserve6, 0, 0, 0, 0, 0}, nil))
	if r := h.runOn(other, cdb10(opRead10, 0, 0, 1), nil); r.Status != StatusReservationConflict {
		t.Fatalf("read by other nexus while reserved: %#x", r.Status)
	}
	h.wantGood(h.runOn(other, []byte{opInquiry, 0, 0, 0, 96, 0}, nil))
	// RELEASE from a non-holder succeeds and changes nothing.
	h.wantGood(h.runOn(other, []byte{opRelease6, 0, 0, 0, 0, 0}, nil))
	if r := h.runOn(other, cdb10(opRead10, 0, 0, 1), nil); r.Status != StatusReservationConflict {
		t.Fatalf("non-holder RELEASE released: %#x", r.Status)
	}
	// A LUN reset releases it.
	h.d.Reset(other)
	h.runOn(h.nexus, []byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil) // UA
	h.runOn(other, []byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil)   // UA
	h.wantGood(h.runOn(other, cdb10(opRead10, 0, 0, 1), nil))
	h.wantGood(h.run([]byte{opReserve6, 0, 0, 0, 0, 0}, nil))
	h.wantGood(h.run([]byte{opRelease6, 0, 0, 0, 0, 0}, nil))
	h.wantGood(h.runOn(other, cdb10(opRead10, 0, 0, 1), nil))
}

func TestTransportID(t *testing.T) {
	b := transportID("iqn.1993-08.org.debian:01:abc,i,0x23d000000001,iqn.1997-05.com.amazon:vol-1")
	want := "iqn.1993-08.org.debian:01:abc,i,0x23d000000001"
	if b[0] != 0x45 || int(getU16(b[2:])) != len(b)-4 || string(b[4:4+len(want)]) != want || b[4+len(want)] != 0 || len(b)%4 != 0 {
		t.Fatalf("TransportID % x", b)
	}
	b = transportID("plain-name")
	if b[0] != 0x05 || string(b[4:14]) != "plain-name" || getU16(b[2:]) != 20 {
		t.Fatalf("TransportID format 00b: % x", b)
	}
}
