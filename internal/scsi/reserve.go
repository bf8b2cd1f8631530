package scsi

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Persistent reservation types (SPC-4 table 168).
const (
	prWriteExclusive          = 0x1
	prExclusiveAccess         = 0x3
	prWriteExclusiveRegs      = 0x5
	prExclusiveAccessRegs     = 0x6
	prWriteExclusiveAll       = 0x7
	prExclusiveAccessAll      = 0x8
	ascInvalidRelease     ASC = 0x2604 // INVALID RELEASE OF PERSISTENT RESERVATION
)

// reservations is the reservation state of one logical unit: the SPC-2
// RESERVE/RELEASE holder and the SPC-4 persistent reservation. It lives in
// Device and is guarded by Device.mu. With a ReservationStore (PTPL_C=1),
// the persistent part is saved after every PERSISTENT RESERVE OUT that
// changes it while aptpl is set, and loaded by NewDevice.
type reservations struct {
	spc2Holder string            // nexus holding a RESERVE (6/10), "" if none
	keys       map[string]uint64 // registered nexus → reservation key
	generation uint32            // PRGENERATION, bumped by register/clear/preempt
	holder     string            // nexus holding the persistent reservation
	prType     byte              // 0: no persistent reservation
	// aptpl is the APTPL bit of the last REGISTER (SPC-4 5.13.5): when
	// set, every registration and the reservation persist through power
	// loss; when clear, none does.
	aptpl bool
	// stored: the store holds a state (so clearing aptpl must erase it).
	stored bool
}

// prState is the persistent part of reservations, as stored. Nexus names
// carry the initiator port and the target (package iscsi's form), which a
// restart keeps.
type prState struct {
	Version      int               `json:"version"`
	Generation   uint32            `json:"generation"`
	Registration map[string]uint64 `json:"registrations"`
	Holder       string            `json:"holder,omitempty"`
	Type         byte              `json:"type,omitempty"`
}

const prStateVersion = 1

// errBadPRState reports a stored state this version cannot use.
var errBadPRState = errors.New("scsi: unusable persistent reservation state")

func (r *reservations) encode() ([]byte, error) {
	return json.Marshal(prState{Version: prStateVersion, Generation: r.generation,
		Registration: r.keys, Holder: r.holder, Type: r.prType})
}

// decode restores a stored state (nil: none). Only APTPL states are ever
// stored, so a restored one keeps aptpl set.
func (r *reservations) decode(b []byte) error {
	if b == nil {
		return nil
	}
	var s prState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%w: %w", errBadPRState, err)
	}
	if s.Version != prStateVersion {
		return fmt.Errorf("%w: version %d", errBadPRState, s.Version)
	}
	if _, ok := s.Registration[s.Holder]; s.Type != 0 && !ok && !allRegistrants(s.Type) {
		return fmt.Errorf("%w: holder %q is not registered", errBadPRState, s.Holder)
	}
	r.keys = make(map[string]uint64, len(s.Registration))
	maps.Copy(r.keys, s.Registration)
	r.generation, r.holder, r.prType = s.Generation, s.Holder, s.Type
	r.aptpl, r.stored = true, true
	return nil
}

// prSnapshot is the persistent part of reservations, copied, to undo a
// change that could not be saved.
type prSnapshot struct {
	keys          map[string]uint64
	generation    uint32
	holder        string
	prType        byte
	aptpl, stored bool
}

func (r *reservations) snapshot() prSnapshot {
	return prSnapshot{maps.Clone(r.keys), r.generation, r.holder, r.prType, r.aptpl, r.stored}
}

func (r *reservations) restore(s prSnapshot) {
	r.keys, r.generation, r.holder, r.prType, r.aptpl, r.stored = s.keys, s.generation, s.holder, s.prType, s.aptpl, s.stored
}

// persistLocked saves the persistent reservations if APTPL asks for it,
// or erases a saved state once it no longer does. Caller holds d.mu.
func (d *Device) persistLocked() error {
	r := &d.res
	store := d.opts.Reservations
	if store == nil || (!r.aptpl && !r.stored) {
		return nil
	}
	var state []byte
	if r.aptpl {
		var err error
		if state, err = r.encode(); err != nil {
			return err
		}
	}
	if err := store.Save(state); err != nil {
		return err
	}
	r.stored = r.aptpl
	return nil
}

func (r *reservations) init() { r.keys = make(map[string]uint64) }

func (r *reservations) resetLocked() { r.spc2Holder = "" }

func (r *reservations) nexusLostLocked(nexus string) {
	if r.spc2Holder == nexus {
		r.spc2Holder = ""
	}
}

func allRegistrants(t byte) bool { return t == prWriteExclusiveAll || t == prExclusiveAccessAll }

