package scsi

import (
	"crypto/sha256"
)

// VPD page codes this device serves, in ascending order as SPC-4 requires
// for the Supported VPD Pages page.
var vpdPages = []byte{0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}

// Version descriptors (SPC-4 table 29) claimed in standard INQUIRY data.
var versionDescriptors = []uint16{
	0x00a0, // SAM-5 (no version claimed)
	0x0960, // iSCSI (no version claimed)
	0x0460, // SPC-4 (no version claimed)
	0x04c0, // SBC-3 (no version claimed)
}

// inquiry implements INQUIRY, SPC-4 6.6.
func (d *Device) inquiry(cdb []byte) (Response, error) {
	alloc := uint32(getU16(cdb[3:]))
	if cdb[1]&0x02 != 0 { // CMDDT, obsolete
		return Response{}, invalidCDB(1, 1)
	}
	if cdb[1]&0x01 == 0 {
		if cdb[2] != 0 {
			return Response{}, invalidCDB(2, -1)
		}
		return Response{Status: StatusGood, DataIn: truncate(d.standardInquiry(0x00), alloc)}, nil
	}
	var page []byte
	switch cdb[2] {
	case 0x00:
		page = vpd(0x00, vpdPages)
	case 0x80:
		page = vpd(0x80, []byte(d.serial()))
	case 0x83:
		page = vpd(0x83, d.designators())
	case 0xb0:
		page = vpd(0xb0, d.blockLimits())
	case 0xb1:
		p := make([]byte, 0x3c)
		putU16(p, 1) // MEDIUM ROTATION RATE: non-rotating medium
		page = vpd(0xb1, p)
	case 0xb2:
		p := make([]byte, 4)
		if d.opts.ThinProvisioning {
			// LBPU, LBPWS, LBPWS10, LBPRZ=001b; provisioning type: thin.
			p[1] = 0xe4
			p[2] = 0x02
		}
		page = vpd(0xb2, p)
	default:
		return Response{}, invalidCDB(2, -1)
	}
	return Response{Status: StatusGood, DataIn: truncate(page, alloc)}, nil
}

// standardInquiry builds the 96-byte standard INQUIRY data with the given
// peripheral qualifier and device type byte.
func (d *Device) standardInquiry(pq byte) []byte {
	b := make([]byte, 96)
	b[0] = pq // qualifier 000b, direct access block device 00h
	if d.opts.Removable {
		b[1] = 0x80 // RMB
	}
	b[2] = 0x06 // SPC-4
	b[5] = 0x08 // 3PC: EXTENDED COPY is supported (xcopy.go)
	b[3] = 0x12 // HISUP, response data format 2
	b[4] = byte(len(b) - 5)
	b[7] = 0x02 // CMDQUE
	padCopy(b[8:16], d.opts.VendorID)
	padCopy(b[16:32], d.opts.ProductID)
	padCopy(b[32:36], d.opts.ProductRevision)
	for i, v := range versionDescriptors {
		putU16(b[58+2*i:], v)
	}
	return b
}

// absentLUNInquiry is the standard INQUIRY data for a LUN nothing serves:
// peripheral qualifier 011b, device type 1Fh (SPC-4 6.6.2).
func absentLUNInquiry() []byte {
	b := make([]byte, 36)
	b[0] = 0x7f
	b[2] = 0x06
	b[3] = 0x12
	b[4] = byte(len(b) - 5)
	return b
}

func padCopy(dst []byte, s string) {
	for i := range dst {
		dst[i] = ' '
	}
	copy(dst, s)
}

func vpd(code byte, body []byte) []byte {
	p := make([]byte, 4+len(body))
	p[1] = code
	putU16(p[2:], uint16(len(body)))
	copy(p[4:], body)
	return p
}

// serial is the unit serial number; SPC-4 asks for spaces when there is
// none, but a unique value serves multipath better, so an absent serial is
// derived from the device identifier.
func (d *Device) serial() string {
	if d.opts.SerialNumber != "" {
		return d.opts.SerialNumber
	}
	const hex = "0123456789abcdef"
	s := make([]byte, 16)
	for i, c := range d.naa {
		s[2*i], s[2*i+1] = hex[c>>4], hex[c&15]
	}
	return string(s)
}

// naaDesignator derives an NAA Locally Assigned designator (NAA 3h, SPC-4
// 7.8.6.6.3) from the device identifier: stable for the identifier, and
// needing no IEEE company ID we could not honestly claim.
func naaDesignator(id string) [8]byte {
	sum := sha256.Sum256([]byte("volgw-lu:" + id))
	var n [8]byte
	copy(n[:], sum[:8])
	n[0] = 0x30 | n[0]&0x0f
	return n
}

// designators is the body of the Device Identification VPD page: the NAA
// designator and a T10 vendor ID designator, both for the logical unit.
func (d *Device) designators() []byte {
	var b []byte
	b = append(b, 0x01, 0x03, 0x00, 8) // binary, LU, NAA
	b = append(b, d.naa[:]...)
	t10 := make([]byte, 8, 8+len(d.opts.ProductID)+1+len(d.serial()))
	padCopy(t10, d.opts.VendorID)
	t10 = append(t10, d.opts.ProductID...)
	t10 = append(t10, ':')
	t10 = append(t10, d.serial()...)
	if len(t10) > 252 {
		t10 = t10[:252]
	}
	b = append(b, 0x02, 0x01, 0x00, byte(len(t10))) // ASCII, LU, T10 vendor ID
	b = append(b, t10...)
	return b
}

