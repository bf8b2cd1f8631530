package volume

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/volgw/volgw/internal/control"
)

// Maintenance in the gateway's window (control.Maintainer): a full GC pass
// and a scrub of the cache.

var _ control.Maintainer = (*Engine)(nil)

// defaultScrubRate bounds the scrub's reads of the cache disks, so that it
// takes a small share of what a disk delivers and never starves I/O: 64
// MiB/s, a 64 GiB cache in about 17 minutes.
const defaultScrubRate = 64 << 20

// scrubStats count what scrubs found since Open (metrics).
type scrubStats struct {
	checked, bad atomic.Int64
}

// Maintain implements control.Maintainer: GC, then the cache scrub. Both
// run to the end unless ctx ends; an error of one does not skip the other.
func (e *Engine) Maintain(ctx context.Context) (control.MaintenanceReport, error) {
	var rep control.MaintenanceReport
	gs, gcErr := e.GC(ctx)
	rep.GCDeletedObjects = gs.DeletedBlocks + gs.DeletedPages + gs.DeletedRoots + gs.DeletedTombstones
	rep.GCReclaimedBytes = gs.ReclaimedBlockBytes
	checked, bad, scrubErr := e.scrub(ctx)
	rep.ScrubbedSlots, rep.BadSlots = checked, bad
	e.log.Info("volume: maintenance done", "gc_deleted_objects", rep.GCDeletedObjects, "gc_reclaimed_bytes", rep.GCReclaimedBytes,
		"gc_err", gcErr, "scrubbed_slots", checked, "bad_slots", bad, "scrub_err", scrubErr)
	if gcErr != nil {
		return rep, gcErr
	}
	return rep, scrubErr
}

// scrub reads every clean cache slot and checks its sectors against the
// CRCs taken when it became clean (invariant 4). A slot that no longer
// matches (bit rot, a stray write to the disk file) is dropped, logged, and
// its block fetched from the store again at its next read; reads check
// every sector anyway, so the scrub finds rot before a read does, and in
// blocks nobody reads. Each slot is pinned while it is read, exactly as a
// read pins it, so writes and evictions wait for it; between slots the
// scrub sleeps to keep to Config.ScrubRate. Owned (dirty, frozen) slots
// are not scrubbed: they have no CRC yet, and the journal holds their
// content.
func (e *Engine) scrub(ctx context.Context) (checked, bad int, err error) {
	c := e.cache
	rate := e.cfg.ScrubRate
	if rate == 0 {
		rate = defaultScrubRate
	}
	c.mu.Lock()
	n, gen := len(c.slots), c.gen
	c.mu.Unlock()
	buf := make([]byte, BlockSize)
	start := time.Now()
	for s := int32(0); int(s) < n; s++ {
		if err := ctx.Err(); err != nil {
			return checked, bad, err
		}
		c.mu.Lock()
		if c.gen != gen {
			c.mu.Unlock()
			return checked, bad, nil // reset meanwhile: nothing left to check
		}
		m := &c.slots[s]
		if m.state != slotClean || m.zombie {
			c.mu.Unlock()
			continue
		}
		m.pins++
		f, base := c.where(s)
		pr := pinnedRead{s: s, key: m.key, crc: m.crc, f: f, base: base, gen: gen}
		c.mu.Unlock()
		_, rerr := f.ReadAt(buf, base)
		good := rerr == nil && sectorsMatch(buf, pr.crc)
		c.unpin([]pinnedRead{pr}, []bool{!good && rerr == nil})
		if rerr != nil {
			return checked, bad, c.ioError(f, "read", rerr)
		}
		checked++
		e.scrubbed.checked.Add(1)
		if !good {
			bad++
			e.scrubbed.bad.Add(1)
			e.log.Warn("volume: cache scrub: a clean slot no longer matches its block; dropped, it is fetched again when read",
				"disk", f.Name(), "offset", base, "block", pr.key.block)
		}
		if rate > 0 {
			// Pace to the rate since the scrub started.
			if ahead := time.Duration(float64(checked*BlockSize)/float64(rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
				t := time.NewTimer(ahead)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
		}
	}
	return checked, bad, nil
}

var (
	descScrubChecked = prometheus.NewDesc("volgw_cache_scrub_slots_checked_total",
		"Clean cache slots read and checked by maintenance scrubs since the engine started.", nil, nil)
	descScrubBad = prometheus.NewDesc("volgw_cache_scrub_bad_slots_total",
		"Clean cache slots a maintenance scrub found not matching their block (dropped, fetched again when read).", nil, nil)
	descCacheDown = prometheus.NewDesc("volgw_cache_down",
		"1 while the cache cannot serve (a cache disk failed, or ResetCache and no cache disk added since): volumes refuse I/O.", nil, nil)
)

func describeMaintenance(ch chan<- *prometheus.Desc) {
	ch <- descScrubChecked
	ch <- descScrubBad
	ch <- descCacheDown
}

func (e *Engine) collectMaintenance(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descScrubChecked, prometheus.CounterValue, float64(e.scrubbed.checked.Load()))
	ch <- prometheus.MustNewConstMetric(descScrubBad, prometheus.CounterValue, float64(e.scrubbed.bad.Load()))
	down := 0.0
	if e.cacheDown.Load() != nil {
		down = 1
	}
	ch <- prometheus.MustNewConstMetric(descCacheDown, prometheus.GaugeValue, down)
}
