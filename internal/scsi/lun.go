package scsi

import (
	"context"
	"slices"
)

// LUNTable is the set of logical units of one target. It dispatches each
// command by Command.LUN, answers REPORT LUNS for every LUN (present or
// not) and answers for the LUNs nothing serves. It is itself a
// LogicalUnit, so a transport needs only one.
//
// The table is fixed at construction; safe for concurrent use.
type LUNTable struct {
	units map[uint64]LogicalUnit
	luns  []uint64 // sorted keys of units
}

// NewLUNTable returns a table serving units. The map is copied.
func NewLUNTable(units map[uint64]LogicalUnit) *LUNTable {
	t := &LUNTable{units: make(map[uint64]LogicalUnit, len(units))}
	for lun, u := range units {
		if u == nil || lun > maxFlatLUN {
			continue
		}
		t.units[lun] = u
		t.luns = append(t.luns, lun)
	}
	slices.Sort(t.luns)
	return t
}

// LUNs returns the LUNs the table serves, ascending.
func (t *LUNTable) LUNs() []uint64 { return slices.Clone(t.luns) }

// Execute runs cmd on the unit for cmd.LUN.
func (t *LUNTable) Execute(ctx context.Context, cmd *Command) Response {
	if len(cmd.CDB) > 0 && cmd.CDB[0] == opReportLUNs {
		// Every LUN, present or not, answers REPORT LUNS with the
		// target's inventory; REPORT LUNS reports no unit attentions
		// (SAM-5 5.14), so no unit needs to see it.
		r, err := reportLUNs(cmd.CDB, t.luns)
		if err != nil {
			return failFixed(err)
		}
		return r
	}
	if u, ok := t.units[cmd.LUN]; ok {
		return u.Execute(ctx, cmd)
	}
	if len(cmd.CDB) > 0 && cmd.CDB[0] == opInquiry && len(cmd.CDB) >= 6 {
		cdb := cmd.CDB
		if cdb[1]&0x03 != 0 || cdb[2] != 0 {
			// No VPD pages exist for a LUN without a device.
			return failFixed(invalidCDB(1, 0))
		}
		return Response{Status: StatusGood, DataIn: truncate(absentLUNInquiry(), uint32(getU16(cdb[3:])))}
	}
	if len(cmd.CDB) > 0 && cmd.CDB[0] == opRequestSense && len(cmd.CDB) >= 6 {
		// SPC-4 6.39: REQUEST SENSE to an absent LUN returns the sense
		// LOGICAL UNIT NOT SUPPORTED with GOOD status.
		return Response{Status: StatusGood, DataIn: truncate(errLUNotSupported.senseData(cmd.CDB[1]&1 != 0), uint32(cmd.CDB[4]))}
	}
	return failFixed(errLUNotSupported)
}

// Reset resets every unit on behalf of nexus (a TARGET WARM RESET, or a
// LOGICAL UNIT RESET the transport could not address to one LUN).
func (t *LUNTable) Reset(nexus string) {
	for _, lun := range t.luns {
		t.units[lun].Reset(nexus)
	}
}

// ResetLUN resets the one unit lun on behalf of nexus; false when the
// table has no such LUN.
func (t *LUNTable) ResetLUN(lun uint64, nexus string) bool {
	u, ok := t.units[lun]
	if ok {
		u.Reset(nexus)
	}
	return ok
}

// NexusLost tells every unit that understands it that nexus has ended.
func (t *LUNTable) NexusLost(nexus string) {
	for _, lun := range t.luns {
		if n, ok := t.units[lun].(interface{ NexusLost(string) }); ok {
			n.NexusLost(nexus)
		}
	}
}

// failFixed is CHECK CONDITION with fixed-format sense, for answers given
// without a device whose D_SENSE could say otherwise.
func failFixed(err error) Response {
	e, ok := err.(*checkError)
	if !ok {
		e = checkCond(SenseHardwareError, ASCInternalTargetFailure)
	}
	return Response{Status: StatusCheckCondition, Sense: e.senseData(false)}
}

// maxFlatLUN is the largest LUN the single-level flat space addressing
// method can express (SAM-5 4.7.7).
const maxFlatLUN = 0x3fff

// EncodeLUN returns the eight-byte SAM LUN field for lun: peripheral
// device addressing for LUNs below 256 (what most initiators expect for
// small LUNs) and flat space addressing above, up to 16383.
func EncodeLUN(lun uint64) [8]byte {
	var b [8]byte
	if lun < 256 {
		b[1] = byte(lun)
	} else {
		b[0] = 0x40 | byte(lun>>8)&0x3f
		b[1] = byte(lun)
	}
	return b
}

// DecodeLUN is the inverse of EncodeLUN for the peripheral and flat space
// addressing methods. ok is false for the other methods and for
// hierarchical (multi-level) LUNs, which no unit here answers to.
func DecodeLUN(b [8]byte) (lun uint64, ok bool) {
	for _, c := range b[2:] {
		if c != 0 {
			return 0, false
		}
	}
	switch b[0] >> 6 {
	case 0: // peripheral device addressing, bus 0
		if b[0] != 0 {
			return 0, false
		}
		return uint64(b[1]), true
	case 1: // flat space addressing
		return uint64(b[0]&0x3f)<<8 | uint64(b[1]), true
	}
	return 0, false
}

// reportLUNs implements REPORT LUNS, SPC-4 6.33, for the given inventory.
func reportLUNs(cdb []byte, luns []uint64) (Response, error) {
	if len(cdb) < 12 {
		return Response{}, invalidCDB(0, -1)
	}
	alloc := getU32(cdb[6:])
	if alloc < 16 {
		return Response{}, invalidCDB(6, -1)
	}
	var list []uint64
	switch cdb[2] {
	case 0x00, 0x02: // all logical units (no well-known LUs exist)
		list = luns
	case 0x01: // well-known logical units only: none
	case 0x10, 0x11, 0x12:
		// Administrative/subsidiary LUN reports: only LUN 0 exists as
		// an administrative LU here, and there are no subsidiaries.
	default:
		return Response{}, invalidCDB(2, -1)
	}
	b := make([]byte, 8+8*len(list))
	putU32(b, uint32(8*len(list)))
	for i, lun := range list {
		e := EncodeLUN(lun)
		copy(b[8+8*i:], e[:])
	}
	return Response{Status: StatusGood, DataIn: truncate(b, alloc)}, nil
}
