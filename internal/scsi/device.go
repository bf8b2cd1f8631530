package scsi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// DeviceOptions configure one logical unit. The zero value of each field
// picks the default named in its comment.
type DeviceOptions struct {
	// BlockSize is the logical block size in bytes: 512 (default) or 4096,
	// or any power of two from 512 to 64 KiB.
	BlockSize uint32
	// PhysicalBlockSize is reported in READ CAPACITY (16) so initiators align
	// I/O to it; a power-of-two multiple of BlockSize. Default: BlockSize.
	// (With 512-byte blocks over an engine that stores 4 KiB, 4096 steers
	// initiators away from read-modify-write; but libiscsi 1.19's
	// GetLBAStatus.UnmapSingle then fails on its own arithmetic, so the
	// default stays neutral.)
	PhysicalBlockSize uint32
	// VendorID (8 ASCII chars, default "Amazon"), ProductID (16, default
	// "Storage Gateway") and ProductRevision (4, default "1.0") make up the
	// standard INQUIRY identification.
	VendorID, ProductID, ProductRevision string
	// SerialNumber is the unit serial number (VPD 80h); the volume ID.
	SerialNumber string
	// DeviceIdentifier seeds the NAA designator of VPD 83h. It must be
	// stable for the life of the volume and unique among volumes. Default:
	// SerialNumber.
	DeviceIdentifier string
	// ReadOnly makes every command that would change the medium fail with
	// DATA PROTECT, WRITE PROTECTED.
	ReadOnly bool
	// ThinProvisioning advertises logical block provisioning (UNMAP, WRITE
	// SAME with UNMAP, unmapped blocks read as zeros); the backend's Unmap
	// frees space.
	ThinProvisioning bool
	// Removable reports a removable medium (RMB=1): START STOP UNIT with
	// LOEJ ejects and loads it, PREVENT ALLOW MEDIUM REMOVAL holds it in,
	// and medium-access commands fail with NOT READY, MEDIUM NOT PRESENT
	// while it is out. Off for volumes, which cannot be ejected; it exists
	// for initiators and tests that exercise removable-medium semantics.
	Removable bool
	// MaxTransferBlocks bounds one READ or WRITE (Block Limits VPD); longer
	// commands fail with INVALID FIELD IN CDB. Default: 8 MiB worth.
	MaxTransferBlocks uint32
	// Logger receives backend failures. Default: slog.Default().
	Logger *slog.Logger
	// Reservations, when set, keeps persistent reservations across
	// restarts: NewDevice loads them, and PERSISTENT RESERVE OUT saves
	// them while the last registration asked for APTPL. Without it,
	// APTPL is refused and REPORT CAPABILITIES says PTPL_C=0.
	Reservations ReservationStore
}

// Device is one logical unit of the SCSI block command set over a Backend.
// It is safe for concurrent use; READ and WRITE take no device-wide lock.
type Device struct {
	b    Backend
	opts DeviceOptions
	bs   uint32 // logical block size
	// bsShift is log2(bs): block arithmetic on the hot path uses shifts.
	bsShift  uint
	lbppbExp byte // log2(physical / logical block size)
	naa      [8]byte
	log      *slog.Logger

	// Changeable mode parameters, shared by every nexus (SPC-4 allows
	// per-nexus copies; one shared copy is what tgtd and LIO do). Atomic so
	// READ and WRITE consult them without a lock; MODE SELECT changes them
	// holding mu, so a parameter list applies as a whole.
	wce    atomic.Bool // caching page WCE: write cache enabled
	dsense atomic.Bool // control page D_SENSE: descriptor-format sense data
	swp    atomic.Bool // control page SWP: software write protect

	// ejected is set while a removable medium is out (Removable only).
	ejected atomic.Bool
	// lastSize is the backend size initiators were last told of; when the
	// backend grows or shrinks every nexus hears CAPACITY DATA HAS CHANGED.
	lastSize atomic.Int64

	// atomicMu makes the read-modify-write commands (COMPARE AND WRITE,
	// ORWRITE) atomic, as SBC-4 5.3 requires: they hold it exclusively
	// from their read to their write, and every other command that changes
	// the medium holds it shared while it does, so nothing lands between a
	// compare and its write. It guards no fields.
	atomicMu sync.RWMutex

	// mu guards the fields below: per-nexus and mode state, which every
	// command consults briefly before touching the backend.
	mu sync.Mutex
	// seen holds every nexus that has sent a command since the device was
	// created: the nexuses a unit attention (reset, mode or capacity
	// change) is queued for. A new nexus starts with no unit attention:
	// like tgtd and Linux LIO, and unlike a literal reading of SAM-5, we
	// do not report POWER ON OCCURRED to every new session, because
	// simple initiators (libiscsi's iscsi-ls among them) do not retry a
	// TEST UNIT READY that fails with one. It outlives sessions: an
	// initiator that reconnects with the same name and ISID is the same
	// nexus. Bounded by maxSeenNexuses.
	seen map[string]bool
	// lostUA holds the nexuses whose pending unit attentions were dropped
	// when seen was last cleared.
	lostUA map[string]bool
	// ua holds the pending unit attentions per nexus, oldest first.
	ua  map[string][]ASC
	res reservations
	// prevent holds the nexuses that sent PREVENT ALLOW MEDIUM REMOVAL
	// with PREVENT set (Removable only); any one of them holds the medium.
	prevent map[string]bool
	// copies holds EXTENDED COPY results kept for RECEIVE COPY RESULTS.
	copies map[copyKey]copyStatus
}

