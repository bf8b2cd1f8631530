package cdpapi

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/control"
)

//go:embed model/volgw-recoverypoints/2026-11-24/service-2.json
var modelJSON []byte

// LoadModel returns the service's model, with Storage Gateway's limit on
// Tags (50), which the model does not state.
func LoadModel() (*awsproto.Model, error) {
	return awsproto.LoadModel(modelJSON, awsproto.WithListMax("Tags", 50))
}

// API implements awsproto.JSONService over a control.Service.
type API struct {
	svc *control.Service
}

// New returns the API of svc.
func New(svc *control.Service) *API { return &API{svc: svc} }

// Extension is the API as awsproto mounts it beside Storage Gateway.
func Extension(svc *control.Service) (awsproto.JSONExtension, error) {
	m, err := LoadModel()
	if err != nil {
		return awsproto.JSONExtension{}, err
	}
	return awsproto.JSONExtension{Model: m, Service: New(svc)}, nil
}

// Invoke runs op; awsproto has checked that op is in the model and that
// input satisfies it.
func (a *API) Invoke(ctx context.Context, op string, input []byte) (any, error) {
	var out any
	var err error
	switch op {
	case "ListRetainedRecoveryPoints":
		var in listInput
		if err = decode(input, &in); err == nil {
			out, err = a.list(ctx, in)
		}
	case "CreateSnapshotFromRetainedRecoveryPoint":
		var in createInput
		if err = decode(input, &in); err == nil {
			out, err = a.create(ctx, in)
		}
	default:
		return nil, awsproto.ErrNotSupported()
	}
	if err != nil {
		return nil, apiError(err)
	}
	return out, nil
}

func decode(input []byte, v any) error {
	if err := json.Unmarshal(input, v); err != nil {
		// Only values that fit the model but not Go reach here; the text
		// names Go types and goes to the log, not the client.
		e := awsproto.NewSerializationError("")
		e.Err = fmt.Errorf("decode input: %w", err)
		return e
	}
	return nil
}

// apiError: control-plane errors are InvalidGatewayRequestException with
// their errorCode, as sgwapi answers them; anything else is internal.
func apiError(err error) error {
	var ce *control.Error
	if errors.As(err, &ce) {
		e := awsproto.NewGatewayError(ce.Code, ce.Message)
		e.Err = err
		return e
	}
	var ae *awsproto.Error
	if errors.As(err, &ae) {
		return err
	}
	return err // awsproto answers InternalServerError and logs it
}

type listInput struct {
	VolumeARN string `json:"VolumeARN"`
}

type point struct {
	RecoveryPointTime  epoch  `json:"RecoveryPointTime"`
	Sequence           uint64 `json:"Sequence"`
	VolumeSizeInBytes  int64  `json:"VolumeSizeInBytes"`
	VolumeUsageInBytes int64  `json:"VolumeUsageInBytes"`
	Current            bool   `json:"Current"`
}

type listOutput struct {
	VolumeARN              string  `json:"VolumeARN"`
	RetainedRecoveryPoints []point `json:"RetainedRecoveryPoints"`
}

func (a *API) list(ctx context.Context, in listInput) (any, error) {
	pts, err := a.svc.ListRetainedRecoveryPoints(ctx, in.VolumeARN)
	if err != nil {
		return nil, err
	}
	out := listOutput{VolumeARN: in.VolumeARN, RetainedRecoveryPoints: make([]point, 0, len(pts))}
	for _, p := range pts {
		out.RetainedRecoveryPoints = append(out.RetainedRecoveryPoints, point{RecoveryPointTime: epoch(p.Time), Sequence: p.Seq,
			VolumeSizeInBytes: p.SizeBytes, VolumeUsageInBytes: p.UsageBytes, Current: p.Current})
	}
	return out, nil
}

type tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type createInput struct {
	VolumeARN           string       `json:"VolumeARN"`
	RecoveryPointTime   *json.Number `json:"RecoveryPointTime"`
	Sequence            *uint64      `json:"Sequence"`
	SnapshotDescription string       `json:"SnapshotDescription"`
	Tags                []tag        `json:"Tags"`
}

type createOutput struct {
	SnapshotId              string `json:"SnapshotId"` //nolint:revive // the model's name
	VolumeARN               string `json:"VolumeARN"`
	VolumeRecoveryPointTime string `json:"VolumeRecoveryPointTime"`
	Sequence                uint64 `json:"Sequence"`
}

// errPointChoice: exactly one of the two ways to name a point.
var errPointChoice = &control.Error{Code: control.CodeInvalidParameters, Message: "Give exactly one of RecoveryPointTime and Sequence."}

func (a *API) create(ctx context.Context, in createInput) (any, error) {
	if (in.RecoveryPointTime == nil) == (in.Sequence == nil) {
		return nil, errPointChoice
	}
	req := control.RetainedSnapshotInput{SnapshotInput: control.SnapshotInput{VolumeARN: in.VolumeARN, SnapshotDescription: in.SnapshotDescription}}
	for _, t := range in.Tags {
		req.Tags = append(req.Tags, control.Tag{Key: t.Key, Value: t.Value})
	}
	if in.Sequence != nil {
		req.Seq, req.BySeq = *in.Sequence, true
	} else {
		t, err := parseEpoch(string(*in.RecoveryPointTime))
		if err != nil {
			return nil, &control.Error{Code: control.CodeInvalidParameters, Message: "RecoveryPointTime is not a time.", Err: err}
		}
		req.At = t
	}
	snap, pt, err := a.svc.CreateSnapshotFromRetainedRecoveryPoint(ctx, req)
	if err != nil {
		return nil, err
	}
	return createOutput{SnapshotId: snap.ID, VolumeARN: snap.VolumeARN, VolumeRecoveryPointTime: control.FormatRecoveryPointTime(snap.RecoveryPointTime), Sequence: pt.Seq}, nil
}

// epoch is a modelled timestamp: epoch seconds, here with microseconds,
// rounded up so that a listed time given back names the same point (the
// volume is in a point's state from its cut until the next, always more
// than a microsecond later).
type epoch time.Time

func (t epoch) MarshalJSON() ([]byte, error) {
	us := (time.Time(t).UnixNano() + 999) / 1000
	return []byte(strconv.FormatFloat(float64(us)/1e6, 'f', 6, 64)), nil
}

// parseEpoch reads epoch seconds exactly (no float rounding): a listed
// point's time sent back must not fall before the point.
func parseEpoch(s string) (time.Time, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return time.Time{}, fmt.Errorf("cdpapi: bad epoch %q", s)
	}
	ns := new(big.Rat).Mul(r, big.NewRat(1e9, 1))
	q := new(big.Int).Quo(ns.Num(), ns.Denom()) // toward zero; epochs here are positive
	if !q.IsInt64() {
		return time.Time{}, fmt.Errorf("cdpapi: epoch %q out of range", s)
	}
	return time.Unix(0, q.Int64()).UTC(), nil
}
