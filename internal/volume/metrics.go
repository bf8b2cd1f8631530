package volume

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/volgw/volgw/internal/control"
)

// Collector returns the engine's Prometheus metrics. Every value is read
// when scraped from counts the engine keeps anyway: a scrape walks the open
// volumes (a lock each) and nothing else.
func (e *Engine) Collector() prometheus.Collector { return engineCollector{e} }

var (
	descUploadBufferDamage = prometheus.NewDesc("volgw_volume_upload_buffer_damage_total",
		"Volumes found at engine start whose upload buffer did not hold what they needed, by the status they were given (IRRECOVERABLE: flushed writes lost; PASS THROUGH: writes may be lost).",
		[]string{"status"}, nil)
	descVolumes = prometheus.NewDesc("volgw_volumes",
		"Open volumes by status (AVAILABLE, BOOTSTRAPPING, RESTORING, PASS THROUGH, IRRECOVERABLE).",
		[]string{"status"}, nil)
	descBufferUsed = prometheus.NewDesc("volgw_upload_buffer_used_bytes",
		"Upload-buffer (journal) bytes holding records not yet in a published recovery point.", nil, nil)
	descBufferCapacity = prometheus.NewDesc("volgw_upload_buffer_capacity_bytes",
		"Upload-buffer (journal) capacity.", nil, nil)
	descRecoveryAge = prometheus.NewDesc("volgw_volume_recovery_point_age_seconds",
		"How old each volume's recovery point is: every write made before it is in the object store.", []string{"volume"}, nil)
	descDirtyBlocks = prometheus.NewDesc("volgw_volume_unpublished_blocks",
		"512 KiB blocks of each volume written since its recovery point (dirty, or in the cut being uploaded).", []string{"volume"}, nil)
	descFenced = prometheus.NewDesc("volgw_volume_fenced",
		"1 for a volume fenced because another writer published it (its writes are refused), else 0.", []string{"volume"}, nil)
)

type engineCollector struct{ e *Engine }

func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUploadBufferDamage
	ch <- descVolumes
	ch <- descBufferUsed
	ch <- descBufferCapacity
	ch <- descRecoveryAge
	ch <- descDirtyBlocks
	ch <- descFenced
	c.e.cutSeconds.Describe(ch)
	c.e.syncSeconds.Describe(ch)
	describeMaintenance(ch)
}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	ch <- prometheus.MustNewConstMetric(descUploadBufferDamage, prometheus.CounterValue, float64(e.lostIrrecoverable.Load()), control.VolumeIrrecoverable)
	ch <- prometheus.MustNewConstMetric(descUploadBufferDamage, prometheus.CounterValue, float64(e.lostPassThrough.Load()), control.VolumePassThrough)
	counts := map[string]int{control.VolumeAvailable: 0, control.VolumeBootstrapping: 0, control.VolumeRestoring: 0,
		control.VolumePassThrough: 0, control.VolumeIrrecoverable: 0}
	if !e.isClosed.Load() {
		now := e.now()
		for _, v := range e.volumes() {
			if st, err := e.VolumeStatus(context.Background(), v.id); err == nil {
				counts[st.Status]++
			}
			if rp, err := e.RecoveryPoint(context.Background(), v.id); err == nil {
				ch <- prometheus.MustNewConstMetric(descRecoveryAge, prometheus.GaugeValue, now.Sub(rp.Time).Seconds(), v.id)
			}
			v.mu.Lock()
			blocks, fenced := len(v.dirty)+len(v.frozen), v.fenced != nil
			v.mu.Unlock()
			ch <- prometheus.MustNewConstMetric(descDirtyBlocks, prometheus.GaugeValue, float64(blocks), v.id)
			ch <- prometheus.MustNewConstMetric(descFenced, prometheus.GaugeValue, map[bool]float64{true: 1}[fenced], v.id)
		}
		used, capacity := e.jr.usage()
		ch <- prometheus.MustNewConstMetric(descBufferUsed, prometheus.GaugeValue, float64(used))
		ch <- prometheus.MustNewConstMetric(descBufferCapacity, prometheus.GaugeValue, float64(capacity))
	}
	e.cutSeconds.Collect(ch)
	e.syncSeconds.Collect(ch)
	e.collectMaintenance(ch)
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(descVolumes, prometheus.GaugeValue, float64(n), st)
	}
}
