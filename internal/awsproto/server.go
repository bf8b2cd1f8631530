package awsproto

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// JSONService runs the operations of a JSON 1.1 service (Storage Gateway).
// sgwapi implements it.
type JSONService interface {
	// Invoke runs one operation of the model. input is the request body,
	// already verified (SigV4) and validated against the model, with every
	// member the model does not define removed (Model.Decode), so the
	// service decodes it into its own types and checks only meaning.
	// output is encoded with encoding/json (nil → "{}"). err is an *Error
	// (possibly wrapped) for an API error; any other error is logged and
	// answered as InternalServerError. Invoke may panic only by bug; the
	// server recovers and answers InternalServerError.
	Invoke(ctx context.Context, op string, input []byte) (output any, err error)
}

// QueryService runs the actions of an EC2 query-protocol service. ec2api
// implements it.
type QueryService interface {
	// Actions lists the actions the service implements; any other
	// Action=… answers InvalidAction.
	Actions() []string
	// Invoke runs one action. output is encoded with encoding/xml inside
	// <{Action}Response xmlns="…"><requestId>…</requestId>…: its fields
	// carry EC2's element names (`xml:"snapshotSet>item"`). err as for
	// JSONService, with EC2's codes (NewEC2Error).
	Invoke(ctx context.Context, action string, params QueryParams) (output any, err error)
}

// ActivationKeyIssuer answers the appliance's activation request: the
// control plane issues a key that ActivateGateway later accepts.
type ActivationKeyIssuer interface {
	// IssueActivationKey returns a key for ActivateGateway in region as
	// gatewayType; an *ActivationRefusedError when the appliance cannot be
	// activated so (its Reason is shown to the user); an error wrapping
	// ErrApplianceActivated once the appliance is activated (the page is
	// then gone); any other error is a fault, logged and not shown.
	IssueActivationKey(ctx context.Context, region, gatewayType string) (string, error)
}

// ActivationRefusedError is an activation request for a region or gateway
// type this appliance cannot be activated in or as.
type ActivationRefusedError struct {
	Reason string // plain text for the person at the browser or curl
}

func (e *ActivationRefusedError) Error() string { return "activation refused: " + e.Reason }

// ErrApplianceActivated is what an ActivationKeyIssuer returns once the
// appliance is activated: an activated appliance no longer serves its
// activation page.
var ErrApplianceActivated = errors.New("awsproto: the appliance is activated")

// ServerConfig configures a Server. Storage, StorageModel, Credentials and
// Region are required; the rest are optional.
type ServerConfig struct {
	Region      string
	Credentials CredentialStore

	Storage      JSONService
	StorageModel *Model // validates Storage's input; lists its operations
	EC2          QueryService
	Activation   ActivationKeyIssuer
	// Metrics, when set, is served at GET /metrics without a signature
	// (a Prometheus scraper does not sign).
	Metrics http.Handler

	// Extensions are further JSON 1.1 services on the endpoint, each chosen
	// by its model's X-Amz-Target prefix and signed for Storage Gateway
	// (volgw's own operations: cdpapi).
	Extensions []JSONExtension

	// Observe, when set, is called once per API request after the answer
	// is written (not for /metrics); main counts requests with it.
	Observe func(RequestRecord)

	Logger       *slog.Logger
	Now          func() time.Time // the clock SigV4 skew is checked against
	MaxBodyBytes int64            // default 1 MiB
	// NewRequestID generates request IDs; default 52 random base-32 chars
	// like Storage Gateway's for JSON requests, a random UUID like EC2's
	// for query requests.
	NewRequestID func(queryProtocol bool) string

	// REST, when set, serves the REST-JSON service whose paths it names
	// (the EBS direct APIs; rest.go).
	REST RESTService
}

// JSONExtension is a JSON 1.1 service beside Storage Gateway: requests whose
// X-Amz-Target starts with Model.Metadata.TargetPrefix and a dot go to
// Service, validated by Model.
type JSONExtension struct {
	Model   *Model
	Service JSONService
}