// blockLimits is the body of the Block Limits VPD page, SBC-4 6.6.4.
func (d *Device) blockLimits() []byte {
	p := make([]byte, 0x3c)
	p[1] = maxCompareWriteBlocks
	putU16(p[2:], uint16(1)<<d.lbppbExp) // OPTIMAL TRANSFER LENGTH GRANULARITY
	putU32(p[4:], d.opts.MaxTransferBlocks)
	// OPTIMAL TRANSFER LENGTH stays 0 (not reported): Linux turns it into
	// io_opt, and mkfs.xfs into a stripe width; the volume has no stripe.
	if d.opts.ThinProvisioning {
		putU32(p[16:], maxUnmapBlocks)
		putU32(p[20:], maxUnmapDescriptors)
		putU32(p[24:], uint32(1)<<d.lbppbExp) // OPTIMAL UNMAP GRANULARITY
	}
	putU64(p[32:], maxWriteSameBlocks)
	return p
}

// requestSense implements REQUEST SENSE, SPC-4 6.39: a pending unit
// attention is returned (and cleared), otherwise NO SENSE.
func (d *Device) requestSense(cmd *Command) (Response, error) {
	cdb := cmd.CDB
	desc := cdb[1]&0x01 != 0
	alloc := uint32(cdb[4])
	d.mu.Lock()
	e := checkCond(SenseNoSense, ASCNoAdditionalSense)
	if q := d.ua[cmd.Nexus]; len(q) > 0 {
		e = checkCond(SenseUnitAttention, q[0])
		if len(q) == 1 {
			delete(d.ua, cmd.Nexus)
		} else {
			d.ua[cmd.Nexus] = q[1:]
		}
	}
	d.mu.Unlock()
	return Response{Status: StatusGood, DataIn: truncate(e.senseData(desc), alloc)}, nil
}

// startStopUnit implements START STOP UNIT, SBC-4 5.25. A volume has no
// power conditions to enter and is always spinning; with a removable
// medium, LOEJ ejects (START=0) or loads (START=1) it unless a nexus
// prevents removal.
func (d *Device) startStopUnit(cmd *Command) (Response, error) {
	cdb := cmd.CDB
	if cdb[3]&0xf0 != 0 && cdb[4]>>4 == 0 {
		// POWER CONDITION MODIFIER without a power condition.
		return Response{}, invalidCDB(3, -1)
	}
	if cdb[4]>>4 != 0 {
		// A power condition: START and LOEJ are ignored (SBC-4 5.25).
		// The device has no power conditions, so every value, the
		// reserved ones included, leaves it as it is (libiscsi's
		// StartStopUnit.PwrCnd sends all fifteen and expects GOOD).
		return good, nil
	}
	loej, start := cdb[4]&0x02 != 0, cdb[4]&0x01 != 0
	if !loej || !d.opts.Removable {
		return good, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.prevent) > 0 {
		return Response{}, checkCond(SenseIllegalRequest, ASCMediumRemovalPrevented)
	}
	d.ejected.Store(!start)
	return good, nil
}

// preventAllow implements PREVENT ALLOW MEDIUM REMOVAL, SBC-4 5.15. With
// a fixed medium there is nothing to prevent and only the field is
// checked.
func (d *Device) preventAllow(cmd *Command) (Response, error) {
	cdb := cmd.CDB
	if cdb[4]&0xfc != 0 {
		return Response{}, invalidCDB(4, -1)
	}
	if !d.opts.Removable {
		return good, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cdb[4]&0x01 != 0 {
		if d.prevent == nil {
			d.prevent = make(map[string]bool)
		}
		d.prevent[cmd.Nexus] = true
	} else {
		delete(d.prevent, cmd.Nexus)
	}
	return good, nil
}

// needsMedium reports whether op accesses the medium, and so fails with
// MEDIUM NOT PRESENT while a removable medium is ejected.
func needsMedium(op byte) bool {
	switch op {
	case opInquiry, opReportLUNs, opRequestSense, opStartStopUnit, opPreventAllow,
		opModeSense6, opModeSense10, opModeSelect6, opModeSelect10, opPRIn, opPROut,
		opReserve6, opReserve10, opRelease6, opRelease10, opMaintenanceIn,
		opReceiveCopyResult:
		return false
	}
	return true
}

const ascMediumNotPresent ASC = 0x3a00

// readDefectData implements READ DEFECT DATA (10/12), SBC-4 5.17/5.18: the
// medium has no defects, so the list is empty in whatever format was asked.
func (d *Device) readDefectData(cdb []byte) (Response, error) {
	if cdb[0] == opReadDefect10 {
		alloc := uint32(getU16(cdb[7:]))
		b := make([]byte, 4)
		b[1] = cdb[2] & 0x1f // echo REQ_PLIST, REQ_GLIST and list format
		return Response{Status: StatusGood, DataIn: truncate(b, alloc)}, nil
	}
	alloc := getU32(cdb[6:])
	b := make([]byte, 8)
	b[1] = cdb[1] & 0x1f
	return Response{Status: StatusGood, DataIn: truncate(b, alloc)}, nil
}