// isHolder reports whether nexus holds the persistent reservation: the
// holder itself, or any registrant for the all-registrants types.
func (r *reservations) isHolder(nexus string) bool {
	if r.prType == 0 {
		return false
	}
	if allRegistrants(r.prType) {
		_, ok := r.keys[nexus]
		return ok
	}
	return r.holder == nexus
}

// access classes of commands for reservation conflicts (SPC-4 table 66).
const (
	accessAlways = iota // allowed under every reservation
	accessRead          // conflicts under exclusive-access types
	accessWrite         // conflicts under every type
)

func accessClass(cdb []byte) int {
	switch cdb[0] {
	case opInquiry, opReportLUNs, opRequestSense, opTestUnitReady,
		opReadCapacity10, opServiceActionIn16, opMaintenanceIn, opPRIn, opPROut:
		return accessAlways
	case opPreventAllow:
		if cdb[4]&0x03 == 0 {
			return accessAlways
		}
		return accessWrite
	case opReceiveCopyResult:
		return accessAlways
	case opRead6, opRead10, opRead12, opRead16, opVerify10, opVerify12, opVerify16,
		opPrefetch10, opPrefetch16, opModeSense6, opModeSense10, opReadDefect10, opReadDefect12:
		return accessRead
	}
	return accessWrite
}

// conflictLocked reports whether the command must end in RESERVATION
// CONFLICT. Caller holds d.mu.
func (d *Device) conflictLocked(nexus string, cdb []byte) bool {
	r := &d.res
	op := cdb[0]
	if r.spc2Holder != "" && r.spc2Holder != nexus {
		switch op {
		case opInquiry, opReportLUNs, opRequestSense, opRelease6, opRelease10, opMaintenanceIn, opPRIn:
			return false
		case opPreventAllow:
			return cdb[4]&0x03 != 0
		}
		return true
	}
	switch op {
	case opReserve6, opReserve10, opRelease6, opRelease10:
		// SPC-4 5.13.3: once persistent reservations are in use, the
		// SPC-2 commands conflict.
		return len(r.keys) > 0 || r.prType != 0
	}
	if r.prType == 0 || r.isHolder(nexus) {
		return false
	}
	class := accessClass(cdb)
	if class == accessAlways {
		return false
	}
	_, registered := r.keys[nexus]
	switch r.prType {
	case prWriteExclusive:
		return class == accessWrite
	case prExclusiveAccess:
		return true
	case prWriteExclusiveRegs, prWriteExclusiveAll:
		return class == accessWrite && !registered
	case prExclusiveAccessRegs, prExclusiveAccessAll:
		return !registered
	}
	return false
}

