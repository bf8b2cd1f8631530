package main

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/volume"
)

// TestGCFlags: --gc-grace and --gc-interval default to minutes, reach the
// engine's configuration, and values too small to be safe are refused.
func TestGCFlags(t *testing.T) {
	o, err := parseServeFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.GCGrace != volume.DefaultGCGrace || o.GCGrace > 5*time.Minute || o.GCInterval != time.Minute {
		t.Fatalf("defaults: grace %v, interval %v; want %v and 1m", o.GCGrace, o.GCInterval, volume.DefaultGCGrace)
	}
	o, err = parseServeFlags([]string{"--gc-grace", "3m", "--gc-interval", "20s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg := engineConfig(engineOptions{DataDir: t.TempDir(), GCGrace: o.GCGrace, GCInterval: o.GCInterval}, nil, slog.Default())
	if cfg.GCGrace != 3*time.Minute || cfg.GCInterval != 20*time.Second {
		t.Fatalf("engine config: grace %v, interval %v; want 3m and 20s", cfg.GCGrace, cfg.GCInterval)
	}
	o, err = parseServeFlags([]string{"--recovery-point-retention", "24h"}, io.Discard)
	if err != nil || o.GCInterval != retentionGCInterval {
		t.Fatalf("with retention: interval %v (%v); want %v: a round reads every retained point", o.GCInterval, err, retentionGCInterval)
	}
	o, err = parseServeFlags([]string{"--recovery-point-retention", "24h", "--gc-interval", "2m"}, io.Discard)
	if err != nil || o.GCInterval != 2*time.Minute {
		t.Fatalf("with retention and --gc-interval 2m: interval %v (%v)", o.GCInterval, err)
	}
	for _, args := range [][]string{{"--gc-grace", "5s"}, {"--gc-interval", "100ms"}, {"--gc-grace", "-1m"}} {
		if _, err := parseServeFlags(args, io.Discard); err == nil {
			t.Errorf("parseServeFlags(%q) accepted", args)
		}
	}
}