// RequestRecord describes one answered request.
type RequestRecord struct {
	Protocol  string // "json", "query" or "activation"
	Operation string // Storage Gateway operation or EC2 action; "" when unknown
	Status    int    // HTTP status sent
	ErrorType string // __type / EC2 code of an error answer, else ""
	Duration  time.Duration
}

// Server is the API endpoint: one http.Handler for Storage Gateway (JSON
// 1.1), EC2 (query) and the appliance activation page.
type Server struct {
	cfg       ServerConfig
	ec2Action map[string]bool
}

// Target prefixes accepted in X-Amz-Target: the model's, and the one the
// seed pages' sample requests show.
var targetPrefixes = []string{"StorageGateway_20130630.", "StorageGateway_20120630."}

// NewServer checks cfg and returns the handler.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Storage == nil || cfg.StorageModel == nil || cfg.Credentials == nil || cfg.Region == "" {
		return nil, errors.New("awsproto: ServerConfig needs Storage, StorageModel, Credentials and Region")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.NewRequestID == nil {
		cfg.NewRequestID = newRequestID
	}
	s := &Server{cfg: cfg, ec2Action: map[string]bool{}}
	if cfg.EC2 != nil {
		for _, a := range cfg.EC2.Actions() {
			s.ec2Action[a] = true
		}
	}
	return s, nil
}

type ctxKey int

const (
	requestIDKey ctxKey = iota
	accessKeyKey
)

// RequestID returns the ID of the request ctx belongs to ("" outside one).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// AccessKeyID returns the access key that signed the request ("" outside
// one).
func AccessKeyID(ctx context.Context) string {
	id, _ := ctx.Value(accessKeyKey).(string)
	return id
}

// protocol is how a request is to be answered.
type protocol int

const (
	protoJSON protocol = iota
	protoQuery
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/metrics" && s.cfg.Metrics != nil {
		s.cfg.Metrics.ServeHTTP(w, r)
		return
	}
	isQuery := r.Header.Get("X-Amz-Target") == "" && s.cfg.EC2 != nil && (isForm(r) || r.URL.Query().Has("Action"))
	isREST := s.isREST(r)
	reqID := s.cfg.NewRequestID(isQuery || isREST) // EBS's request IDs are UUIDs too
	ctx := context.WithValue(r.Context(), requestIDKey, reqID)
	r = r.WithContext(ctx)
	log := s.cfg.Logger.With("request_id", reqID)
	began := time.Now()
	rec := &RequestRecord{Protocol: "json"}
	sw := &statusWriter{ResponseWriter: w}
	w = sw
	defer func() {
		rec.Status, rec.Duration = sw.status, time.Since(began)
		log.Debug("request", "protocol", rec.Protocol, "operation", rec.Operation, "status", rec.Status,
			"error", rec.ErrorType, "duration", rec.Duration)
		if s.cfg.Observe != nil {
			s.cfg.Observe(*rec)
		}
	}()
	if isREST {
		s.serveREST(w, r, rec, log)
		return
	}

	if r.Method == http.MethodGet && r.URL.Query().Has("activationRegion") && r.Header.Get("Authorization") == "" {
		if s.serveActivation(w, r, log) {
			rec.Protocol = "activation"
			return
		}
		// Activated: no page any more; the request is answered as any
		// other unsigned request to the API.
	}

	proto := protoJSON
	if isQuery {
		proto = protoQuery
		rec.Protocol = "query"
	}
	fail := func(e *Error) {
		rec.ErrorType = e.Type
		if e.Status >= 500 || e.Type == TypeInternalServerError {
			log.Error("request failed", "type", e.Type, "err", e)
		} else {
			log.Debug("request rejected", "type", e.Type, "err", e)
		}
		if proto == protoQuery {
			WriteQueryError(w, reqID, e)
		} else {
			WriteJSONError(w, reqID, e)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic serving request", "panic", p, "stack", string(debug.Stack()))
			if proto == protoQuery {
				fail(NewEC2Error(http.StatusInternalServerError, TypeEC2InternalError, "An internal error has occurred"))
			} else {
				fail(NewInternalServerError(fmt.Errorf("panic: %v", p)))
			}
		}
	}()

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(&Error{Type: TypeRequestEntityTooLarge, Message: "Request body is larger than " +
				strconv.FormatInt(s.cfg.MaxBodyBytes, 10) + " bytes", Status: http.StatusRequestEntityTooLarge})
			return
		}
		fail(NewSerializationError(""))
		return
	}

	service := "storagegateway"
	if proto == protoQuery {
		service = "ec2"
	}
	accessKey, err := VerifySigV4(r, body, s.cfg.Credentials, SigV4Expect{Region: s.cfg.Region, Service: service, Now: s.cfg.Now()})
	if err != nil {
		var ae *AuthError
		if !errors.As(err, &ae) {
			// Not one of VerifySigV4's answers: refuse the signature in
			// AWS's words; the error's own text is for the log only.
			log.Error("signature check failed unexpectedly", "err", err)
			ae = &AuthError{Failure: AuthBadSignature, Message: "The request signature we calculated does not match the " +
				"signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}
		}
		if proto == protoQuery {
			fail(queryAuthError(ae))
		} else {
			fail(jsonAuthError(ae))
		}
		return
	}
	ctx = context.WithValue(ctx, accessKeyKey, accessKey)
	// Only signed requests learn that a method or path is wrong.
	if r.Method != http.MethodPost && !(proto == protoQuery && r.Method == http.MethodGet) {
		fail(&Error{Type: TypeUnknownOperation, Status: http.StatusNotFound})
		return
	}

	if proto == protoQuery {
		s.serveQuery(ctx, w, r, body, reqID, rec, fail)
		return
	}
	s.serveJSON(ctx, w, r, body, reqID, rec, fail)
}

