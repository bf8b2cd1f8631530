package scsi

import "context"

// Backend is the storage one logical unit serves: a plain file in tests and
// benchmarks, an engine volume in production. It is declared here, at the
// consumer; any type with these methods serves.
//
// Offsets and lengths are in bytes and always multiples of the logical block
// size the device was created with. Calls may run in parallel.
type Backend interface {
	// ReadAt fills p from offset off. Unwritten ranges read as zeros.
	ReadAt(ctx context.Context, p []byte, off int64) error
	// WriteAt stores p at off. It returns once the write is acknowledged
	// (durable in the backend's journal, though not necessarily flushed).
	WriteAt(ctx context.Context, p []byte, off int64) error
	// Flush makes every write acknowledged before the call durable.
	// SYNCHRONIZE CACHE and FUA map to it.
	Flush(ctx context.Context) error
	// Unmap makes [off, off+n) read as zeros and releases its space.
	Unmap(ctx context.Context, off, n int64) error
	// Size is the capacity in bytes.
	Size() int64
}

// Command is one SCSI command as the transport hands it to a logical unit.
// The transport gathers all Data-Out (immediate, unsolicited and R2T-solicited)
// before calling Execute.
type Command struct {
	// Nexus identifies the I_T nexus (the iSCSI session) the command came on;
	// unit attentions and reservations are kept per nexus.
	Nexus string
	// LUN is the logical unit number, decoded from the PDU's LUN field
	// with DecodeLUN.
	LUN uint64
	CDB []byte
	// ExpectedDataTransferLength is what the initiator said it will send
	// (writes) or can receive (reads).
	ExpectedDataTransferLength uint32
	Read, Write                bool // the R and W bits of the SCSI Command PDU
	// DataOut is the data the initiator sent, at most
	// ExpectedDataTransferLength bytes.
	DataOut []byte
	// DataInBuffer, when not nil, is a buffer of at least
	// ExpectedDataTransferLength bytes that the unit may fill and return,
	// as DataInBuffer[:n], in Response.DataIn instead of allocating one;
	// the transport reuses it once the data is sent. Units may ignore it.
	DataInBuffer []byte
}

// Response is the outcome of Execute.
type Response struct {
	Status byte   // SAM status: Good, CheckCondition, ...
	Sense  []byte // sense data when Status is CheckCondition
	// DataIn is the data to return to the initiator. The transport sends at
	// most ExpectedDataTransferLength bytes of it and reports the residual.
	DataIn []byte
	// DataOutResidual is, for a command with Data-Out, the difference
	// ExpectedDataTransferLength minus the bytes the CDB asked for (the
	// SPDTL), which only the SCSI layer knows: positive is an underflow,
	// negative an overflow, zero none. The transport reports it in the
	// SCSI Response PDU (RFC 7143 11.4.5).
	DataOutResidual int64
}

// ReservationStore keeps a logical unit's persistent reservations across
// restarts, for registrations made with APTPL (SPC-4 5.13.5: Activate
// Persist Through Power Loss). The state is an opaque encoding of the
// device's own.
type ReservationStore interface {
	// Load returns the state last saved, or nil when there is none.
	Load() ([]byte, error)
	// Save replaces the stored state, atomically: after a crash, Load
	// returns the old state or the new one. nil means nothing is to be
	// kept.
	Save(state []byte) error
}

// LogicalUnit executes SCSI commands. Execute may be called concurrently.
type LogicalUnit interface {
	Execute(ctx context.Context, cmd *Command) Response
	// Reset performs a LOGICAL UNIT RESET on behalf of nexus: outstanding
	// state is cleared and every other nexus gets a unit attention.
	Reset(nexus string)
}
