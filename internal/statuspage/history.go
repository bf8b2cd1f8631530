package statuspage

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Sample is one volume's recovery-point lag at one instant.
type Sample struct {
	Time time.Time     `json:"time"`
	Lag  time.Duration `json:"lag"`
}

// History keeps each volume's recovery-point lag over the last Window,
// one sample every Interval, in a ring of fixed size per volume: memory is
// bounded by the number of volumes (an hour at 10 s is 360 samples, under
// 9 KiB a volume). A volume no longer listed is forgotten at the next
// sample. Nothing is written to disk: after a restart the chart starts
// empty.
type History struct {
	Interval time.Duration
	Window   time.Duration

	mu    sync.Mutex
	rings map[string]*ring // by volume ARN
}

// NewHistory keeps window of samples taken every interval.
func NewHistory(interval, window time.Duration) *History {
	return &History{Interval: interval, Window: window, rings: map[string]*ring{}}
}

type ring struct {
	samples []Sample
	next    int // where the next sample goes once full
}

func (h *History) size() int { return max(int(h.Window/h.Interval), 1) }

// record adds a sample for every volume in lags (by ARN) and forgets the
// volumes not in it.
func (h *History) record(now time.Time, lags map[string]time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for arn := range h.rings {
		if _, ok := lags[arn]; !ok {
			delete(h.rings, arn)
		}
	}
	for arn, lag := range lags {
		r := h.rings[arn]
		if r == nil {
			r = &ring{samples: make([]Sample, 0, h.size())}
			h.rings[arn] = r
		}
		s := Sample{Time: now, Lag: lag}
		if len(r.samples) < cap(r.samples) {
			r.samples = append(r.samples, s)
			continue
		}
		r.samples[r.next] = s
		r.next = (r.next + 1) % len(r.samples)
	}
}

// Lags returns the volume's samples, oldest first.
func (h *History) Lags(volumeARN string) []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rings[volumeARN]
	if r == nil {
		return nil
	}
	out := make([]Sample, 0, len(r.samples))
	out = append(out, r.samples[r.next:]...)
	return append(out, r.samples[:r.next]...)
}

// Run samples src every Interval until ctx ends. A failed sample (the
// catalog busy, a gateway shutting down) is logged and the next one tried.
func (h *History) Run(ctx context.Context, src Source, log *slog.Logger) {
	t := time.NewTicker(h.Interval)
	defer t.Stop()
	for {
		if err := h.sample(ctx, src, time.Now()); err != nil && ctx.Err() == nil {
			log.Warn("statuspage: sampling recovery points failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *History) sample(ctx context.Context, src Source, now time.Time) error {
	gws, err := listGateways(ctx, src)
	if err != nil {
		return err
	}
	lags := map[string]time.Duration{}
	for _, g := range gws {
		points, err := recoveryPoints(ctx, src, g.GatewayARN)
		if err != nil {
			// A gateway that is shut down has no recovery points to ask.
			continue
		}
		for arn, t := range points {
			lags[arn] = max(now.Sub(t), 0)
		}
	}
	h.record(now, lags)
	return nil
}