func (s *Server) serveJSON(ctx context.Context, w http.ResponseWriter, r *http.Request, body []byte, reqID string, rec *RequestRecord, fail func(*Error)) {
	model, svc := s.cfg.StorageModel, s.cfg.Storage
	op, ok := operationFromTarget(r.Header.Get("X-Amz-Target"))
	for _, x := range s.cfg.Extensions {
		if xop, found := strings.CutPrefix(r.Header.Get("X-Amz-Target"), x.Model.Metadata.TargetPrefix+"."); found && !ok {
			model, svc, op, ok = x.Model, x.Service, xop, xop != ""
		}
	}
	if ok && model.HasOperation(op) {
		rec.Operation = op
	}
	if !ok || !model.HasOperation(op) {
		fail(&Error{Type: TypeUnknownOperation, Status: http.StatusBadRequest})
		return
	}
	// The service gets the validated input, with only the model's members.
	input, err := model.Decode(op, body)
	if err != nil {
		fail(toAPIError(err, NewInternalServerError))
		return
	}
	out, err := svc.Invoke(ctx, op, input)
	if err != nil {
		fail(toAPIError(err, NewInternalServerError))
		return
	}
	b := []byte("{}")
	if out != nil {
		if b, err = json.Marshal(out); err != nil {
			fail(NewInternalServerError(fmt.Errorf("encode %s output: %w", op, err)))
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h[headerRequestID] = []string{reqID}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (s *Server) serveQuery(ctx context.Context, w http.ResponseWriter, r *http.Request, body []byte, reqID string, rec *RequestRecord, fail func(*Error)) {
	params := QueryParams(r.URL.Query())
	if isForm(r) {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			fail(NewEC2Error(http.StatusBadRequest, "MalformedQueryString", "The query string is malformed"))
			return
		}
		for k, vs := range form {
			params[k] = append(params[k], vs...)
		}
	}
	// EC2 parameters are UTF-8 text. A byte that is not would otherwise
	// reach a filter or an ID as U+FFFD, matching what was not asked for.
	for k, vs := range params {
		if !utf8.ValidString(k) || slices.ContainsFunc(vs, func(v string) bool { return !utf8.ValidString(v) }) {
			fail(NewEC2Error(http.StatusBadRequest, "MalformedQueryString", "The query string is malformed"))
			return
		}
	}
	action := params.Get("Action")
	if action == "" {
		fail(NewEC2Error(http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action"))
		return
	}
	if s.ec2Action[action] {
		rec.Operation = action
	}
	if !s.ec2Action[action] {
		fail(NewEC2Error(http.StatusBadRequest, TypeInvalidAction, "The action "+action+" is not valid for this web service."))
		return
	}
	out, err := s.cfg.EC2.Invoke(ctx, action, params)
	if err != nil {
		fail(toAPIError(err, func(cause error) *Error {
			e := NewEC2Error(http.StatusInternalServerError, TypeEC2InternalError, "An internal error has occurred")
			e.Err = cause
			return e
		}))
		return
	}
	b, err := EncodeQueryResponse(action, reqID, out)
	if err != nil {
		fail(NewEC2Error(http.StatusInternalServerError, TypeEC2InternalError, "An internal error has occurred"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/xml;charset=UTF-8")
	h[headerRequestID] = []string{reqID}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// serveActivation is the appliance's local web page: the activation
// request is unsigned (it comes from a browser or curl on the LAN) and
// answers 302 with the key in the Location's query, as a real appliance
// redirects to the console. A request for a region or gateway type the
// appliance cannot be activated in or as is refused with a plain-text 400
// saying why. Once the appliance is activated there is no page: it
// reports false and the request is served as an API request. Nothing
// internal (Go errors, package names) reaches the answer.
func (s *Server) serveActivation(w http.ResponseWriter, r *http.Request, log *slog.Logger) (served bool) {
	q := r.URL.Query()
	region := q.Get("activationRegion")
	gatewayType := q.Get("gatewayType")
	if gatewayType == "" {
		gatewayType = "CACHED"
	}
	if s.cfg.Activation == nil {
		return false
	}
	key, err := s.cfg.Activation.IssueActivationKey(r.Context(), region, gatewayType)
	var refused *ActivationRefusedError
	switch {
	case errors.Is(err, ErrApplianceActivated):
		return false
	case errors.As(err, &refused):
		log.Info("activation refused", "region", region, "gateway_type", gatewayType, "reason", refused.Reason)
		plainText(w, http.StatusBadRequest, refused.Reason)
		return true
	case err != nil:
		log.Error("activation key not issued", "region", region, "gateway_type", gatewayType, "err", err)
		plainText(w, http.StatusInternalServerError, "The activation key could not be issued. Try again later.")
		return true
	}
	loc := url.Values{}
	loc.Set("activationKey", key)
	loc.Set("activationRegion", region)
	loc.Set("gatewayType", gatewayType)
	w.Header().Set("Location", "https://console.aws.amazon.com/storagegateway/home?"+loc.Encode())
	w.WriteHeader(http.StatusFound)
	return true
}

func plainText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text+"\n")
}

func operationFromTarget(target string) (string, bool) {
	for _, p := range targetPrefixes {
		if op, ok := strings.CutPrefix(target, p); ok && op != "" {
			return op, true
		}
	}
	return "", false
}

func isForm(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// toAPIError returns err's *Error or, for anything unexpected, the
// protocol's internal error wrapping it.
func toAPIError(err error, internal func(error) *Error) *Error {
	if e := asAPIError(err); e != nil {
		return e
	}
	return internal(err)
}

// newRequestID returns 52 random lower-case base-32 characters, the form
// of Storage Gateway's x-amzn-RequestId, or for EC2 a random (version 4)
// UUID, the form of EC2's RequestID.
func newRequestID(queryProtocol bool) string {
	if queryProtocol {
		var u [16]byte
		_, _ = rand.Read(u[:])
		u[6] = u[6]&0x0f | 0x40
		u[8] = u[8]&0x3f | 0x80
		h := hex.EncodeToString(u[:])
		return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	}
	const alphabet = "0123456789abcdefghijklmnopqrstuv"
	var b [52]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	return string(b[:])
}

// statusWriter remembers the status sent, for the request record.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
