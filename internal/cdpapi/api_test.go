package cdpapi

import (
	"encoding/json"
	"testing"
	"time"
)

// TestEpoch: times go out as epoch seconds rounded up to the microsecond
// and come back exactly, so a listed time given back is not before its
// point; the model loads and validates.
func TestEpoch(t *testing.T) {
	cut := time.Date(2026, 11, 24, 2, 23, 0, 155824123, time.UTC)
	b, err := json.Marshal(epoch(cut))
	if err != nil || string(b) != "1795486980.155825" {
		t.Fatalf("marshal = %s, %v", b, err)
	}
	back, err := parseEpoch(string(b))
	if err != nil || back.Before(cut) || back.Sub(cut) >= time.Microsecond {
		t.Fatalf("parse %s = %v, %v; want within a microsecond after %v", b, back, err, cut)
	}
	for in, want := range map[string]time.Time{
		"1795486980":             time.Unix(1795486980, 0),
		"1795486980.5":           time.Unix(1795486980, 5e8),
		"1795486980.155824123":   cut,
		"1.7954869801558241e+09": time.Unix(1795486980, 155824100),
	} {
		if got, err := parseEpoch(in); err != nil || !got.Equal(want) {
			t.Errorf("parseEpoch(%s) = %v, %v; want %v", in, got, err, want.UTC())
		}
	}
	if _, err := parseEpoch("soon"); err == nil {
		t.Error("parseEpoch accepted a word")
	}
	m, err := LoadModel()
	if err != nil || !m.HasOperation("ListRetainedRecoveryPoints") || !m.HasOperation("CreateSnapshotFromRetainedRecoveryPoint") || m.Metadata.TargetPrefix != "VolgwRecoveryPoints_20261124" {
		t.Fatalf("model: %v", err)
	}
	if _, err := m.Decode("CreateSnapshotFromRetainedRecoveryPoint", []byte(`{"VolumeARN":"x","SnapshotDescription":"d"}`)); err == nil {
		t.Error("a VolumeARN shorter than 50 characters passed the model")
	}
}
