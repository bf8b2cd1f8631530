package scsi

import (
	"context"
	"errors"
	"fmt"
)

// SAM-5 status codes (Response.Status).
const (
	StatusGood                byte = 0x00
	StatusCheckCondition      byte = 0x02
	StatusConditionMet        byte = 0x04
	StatusBusy                byte = 0x08
	StatusReservationConflict byte = 0x18
	StatusTaskSetFull         byte = 0x28
	StatusACAActive           byte = 0x30
	StatusTaskAborted         byte = 0x40
)

// Sense keys (SPC-4 table 54).
const (
	SenseNoSense        byte = 0x0
	SenseRecoveredError byte = 0x1
	SenseNotReady       byte = 0x2
	SenseMediumError    byte = 0x3
	SenseHardwareError  byte = 0x4
	SenseIllegalRequest byte = 0x5
	SenseUnitAttention  byte = 0x6
	SenseDataProtect    byte = 0x7
	SenseAbortedCommand byte = 0xb
	SenseMiscompare     byte = 0xe
)

// ASC is an additional sense code and its qualifier, ASC in the high byte.
type ASC uint16

// The additional sense codes this device reports (SPC-4 table D.1).
const (
	ASCNoAdditionalSense            ASC = 0x0000
	ASCLogicalUnitNotReadyManualInt ASC = 0x0403
	ASCWriteError                   ASC = 0x0c00
	ASCInvalidFieldInCommandIU      ASC = 0x0e03
	ASCUnrecoveredReadError         ASC = 0x1100
	ASCParameterListLengthError     ASC = 0x1a00
	ASCMiscompareDuringVerify       ASC = 0x1d00
	ASCInvalidCommandOperationCode  ASC = 0x2000
	ASCLBAOutOfRange                ASC = 0x2100
	ASCInvalidFieldInCDB            ASC = 0x2400
	ASCLogicalUnitNotSupported      ASC = 0x2500
	ASCInvalidFieldInParameterList  ASC = 0x2600
	ASCWriteProtected               ASC = 0x2700
	ASCPowerOnResetOccurred         ASC = 0x2900
	ASCPowerOnOccurred              ASC = 0x2901
	ASCBusDeviceResetOccurred       ASC = 0x2903
	ASCITNexusLossOccurred          ASC = 0x2907
	ASCModeParametersChanged        ASC = 0x2a01
	ASCReservationsPreempted        ASC = 0x2a03
	ASCReservationsReleased         ASC = 0x2a04
	ASCRegistrationsPreempted       ASC = 0x2a05
	ASCCapacityDataChanged          ASC = 0x2a09
	ASCSavingParametersUnsupported  ASC = 0x3900
	ASCMediumRemovalPrevented       ASC = 0x5302
	ASCInsufficientResources        ASC = 0x5500
	ASCInsufficientRegistrationRes  ASC = 0x5504
	ASCInternalTargetFailure        ASC = 0x4400
)

// Sentinel errors a Backend may return (wrapped) to get specific sense data;
// any other error becomes MEDIUM ERROR (reads) or WRITE ERROR (writes).
var (
	// ErrOutOfRange: the range lies beyond the backend's end (it shrank).
	ErrOutOfRange = errors.New("scsi: range beyond end of backend")
	// ErrReadOnly: the backend refuses writes.
	ErrReadOnly = errors.New("scsi: backend is read-only")
	// ErrNotReady: the backend cannot serve I/O right now (e.g. the volume is
	// being restored); initiators retry.
	ErrNotReady = errors.New("scsi: backend not ready")
	// ErrNoSpace: the backend cannot allocate space for the write.
	ErrNoSpace = errors.New("scsi: backend out of space")
)

// checkError is a CHECK CONDITION outcome built while decoding a command:
// the sense key, the additional sense code and, for errors in the CDB or
// parameter list, the sense-key-specific field pointer.
type checkError struct {
	key  byte
	asc  ASC
	info uint64 // INFORMATION field (valid when hasInfo)
	// field pointer: byte and bit of the offending field; hasField when set.
	fieldByte uint16
	fieldBit  byte
	hasBit    bool
	hasField  bool
	inCDB     bool // C/D bit: field is in the CDB, not the parameter list
	hasInfo   bool
}

func (e *checkError) Error() string {
	return fmt.Sprintf("scsi: check condition key %#x asc %#04x", e.key, uint16(e.asc))
}

func checkCond(key byte, asc ASC) *checkError { return &checkError{key: key, asc: asc} }

// invalidCDB reports INVALID FIELD IN CDB pointing at byte b (bit bit, or
// -1 for the whole byte).
func invalidCDB(b int, bit int) *checkError {
	e := &checkError{key: SenseIllegalRequest, asc: ASCInvalidFieldInCDB, hasField: true, inCDB: true, fieldByte: uint16(b)}
	if bit >= 0 {
		e.hasBit, e.fieldBit = true, byte(bit)
	}
	return e
}

