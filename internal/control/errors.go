package control

import (
	"errors"
	"fmt"
)

// Error codes: values of the Storage Gateway model's ErrorCode enum that the
// control plane returns.
const (
	CodeActivationKeyExpired     = "ActivationKeyExpired"
	CodeActivationKeyInvalid     = "ActivationKeyInvalid"
	CodeActivationKeyNotFound    = "ActivationKeyNotFound"
	CodeGatewayNotConnected      = "GatewayNotConnected"
	CodeGatewayNotFound          = "GatewayNotFound"
	CodeDiskAlreadyAllocated     = "DiskAlreadyAllocated"
	CodeDiskDoesNotExist         = "DiskDoesNotExist"
	CodeInitiatorNotFound        = "InitiatorNotFound"
	CodeInvalidGateway           = "InvalidGateway"
	CodeInvalidParameters        = "InvalidParameters"
	CodeNotSupported             = "NotSupported"
	CodeSnapshotNotFound         = "SnapshotNotFound"
	CodeSnapshotIDInvalid        = "SnapshotIdInvalid"
	CodeSnapshotScheduleNotFound = "SnapshotScheduleNotFound"
	CodeTargetAlreadyExists      = "TargetAlreadyExists"
	CodeTargetNotFound           = "TargetNotFound"
	CodeTargetInvalid            = "TargetInvalid"
	CodeVolumeNotFound           = "VolumeNotFound"
	CodeVolumeIDInvalid          = "VolumeIdInvalid"
	CodeDiskSizeLessThanVolume   = "DiskSizeLessThanVolumeSize"
	CodeNoDisksAvailable         = "NoDisksAvailable"
	CodeMaximumVolumeCount       = "MaximumVolumeCountExceeded"
	CodeVolumeAlreadyExists      = "VolumeAlreadyExists"
	CodeVolumeNotReady           = "VolumeNotReady"
)

// Messages AWS sends with each code (the Storage Gateway API reference's
// table of operation error codes).
var messages = map[string]string{
	CodeActivationKeyExpired:     "The specified activation key has expired.",
	CodeActivationKeyInvalid:     "The specified activation key is invalid.",
	CodeActivationKeyNotFound:    "The specified activation key was not found.",
	CodeGatewayNotConnected:      "The specified gateway is not connected.",
	CodeGatewayNotFound:          "The specified gateway was not found.",
	CodeDiskAlreadyAllocated:     "The specified disk is already allocated.",
	CodeDiskDoesNotExist:         "The specified disk does not exist.",
	CodeInitiatorNotFound:        "The specified initiator was not found.",
	CodeInvalidGateway:           "The specified gateway is not valid.",
	CodeInvalidParameters:        "The specified request contains invalid parameters.",
	CodeNotSupported:             "The specified operation is not supported.",
	CodeSnapshotNotFound:         "The specified snapshot was not found.",
	CodeSnapshotIDInvalid:        "The specified snapshot ID is not valid.",
	CodeSnapshotScheduleNotFound: "The specified snapshot schedule was not found.",
	CodeTargetAlreadyExists:      "The specified target already exists.",
	CodeTargetNotFound:           "The specified target was not found.",
	CodeTargetInvalid:            "The specified target is not valid.",
	CodeVolumeNotFound:           "The specified volume was not found.",
	CodeVolumeIDInvalid:          "The specified volume ID is not valid.",
	CodeDiskSizeLessThanVolume:   "The specified disk size is less than the volume size.",
	CodeNoDisksAvailable:         "No disks are available.",
	CodeMaximumVolumeCount:       "The maximum volume count was exceeded.",
	CodeVolumeAlreadyExists:      "The specified volume already exists.",
	CodeVolumeNotReady:           "The specified volume is not ready.",
}

// Error is a domain error the API reports as InvalidGatewayRequestException
// with Code as its errorCode.
type Error struct {
	Code    string // a value of the model's ErrorCode enum
	Message string // as AWS words it
	Err     error  // the cause, for logs; never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, &Error{Code: c}) match any error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// newError returns the error for code with AWS's message for it.
func newError(code string) *Error {
	return &Error{Code: code, Message: messages[code]}
}

// invalidParameters is InvalidParameters with a message saying which.
func invalidParameters(message string) *Error {
	return &Error{Code: CodeInvalidParameters, Message: message}
}

// IsCode reports whether err is (or wraps) a domain error with this code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Errors for a client's mistakes that the control plane and the engine both
// detect; one value each, so the API says the same thing whichever noticed.
var (
	// AWS documents that VolumeSizeInBytes "must be equal to or larger
	// than the size of the copied volume"; it publishes no wording for the
	// refusal, so the message says what is wrong.
	errVolumeTooSmall = invalidParameters("The volume size must be equal to or larger than the size of the snapshot or volume it is created from.")
	errVolumeSize     = invalidParameters("The volume size must be between 1 GiB and 32 TiB.")
	// A volume is a whole number of 512-byte sectors; between 1 GiB and
	// 32 TiB is not what is wrong with 1073741825 bytes.
	errVolumeSizeSectors = invalidParameters("The volume size must be a multiple of 512 bytes.")
	errNoDisks           = invalidParameters("Cache storage and an upload buffer must be configured before a cached volume can be created.")
)

// engineError translates an error of the VolumeEngine into the API error a
// client sees: the engine's sentinels (engine.go) are client mistakes or
// missing resources, reported as InvalidGatewayRequestException with their
// code; anything else is returned as it is (an internal error). It is the
// one place where engine errors get codes.
func engineError(err error) error {
	var domain *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &domain):
		return err
	case errors.Is(err, ErrVolumeNotFound):
		return &Error{Code: CodeVolumeNotFound, Message: messages[CodeVolumeNotFound], Err: err}
	case errors.Is(err, ErrSnapshotNotFound):
		return &Error{Code: CodeSnapshotNotFound, Message: messages[CodeSnapshotNotFound], Err: err}
	case errors.Is(err, ErrVolumeTooSmall):
		return &Error{Code: errVolumeTooSmall.Code, Message: errVolumeTooSmall.Message, Err: err}
	case errors.Is(err, ErrInvalidVolumeSize):
		return &Error{Code: errVolumeSize.Code, Message: errVolumeSize.Message, Err: err}
	case errors.Is(err, ErrVolumeExists):
		return &Error{Code: CodeVolumeAlreadyExists, Message: messages[CodeVolumeAlreadyExists], Err: err}
	case errors.Is(err, ErrSnapshotExists):
		return &Error{Code: CodeInvalidParameters, Message: "A snapshot with the specified ID already exists.", Err: err}
	case errors.Is(err, ErrVolumeNotReady):
		// Callers that know the volume say more (Service.notReady).
		return &Error{Code: CodeVolumeNotReady, Message: messages[CodeVolumeNotReady], Err: err}
	case errors.Is(err, ErrNoDisks):
		return &Error{Code: errNoDisks.Code, Message: errNoDisks.Message, Err: err}
	case errors.Is(err, ErrKeyUnavailable):
		return &Error{Code: errKeyUnavailable.Code, Message: errKeyUnavailable.Message, Err: err}
	}
	return err
}
