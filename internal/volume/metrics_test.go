package volume

import (
	"context"
	"testing"

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

// TestPerVolumeMetrics: the per-volume gauges follow a write and its cut,
// and the cut and the journal's fdatasync are timed.
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
}