// reserveRelease implements RESERVE (6/10) and RELEASE (6/10), SPC-2 7.21
// and 7.12: whole-unit reservations only; third-party ones are refused.
func (d *Device) reserveRelease(cmd *Command) (Response, error) {
	cdb := cmd.CDB
	op := cdb[0]
	if op == opReserve10 || op == opRelease10 {
		if cdb[1]&0x10 != 0 { // 3RDPTY
			return Response{}, invalidCDB(1, 4)
		}
		if cdb[1]&0x02 != 0 { // LONGID
			return Response{}, invalidCDB(1, 1)
		}
	}
	if op == opReserve6 && cdb[1]&0x01 != 0 { // extent reservations (SCSI-2)
		return Response{}, invalidCDB(1, 0)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch op {
	case opReserve6, opReserve10:
		// conflict() already refused other nexuses while it is held.
		d.res.spc2Holder = cmd.Nexus
	default:
		if d.res.spc2Holder == cmd.Nexus {
			d.res.spc2Holder = ""
		}
	}
	return good, nil
}

// persistentReserveIn implements PERSISTENT RESERVE IN, SPC-4 6.15.
func (d *Device) persistentReserveIn(cdb []byte) (Response, error) {
	alloc := uint32(getU16(cdb[7:]))
	d.mu.Lock()
	defer d.mu.Unlock()
	r := &d.res
	var b []byte
	switch cdb[1] & 0x1f {
	case 0x00: // READ KEYS
		nexuses := r.sortedNexuses()
		b = make([]byte, 8, 8+8*len(nexuses))
		putU32(b, r.generation)
		for _, n := range nexuses {
			b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
			putU64(b[len(b)-8:], r.keys[n])
		}
		putU32(b[4:], uint32(len(b)-8))
	case 0x01: // READ RESERVATION
		b = make([]byte, 8)
		putU32(b, r.generation)
		if r.prType != 0 {
			desc := make([]byte, 16)
			if !allRegistrants(r.prType) {
				putU64(desc, r.keys[r.holder])
			}
			desc[13] = r.prType // scope 0h: logical unit
			b = append(b, desc...)
			putU32(b[4:], 16)
		}
	case 0x02: // REPORT CAPABILITIES
		b = make([]byte, 8)
		putU16(b, 8)
		b[2] = 0x10 // CRH: RESERVE/RELEASE follow SPC-4 5.13.3
		b[3] = 0x80 // TMV: the type mask is valid
		if d.opts.Reservations != nil {
			b[2] |= 0x01 // PTPL_C: APTPL is honoured
			if r.aptpl {
				b[3] |= 0x01 // PTPL_A: and in force
			}
		}
		b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02
		b[5] = 0x01
	case 0x03: // READ FULL STATUS
		b = make([]byte, 8)
		putU32(b, r.generation)
		for _, n := range r.sortedNexuses() {
			tid := transportID(n)
			desc := make([]byte, 24, 24+len(tid))
			putU64(desc, r.keys[n])
			if r.isHolder(n) {
				desc[12] = 0x01 // R_HOLDER
				desc[13] = r.prType
			}
			putU32(desc[20:], uint32(len(tid)))
			b = append(b, append(desc, tid...)...)
		}
		putU32(b[4:], uint32(len(b)-8))
	default:
		return Response{}, invalidCDB(1, 4)
	}
	return Response{Status: StatusGood, DataIn: truncate(b, alloc)}, nil
}

func (r *reservations) sortedNexuses() []string {
	ns := make([]string, 0, len(r.keys))
	for n := range r.keys {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

// transportID is the iSCSI TransportID (SPC-4 7.6.4.6) of the initiator
// port of nexus. A nexus named as package iscsi names it, "<initiator
// name>,i,0x<ISID>,<target name>", gives the initiator port form (format
// 01b: name, ",i,0x", ISID); any other nexus string is used whole as the
// initiator name (format 00b).
func transportID(nexus string) []byte {
	name, format := nexus, byte(0x00)
	if i := strings.Index(nexus, ",i,0x"); i > 0 {
		name, format = nexus[:i+5], 0x40
		rest := nexus[i+5:]
		if j := strings.IndexByte(rest, ','); j >= 0 {
			rest = rest[:j]
		}
		name += rest
	}
	n := len(name) + 1 // null terminator
	n = (n + 3) &^ 3   // padded to a multiple of four
	if n < 20 {
		n = 20
	}
	b := make([]byte, 4+n)
	b[0] = format | 0x05 // iSCSI
	putU16(b[2:], uint16(n))
	copy(b[4:], name)
	return b
}

// persistentReserveOut implements PERSISTENT RESERVE OUT, SPC-4 6.16,
// without SPEC_I_PT, ALL_TG_PT and REGISTER AND MOVE, and without APTPL
// unless the device has a ReservationStore (REPORT CAPABILITIES says
// which). A change that must persist and cannot be saved is undone and
// the command fails.
func (d *Device) persistentReserveOut(cmd *Command) (Response, error) {
	cdb := cmd.CDB
	sa := cdb[1] & 0x1f
	scope, typ := cdb[2]>>4, cdb[2]&0x0f
	plen := getU32(cdb[5:])
	switch sa {
	case 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06:
	default:
		return Response{}, invalidCDB(1, 4)
	}
	if plen != 24 {
		return Response{}, errParamListLen
	}
	if len(cmd.DataOut) < 24 {
		return Response{}, errParamListLen
	}
	p := cmd.DataOut[:24]
	key, sark := getU64(p), getU64(p[8:])
	if p[20]&0x08 != 0 { // SPEC_I_PT
		return Response{}, invalidParam(20, 3)
	}
	if p[20]&0x04 != 0 { // ALL_TG_PT
		return Response{}, invalidParam(20, 2)
	}
	aptpl := p[20]&0x01 != 0
	if aptpl && d.opts.Reservations == nil {
		return Response{}, invalidParam(20, 0)
	}
	needsType := sa == 0x01 || sa == 0x02 || sa == 0x04 || sa == 0x05
	if needsType {
		if scope != 0 {
			return Response{}, invalidCDB(2, 7)
		}
		switch typ {
		case prWriteExclusive, prExclusiveAccess, prWriteExclusiveRegs,
			prExclusiveAccessRegs, prWriteExclusiveAll, prExclusiveAccessAll:
		default:
			return Response{}, invalidCDB(2, 3)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	before := d.res.snapshot()
	resp, err := d.proutLocked(cmd.Nexus, sa, typ, key, sark, aptpl)
	if err != nil || resp.Status != StatusGood {
		return resp, err
	}
	if err := d.persistLocked(); err != nil {
		d.res.restore(before)
		d.log.Error("scsi: persistent reservations not saved; PERSISTENT RESERVE OUT undone", "err", err)
		return Response{}, checkCond(SenseHardwareError, ASCInternalTargetFailure)
	}
	return resp, nil
}

// proutLocked performs one PERSISTENT RESERVE OUT service action whose
// CDB and parameters are valid. Caller holds d.mu.
func (d *Device) proutLocked(nexus string, sa, typ byte, key, sark uint64, aptpl bool) (Response, error) {
	r := &d.res
	cur, registered := r.keys[nexus]
	conflict := Response{Status: StatusReservationConflict}
	switch sa {
	case 0x00, 0x06: // REGISTER, REGISTER AND IGNORE EXISTING KEY
		if sa == 0x00 {
			if !registered && key != 0 {
				return conflict, nil
			}
			if registered && key != cur {
				return conflict, nil
			}
		}
		// SPC-4 5.13.5: the APTPL bit of the last REGISTER decides
		// whether the whole state persists.
		r.aptpl = aptpl
		if sark == 0 {
			if registered {
				r.unregisterLocked(d, nexus)
				r.generation++
			}
			return good, nil
		}
		r.keys[nexus] = sark
		r.generation++
		return good, nil
	}
	if !registered || key != cur {
		return conflict, nil
	}
	switch sa {
	case 0x01: // RESERVE
		if r.prType != 0 {
			if !r.isHolder(nexus) || r.prType != typ {
				return conflict, nil
			}
			return good, nil
		}
		r.holder, r.prType = nexus, typ
	case 0x02: // RELEASE
		if r.prType == 0 || !r.isHolder(nexus) {
			return good, nil
		}
		if r.prType != typ {
			return Response{}, checkCond(SenseIllegalRequest, ascInvalidRelease)
		}
		t := r.prType
		r.holder, r.prType = "", 0
		if t != prWriteExclusive && t != prExclusiveAccess {
			d.uaToRegistrantsLocked(nexus, ASCReservationsReleased)
		}
	case 0x03: // CLEAR
		d.uaToRegistrantsLocked(nexus, ASCReservationsPreempted)
		clear(r.keys)
		r.holder, r.prType = "", 0
		r.generation++
	case 0x04, 0x05: // PREEMPT, PREEMPT AND ABORT
		// Tasks of preempted nexuses are not aborted: commands here run to
		// completion synchronously, so none is outstanding in the device.
		return d.preemptLocked(nexus, sark, typ)
	}
	return good, nil
}

// unregisterLocked removes nexus's registration and the reservation it
// held alone.
func (r *reservations) unregisterLocked(d *Device, nexus string) {
	delete(r.keys, nexus)
	if r.prType == 0 {
		return
	}
	if allRegistrants(r.prType) {
		if len(r.keys) == 0 {
			r.holder, r.prType = "", 0
		}
		return
	}
	if r.holder == nexus {
		t := r.prType
		r.holder, r.prType = "", 0
		if t != prWriteExclusive && t != prExclusiveAccess {
			d.uaToRegistrantsLocked(nexus, ASCReservationsReleased)
		}
	}
}

func (d *Device) uaToRegistrantsLocked(except string, asc ASC) {
	for n := range d.res.keys {
		if n != except {
			d.ua[n] = append(d.ua[n], asc)
		}
	}
}

// preemptLocked implements PREEMPT, SPC-4 5.13.11.
func (d *Device) preemptLocked(nexus string, sark uint64, typ byte) (Response, error) {
	r := &d.res
	removeKey := func(k uint64) int {
		n := 0
		for nx, v := range r.keys {
			if v == k && nx != nexus {
				delete(r.keys, nx)
				d.ua[nx] = append(d.ua[nx], ASCRegistrationsPreempted)
				n++
			}
		}
		return n
	}
	switch {
	case r.prType == 0:
		if sark == 0 {
			return Response{}, invalidParam(8, -1)
		}
		if removeKey(sark) == 0 {
			return Response{Status: StatusReservationConflict}, nil
		}
	case allRegistrants(r.prType):
		if sark == 0 {
			for nx := range r.keys {
				if nx != nexus {
					delete(r.keys, nx)
					d.ua[nx] = append(d.ua[nx], ASCRegistrationsPreempted)
				}
			}
			r.holder, r.prType = nexus, typ
		} else {
			removeKey(sark)
		}
	case r.keys[r.holder] == sark:
		removeKey(sark)
		r.holder, r.prType = nexus, typ
	default:
		if sark == 0 {
			return Response{}, invalidParam(8, -1)
		}
		if removeKey(sark) == 0 {
			return Response{Status: StatusReservationConflict}, nil
		}
	}
	r.generation++
	return good, nil
}
