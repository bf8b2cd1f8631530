package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// checkDashboardMetrics fails the test unless every metric the Grafana
// dashboard (dist/grafana/volgw.json) queries is on s's /metrics: the
// dashboard uses only what volgw exports. s must have a volume that
// served iSCSI commands (per-volume and per-class metrics appear then).
func checkDashboardMetrics(t *testing.T, s *testServer) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "dist", "grafana", "volgw.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dist/grafana/volgw.json: %v", err)
	}
	resp, err := http.Get(s.endpoint() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllStringSubmatch(string(body), -1) {
		exported[m[1]] = true
	}
	name := regexp.MustCompile(`volgw_[a-z_]+`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := m
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if b := strings.TrimSuffix(m, suffix); b != m && exported[b] {
						base = b
					}
				}
				if !exported[base] {
					t.Errorf("dashboard panel %q queries %s, which /metrics does not export", p.Title, m)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("the dashboard queries no volgw metric")
	}
}
