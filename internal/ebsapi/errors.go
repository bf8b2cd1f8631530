package ebsapi

import (
	"net/http"

	"github.com/volgw/volgw/internal/awsproto"
)

// Exception types of the EBS model and the HTTP status each is sent with.
const (
	typeValidation      = "ValidationException"       // 400
	typeNotFound        = "ResourceNotFoundException" // 404
	typeConflict        = "ConflictException"         // 409
	typeInternal        = "InternalServerException"   // 500
	typeUnknownOperaton = "UnknownOperationException" // 404, no such route
)

// Reasons (the model's ValidationExceptionReason and
// ResourceNotFoundExceptionReason enums) this package sends.
const (
	reasonInvalidPageToken   = "INVALID_PAGE_TOKEN"
	reasonInvalidBlockToken  = "INVALID_BLOCK_TOKEN"
	reasonInvalidSnapshotID  = "INVALID_SNAPSHOT_ID"
	reasonInvalidBlock       = "INVALID_BLOCK"
	reasonInvalidParameter   = "INVALID_PARAMETER_VALUE"
	reasonInvalidVolumeSize  = "INVALID_VOLUME_SIZE"
	reasonInvalidTag         = "INVALID_TAG"
	reasonInvalidDependency  = "INVALID_DEPENDENCY_REQUEST"
	reasonSnapshotNotFound   = "SNAPSHOT_NOT_FOUND"
	reasonDependencyNotFound = "DEPENDENCY_RESOURCE_NOT_FOUND"
)

func apiError(typ string, status int, reason, message string) *awsproto.RESTError {
	e := &awsproto.RESTError{Type: typ, Message: message, Status: status}
	if reason != "" {
		e.Members = map[string]string{"Reason": reason}
	}
	return e
}

func validation(reason, message string) *awsproto.RESTError {
	return apiError(typeValidation, http.StatusBadRequest, reason, message)
}

func snapshotNotFound(id string) *awsproto.RESTError {
	return apiError(typeNotFound, http.StatusNotFound, reasonSnapshotNotFound, "The snapshot '"+id+"' does not exist.")
}

func internal() *awsproto.RESTError {
	return apiError(typeInternal, http.StatusInternalServerError, "", "An internal error has occurred.")
}