// invalidParam reports INVALID FIELD IN PARAMETER LIST pointing at byte b.
func invalidParam(b int, bit int) *checkError {
	e := &checkError{key: SenseIllegalRequest, asc: ASCInvalidFieldInParameterList, hasField: true, fieldByte: uint16(b)}
	if bit >= 0 {
		e.hasBit, e.fieldBit = true, byte(bit)
	}
	return e
}

var (
	errInvalidOpcode  = checkCond(SenseIllegalRequest, ASCInvalidCommandOperationCode)
	errLBAOutOfRange  = checkCond(SenseIllegalRequest, ASCLBAOutOfRange)
	errParamListLen   = checkCond(SenseIllegalRequest, ASCParameterListLengthError)
	errWriteProtected = checkCond(SenseDataProtect, ASCWriteProtected)
	errLUNotSupported = checkCond(SenseIllegalRequest, ASCLogicalUnitNotSupported)
	errInvalidIU      = checkCond(SenseIllegalRequest, ASCInvalidFieldInCommandIU)
)

// miscompare reports MISCOMPARE DURING VERIFY OPERATION with the offset of
// the first differing byte in INFORMATION, as SBC-4 requires.
func miscompare(offset uint64) *checkError {
	return &checkError{key: SenseMiscompare, asc: ASCMiscompareDuringVerify, info: offset, hasInfo: true}
}

// backendError is the one mapping from a Backend error to sense data.
// write tells whether the failed operation was writing, which decides the
// generic code (WRITE ERROR versus UNRECOVERED READ ERROR).
func backendError(err error, write bool) *checkError {
	switch {
	case errors.Is(err, ErrOutOfRange):
		return errLBAOutOfRange
	case errors.Is(err, ErrReadOnly):
		return errWriteProtected
	case errors.Is(err, ErrNotReady), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The initiator retries NOT READY; a cancelled context means the
		// task was aborted or the session went away, and nobody reads the
		// status then anyway.
		return checkCond(SenseNotReady, ASCLogicalUnitNotReadyManualInt)
	case errors.Is(err, ErrNoSpace):
		return checkCond(SenseDataProtect, 0x2707) // SPACE ALLOCATION FAILED WRITE PROTECT
	case write:
		return checkCond(SenseMediumError, ASCWriteError)
	default:
		return checkCond(SenseMediumError, ASCUnrecoveredReadError)
	}
}

// senseData encodes e as fixed-format (70h) or descriptor-format (72h)
// sense data, SPC-4 4.5.
func (e *checkError) senseData(descriptor bool) []byte {
	var sks [3]byte
	if e.hasField {
		sks[0] = 0x80 // SKSV
		if e.inCDB {
			sks[0] |= 0x40
		}
		if e.hasBit {
			sks[0] |= 0x08 | e.fieldBit&7
		}
		sks[1], sks[2] = byte(e.fieldByte>>8), byte(e.fieldByte)
	}
	if descriptor {
		s := make([]byte, 8, 8+12+8)
		s[0] = 0x72
		s[1] = e.key & 0xf
		s[2], s[3] = byte(e.asc>>8), byte(e.asc)
		if e.hasInfo {
			d := make([]byte, 12)
			d[0], d[1], d[2] = 0x00, 0x0a, 0x80
			putU64(d[4:], e.info)
			s = append(s, d...)
		}
		if e.hasField {
			s = append(s, 0x02, 0x06, 0, 0, sks[0], sks[1], sks[2], 0)
		}
		s[7] = byte(len(s) - 8)
		return s
	}
	s := make([]byte, 18)
	s[0] = 0x70
	s[2] = e.key & 0xf
	if e.hasInfo {
		s[0] |= 0x80 // VALID
		// The fixed format's INFORMATION field is four bytes; larger values
		// cannot be reported there, so VALID stays set only when it fits.
		if e.info > 0xffffffff {
			s[0] &^= 0x80
		} else {
			putU32(s[3:], uint32(e.info))
		}
	}
	s[7] = 10
	s[12], s[13] = byte(e.asc>>8), byte(e.asc)
	copy(s[15:18], sks[:])
	return s
}

func putU16(b []byte, v uint16) { b[0], b[1] = byte(v>>8), byte(v) }
func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
func putU64(b []byte, v uint64) { putU32(b, uint32(v>>32)); putU32(b[4:], uint32(v)) }
func getU16(b []byte) uint16    { return uint16(b[0])<<8 | uint16(b[1]) }
func getU24(b []byte) uint32    { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }
func getU32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
func getU64(b []byte) uint64 { return uint64(getU32(b))<<32 | uint64(getU32(b[4:])) }
