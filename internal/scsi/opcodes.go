package scsi

// supportedOp is one command the device implements, for REPORT SUPPORTED
// OPERATION CODES.
type supportedOp struct {
	op    byte
	sa    uint16
	hasSA bool
}

// supportedOps lists the commands dispatch implements, in opcode order.
// UNMAP is listed only with thin provisioning (see supported).
var supportedOps = []supportedOp{
	{op: opTestUnitReady}, {op: opRequestSense}, {op: opRead6}, {op: opWrite6},
	{op: opInquiry}, {op: opModeSelect6}, {op: opReserve6}, {op: opRelease6},
	{op: opModeSense6}, {op: opStartStopUnit}, {op: opPreventAllow},
	{op: opReadCapacity10}, {op: opRead10}, {op: opWrite10}, {op: opWriteVerify10},
	{op: opVerify10}, {op: opPrefetch10}, {op: opSyncCache10}, {op: opReadDefect10},
	{op: opWriteSame10}, {op: opUnmap}, {op: opModeSelect10}, {op: opReserve10},
	{op: opRelease10}, {op: opModeSense10},
	{op: opPRIn, sa: 0, hasSA: true}, {op: opPRIn, sa: 1, hasSA: true},
	{op: opPRIn, sa: 2, hasSA: true}, {op: opPRIn, sa: 3, hasSA: true},
	{op: opPROut, sa: 0, hasSA: true}, {op: opPROut, sa: 1, hasSA: true},
	{op: opPROut, sa: 2, hasSA: true}, {op: opPROut, sa: 3, hasSA: true},
	{op: opPROut, sa: 4, hasSA: true}, {op: opPROut, sa: 5, hasSA: true},
	{op: opPROut, sa: 6, hasSA: true},
	{op: opExtendedCopy, sa: 0, hasSA: true},
	{op: opReceiveCopyResult, sa: saCopyStatus, hasSA: true},
	{op: opReceiveCopyResult, sa: saOperatingParams, hasSA: true},
	{op: opRead16}, {op: opCompareAndWrite}, {op: opWrite16}, {op: opOrWrite16},
	{op: opWriteVerify16}, {op: opVerify16}, {op: opPrefetch16}, {op: opSyncCache16},
	{op: opWriteSame16},
	{op: opServiceActionIn16, sa: saReadCapacity16, hasSA: true},
	{op: opServiceActionIn16, sa: saGetLBAStatus, hasSA: true},
	{op: opReportLUNs},
	{op: opMaintenanceIn, sa: saReportSupportedOps, hasSA: true},
	{op: opRead12}, {op: opWrite12}, {op: opWriteVerify12}, {op: opVerify12},
	{op: opReadDefect12},
}

func (d *Device) supported(s supportedOp) bool {
	return s.op != opUnmap || d.opts.ThinProvisioning
}

// hasServiceActions reports whether op is a command with service actions.
func hasServiceActions(op byte) bool {
	switch op {
	case opPRIn, opPROut, opServiceActionIn16, opMaintenanceIn, opExtendedCopy, opReceiveCopyResult:
		return true
	}
	return false
}

// usageData is the CDB USAGE DATA of a command: the opcode, then a mask
// of the bits the device evaluates. Every field of these CDBs is
// evaluated or checked, except the CONTROL byte's vendor bits and the
// obsolete LINK/FLAG bits.
func usageData(s supportedOp) []byte {
	n := cdbLength(s.op)
	u := make([]byte, n)
	u[0] = s.op
	for i := 1; i < n-1; i++ {
		u[i] = 0xff
	}
	if s.hasSA {
		u[1] = 0xe0 | byte(s.sa)&0x1f
	}
	u[n-1] = 0x04 // NACA
	return u
}

// reportSupportedOps implements REPORT SUPPORTED OPERATION CODES, SPC-4
// 6.35.
func (d *Device) reportSupportedOps(cdb []byte) (Response, error) {
	rctd := cdb[2]&0x80 != 0
	opts := cdb[2] & 0x07
	reqOp := cdb[3]
	reqSA := getU16(cdb[4:])
	alloc := getU32(cdb[6:])
	timeouts := func() []byte {
		// Command timeouts descriptor: length 0Ah, no recommended or
		// nominal timeout known (zero means "not specified").
		t := make([]byte, 12)
		putU16(t, 0x0a)
		return t
	}
	if opts == 0 {
		b := make([]byte, 4)
		for _, s := range supportedOps {
			if !d.supported(s) {
				continue
			}
			desc := make([]byte, 8)
			desc[0] = s.op
			putU16(desc[2:], s.sa)
			if s.hasSA {
				desc[5] = 0x01 // SERVACTV
			}
			putU16(desc[6:], uint16(cdbLength(s.op)))
			if rctd {
				desc[5] |= 0x02 // CTDP
				desc = append(desc, timeouts()...)
			}
			b = append(b, desc...)
		}
		putU32(b, uint32(len(b)-4))
		return Response{Status: StatusGood, DataIn: truncate(b, alloc)}, nil
	}
	var match *supportedOp
	switch opts {
	case 1: // by opcode: invalid for commands with service actions
		if hasServiceActions(reqOp) {
			return Response{}, invalidCDB(2, 2)
		}
		for i := range supportedOps {
			if supportedOps[i].op == reqOp && d.supported(supportedOps[i]) {
				match = &supportedOps[i]
			}
		}
	case 2: // by opcode and service action: invalid without service actions
		if !hasServiceActions(reqOp) {
			return Response{}, invalidCDB(2, 2)
		}
		for i := range supportedOps {
			if s := supportedOps[i]; s.op == reqOp && s.sa == reqSA {
				match = &supportedOps[i]
			}
		}
	case 3: // either
		for i := range supportedOps {
			s := supportedOps[i]
			if s.op == reqOp && d.supported(s) && (!s.hasSA || s.sa == reqSA) {
				match = &supportedOps[i]
			}
		}
	default:
		return Response{}, invalidCDB(2, 2)
	}
	b := make([]byte, 4)
	if match == nil {
		b[1] = 0x01 // SUPPORT 001b: not supported
	} else {
		b[1] = 0x03 // SUPPORT 011b: supported as the standard says
		u := usageData(*match)
		putU16(b[2:], uint16(len(u)))
		b = append(b, u...)
	}
	if rctd {
		b[1] |= 0x80 // CTDP
		b = append(b, timeouts()...)
	}
	return Response{Status: StatusGood, DataIn: truncate(b, alloc)}, nil
}
