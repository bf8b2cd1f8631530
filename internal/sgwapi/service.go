package sgwapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/control"
)

// handler runs one operation on its raw (validated) JSON input.
type handler func(ctx context.Context, input []byte) (any, error)

// API implements awsproto.JSONService over a control.Service, and
// awsproto.ActivationKeyIssuer (activation.go).
type API struct {
	svc      *control.Service
	handlers map[string]handler
	// unsupported answers the operations of the model that volgw does not
	// implement (unsupported.go).
	unsupported map[string]handler
}

// New returns the API of svc.
func New(svc *control.Service) *API {
	a := &API{svc: svc, handlers: handlers(svc), unsupported: map[string]handler{}}
	a.handlers["ResetCache"] = resetCache(svc)
	a.handlers["DescribeBandwidthRateLimit"] = describeBandwidthRateLimit(svc)
	a.handlers["UpdateBandwidthRateLimit"] = updateBandwidthRateLimit(svc)
	a.handlers["DeleteBandwidthRateLimit"] = deleteBandwidthRateLimit(svc)
	a.handlers["DescribeBandwidthRateLimitSchedule"] = describeBandwidthRateLimitSchedule(svc)
	a.handlers["UpdateBandwidthRateLimitSchedule"] = updateBandwidthRateLimitSchedule(svc)
	a.handlers["DescribeMaintenanceStartTime"] = describeMaintenanceStartTime(svc)
	a.handlers["UpdateMaintenanceStartTime"] = updateMaintenanceStartTime(svc)
	for op, u := range unsupportedOps {
		a.unsupported[op] = unsupportedHandler(svc, u)
	}
	return a
}

// Implemented lists the operations that do something (the rest answer
// "not valid for the specified gateway" or NotSupported, unsupported.go).
func (a *API) Implemented() []string {
	out := make([]string, 0, len(a.handlers))
	for op := range a.handlers {
		out = append(out, op)
	}
	return out
}

// Invoke runs op. awsproto has checked that op is in the model and that
// input satisfies it.
func (a *API) Invoke(ctx context.Context, op string, input []byte) (any, error) {
	h, ok := a.handlers[op]
	if !ok {
		h, ok = a.unsupported[op]
	}
	if !ok {
		return nil, awsproto.ErrNotSupported()
	}
	out, err := h(ctx, input)
	if err != nil {
		return nil, apiError(err)
	}
	return out, nil
}

// apiError is the one place control-plane errors become API errors.
func apiError(err error) error {
	var ce *control.Error
	if errors.As(err, &ce) {
		e := awsproto.NewGatewayError(ce.Code, ce.Message)
		e.Err = err
		return e
	}
	return err // awsproto answers InternalServerError and logs it
}

// op adapts a typed operation to a handler: decode, call, return.
func op[In any](fn func(context.Context, In) (any, error)) handler {
	return func(ctx context.Context, input []byte) (any, error) {
		var in In
		if err := json.Unmarshal(input, &in); err != nil {
			// awsproto validated the types; this is only reachable with
			// values that fit the model but not Go. encoding/json's text
			// names Go types and fields: it goes to the log (Err), not to
			// the client.
			e := awsproto.NewSerializationError("")
			e.Err = fmt.Errorf("decode input: %w", err)
			return nil, e
		}
		return fn(ctx, in)
	}
}

// epoch is a modelled timestamp: JSON 1.1 sends it as epoch seconds.
type epoch time.Time

func (t epoch) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return []byte(strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)), nil
}

func epochPtr(t time.Time) *epoch {
	if t.IsZero() {
		return nil
	}
	e := epoch(t)
	return &e
}

// Tag is the model's Tag.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

func toControlTags(tags []Tag) []control.Tag {
	out := make([]control.Tag, 0, len(tags))
	for _, t := range tags {
		out = append(out, control.Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

func fromControlTags(tags []control.Tag) []Tag {
	out := make([]Tag, 0, len(tags))
	for _, t := range tags {
		out = append(out, Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func intOf(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}
