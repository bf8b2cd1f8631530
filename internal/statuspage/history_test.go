package statuspage

import (
	"strings"
	"testing"
	"time"
)

// TestHistoryRing: the ring keeps the last Window of samples, oldest
// first, and forgets a volume no longer listed.
func TestHistoryRing(t *testing.T) {
	h := NewHistory(time.Second, 4*time.Second) // 4 samples a volume
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for i := range 6 {
		lags := map[string]time.Duration{"a": time.Duration(i) * time.Second}
		if i < 3 {
			lags["b"] = time.Second
		}
		h.record(t0.Add(time.Duration(i)*time.Second), lags)
	}
	got := h.Lags("a")
	if len(got) != 4 {
		t.Fatalf("%d samples kept, want 4", len(got))
	}
	for i, s := range got {
		if want := time.Duration(i+2) * time.Second; s.Lag != want || !s.Time.Equal(t0.Add(want)) {
			t.Errorf("sample %d = %+v, want lag %s at +%s", i, s, want, want)
		}
	}
	if b := h.Lags("b"); b != nil {
		t.Errorf("a volume no longer listed keeps %d samples", len(b))
	}
}

// TestLagChart: points fall inside the plot, later samples to the right,
// larger lags higher up, and the y axis ends at a round value.
func TestLagChart(t *testing.T) {
	now := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)
	samples := []Sample{
		{Time: now.Add(-2 * time.Hour), Lag: time.Hour}, // outside the window: not drawn
		{Time: now.Add(-50 * time.Minute), Lag: 3 * time.Second},
		{Time: now.Add(-10 * time.Minute), Lag: 12 * time.Second},
		{Time: now, Lag: 0},
	}
	c := lagChart(samples[1:], now, time.Hour)
	if c.YMax != "20 s" || c.Latest != "0 s" || c.Samples != 3 || c.Dots != nil {
		t.Fatalf("chart = %+v", c)
	}
	pts := strings.Fields(c.Points)
	if len(pts) != 3 || pts[2] != "600.0,102.0" || !strings.HasPrefix(pts[1], "508.0,") {
		t.Fatalf("points %q", c.Points)
	}
	if c := lagChart(samples, now, time.Hour); len(strings.Fields(c.Points)) != 3 {
		t.Fatalf("a sample older than the window is drawn: %q", c.Points)
	}
	if c := lagChart(samples[3:], now, time.Hour); len(c.Dots) != 1 {
		t.Fatalf("a lone sample has no dot: %+v", c)
	}
	for d, want := range map[time.Duration]string{3 * time.Second: "10 s", 10 * time.Second: "10 s", 11 * time.Second: "20 s", 70 * time.Second: "2 min", 25 * time.Hour: "26 h"} {
		if got := shortDuration(roundUp(d)); got != want {
			t.Errorf("roundUp(%s) = %s, want %s", d, got, want)
		}
	}
}
