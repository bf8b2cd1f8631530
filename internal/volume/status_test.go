package volume

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// TestSnapshotStartTimeFixed: a snapshot's StartTime is when it was
// initiated (EC2) and does not change when a pending snapshot completes;
// the point it holds is reported separately. The clock ticks a second at
// every reading, so the cut that completes it is always later.
func TestSnapshotStartTimeFixed(t *testing.T) {
	ctx := context.Background()
	var ticks atomic.Int64
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	te.Engine.Close()
	te.cfg.Now = func() time.Time { return t0.Add(time.Duration(ticks.Add(1)) * time.Second) }
	te.open()
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-SNAPTIME", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	if err := te.vol("vol-SNAPTIME").WriteAt(ctx, pattern(1, 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	s, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-time", VolumeID: "vol-SNAPTIME"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != control.SnapshotPending || !s.RecoveryPointTime.IsZero() {
		t.Fatalf("new snapshot %s, point %v", s.Status, s.RecoveryPointTime)
	}
	started := s.StartTime
	if err := te.Cut(ctx, "vol-SNAPTIME"); err != nil {
		t.Fatal(err)
	}
	got, err := te.Snapshot(ctx, "snap-time")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != control.SnapshotCompleted {
		t.Fatalf("after the cut: %s", got.Status)
	}
	if !got.StartTime.Equal(started) {
		t.Fatalf("StartTime changed from %v (pending) to %v (completed)", started, got.StartTime)
	}
	if !got.RecoveryPointTime.After(started) {
		t.Fatalf("point %v, not after the start %v", got.RecoveryPointTime, started)
	}
	// And it stays so across a restart (it is the stored record).
	te.reopen()
	again, err := te.Snapshot(ctx, "snap-time")
	if err != nil {
		t.Fatal(err)
	}
	if !again.StartTime.Equal(started) || !again.RecoveryPointTime.Equal(got.RecoveryPointTime) {
		t.Fatalf("after a restart: start %v point %v", again.StartTime, again.RecoveryPointTime)
	}
}
