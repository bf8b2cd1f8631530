package awsproto

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
)

// RESTService runs a REST-JSON service (the EBS direct APIs) on the same
// endpoint and credentials as Storage Gateway: requests whose path is
// under one of its prefixes are verified (SigV4, scoped to its signing
// name) and handed to it.
type RESTService interface {
	// SigningName is the SigV4 service name requests must be scoped to
	// ("ebs").
	SigningName() string
	// PathPrefix is the path its requests are under ("/snapshots"): that
	// path and anything below it.
	PathPrefix() string
	// MaxBodyBytes bounds a request's body (a PutSnapshotBlock carries a
	// 512 KiB block).
	MaxBodyBytes() int64
	// ServeREST answers a verified request whose body is body. ctx carries
	// the request ID and access key (RequestID, AccessKeyID). It writes the
	// answer itself (WriteRESTError for errors) and returns the operation
	// and the error type sent ("" on success), for the request record.
	ServeREST(ctx context.Context, w http.ResponseWriter, r *http.Request, body []byte) (operation, errorType string)
}

// RESTError is an error of a REST-JSON service as its model shapes it:
// the exception's type (sent in X-Amzn-ErrorType), its message (the
// body's "message"), the HTTP status, and the exception's other members
// (EBS's "Reason").
type RESTError struct {
	Type    string
	Message string
	Status  int
	Members map[string]string
}

func (e *RESTError) Error() string {
	s := e.Type
	if r := e.Members["Reason"]; r != "" {
		s += " (" + r + ")"
	}
	return s + ": " + e.Message
}

// WriteRESTError writes e as a REST-JSON service does: the type in
// X-Amzn-ErrorType, a JSON body with "message" and the exception's
// members, and the model's HTTP status.
func WriteRESTError(w http.ResponseWriter, requestID string, e *RESTError) {
	body := map[string]string{}
	for k, v := range e.Members {
		body[k] = v
	}
	if e.Message != "" {
		body["message"] = e.Message
	}
	b, _ := json.Marshal(body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h[headerRequestID] = []string{requestID}
	h[headerErrorType] = []string{e.Type}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(statusOr400(e.Status))
	_, _ = w.Write(b)
}

// isREST reports whether r is for the REST service.
func (s *Server) isREST(r *http.Request) bool {
	if s.cfg.REST == nil {
		return false
	}
	p := s.cfg.REST.PathPrefix()
	return r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/")
}

// serveREST verifies a request for the REST service and hands it over.
// The body must be read before the signature is checked; a client that
// signs UNSIGNED-PAYLOAD (the SDKs do for PutSnapshotBlock, whose block
// the model leaves unsigned) is checked by the block's own checksum
// instead, by the service.
func (s *Server) serveREST(w http.ResponseWriter, r *http.Request, rec *RequestRecord, log *slog.Logger) {
	rec.Protocol = "rest-json"
	reqID := RequestID(r.Context())
	fail := func(e *Error) {
		rec.ErrorType = e.Type
		log.Debug("request rejected", "type", e.Type, "err", e)
		WriteRESTError(w, reqID, &RESTError{Type: e.Type, Message: e.Message, Status: e.Status})
	}
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic serving request", "panic", p, "stack", string(debug.Stack()))
			fail(&Error{Type: "InternalServerException", Message: "An internal error has occurred", Status: http.StatusInternalServerError})
		}
	}()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.REST.MaxBodyBytes()))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(&Error{Type: TypeRequestEntityTooLarge, Message: "Request body is larger than " +
				strconv.FormatInt(s.cfg.REST.MaxBodyBytes(), 10) + " bytes", Status: http.StatusRequestEntityTooLarge})
			return
		}
		fail(NewSerializationError(""))
		return
	}
	accessKey, err := VerifySigV4(r, body, s.cfg.Credentials, SigV4Expect{Region: s.cfg.Region, Service: s.cfg.REST.SigningName(), Now: s.cfg.Now()})
	if err != nil {
		var ae *AuthError
		if !errors.As(err, &ae) {
			log.Error("signature check failed unexpectedly", "err", err)
			ae = &AuthError{Failure: AuthBadSignature, Message: "The request signature we calculated does not match the " +
				"signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}
		}
		fail(jsonAuthError(ae))
		return
	}
	ctx := context.WithValue(r.Context(), accessKeyKey, accessKey)
	rec.Operation, rec.ErrorType = s.cfg.REST.ServeREST(ctx, w, r.WithContext(ctx), body)
}
