package awsproto

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Error is an API error as the client sees it. Handlers return it (wrapped
// or not); WriteJSONError and WriteQueryError are the only encoders. Any
// other error reaching the edge becomes InternalServerError (JSON) or
// InternalError (EC2) and its text is logged, never sent.
type Error struct {
	// Type is the JSON `__type` (also sent as X-Amzn-ErrorType) or, for the
	// EC2 query protocol, the <Code>.
	Type string
	// Message is the human-readable message, exactly as AWS words it.
	Message string
	// Status is the HTTP status code.
	Status int
	// ErrorCode is Storage Gateway's StorageGatewayError.errorCode (a value
	// of the model's ErrorCode enum). Set only for the service's own
	// exceptions (InvalidGatewayRequestException, InternalServerError,
	// ServiceUnavailableError); empty means no `error` member is sent.
	ErrorCode string
	// ErrorDetails is StorageGatewayError.errorDetails; optional.
	ErrorDetails map[string]string
	// Err is the underlying cause, for logs and errors.Is; never sent.
	Err error
}

func (e *Error) Error() string {
	s := e.Type
	if e.ErrorCode != "" {
		s += " (" + e.ErrorCode + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Storage Gateway exception types (the model's exception shapes) and the
// generic JSON-protocol types that Coral sends.
const (
	TypeInvalidGatewayRequest  = "InvalidGatewayRequestException"
	TypeInternalServerError    = "InternalServerError"
	TypeServiceUnavailable     = "ServiceUnavailableError"
	TypeValidation             = "ValidationException"
	TypeSerialization          = "SerializationException"
	TypeUnknownOperation       = "UnknownOperationException"
	TypeMissingAuthToken       = "MissingAuthenticationTokenException"
	TypeUnrecognizedClient     = "UnrecognizedClientException"
	TypeInvalidSignature       = "InvalidSignatureException"
	TypeIncompleteSignature    = "IncompleteSignatureException"
	TypeRequestEntityTooLarge  = "RequestEntityTooLargeException"
	TypeAccessDenied           = "AccessDeniedException"
	TypeInvalidAction          = "InvalidAction" // EC2
	TypeEC2InternalError       = "InternalError" // EC2
	TypeEC2MissingParameter    = "MissingParameter"
	TypeEC2InvalidParameter    = "InvalidParameterValue"
	TypeEC2AuthFailure         = "AuthFailure"
	TypeEC2SignatureMismatch   = "SignatureDoesNotMatch"
	TypeEC2MissingAuthToken    = "MissingAuthenticationToken"
	TypeEC2RequestExpired      = "RequestExpired"
	TypeEC2IncompleteSignature = "IncompleteSignature"
)

// gatewayErrorMessages is the message AWS sends with each Storage Gateway
// errorCode that volgw uses. A code not listed gets a generic message; pass
// an explicit one with NewGatewayError when AWS's wording is known.
var gatewayErrorMessages = map[string]string{
	"GatewayNotFound":     "The specified gateway was not found.",
	"VolumeNotFound":      "The specified volume was not found.",
	"SnapshotNotFound":    "The specified snapshot was not found.",
	"TargetNotFound":      "The specified target was not found.",
	"TargetAlreadyExists": "The specified target already exists.",
	"TargetInvalid":       "The specified target is not valid.",
	"NotSupported":        "The specified operation is not supported.",
	// Not in the model's ErrorCode enum, but what the service sends (and
	// Terraform's aws_storagegateway_gateway tolerates, by its message)
	// for an operation of another gateway type.
	"UnsupportedOperationForGatewayType": "This operation is not valid for the specified gateway.",
	"DiskDoesNotExist":                   "The specified disk does not exist.",
	"DiskAlreadyAllocated":               "The specified disk is already allocated.",
	"ActivationKeyInvalid":               "The specified activation key is invalid.",
	"ActivationKeyNotFound":              "The specified activation key was not found.",
	"ActivationKeyExpired":               "The specified activation key has expired.",
	"GatewayNotConnected":                "The specified gateway is not connected.",
	"ChapCredentialNotFound":             "The specified CHAP credential was not found.",
	"InitiatorNotFound":                  "The specified initiator was not found.",
	"InitiatorInvalid":                   "The specified initiator is not valid.",
	"VolumeNotReady":                     "The specified volume is not ready.",
	"VolumeInUse":                        "The specified volume is in use.",
	"VolumeAlreadyExists":                "The specified volume already exists.",
	"InvalidParameters":                  "The specified request contains invalid parameters.",
	"InternalError":                      "An internal error has occurred.",
	"LocalStorageLimitExceeded":          "The local storage limit was exceeded.",
	"OutdatedGateway":                    "The specified gateway is out of date.",
	"StagingAreaFull":                    "The staging area is full.",
	"SnapshotScheduleNotFound":           "The specified snapshot schedule was not found.",
}

// NewGatewayError returns InvalidGatewayRequestException (HTTP 400) with
// the given Storage Gateway errorCode. With message "" the message AWS uses
// for that code is sent.
func NewGatewayError(code, message string) *Error {
	if message == "" {
		message = gatewayErrorMessages[code]
		if message == "" {
			message = "The request is invalid."
		}
	}
	return &Error{Type: TypeInvalidGatewayRequest, Message: message, Status: http.StatusBadRequest, ErrorCode: code}
}

// ErrNotSupported is the answer to an operation the service does not
// support: "The specified operation is not supported.".
func ErrNotSupported() *Error { return NewGatewayError("NotSupported", "") }

// ErrNotValidForGateway is the answer to an operation of another gateway
// type (tapes, file shares, stored volumes) called on a gateway that is
// not of that type: "This operation is not valid for the specified
// gateway.", errorCode UnsupportedOperationForGatewayType.
func ErrNotValidForGateway() *Error { return NewGatewayError("UnsupportedOperationForGatewayType", "") }

// NewInternalServerError is Storage Gateway's InternalServerError, with
// the HTTP 400 the service documents for it. (A 5xx would make every SDK
// retry the call, repeating operations that may have half happened.)
func NewInternalServerError(cause error) *Error {
	return &Error{Type: TypeInternalServerError, Message: "An internal error has occurred. Please try again later.",
		Status: http.StatusBadRequest, ErrorCode: "InternalError", Err: cause}
}

// NewValidationError is a ValidationException with the given (already
// AWS-formatted) message.
func NewValidationError(message string) *Error {
	return &Error{Type: TypeValidation, Message: message, Status: http.StatusBadRequest}
}

// NewSerializationError is a SerializationException: the body is not JSON,
// or a member has the wrong JSON type.
func NewSerializationError(message string) *Error {
	return &Error{Type: TypeSerialization, Message: message, Status: http.StatusBadRequest}
}

// NewEC2Error is an EC2 query-protocol error (<Code>, <Message>).
func NewEC2Error(status int, code, message string) *Error {
	return &Error{Type: code, Message: message, Status: status}
}

// asAPIError returns err as an *Error, or nil when it is not one.
func asAPIError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// Response headers in the letter case AWS sends them (set as raw map keys:
// http.Header.Set would canonicalise them to X-Amzn-Requestid).
const (
	headerRequestID = "x-amzn-RequestId"
	headerErrorType = "x-amzn-ErrorType"
)

type jsonErrorBody struct {
	Type    string            `json:"__type"`
	Message string            `json:"message,omitempty"`
	Error   *jsonGatewayError `json:"error,omitempty"`
}

type jsonGatewayError struct {
	ErrorCode    string            `json:"errorCode"`
	ErrorDetails map[string]string `json:"errorDetails,omitempty"`
}

// WriteJSONError writes e in the JSON 1.1 envelope: `__type`, `message`
// and, for Storage Gateway's own exceptions, `error.errorCode` and
// `error.errorDetails`. The same type goes in X-Amzn-ErrorType, which some
// clients read first.
func WriteJSONError(w http.ResponseWriter, requestID string, e *Error) {
	body := jsonErrorBody{Type: e.Type, Message: e.Message}
	if e.ErrorCode != "" {
		body.Error = &jsonGatewayError{ErrorCode: e.ErrorCode, ErrorDetails: e.ErrorDetails}
	}
	b, err := json.Marshal(body)
	if err != nil { // cannot happen: only strings and a string map
		b = []byte(`{"__type":"InternalServerError"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h[headerRequestID] = []string{requestID}
	h[headerErrorType] = []string{e.Type}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(statusOr400(e.Status))
	_, _ = w.Write(b)
}

// WriteQueryError writes e in EC2's XML error envelope.
func WriteQueryError(w http.ResponseWriter, requestID string, e *Error) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	buf.WriteString("<Response><Errors><Error><Code>")
	_ = xml.EscapeText(&buf, []byte(e.Type))
	buf.WriteString("</Code><Message>")
	_ = xml.EscapeText(&buf, []byte(e.Message))
	buf.WriteString("</Message></Error></Errors><RequestID>")
	_ = xml.EscapeText(&buf, []byte(requestID))
	buf.WriteString("</RequestID></Response>")
	h := w.Header()
	h.Set("Content-Type", "text/xml;charset=UTF-8")
	h[headerRequestID] = []string{requestID}
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(statusOr400(e.Status))
	_, _ = w.Write(buf.Bytes())
}

func statusOr400(s int) int {
	if s < 400 || s > 599 {
		return http.StatusBadRequest
	}
	return s
}

// AuthFailure says which SigV4 check failed; the protocol in use turns it
// into its own error type (JSON or EC2).
type AuthFailure int

const (
	AuthMissing      AuthFailure = iota + 1 // no Authorization header
	AuthIncomplete                          // malformed Authorization / missing date
	AuthUnknownKey                          // access key not known
	AuthBadSignature                        // signature or scope mismatch
	AuthExpired                             // clock skew beyond 15 minutes
)

// AuthError is what VerifySigV4 returns.
type AuthError struct {
	Failure AuthFailure
	Message string
}

func (e *AuthError) Error() string { return fmt.Sprintf("sigv4: %s", e.Message) }

// jsonAuthError maps an auth failure to what Storage Gateway sends. All are
// HTTP 403 except a malformed header (400), as the JSON services do.
func jsonAuthError(a *AuthError) *Error {
	switch a.Failure {
	case AuthMissing:
		return &Error{Type: TypeMissingAuthToken, Message: "Missing Authentication Token", Status: http.StatusForbidden}
	case AuthUnknownKey:
		return &Error{Type: TypeUnrecognizedClient, Message: "The security token included in the request is invalid.", Status: http.StatusForbidden}
	case AuthIncomplete:
		return &Error{Type: TypeIncompleteSignature, Message: a.Message, Status: http.StatusForbidden}
	default: // AuthBadSignature, AuthExpired
		return &Error{Type: TypeInvalidSignature, Message: a.Message, Status: http.StatusForbidden}
	}
}

// queryAuthError maps an auth failure to what EC2 sends.
func queryAuthError(a *AuthError) *Error {
	switch a.Failure {
	case AuthMissing:
		return NewEC2Error(http.StatusUnauthorized, TypeEC2MissingAuthToken,
			"The request must contain either a valid (registered) AWS access key ID or X.509 certificate.")
	case AuthUnknownKey:
		return NewEC2Error(http.StatusUnauthorized, TypeEC2AuthFailure, "AWS was not able to validate the provided access credentials")
	case AuthIncomplete:
		return NewEC2Error(http.StatusBadRequest, TypeEC2IncompleteSignature, a.Message)
	case AuthExpired:
		return NewEC2Error(http.StatusBadRequest, TypeEC2RequestExpired, "Request has expired.")
	default:
		return NewEC2Error(http.StatusForbidden, TypeEC2SignatureMismatch, a.Message)
	}
}
