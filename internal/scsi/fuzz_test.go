package scsi

import (
	"context"
	"testing"
)

// seedCDBs are CDBs initiators really send: Linux sd and libiscsi's
// iscsi-test-cu at connect and during its tests.
var seedCDBs = [][]byte{
	{0x00, 0, 0, 0, 0, 0},                                     // TEST UNIT READY
	{0x12, 0, 0, 0, 0x24, 0},                                  // INQUIRY 36
	{0x12, 1, 0x00, 0, 0xff, 0},                               // VPD supported pages
	{0x12, 1, 0x83, 0, 0xff, 0},                               // VPD device identification
	{0x12, 1, 0xb0, 0, 0x40, 0},                               // VPD block limits
	{0x12, 1, 0xb2, 0, 0x08, 0},                               // VPD LBP
	{0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0}, // READ CAPACITY (16)
	{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0},                         // READ CAPACITY (10)
	{0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0},                // REPORT LUNS
	{0x1a, 0x08, 0x3f, 0, 0xc0, 0},                            // MODE SENSE (6) all
	{0x5a, 0x00, 0x08, 0, 0, 0, 0, 0, 0xff, 0},                // MODE SENSE (10) caching
	{0x15, 0x10, 0, 0, 0x18, 0},                               // MODE SELECT (6)
	{0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0},                         // READ (10)
	{0x2a, 0x08, 0, 0, 0, 1, 0, 0, 1, 0},                      // WRITE (10) FUA
	{0x88, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0},       // READ (16)
	{0x8a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},       // WRITE (16)
	{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0},                         // SYNCHRONIZE CACHE (10)
	{0x42, 0, 0, 0, 0, 0, 0, 0, 0x18, 0},                      // UNMAP
	{0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0},    // WRITE SAME (16) UNMAP
	{0x89, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0},       // COMPARE AND WRITE
	{0xa3, 0x0c, 0x80, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0},       // REPORT SUPPORTED OPS
	{0xa3, 0x0c, 0x02, 0x5e, 0, 1, 0, 0, 0xff, 0xff, 0, 0},    // ... one command
	{0x5e, 0x00, 0, 0, 0, 0, 0, 0x04, 0, 0},                   // PR IN READ KEYS
	{0x5f, 0x00, 0, 0, 0, 0, 0, 0, 0x18, 0},                   // PR OUT REGISTER
	{0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x18, 0, 0}, // GET LBA STATUS
	{0x2f, 0x02, 0, 0, 0, 0, 0, 0, 1, 0},                      // VERIFY (10) BYTCHK
	{0x03, 0, 0, 0, 0xfc, 0},                                  // REQUEST SENSE
	{0x1b, 0, 0, 0, 1, 0},                                     // START STOP UNIT
	{0x8b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},       // ORWRITE
	{0x37, 0, 0x18, 0, 0, 0, 0, 0, 4, 0},                      // READ DEFECT DATA (10)
}

// FuzzExecute feeds random CDBs and data to a device over a small file:
// nothing may panic, and every response must be well formed.
func FuzzExecute(f *testing.F) {
	for _, c := range seedCDBs {
		f.Add(c, []byte{}, uint32(0))
		f.Add(c, make([]byte, 512), uint32(512))
	}
	f.Add([]byte{0x55, 0x10, 0, 0, 0, 0, 0, 0, 0x14, 0}, []byte{0, 0x12, 0, 0, 0, 0, 0, 0, 0x08, 0x0a, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint32(20))
	h := newHarness(f, DeviceOptions{ThinProvisioning: true, MaxTransferBlocks: 64})
	tab := NewLUNTable(map[uint64]LogicalUnit{0: h.d})
	f.Fuzz(func(t *testing.T, cdb []byte, data []byte, edtl uint32) {
		cmd := &Command{
			Nexus:                      "fuzz",
			LUN:                        uint64(edtl & 1),
			CDB:                        cdb,
			DataOut:                    data,
			ExpectedDataTransferLength: edtl,
			Write:                      len(data) > 0,
			Read:                       len(data) == 0,
		}
		r := tab.Execute(context.Background(), cmd)
		switch r.Status {
		case StatusGood, StatusConditionMet, StatusReservationConflict:
			if len(r.Sense) != 0 {
				t.Fatalf("status %#x with sense % x", r.Status, r.Sense)
			}
		case StatusCheckCondition:
			if len(r.DataIn) != 0 {
				t.Fatalf("CHECK CONDITION with %d bytes of data", len(r.DataIn))
			}
			if k, _ := parseSense(r.Sense); k == 0xff {
				t.Fatalf("malformed sense % x", r.Sense)
			}
		default:
			t.Fatalf("unexpected status %#x", r.Status)
		}
		if len(r.DataIn) > 64*512+1<<16 {
			t.Fatalf("%d bytes of data in exceeds every limit", len(r.DataIn))
		}
	})
}
