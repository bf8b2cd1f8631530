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

// cdbUsage is the CDB USAGE DATA of each command (SPC-4 6.35.3): after
// the opcode, a mask of the bits the device evaluates. For commands with
// service actions, byte 1's SERVICE ACTION bits are filled in with the
// service action by usageData. The CONTROL byte's NACA bit is evaluated
// (and refused).
var cdbUsage = map[byte][]byte{
	opTestUnitReady:     {0, 0, 0, 0, 0, 0x04},
	opRequestSense:      {0, 0x01, 0, 0, 0xff, 0x04},
	opRead6:             {0, 0x1f, 0xff, 0xff, 0xff, 0x04},
	opWrite6:            {0, 0x1f, 0xff, 0xff, 0xff, 0x04},
	opInquiry:           {0, 0x03, 0xff, 0xff, 0xff, 0x04},
	opModeSelect6:       {0, 0x11, 0, 0, 0xff, 0x04},
	opReserve6:          {0, 0x01, 0, 0, 0, 0x04},
	opRelease6:          {0, 0, 0, 0, 0, 0x04},
	opModeSense6:        {0, 0x08, 0xff, 0xff, 0xff, 0x04},
	opStartStopUnit:     {0, 0, 0, 0xf0, 0xf3, 0x04},
	opPreventAllow:      {0, 0, 0, 0, 0x03, 0x04},
	opReadCapacity10:    {0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0x04},
	opRead10:            {0, 0xf8, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x04},
	opWrite10:           {0, 0xf8, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x04},
	opWriteVerify10:     {0, 0xf6, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x04},
	opVerify10:          {0, 0xf6, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x04},
	opPrefetch10:        {0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x04},
	opSyncCache10:       {0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x04},
	opReadDefect10:      {0, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0x04},
	opWriteSame10:       {0, 0xf8, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0x04},
	opUnmap:             {0, 0x01, 0, 0, 0, 0, 0, 0xff, 0xff, 0x04},
	opModeSelect10:      {0, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, 0x04},
	opReserve10:         {0, 0x12, 0, 0, 0, 0, 0, 0, 0, 0x04},
	opRelease10:         {0, 0x12, 0, 0, 0, 0, 0, 0, 0, 0x04},
	opModeSense10:       {0, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0x04},
	opPRIn:              {0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x04},
	opPROut:             {0, 0, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x04},
	opExtendedCopy:      {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opReceiveCopyResult: {0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opRead16:            {0, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opCompareAndWrite:   {0, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0, 0x04},
	opWrite16:           {0, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opOrWrite16:         {0, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x07, 0x44},
	opWriteVerify16:     {0, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opVerify16:          {0, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opPrefetch16:        {0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opSyncCache16:       {0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opWriteSame16:       {0, 0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opServiceActionIn16: {0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opReportLUNs:        {0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opMaintenanceIn:     {0, 0, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opRead12:            {0, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opWrite12:           {0, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opWriteVerify12:     {0, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opVerify12:          {0, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
	opReadDefect12:      {0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x04},
}

// usageData returns the CDB USAGE DATA of s.
func usageData(s supportedOp) []byte {
	u := append([]byte(nil), cdbUsage[s.op]...)
	u[0] = s.op
	if s.hasSA {
		u[1] |= byte(s.sa) & 0x1f
	}
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
