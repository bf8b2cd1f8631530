package volume

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// gather scrapes the engine's collector into name → metrics.
func gather(t *testing.T, e *Engine) map[string][]*dto.Metric {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(e.Collector()); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*dto.Metric{}
	for _, f := range fams {
		out[f.GetName()] = f.GetMetric()
	}
	return out
}

// TestPerVolumeMetrics: the per-volume gauges and the cache's follow a
// write and its cut, the cut and the journal's fdatasync are timed, and
// reads count as cache hits, or misses once the cache is cold.
func TestPerVolumeMetrics(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	const id = "vol-00000000000000ME1"
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol(id)
	if err := v.WriteAt(ctx, pattern(1, 3*BlockSize), 0); err != nil {
		t.Fatal(err)
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m := gather(t, te.Engine)
	one := func(name string) *dto.Metric {
		t.Helper()
		ms := m[name]
		if len(ms) != 1 {
			t.Fatalf("%s: %d samples", name, len(ms))
		}
		return ms[0]
	}
	if g := one("volgw_volume_unpublished_blocks"); g.GetGauge().GetValue() != 3 || g.GetLabel()[0].GetValue() != id {
		t.Fatalf("unpublished blocks before the cut: %v", g)
	}
	gauge := func(name string) float64 { t.Helper(); return one(name).GetGauge().GetValue() }
	if gauge("volgw_cache_capacity_bytes") <= 0 || gauge("volgw_cache_used_bytes") != 3*BlockSize || gauge("volgw_cache_dirty_bytes") != 3*BlockSize {
		t.Fatalf("cache before the cut: capacity %v, used %v, dirty %v", gauge("volgw_cache_capacity_bytes"),
			gauge("volgw_cache_used_bytes"), gauge("volgw_cache_dirty_bytes"))
	}
	if g := one("volgw_volume_fenced"); g.GetGauge().GetValue() != 0 {
		t.Fatalf("fenced: %v", g)
	}
	if one("volgw_volume_recovery_point_age_seconds").GetGauge().GetValue() < 0 {
		t.Fatal("negative recovery point age")
	}
	if one("volgw_journal_fsync_duration_seconds").GetHistogram().GetSampleCount() < 1 {
		t.Fatal("the flush's fdatasync was not timed")
	}
	cuts := one("volgw_cut_duration_seconds").GetHistogram().GetSampleCount()
	if err := te.Cut(ctx, id); err != nil {
		t.Fatal(err)
	}
	m = gather(t, te.Engine)
	if g := one("volgw_volume_unpublished_blocks"); g.GetGauge().GetValue() != 0 {
		t.Fatalf("unpublished blocks after the cut: %v", g)
	}
	if n := one("volgw_cut_duration_seconds").GetHistogram().GetSampleCount(); n != cuts+1 {
		t.Fatalf("cuts timed: %d, then %d", cuts, n)
	}
	if gauge("volgw_cache_used_bytes") != 3*BlockSize || gauge("volgw_cache_dirty_bytes") != 0 {
		t.Fatalf("cache after the cut: used %v, dirty %v", gauge("volgw_cache_used_bytes"), gauge("volgw_cache_dirty_bytes"))
	}

	// Reads of the 3 cached blocks are hits; after a restart (a cold
	// cache) the same reads are misses.
	lookups := func() (hit, miss float64) {
		t.Helper()
		for _, l := range gather(t, te.Engine)["volgw_cache_read_lookups_total"] {
			switch l.GetLabel()[0].GetValue() {
			case "hit":
				hit = l.GetCounter().GetValue()
			case "miss":
				miss = l.GetCounter().GetValue()
			}
		}
		return hit, miss
	}
	hit0, miss0 := lookups()
	mustRead(t, v, 0, 3*BlockSize)
	if hit, miss := lookups(); hit != hit0+3 || miss != miss0 {
		t.Fatalf("lookups after reading 3 cached blocks: hit %v→%v, miss %v→%v", hit0, hit, miss0, miss)
	}
	te.reopen()
	mustRead(t, te.vol(id), 0, 3*BlockSize)
	// The first block is a miss; the read-ahead it starts may cache the
	// next ones before the read looks them up (a hit then), or not yet.
	if hit, miss := lookups(); hit+miss != 3 || miss < 1 {
		t.Fatalf("lookups after a restart and 3 cold blocks: hit %v, miss %v", hit, miss)
	}
}

// TestStoreUsageMetrics: what the store holds is on /metrics once a GC
// round has counted it, superseded objects stay counted through the grace
// period, and what GC deletes is counted as reclaimed.
func TestStoreUsageMetrics(t *testing.T) {
	ctx := context.Background()
	const grace = 200 * time.Millisecond
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{grace: grace})
	const id = "vol-00000000000000ME2"
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	if _, ok := gather(t, te.Engine)["volgw_store_objects"]; ok {
		t.Fatal("store usage reported before any GC round")
	}
	v := te.vol(id)
	for _, n := range []int{3, 1} { // 3 blocks, then block 0 again
		data := make([]byte, n*BlockSize)
		rand.Read(data) // distinct blocks: none shared by content
		if err := v.WriteAt(ctx, data, 0); err != nil {
			t.Fatal(err)
		}
		if err := te.Cut(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	byKind := func(name string) map[string]float64 {
		t.Helper()
		out := map[string]float64{}
		for _, m := range gather(t, te.Engine)[name] {
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
		return out
	}
	reclaimed := func() float64 {
		return gather(t, te.Engine)["volgw_gc_reclaimed_block_bytes_total"][0].GetCounter().GetValue()
	}
	if _, err := te.GC(ctx); err != nil {
		t.Fatal(err)
	}
	// The first root is younger than the grace period: it and the block
	// it alone names are kept.
	if objs, bytes := byKind("volgw_store_objects"), byKind("volgw_store_bytes"); objs["block"] != 4 || bytes["block"] != 4*BlockSize ||
		objs["root"] < 2 || objs["page"] < 2 || reclaimed() != 0 {
		t.Fatalf("after a round within the grace period: objects %v, bytes %v, reclaimed %v", objs, bytes, reclaimed())
	}
	time.Sleep(2 * grace)
	if _, err := te.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if objs := byKind("volgw_store_objects"); objs["block"] != 3 || objs["root"] != 1 || objs["page"] != 1 || reclaimed() != BlockSize {
		t.Fatalf("after the grace period: objects %v, reclaimed %v", objs, reclaimed())
	}
	if g := gather(t, te.Engine)["volgw_gc_last_round_timestamp_seconds"]; len(g) != 1 || g[0].GetGauge().GetValue() <= 0 {
		t.Fatalf("last round timestamp: %v", g)
	}
}
