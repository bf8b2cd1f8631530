package ebsapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/volume"
)

// BlockSize is the EBS direct APIs' block, which is volgw's.
const BlockSize = volume.BlockSize

// Snapshots is what the read operations need of the engine.
type Snapshots interface {
	OpenSnapshotTree(ctx context.Context, id string) (*volume.SnapshotTree, error)
}

// Config configures a Service. Snapshots is required.
type Config struct {
	Snapshots Snapshots
	// Imports, with NewSnapshotID and Account, serves StartSnapshot,
	// PutSnapshotBlock and CompleteSnapshot; without it they are unknown
	// operations.
	Imports       Imports
	NewSnapshotID func() (string, error) // the control plane's IDs
	Account       string                 // OwnerId
	Logger        *slog.Logger
	Now           func() time.Time
}

// Service is the EBS direct APIs; it implements awsproto.RESTService.
type Service struct {
	cfg Config
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg}
}

// SigningName implements awsproto.RESTService.
func (s *Service) SigningName() string { return "ebs" }

// PathPrefix implements awsproto.RESTService: every EBS route is under
// /snapshots.
func (s *Service) PathPrefix() string { return "/snapshots" }

// MaxBodyBytes implements awsproto.RESTService: a block and room for
// StartSnapshot's JSON (tags, description).
func (s *Service) MaxBodyBytes() int64 { return BlockSize + 64<<10 }

// request is one routed request.
type request struct {
	ctx   context.Context
	w     http.ResponseWriter
	r     *http.Request
	body  []byte
	reqID string
	query url.Values
	// path parameters
	snapshotID string
	blockIndex string
}

type handler func(s *Service, q *request) error

// ServeREST implements awsproto.RESTService.
func (s *Service) ServeREST(ctx context.Context, w http.ResponseWriter, r *http.Request, body []byte) (string, string) {
	q := &request{ctx: ctx, w: w, r: r, body: body, reqID: awsproto.RequestID(ctx), query: r.URL.Query()}
	op, h := s.route(r.Method, r.URL.Path, q)
	if h == nil {
		e := apiError(typeUnknownOperaton, http.StatusNotFound, "", "")
		awsproto.WriteRESTError(w, q.reqID, e)
		return "", e.Type
	}
	err := h(s, q)
	if err == nil {
		return op, ""
	}
	var e *awsproto.RESTError
	if !errors.As(err, &e) {
		s.cfg.Logger.Error("ebs request failed", "operation", op, "request_id", q.reqID, "err", err)
		e = internal()
	}
	awsproto.WriteRESTError(w, q.reqID, e)
	return op, e.Type
}

// route matches the model's request URIs.
func (s *Service) route(method, path string, q *request) (string, handler) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case method == http.MethodGet && len(parts) == 3 && parts[2] == "blocks":
		q.snapshotID = parts[1]
		return "ListSnapshotBlocks", (*Service).listSnapshotBlocks
	case method == http.MethodGet && len(parts) == 4 && parts[2] == "blocks":
		q.snapshotID, q.blockIndex = parts[1], parts[3]
		return "GetSnapshotBlock", (*Service).getSnapshotBlock
	case method == http.MethodGet && len(parts) == 3 && parts[2] == "changedblocks":
		q.snapshotID = parts[1]
		return "ListChangedBlocks", (*Service).listChangedBlocks
	}
	if s.cfg.Imports == nil {
		return "", nil
	}
	switch {
	case method == http.MethodPost && len(parts) == 1:
		return "StartSnapshot", (*Service).startSnapshot
	case method == http.MethodPut && len(parts) == 4 && parts[2] == "blocks":
		q.snapshotID, q.blockIndex = parts[1], parts[3]
		return "PutSnapshotBlock", (*Service).putSnapshotBlock
	case method == http.MethodPost && len(parts) == 3 && parts[1] == "completion":
		q.snapshotID = parts[2]
		return "CompleteSnapshot", (*Service).completeSnapshot
	}
	return "", nil
}

func awsAccessKey(ctx context.Context) string { return awsproto.AccessKeyID(ctx) }

var snapshotIDPattern = regexp.MustCompile(`^snap-[0-9a-f]+$`)

// checkSnapshotID applies the model's SnapshotId constraints.
func checkSnapshotID(id string) error {
	if len(id) < 1 || len(id) > 64 || !snapshotIDPattern.MatchString(id) {
		return validation(reasonInvalidSnapshotID, "The snapshot ID '"+id+"' is not valid.")
	}
	return nil
}

// openTree opens a completed snapshot, in EBS's errors.
func (s *Service) openTree(ctx context.Context, id string) (*volume.SnapshotTree, error) {
	if err := checkSnapshotID(id); err != nil {
		return nil, err
	}
	t, err := s.cfg.Snapshots.OpenSnapshotTree(ctx, id)
	switch {
	case errors.Is(err, control.ErrSnapshotNotFound):
		return nil, snapshotNotFound(id)
	case errors.Is(err, volume.ErrSnapshotNotReadable):
		// EBS reads only completed snapshots.
		return nil, validation(reasonInvalidSnapshotID, "The snapshot '"+id+"' is not in the completed state.")
	case err != nil:
		return nil, err
	}
	return t, nil
}

// intParam parses an optional integer query parameter no smaller than
// min; absent is def.
func intParam(v url.Values, name string, min, def int64) (int64, error) {
	if !v.Has(name) {
		return def, nil
	}
	n, err := strconv.ParseInt(v.Get(name), 10, 32)
	if err != nil || n < min {
		return 0, validation(reasonInvalidParameter, "The value '"+v.Get(name)+"' of the parameter "+name+" is not valid.")
	}
	return n, nil
}

// epochSeconds is a timestamp as REST-JSON sends it in a body: seconds
// since the epoch, with milliseconds.
type epochSeconds time.Time

func (t epochSeconds) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(time.Time(t).UnixMilli())/1000, 'f', -1, 64)), nil
}

func writeJSON(w http.ResponseWriter, reqID string, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h["x-amzn-RequestId"] = []string{reqID}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}

// volumeGiB is a size in bytes as EBS's VolumeSize (GiB, rounded up).
func volumeGiB(b int64) int64 { return (b + 1<<30 - 1) >> 30 }
