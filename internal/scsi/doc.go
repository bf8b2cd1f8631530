// Package scsi is the SCSI block command set of volgw: the semantics of
// SPC-4 and SBC-4 commands and the sense data each error must carry. It
// turns a fully gathered Command into a Response over a Backend.
//
// The pieces:
//
//   - Device (device.go) is one logical unit over a Backend, built by
//     NewDevice from DeviceOptions. Execute decodes the CDB, reports unit
//     attentions and reservation conflicts, and dispatches to one method
//     per command: reads, writes, VERIFY, WRITE SAME, UNMAP, COMPARE AND
//     WRITE, ORWRITE, GET LBA STATUS (rw.go); INQUIRY and its VPD pages,
//     REQUEST SENSE, START STOP UNIT (inquiry.go); MODE SENSE/SELECT
//     (mode.go); REPORT SUPPORTED OPERATION CODES (opcodes.go);
//     RESERVE/RELEASE and persistent reservations (reserve.go); EXTENDED
//     COPY and RECEIVE COPY RESULTS (xcopy.go).
//   - LUNTable (lun.go) is a target's set of logical units: it dispatches
//     by LUN, answers REPORT LUNS and speaks for absent LUNs. EncodeLUN and
//     DecodeLUN convert between LUN numbers and SAM's eight-byte LUN field.
//   - FileBackend (filebackend.go) serves a plain file or block device.
//   - ReservationStore (seam.go) keeps persistent reservations through a
//     restart when the last REGISTER set APTPL (SPC-4 5.13.5);
//     FileReservationStore (reservationfile.go) keeps them in a file
//     replaced atomically.
//   - sense.go holds the status and sense constants, the error sentinels a
//     Backend may return, and backendError: the one function that maps a
//     backend error to sense data.
//
// Commands the device does not implement (WRITE ATOMIC, SANITIZE, FORMAT
// UNIT, ...) fail with INVALID COMMAND OPERATION CODE; none is answered
// with a success it did not earn.
//
// Contracts with the transport: Execute may run concurrently and never
// retains Command.DataOut after it returns (the transport pools it);
// Response.DataIn is a fresh buffer the transport owns. Reset is a LOGICAL
// UNIT RESET; NexusLost, which Device and LUNTable implement, should be
// called when a session ends. Conformance: libiscsi's iscsi-test-cu
// --dataloss passes every test it runs against a FileBackend LUN through
// package iscsi (internal/iscsi/conformance) and against an engine volume
// (cmd/volgw TestCUOnAPIVolume); TestCU here runs the suites that need a
// read-only, removable or multipath unit.
//
// The package must not touch the wire (PDUs, sessions, residual
// arithmetic, task management: package iscsi) or the engine (caching,
// journals, object storage: package volume); it sees both only through
// Command/Response and Backend in seam.go.
package scsi
