// Package scsi is the SCSI block command set of volgw: the semantics of
// SPC-4 and SBC-4 commands and the sense data each error must carry. It
// turns a fully gathered Command into a Response over a Backend.
//
// The pieces:
//
//   - Device (device.go) is one logical unit over a Backend, built by
//     NewDevice from DeviceOptions. Execute decodes the CDB, reports unit
//     attentions and reservation conflicts, and dispatches to one method
//     per command: reads and writes (rw.go), INQUIRY and its VPD pages
//     (inquiry.go), MODE SENSE/SELECT (mode.go), REPORT SUPPORTED
//     OPERATION CODES (opcodes.go), RESERVE/RELEASE and persistent
//     reservations (reserve.go).
//   - LUNTable (lun.go) is a target's set of logical units: it dispatches
//     by LUN, answers REPORT LUNS and speaks for absent LUNs. EncodeLUN and
//     DecodeLUN convert between LUN numbers and SAM's eight-byte LUN field.
//   - FileBackend (filebackend.go) serves a plain file or block device.
//   - sense.go holds the status and sense constants, the error sentinels a
//     Backend may return, and backendError: the one function that maps a
//     backend error to sense data.
//
// Commands the device does not implement fail with INVALID COMMAND
// OPERATION CODE; none is answered with a success it did not earn.
//
// The package must not touch the wire (PDUs, sessions, residual
// arithmetic, task management: package iscsi) or the engine (caching,
// journals, object storage: package volume); it sees both only through
// Command/Response and Backend in seam.go.
package scsi
