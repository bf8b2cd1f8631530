package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/throttle"
)

// storeLimits paces the process's traffic with its object store: control
// sets the rates its bandwidth limits put in force (control.BandwidthLimiter),
// and every object the engine and the catalog's copy send or fetch goes
// through wrap's store.
type storeLimits struct {
	up, down *throttle.Limiter
}

func newStoreLimits() *storeLimits {
	return &storeLimits{up: throttle.NewLimiter(0), down: throttle.NewLimiter(0)}
}

// SetRates implements control.BandwidthLimiter (bits per second, 0: none).
func (l *storeLimits) SetRates(upBits, downBits int64) {
	l.up.SetRate(upBits / 8)
	l.down.SetRate(downBits / 8)
}

func (l *storeLimits) wrap(s blob.Store) blob.Store {
	return throttle.Store{Store: s, Upload: l.up, Download: l.down}
}

// collectors are the limits' metrics: the bytes that went each way and
// the rates in force.
func (l *storeLimits) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "volgw_store_sent_bytes_total",
			Help: "Bytes of objects sent to the object store (blocks, pages, roots, heads, the catalog's copy)."},
			func() float64 { return float64(l.up.Passed()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "volgw_store_received_bytes_total",
			Help: "Bytes of objects fetched from the object store (cold reads, restores, clones)."},
			func() float64 { return float64(l.down.Passed()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "volgw_bandwidth_upload_limit_bits_per_second",
			Help: "The upload rate limit in force (0: none)."},
			func() float64 { return float64(8 * l.up.Rate()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "volgw_bandwidth_download_limit_bits_per_second",
			Help: "The download rate limit in force (0: none)."},
			func() float64 { return float64(8 * l.down.Rate()) }),
	}
}

// runBandwidthSchedule puts the rates of the bandwidth schedule in force
// at the start of every minute (a schedule's intervals are whole minutes),
// until ctx ends.
func runBandwidthSchedule(ctx context.Context, svc *control.Service, log *slog.Logger) {
	for {
		now := time.Now()
		t := time.NewTimer(now.Truncate(time.Minute).Add(time.Minute).Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := svc.ApplyBandwidth(ctx); err != nil && ctx.Err() == nil {
			log.Error("bandwidth schedule", "err", err)
		}
	}
}
