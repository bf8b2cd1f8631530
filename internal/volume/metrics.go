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
	descCacheCapacity = prometheus.NewDesc("volgw_cache_capacity_bytes",
		"Cache capacity: every 512 KiB slot of the cache disks.", nil, nil)
	descCacheUsed = prometheus.NewDesc("volgw_cache_used_bytes",
		"Cache slots holding a block (clean, dirty or being uploaded).", nil, nil)
	descCacheDirty = prometheus.NewDesc("volgw_cache_dirty_bytes",
		"Cache slots holding data not yet in the object store (dirty, or frozen for the cut being uploaded).", nil, nil)
	descCacheLookups = prometheus.NewDesc("volgw_cache_read_lookups_total",
		"Blocks looked up by reads, by result: hit (in the cache) or miss (fetched from the object store); the hit ratio is hit / (hit + miss). Counts start again at every start of volgw.",
		[]string{"result"}, nil)
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
	ch <- descCacheCapacity
	ch <- descCacheUsed
	ch <- descCacheDirty
	ch <- descCacheLookups
	c.e.cutSeconds.Describe(ch)
	c.e.syncSeconds.Describe(ch)
	describeMaintenance(ch)
	describeGC(ch)
	describeRingInit(ch)
	ch <- descUploaded
	ch <- descCutBlocks
	ch <- descPacks
	ch <- descRepacked
	ch <- descRepackSkipped
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
		all, inUse, dirty := e.cache.slotCounts()
		ch <- prometheus.MustNewConstMetric(descCacheCapacity, prometheus.GaugeValue, float64(all)*BlockSize)
		ch <- prometheus.MustNewConstMetric(descCacheUsed, prometheus.GaugeValue, float64(inUse)*BlockSize)
		ch <- prometheus.MustNewConstMetric(descCacheDirty, prometheus.GaugeValue, float64(dirty)*BlockSize)
	}
	ch <- prometheus.MustNewConstMetric(descCacheLookups, prometheus.CounterValue, float64(e.cache.hits.Load()), "hit")
	ch <- prometheus.MustNewConstMetric(descCacheLookups, prometheus.CounterValue, float64(e.cache.misses.Load()), "miss")
	e.cutSeconds.Collect(ch)
	e.syncSeconds.Collect(ch)
	e.collectMaintenance(ch)
	e.collectGC(ch)
	e.collectRingInit(ch)
	ch <- prometheus.MustNewConstMetric(descUploaded, prometheus.CounterValue, float64(e.uploadedPlain.Load()), "written")
	ch <- prometheus.MustNewConstMetric(descUploaded, prometheus.CounterValue, float64(e.uploadedStored.Load()), "stored")
	ch <- prometheus.MustNewConstMetric(descCutBlocks, prometheus.CounterValue, float64(e.blocksStored.Load()), "whole")
	ch <- prometheus.MustNewConstMetric(descCutBlocks, prometheus.CounterValue, float64(e.patchesStored.Load()), "patch")
	ch <- prometheus.MustNewConstMetric(descPacks, prometheus.CounterValue, float64(e.packsStored.Load()), "cut")
	ch <- prometheus.MustNewConstMetric(descPacks, prometheus.CounterValue, float64(e.packsRepacked.Load()), "repack")
	ch <- prometheus.MustNewConstMetric(descRepacked, prometheus.CounterValue, float64(e.patchesRepacked.Load()))
	ch <- prometheus.MustNewConstMetric(descRepackSkipped, prometheus.CounterValue, float64(e.repackSkipped.Load()))
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(descVolumes, prometheus.GaugeValue, float64(n), st)
	}
}