// Default limits and identification.
const (
	defaultBlockSize = 512
	// defaultMaxTransfer bounds one command's buffer. 32 MiB: libiscsi's
	// WRITE SAME tests write 65536 blocks at once.
	defaultMaxTransfer  = 32 << 20
	maxUnmapDescriptors = 256
	maxSeenNexuses      = 4096
	maxUnmapBlocks      = 1 << 20 // per UNMAP command, Block Limits VPD
	// maxWriteSameBlocks bounds one WRITE SAME (Block Limits VPD): 32 MiB
	// at 512-byte blocks, written in writeSameChunk pieces, keeps one
	// command well inside initiator timeouts; large discards use UNMAP.
	maxWriteSameBlocks    = 0xffff
	maxCompareWriteBlocks = 255
	// writeSameChunk bounds the buffer WRITE SAME fills with its pattern.
	writeSameChunk = 1 << 20
)

// ErrBadOptions is returned by NewDevice for unusable options.
var ErrBadOptions = errors.New("scsi: bad device options")

// NewDevice returns a logical unit serving b. b.Size must be a multiple of
// the block size.
func NewDevice(b Backend, opts DeviceOptions) (*Device, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil backend", ErrBadOptions)
	}
	if opts.BlockSize == 0 {
		opts.BlockSize = defaultBlockSize
	}
	bs := opts.BlockSize
	if bs < 512 || bs > 64<<10 || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("%w: block size %d", ErrBadOptions, bs)
	}
	if opts.PhysicalBlockSize == 0 {
		opts.PhysicalBlockSize = bs
	}
	pbs := opts.PhysicalBlockSize
	if pbs < bs || pbs&(pbs-1) != 0 || pbs/bs > 1<<15 {
		return nil, fmt.Errorf("%w: physical block size %d for block size %d", ErrBadOptions, pbs, bs)
	}
	if b.Size()%int64(bs) != 0 {
		return nil, fmt.Errorf("%w: backend size %d is not a multiple of block size %d", ErrBadOptions, b.Size(), bs)
	}
	if opts.VendorID == "" {
		opts.VendorID = "Amazon"
	}
	if opts.ProductID == "" {
		opts.ProductID = "Storage Gateway"
	}
	if opts.ProductRevision == "" {
		opts.ProductRevision = "1.0"
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"VendorID", opts.VendorID, 8}, {"ProductID", opts.ProductID, 16}, {"ProductRevision", opts.ProductRevision, 4}, {"SerialNumber", opts.SerialNumber, 250}} {
		if len(f.v) > f.max || !printableASCII(f.v) {
			return nil, fmt.Errorf("%w: %s %q must be at most %d printable ASCII characters", ErrBadOptions, f.name, f.v, f.max)
		}
	}
	if opts.DeviceIdentifier == "" {
		opts.DeviceIdentifier = opts.SerialNumber
	}
	if opts.MaxTransferBlocks == 0 {
		opts.MaxTransferBlocks = defaultMaxTransfer / bs
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	d := &Device{
		b:      b,
		opts:   opts,
		bs:     bs,
		log:    opts.Logger,
		seen:   make(map[string]bool),
		lostUA: make(map[string]bool),
		ua:     make(map[string][]ASC),
	}
	d.wce.Store(true)
	d.lastSize.Store(b.Size())
	for 1<<d.bsShift < bs {
		d.bsShift++
	}
	for bs<<d.lbppbExp < pbs {
		d.lbppbExp++
	}
	d.naa = naaDesignator(opts.DeviceIdentifier)
	d.res.init()
	if opts.Reservations != nil {
		state, err := opts.Reservations.Load()
		if err != nil {
			return nil, fmt.Errorf("scsi: load persistent reservations: %w", err)
		}
		if err := d.res.decode(state); err != nil {
			// Refusing the unit beats serving it without the
			// reservations that fence other initiators off it.
			return nil, fmt.Errorf("scsi: load persistent reservations: %w", err)
		}
	}
	return d, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// blocks is the capacity in logical blocks, read per command so a backend
// that grows is seen at once.
func (d *Device) blocks() uint64 { return uint64(d.b.Size()) >> d.bsShift }

// Execute runs one command. It never panics on malformed input: every
// malformed CDB or parameter list gets CHECK CONDITION with sense data.
func (d *Device) Execute(ctx context.Context, cmd *Command) Response {
	r := d.execute(ctx, cmd)
	if len(cmd.CDB) > 0 && len(cmd.CDB) >= cdbLength(cmd.CDB[0]) && !cmd.Read {
		// Also without the W bit: a CDB that asks for Data-Out the
		// initiator did not announce is an overflow of all of it.
		if n := d.dataOutLength(cmd.CDB); cmd.Write || n > 0 {
			r.DataOutResidual = int64(cmd.ExpectedDataTransferLength) - n
		}
	}
	return r
}

func (d *Device) execute(ctx context.Context, cmd *Command) Response {
	if len(cmd.CDB) == 0 {
		return d.fail(errInvalidOpcode)
	}
	op := cmd.CDB[0]
	n := cdbLength(op)
	if n == 0 {
		return d.fail(errInvalidOpcode)
	}
	if len(cmd.CDB) < n {
		return d.fail(invalidCDB(0, -1))
	}
	// The NACA bit asks for auto contingent allegiance, which this device
	// does not support (standard INQUIRY NormACA=0).
	if cmd.CDB[n-1]&0x04 != 0 {
		return d.fail(invalidCDB(n-1, 2))
	}
	if size := d.b.Size(); size != d.lastSize.Load() {
		d.capacityChanged(size)
	}
	if d.ejected.Load() && needsMedium(op) {
		// SPC-4 5.14: a unit attention is reported before NOT READY.
		if e, _ := d.admit(cmd.Nexus, cmd.CDB); e != nil {
			return d.fail(e)
		}
		return d.fail(checkCond(SenseNotReady, ascMediumNotPresent))
	}
	if e, conflict := d.admit(cmd.Nexus, cmd.CDB); e != nil {
		return d.fail(e)
	} else if conflict {
		return Response{Status: StatusReservationConflict}
	}
	r, err := d.dispatch(ctx, cmd)
	if err != nil {
		var ce *checkError
		if !errors.As(err, &ce) {
			// dispatch returns only checkErrors; anything else is a bug
			// that must not reach the initiator as success.
			d.log.Error("scsi: unexpected error", "op", op, "err", err)
			ce = checkCond(SenseHardwareError, ASCInternalTargetFailure)
		}
		return d.fail(ce)
	}
	return r
}

// admit decides, in one critical section, whether the command may run: a
// pending unit attention for nexus is reported (and consumed) if the
// command is one that reports them (SAM-5 5.14: INQUIRY, REPORT LUNS and
// REQUEST SENSE do not), and otherwise conflict tells whether a
// reservation forbids it.
func (d *Device) admit(nexus string, cdb []byte) (ua *checkError, conflict bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.seen[nexus] {
		if len(d.seen) >= maxSeenNexuses {
			// Forgetting every nexus bounds the memory that initiators
			// which never return would hold. A forgotten nexus that had
			// unit attentions pending gets POWER ON OCCURRED instead,
			// which stands in for any unit attention it lost.
			lost := make(map[string]bool, len(d.ua))
			for n := range d.ua {
				lost[n] = true
			}
			clear(d.seen)
			clear(d.ua)
			d.lostUA = lost
		}
		d.seen[nexus] = true
		if d.lostUA[nexus] {
			delete(d.lostUA, nexus)
			d.ua[nexus] = append(d.ua[nexus], ASCPowerOnOccurred)
		}
	}
	switch cdb[0] {
	case opInquiry, opReportLUNs, opRequestSense:
	default:
		if q := d.ua[nexus]; len(q) > 0 {
			if len(q) == 1 {
				delete(d.ua, nexus)
			} else {
				d.ua[nexus] = q[1:]
			}
			return checkCond(SenseUnitAttention, q[0]), false
		}
	}
	return nil, d.conflictLocked(nexus, cdb)
}

// queueUA establishes a unit attention for every nexus except skip
// (empty: every nexus). Caller holds d.mu.
func (d *Device) queueUALocked(skip string, asc ASC) {
	for n := range d.seen {
		if n == skip {
			continue
		}
		q := d.ua[n]
		dup := false
		for _, a := range q {
			dup = dup || a == asc
		}
		// A bounded queue: SAM lets a device replace older UAs by a newer
		// one when it runs out of room, and 8 distinct UAs never pile up
		// in practice.
		if !dup && len(q) < 8 {
			d.ua[n] = append(q, asc)
		}
	}
}

// capacityChanged establishes CAPACITY DATA HAS CHANGED (SBC-4 4.6) for
// every nexus, once per change of the backend's size.
func (d *Device) capacityChanged(size int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lastSize.Load() == size {
		return // another command got here first
	}
	d.lastSize.Store(size)
	d.queueUALocked("", ASCCapacityDataChanged)
}

// Reset performs a LOGICAL UNIT RESET on behalf of nexus: reservations
// held by SPC-2 RESERVE are released, medium removal is allowed again,
// mode parameters keep their values (they are shared and not saved
// separately), and every nexus, the one that asked included, sees BUS
// DEVICE RESET FUNCTION OCCURRED (SAM-5 6.3.3, as LIO does; libiscsi's
// MultipathIO.Reset checks every path for it).
func (d *Device) Reset(nexus string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.res.resetLocked()
	clear(d.prevent) // SBC-4 5.15: a reset allows medium removal
	d.queueUALocked("", ASCBusDeviceResetOccurred)
}

// NexusLost is told that a nexus's session ended: its SPC-2 reservation is
// released; persistent reservations and pending unit attentions survive
// (SPC-4 5.13.1; the nexus may come back). Transports call it when a
// session closes; it is optional.
func (d *Device) NexusLost(nexus string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.res.nexusLostLocked(nexus)
	delete(d.prevent, nexus)
}

// dataOutLength is the number of Data-Out bytes cdb asks for (the SPDTL),
// zero for commands that take none.
func (d *Device) dataOutLength(cdb []byte) int64 {
	bs := int64(d.bs)
	switch cdb[0] {
	case opWrite6, opWrite10, opWrite12, opWrite16, opWriteVerify10, opWriteVerify12,
		opWriteVerify16, opOrWrite16:
		_, n := lbaRange(cdb)
		return int64(n) * bs
	case opVerify10, opVerify12, opVerify16:
		_, n := lbaRange(cdb)
		switch (cdb[1] >> 1) & 3 {
		case 1:
			return int64(n) * bs
		case 3:
			if n > 0 {
				return bs
			}
		}
		return 0
	case opWriteSame10:
		return bs
	case opWriteSame16:
		if cdb[1]&0x01 != 0 { // NDOB
			return 0
		}
		return bs
	case opCompareAndWrite:
		return 2 * int64(cdb[13]) * bs
	case opUnmap, opModeSelect10:
		return int64(getU16(cdb[7:]))
	case opModeSelect6:
		return int64(cdb[4])
	case opPROut:
		return int64(getU32(cdb[5:]))
	case opExtendedCopy:
		return int64(getU32(cdb[10:]))
	}
	return 0
}

func (d *Device) fail(e *checkError) Response {
	return Response{Status: StatusCheckCondition, Sense: e.senseData(d.dsense.Load())}
}

var good = Response{Status: StatusGood}

// Operation codes this package knows.
const (
	opTestUnitReady       = 0x00
	opRequestSense        = 0x03
	opRead6               = 0x08
	opWrite6              = 0x0a
	opInquiry             = 0x12
	opModeSelect6         = 0x15
	opReserve6            = 0x16
	opRelease6            = 0x17
	opModeSense6          = 0x1a
	opStartStopUnit       = 0x1b
	opSendDiagnostic      = 0x1d
	opPreventAllow        = 0x1e
	opReadCapacity10      = 0x25
	opRead10              = 0x28
	opWrite10             = 0x2a
	opWriteVerify10       = 0x2e
	opVerify10            = 0x2f
	opPrefetch10          = 0x34
	opSyncCache10         = 0x35
	opReadDefect10        = 0x37
	opWriteSame10         = 0x41
	opUnmap               = 0x42
	opModeSelect10        = 0x55
	opReserve10           = 0x56
	opRelease10           = 0x57
	opModeSense10         = 0x5a
	opPRIn                = 0x5e
	opPROut               = 0x5f
	opRead16              = 0x88
	opCompareAndWrite     = 0x89
	opWrite16             = 0x8a
	opOrWrite16           = 0x8b
	opWriteVerify16       = 0x8e
	opVerify16            = 0x8f
	opPrefetch16          = 0x90
	opSyncCache16         = 0x91
	opWriteSame16         = 0x93
	opServiceActionIn16   = 0x9e
	opReportLUNs          = 0xa0
	opMaintenanceIn       = 0xa3
	opRead12              = 0xa8
	opWrite12             = 0xaa
	opWriteVerify12       = 0xae
	opVerify12            = 0xaf
	opReadDefect12        = 0xb7
	saReadCapacity16      = 0x10
	saGetLBAStatus        = 0x12
	saReportSupportedOps  = 0x0c
	saReportTargetPortGrp = 0x0a
)

// cdbLength is the CDB length of op's group (SPC-4 4.2.5.1), 0 for the
// vendor-specific and reserved groups.
func cdbLength(op byte) int {
	switch op >> 5 {
	case 0:
		return 6
	case 1, 2:
		return 10
	case 4:
		return 16
	case 5:
		return 12
	}
	return 0
}

func (d *Device) dispatch(ctx context.Context, cmd *Command) (Response, error) {
	cdb := cmd.CDB
	switch cdb[0] {
	case opTestUnitReady:
		return good, nil
	case opRequestSense:
		return d.requestSense(cmd)
	case opInquiry:
		return d.inquiry(cdb)
	case opReportLUNs:
		return reportLUNs(cdb, []uint64{0})
	case opReadCapacity10:
		return d.readCapacity10(cdb)
	case opServiceActionIn16:
		switch cdb[1] & 0x1f {
		case saReadCapacity16:
			return d.readCapacity16(cdb)
		case saGetLBAStatus:
			return d.getLBAStatus(ctx, cdb)
		}
		return Response{}, invalidCDB(1, 4)
	case opMaintenanceIn:
		if cdb[1]&0x1f == saReportSupportedOps {
			return d.reportSupportedOps(cdb)
		}
		return Response{}, invalidCDB(1, 4)
	case opRead6, opRead10, opRead12, opRead16:
		return d.read(ctx, cdb, cmd.DataInBuffer)
	case opWrite6, opWrite10, opWrite12, opWrite16:
		return d.write(ctx, cmd, false)
	case opWriteVerify10, opWriteVerify12, opWriteVerify16:
		return d.write(ctx, cmd, true)
	case opVerify10, opVerify12, opVerify16:
		return d.verify(ctx, cmd)
	case opSyncCache10, opSyncCache16:
		return d.syncCache(ctx, cdb)
	case opPrefetch10, opPrefetch16:
		return d.prefetch(cdb)
	case opWriteSame10, opWriteSame16:
		return d.writeSame(ctx, cmd)
	case opUnmap:
		return d.unmap(ctx, cmd)
	case opCompareAndWrite:
		return d.compareAndWrite(ctx, cmd)
	case opOrWrite16:
		return d.orWrite(ctx, cmd)
	case opModeSense6, opModeSense10:
		return d.modeSense(cdb)
	case opModeSelect6, opModeSelect10:
		return d.modeSelect(cmd)
	case opStartStopUnit:
		return d.startStopUnit(cmd)
	case opPreventAllow:
		return d.preventAllow(cmd)
	case opReadDefect10, opReadDefect12:
		return d.readDefectData(cdb)
	case opReserve6, opReserve10, opRelease6, opRelease10:
		return d.reserveRelease(cmd)
	case opPRIn:
		return d.persistentReserveIn(cdb)
	case opPROut:
		return d.persistentReserveOut(cmd)
	case opExtendedCopy:
		return d.extendedCopy(ctx, cmd)
	case opReceiveCopyResult:
		return d.receiveCopyResults(cmd)
	}
	return Response{}, errInvalidOpcode
}
