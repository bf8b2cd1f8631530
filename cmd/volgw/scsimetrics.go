package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/volgw/volgw/internal/scsi"
)

// timedUnit is a volume's SCSI device with its commands timed for
// /metrics, by class of opcode. Embedding keeps every method of the
// device (Reset, NexusLost) for the LUN table.
type timedUnit struct {
	*scsi.Device
	latency *prometheus.HistogramVec
}

// Execute implements scsi.LogicalUnit.
func (u timedUnit) Execute(ctx context.Context, cmd *scsi.Command) scsi.Response {
	began := time.Now()
	r := u.Device.Execute(ctx, cmd)
	u.latency.WithLabelValues(opcodeClass(cmd.CDB)).Observe(time.Since(began).Seconds())
	return r
}

// opcodeClass sorts a CDB into the classes an operator watches: reads,
// writes (WRITE, WRITE AND VERIFY, WRITE SAME, COMPARE AND WRITE), flushes
// (SYNCHRONIZE CACHE), unmaps, and everything else.
func opcodeClass(cdb []byte) string {
	if len(cdb) == 0 {
		return "other"
	}
	switch cdb[0] {
	case 0x08, 0x28, 0xa8, 0x88:
		return "read"
	case 0x0a, 0x2a, 0xaa, 0x8a, 0x2e, 0x8e, 0x41, 0x93, 0x89:
		return "write"
	case 0x35, 0x91:
		return "flush"
	case 0x42:
		return "unmap"
	}
	return "other"
}

func newCommandLatency() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "volgw_scsi_command_duration_seconds",
		Help:    "Time to execute a SCSI command of a volume's LUN, from the target's dispatch to its response, by class (read, write, flush, unmap, other).",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18)}, []string{"class"})
}

// collectors are the iSCSI target's metrics: command latency and the
// sessions logged in to the volumes' targets.
func (e *iscsiExporter) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		e.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "volgw_iscsi_sessions",
			Help: "iSCSI sessions logged in to the volumes' targets."},
			func() float64 {
				e.mu.Lock()
				defer e.mu.Unlock()
				n := 0
				for iqn := range e.exported {
					n += len(e.srv.Initiators(iqn))
				}
				return float64(n)
			}),
	}
}
