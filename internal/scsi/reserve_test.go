package scsi

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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
	// Without a ReservationStore, APTPL cannot be honoured.
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

// TestAPTPL: with a ReservationStore, a REGISTER with APTPL makes the
// registrations and the reservation survive a new Device (a restart);
// the last REGISTER's APTPL=0 makes none survive (SPC-4 5.13.5).
func TestAPTPL(t *testing.T) {
	store := FileReservationStore{Path: filepath.Join(t.TempDir(), "vol.pr")}
	h := newHarness(t, DeviceOptions{Reservations: store})
	a, b := h.nexus, "iqn.b,i,0x1,iqn.t"
	h.runOn(b, []byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil)

	// REPORT CAPABILITIES: PTPL_C, and PTPL_A once APTPL is in force.
	if r := h.runOn(a, prinCDB(2), nil); r.DataIn[2]&0x01 == 0 || r.DataIn[3]&0x01 != 0 {
		t.Fatalf("REPORT CAPABILITIES before APTPL % x", r.DataIn)
	}
	h.wantGood(h.runOn(a, proutCDB(0, 0), proutParam(0, 0xa)))
	if b, _ := store.Load(); b != nil {
		t.Fatalf("state stored without APTPL: %s", b)
	}
	p := proutParam(0, 0xb)
	p[20] = 1 // APTPL
	h.wantGood(h.runOn(b, proutCDB(0, 0), p))
	h.wantGood(h.runOn(a, proutCDB(1, prExclusiveAccess), proutParam(0xa, 0)))
	if r := h.runOn(a, prinCDB(2), nil); r.DataIn[3]&0x01 == 0 {
		t.Fatalf("REPORT CAPABILITIES: PTPL_A clear after an APTPL REGISTER: % x", r.DataIn)
	}
	before := h.runOn(a, prinCDB(3), nil) // READ FULL STATUS

	// A restart: a new device over the same store has every registration
	// (APTPL covers all of them) and A's reservation, which fences B.
	h2 := newHarness(t, DeviceOptions{Reservations: store})
	after := h2.runOn(a, prinCDB(3), nil)
	h2.wantGood(after)
	if !bytes.Equal(before.DataIn, after.DataIn) {
		t.Fatalf("READ FULL STATUS after restart\n% x\nwant\n% x", after.DataIn, before.DataIn)
	}
	h2.runOn(b, []byte{opTestUnitReady, 0, 0, 0, 0, 0}, nil)
	if r := h2.runOn(b, cdb10(opRead10, 0, 0, 1), nil); r.Status != StatusReservationConflict {
		t.Fatalf("read by B under A's restored EXCLUSIVE ACCESS: status %#x", r.Status)
	}
	h2.wantGood(h2.runOn(a, cdb10(opRead10, 0, 0, 1), nil))

	// A REGISTER with APTPL=0 (A unregistering) ends persistence for all:
	// the stored state goes, and the next restart starts empty.
	h2.wantGood(h2.runOn(a, proutCDB(0, 0), proutParam(0xa, 0)))
	if b, _ := store.Load(); b != nil {
		t.Fatalf("state still stored after APTPL=0: %s", b)
	}
	h3 := newHarness(t, DeviceOptions{Reservations: store})
	if r := h3.runOn(a, prinCDB(0), nil); getU32(r.DataIn[4:]) != 0 {
		t.Fatalf("READ KEYS after restart without APTPL % x", r.DataIn)
	}

	// A state that cannot be saved is not kept: the command fails and
	// nothing changed.
	bad := newHarness(t, DeviceOptions{Reservations: FileReservationStore{Path: filepath.Join(t.TempDir(), "missing", "vol.pr")}})
	h.wantSense(bad.runOn(a, proutCDB(0, 0), p), SenseHardwareError, ASCInternalTargetFailure)
	if r := bad.runOn(a, prinCDB(0), nil); getU32(r.DataIn[4:]) != 0 {
		t.Fatalf("READ KEYS after a failed save % x", r.DataIn)
	}

	// A damaged state refuses the unit rather than dropping the fence.
	if err := os.WriteFile(store.Path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	fb, err := OpenFileBackend(filepath.Join(t.TempDir(), "lun.img"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	if _, err := NewDevice(fb, DeviceOptions{Reservations: store}); !errors.Is(err, errBadPRState) {
		t.Fatalf("NewDevice over a damaged state: %v", err)
	}
}
