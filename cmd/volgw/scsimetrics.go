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
	// by class, in opClasses' order: looked up once, not per command
	latency [len(opClasses)]prometheus.Observer
}

func newTimedUnit(dev *scsi.Device, latency *prometheus.HistogramVec) timedUnit {
	u := timedUnit{Device: dev}
	for i, c := range opClasses {
		u.latency[i] = latency.WithLabelValues(c)
	}
	return u
}

// Execute implements scsi.LogicalUnit.
func (u timedUnit) Execute(ctx context.Context, cmd *scsi.Command) scsi.Response {
	began := time.Now()
	r := u.Device.Execute(ctx, cmd)
	u.latency[opcodeClass(cmd.CDB)].Observe(time.Since(began).Seconds())
	return r
}

// opClasses are the classes of opcode an operator watches: reads, writes
// (WRITE, WRITE AND VERIFY, WRITE SAME, COMPARE AND WRITE), flushes
// (SYNCHRONIZE CACHE), unmaps, and everything else.
var opClasses = [...]string{"read", "write", "flush", "unmap", "other"}

// opcodeClass is the index in opClasses of a CDB's class.
func opcodeClass(cdb []byte) int {
	if len(cdb) > 0 {
		switch cdb[0] {
		case 0x08, 0x28, 0xa8, 0x88:
			return 0
		case 0x0a, 0x2a, 0xaa, 0x8a, 0x2e, 0x8e, 0x41, 0x93, 0x89:
			return 1
		case 0x35, 0x91:
			return 2
		case 0x42:
			return 3
		}
	}
	return 4
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
