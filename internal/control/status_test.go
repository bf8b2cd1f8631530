package control

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// statusEngine is the control test engine with the conditions a block
// engine reports (VolumeStatusReporter), set by the test; it refuses the
// recovery point and snapshots of a volume that is IRRECOVERABLE or PASS
// THROUGH with ErrVolumeNotReady, as the seam lets an engine do.
type statusEngine struct {
	*memEngine
	mu    sync.Mutex
	conds map[string]VolumeCondition
}

func (e *statusEngine) set(id string, c VolumeCondition) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.conds[id] = c
}

func (e *statusEngine) VolumeStatus(ctx context.Context, id string) (VolumeCondition, error) {
	if _, err := e.memEngine.RecoveryPoint(ctx, id); err != nil {
		return VolumeCondition{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.conds[id]; ok {
		return c, nil
	}
	return VolumeCondition{Status: VolumeAvailable}, nil
}

// ready is the engine's refusal of a volume it cannot snapshot.
func (e *statusEngine) ready(ctx context.Context, id string) error {
	c, err := e.VolumeStatus(ctx, id)
	if err != nil {
		return err
	}
	if c.Status == VolumeIrrecoverable || c.Status == VolumePassThrough {
		return fmt.Errorf("engine: %w: %s is %s", ErrVolumeNotReady, id, c.Status)
	}
	return nil
}

func (e *statusEngine) CreateSnapshot(ctx context.Context, req SnapshotRequest) (Snapshot, error) {
	if err := e.ready(ctx, req.VolumeID); err != nil {
		return Snapshot{}, err
	}
	return e.memEngine.CreateSnapshot(ctx, req)
}

func (e *statusEngine) RecoveryPoint(ctx context.Context, id string) (RecoveryPoint, error) {
	if err := e.ready(ctx, id); err != nil {
		return RecoveryPoint{}, err
	}
	return e.memEngine.RecoveryPoint(ctx, id)
}

// TestVolumeStatusFromTheEngine: DescribeCachediSCSIVolumes shows the
// engine's VolumeStatus, and VolumeProgress only when the engine gives one;
// a volume the engine refuses answers VolumeNotReady with its condition and
// offers no recovery point.
func TestVolumeStatusFromTheEngine(t *testing.T) {
	f := newFixture(t)
	se := &statusEngine{memEngine: f.engine, conds: map[string]VolumeCondition{}}
	f.wrapped = se
	f.open(2)
	ctx := context.Background()
	gw := f.activated()
	restoring, passThrough, fenced, fine := f.volume(gw, "a"), f.volume(gw, "b"), f.volume(gw, "c"), f.volume(gw, "d")
	progress := 42.5
	se.set(volumeIDOf(restoring), VolumeCondition{Status: VolumeRestoring, Progress: &progress})
	se.set(volumeIDOf(passThrough), VolumeCondition{Status: VolumePassThrough, Reason: "the upload buffer was lost"})
	se.set(volumeIDOf(fenced), VolumeCondition{Status: VolumeIrrecoverable, Reason: "another gateway has taken over its head in the store"})

	vols, err := f.svc.DescribeCachediSCSIVolumes(ctx, []string{restoring, passThrough, fenced, fine})
	if err != nil || len(vols) != 4 {
		t.Fatalf("DescribeCachediSCSIVolumes: %+v %v", vols, err)
	}
	want := map[string]string{restoring: VolumeRestoring, passThrough: VolumePassThrough, fenced: VolumeIrrecoverable, fine: VolumeAvailable}
	for _, v := range vols {
		if v.VolumeStatus != want[v.VolumeARN] {
			t.Errorf("%s: status %s, want %s", v.VolumeID, v.VolumeStatus, want[v.VolumeARN])
		}
		if (v.VolumeARN == restoring) != (v.VolumeProgress != nil) || (v.VolumeProgress != nil && *v.VolumeProgress != 42.5) {
			t.Errorf("%s: progress %v", v.VolumeID, v.VolumeProgress)
		}
	}
	_, _, err = f.svc.CreateSnapshot(ctx, SnapshotInput{VolumeARN: fenced})
	wantCode(t, err, CodeVolumeNotReady)
	if e := err.(*Error); e.Message != "The specified volume is not ready: it is IRRECOVERABLE: another gateway has taken over its head in the store." {
		t.Errorf("message %q", e.Message)
	}
	_, _, _, err = f.svc.CreateSnapshotFromVolumeRecoveryPoint(ctx, SnapshotInput{VolumeARN: passThrough})
	wantCode(t, err, CodeVolumeNotReady)
	if e := err.(*Error); e.Message != "The specified volume is not ready: it is PASS THROUGH: the upload buffer was lost." {
		t.Errorf("message %q", e.Message)
	}
	if _, _, err := f.svc.CreateSnapshot(ctx, SnapshotInput{VolumeARN: restoring}); err != nil {
		t.Errorf("snapshot of a restoring volume: %v", err)
	}
	_, rps, err := f.svc.ListVolumeRecoveryPoints(ctx, gw)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, rp := range rps {
		listed[rp.VolumeARN] = true
	}
	if len(rps) != 2 || !listed[restoring] || !listed[fine] {
		t.Fatalf("ListVolumeRecoveryPoints lists %v; want only the volumes the engine offers one of", listed)
	}
}
