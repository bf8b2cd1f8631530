package scsi

// Mode pages this device reports (SPC-4 7.5, SBC-4 6.5).
const (
	pageRWErrorRecovery = 0x01
	pageCaching         = 0x08
	pageControl         = 0x0a
	pageInfoExceptions  = 0x1c
	pageAll             = 0x3f
)

// modePageOrder is the order MODE SENSE returns all pages in.
var modePageOrder = []byte{pageRWErrorRecovery, pageCaching, pageControl, pageInfoExceptions}

// Page control values of MODE SENSE.
const (
	pcCurrent    = 0
	pcChangeable = 1
	pcDefault    = 2
	pcSaved      = 3
)

// modePage returns page code's contents under page control pc. Caller
// holds d.mu.
func (d *Device) modePageLocked(code byte, pc byte) []byte {
	var p []byte
	switch code {
	case pageRWErrorRecovery:
		p = make([]byte, 12)
		p[1] = 0x0a
	case pageCaching:
		p = make([]byte, 20)
		p[1] = 0x12
		switch pc {
		case pcChangeable:
			p[2] = 0x04
		case pcDefault:
			p[2] = 0x04
		default:
			if d.wce.Load() {
				p[2] = 0x04 // WCE
			}
		}
	case pageControl:
		p = make([]byte, 12)
		p[1] = 0x0a
		switch pc {
		case pcChangeable:
			p[2] = 0x04 // D_SENSE
			p[4] = 0x08 // SWP
		case pcDefault:
			p[3] = 0x10 // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
		default:
			p[3] = 0x10
			if d.dsense.Load() {
				p[2] |= 0x04
			}
			if d.swp.Load() {
				p[4] |= 0x08
			}
		}
		if pc != pcChangeable {
			// BUSY TIMEOUT PERIOD: unlimited.
			putU16(p[8:], 0xffff)
		}
	case pageInfoExceptions:
		p = make([]byte, 12)
		p[1] = 0x0a
	}
	p[0] = code
	return p
}

// modeSense implements MODE SENSE (6) and (10), SPC-4 6.11/6.12.
func (d *Device) modeSense(cdb []byte) (Response, error) {
	ten := cdb[0] == opModeSense10
	dbd := cdb[1]&0x08 != 0
	llbaa := ten && cdb[1]&0x10 != 0
	pc := cdb[2] >> 6
	code := cdb[2] & 0x3f
	sub := cdb[3]
	var alloc uint32
	if ten {
		alloc = uint32(getU16(cdb[7:]))
	} else {
		alloc = uint32(cdb[4])
	}
	if pc == pcSaved {
		return Response{}, checkCond(SenseIllegalRequest, ASCSavingParametersUnsupported)
	}
	// No page has subpages: only subpage 0, or FFh with "all pages".
	if sub != 0 && !(sub == 0xff && code == pageAll) {
		return Response{}, invalidCDB(3, -1)
	}
	var pages []byte
	d.mu.Lock()
	wp := d.writeProtected()
	if code == pageAll {
		for _, c := range modePageOrder {
			pages = append(pages, d.modePageLocked(c, pc)...)
		}
	} else {
		known := false
		for _, c := range modePageOrder {
			known = known || c == code
		}
		if !known {
			d.mu.Unlock()
			return Response{}, invalidCDB(2, 5)
		}
		pages = d.modePageLocked(code, pc)
	}
	d.mu.Unlock()

	var bd []byte
	if !dbd {
		blocks := d.blocks()
		if llbaa {
			bd = make([]byte, 16)
			putU64(bd, blocks)
			putU32(bd[12:], d.bs)
		} else {
			bd = make([]byte, 8)
			if blocks > 0xffffffff {
				blocks = 0xffffffff
			}
			putU32(bd, uint32(blocks))
			putU32(bd[4:], d.bs) // byte 4 is reserved, d.bs < 2^24
		}
	}
	devSpecific := byte(0x10) // DPOFUA
	if wp {
		devSpecific |= 0x80
	}
	var b []byte
	if ten {
		b = make([]byte, 8, 8+len(bd)+len(pages))
		b[3] = devSpecific
		if llbaa {
			b[4] = 0x01 // LONGLBA
		}
		putU16(b[6:], uint16(len(bd)))
		b = append(append(b, bd...), pages...)
		putU16(b, uint16(len(b)-2))
	} else {
		b = make([]byte, 4, 4+len(bd)+len(pages))
		b[2] = devSpecific
		b[3] = byte(len(bd))
		b = append(append(b, bd...), pages...)
		b[0] = byte(len(b) - 1)
	}
	return Response{Status: StatusGood, DataIn: truncate(b, alloc)}, nil
}

// modeSelect implements MODE SELECT (6) and (10), SPC-4 6.9/6.10. Only the
// changeable bits (WCE, D_SENSE, SWP) may differ from the current values;
// the whole parameter list is validated before anything changes.
func (d *Device) modeSelect(cmd *Command) (Response, error) {
	cdb := cmd.CDB
	ten := cdb[0] == opModeSelect10
	if cdb[1]&0x01 != 0 { // SP: parameters cannot be saved
		return Response{}, invalidCDB(1, 0)
	}
	if cdb[1]&0x10 == 0 { // PF: only page-format parameters exist here
		return Response{}, invalidCDB(1, 4)
	}
	var plen int
	if ten {
		plen = int(getU16(cdb[7:]))
	} else {
		plen = int(cdb[4])
	}
	if plen == 0 {
		return good, nil
	}
	if len(cmd.DataOut) < plen {
		return Response{}, errParamListLen
	}
	p := cmd.DataOut[:plen]
	hdr, bdlen := 4, 0
	if ten {
		hdr = 8
		if plen < hdr {
			return Response{}, errParamListLen
		}
		bdlen = int(getU16(p[6:]))
	} else {
		if plen < hdr {
			return Response{}, errParamListLen
		}
		bdlen = int(p[3])
	}
	if hdr+bdlen > plen {
		return Response{}, errParamListLen
	}
	if bdlen != 0 {
		long := ten && p[4]&0x01 != 0
		var blen uint32
		switch {
		case long && bdlen == 16:
			blen = getU32(p[hdr+12:])
		case !long && bdlen == 8:
			blen = getU24(p[hdr+5:])
		default:
			return Response{}, invalidParam(6, -1)
		}
		if blen != d.bs {
			// Changing the block size would reformat the medium.
			return Response{}, invalidParam(hdr+bdlen-3, -1)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	wce, dsense, swp := d.wce.Load(), d.dsense.Load(), d.swp.Load()
	for off := hdr + bdlen; off < plen; {
		if plen-off < 2 {
			return Response{}, errParamListLen
		}
		pg := p[off:]
		if pg[0]&0x40 != 0 { // SPF: no subpages here
			return Response{}, invalidParam(off, 6)
		}
		code := pg[0] & 0x3f
		known := false
		for _, c := range modePageOrder {
			known = known || c == code
		}
		if !known {
			return Response{}, invalidParam(off, 5)
		}
		cur := d.modePageLocked(code, pcCurrent)
		mask := d.modePageLocked(code, pcChangeable)
		if int(pg[1]) != len(cur)-2 {
			return Response{}, invalidParam(off+1, -1)
		}
		if off+len(cur) > plen {
			return Response{}, errParamListLen
		}
		for i := 2; i < len(cur); i++ {
			if (pg[i]^cur[i])&^mask[i] != 0 {
				return Response{}, invalidParam(off+i, -1)
			}
		}
		switch code {
		case pageCaching:
			wce = pg[2]&0x04 != 0
		case pageControl:
			dsense = pg[2]&0x04 != 0
			swp = pg[4]&0x08 != 0
		}
		off += len(cur)
	}
	if wce != d.wce.Load() || dsense != d.dsense.Load() || swp != d.swp.Load() {
		d.wce.Store(wce)
		d.dsense.Store(dsense)
		d.swp.Store(swp)
		d.queueUALocked(cmd.Nexus, ASCModeParametersChanged)
	}
	return good, nil
}
