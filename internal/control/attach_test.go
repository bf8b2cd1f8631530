package control

import (
	"context"
	"errors"
	"testing"

	"github.com/volgw/volgw/internal/catalog"
)

// TestStartResolvesInterruptedMoves: a stop between the catalog writes of
// a DetachVolume or an AttachVolume and the engine's part leaves a volume
// DETACHING or ATTACHING; Start decides by whether the engine holds it. A
// volume the engine holds is attached and exported again (a detach that
// never released its head, or an attach that took it); one it does not
// hold is DETACHED — listed so, not exported, and not IRRECOVERABLE.
func TestStartResolvesInterruptedMoves(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	gw := f.activated()
	held := map[string]string{ // target → interrupted state, engine holds it
		"detach-held": catalog.VolumeDetaching, "attach-held": catalog.VolumeAttaching,
	}
	gone := map[string]string{
		"detach-gone": catalog.VolumeDetaching, "attach-gone": catalog.VolumeAttaching,
	}
	arns := map[string]string{}
	for _, m := range []map[string]string{held, gone} {
		for target, state := range m {
			arn := f.volume(gw, target)
			arns[target] = arn
			if err := f.cat.Update(func(tx *catalog.Tx) error {
				v, err := tx.Volume(volumeIDOf(arn))
				if err != nil {
					return err
				}
				v.Attachment = state
				return tx.PutVolume(v)
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for target := range gone {
		if err := f.engine.DeleteVolume(ctx, volumeIDOf(arns[target])); err != nil {
			t.Fatal(err)
		}
	}
	f.exporter = newMemExporter()
	f.open(2)

	_, infos, _, err := f.svc.ListVolumes(ctx, gw, "", 0)
	if err != nil || len(infos) != 4 {
		t.Fatalf("ListVolumes: %+v %v", infos, err)
	}
	status := map[string]string{}
	for _, v := range infos {
		status[v.VolumeARN] = v.VolumeAttachmentStatus
	}
	for target := range held {
		if status[arns[target]] != "ATTACHED" {
			t.Errorf("%s: %s after start, want ATTACHED", target, status[arns[target]])
		}
		if _, ok := f.exporter.spec(IQNPrefix + target); !ok {
			t.Errorf("%s: not exported after start", target)
		}
	}
	for target := range gone {
		if status[arns[target]] != "DETACHED" {
			t.Errorf("%s: %s after start, want DETACHED", target, status[arns[target]])
		}
		if _, ok := f.exporter.spec(IQNPrefix + target); ok {
			t.Errorf("%s: exported after start", target)
		}
		vols, err := f.svc.DescribeCachediSCSIVolumes(ctx, []string{arns[target]})
		if err != nil || len(vols) != 1 || vols[0].VolumeStatus == VolumeIrrecoverable || vols[0].ISCSI.TargetARN != "" {
			t.Errorf("%s: described %+v %v", target, vols, err)
		}
	}
	// A DETACHED volume's target name is free for a new volume.
	f.volume(gw, "detach-gone")
}

// memMover adds VolumeMover to the in-memory engine: heads holds what the
// object store would (a detached volume's size and note), and fail, when
// set, is what DetachVolume answers instead (a store that refuses).
type memMover struct {
	*memEngine
	heads map[string]DetachedVolume
	fail  error
}

func (m *memMover) DetachVolume(ctx context.Context, id string, note []byte) error {
	if m.fail != nil {
		return m.fail
	}
	m.mu.Lock()
	spec, ok := m.volumes[id]
	m.mu.Unlock()
	if !ok {
		return ErrVolumeNotFound
	}
	m.heads[id] = DetachedVolume{SizeBytes: spec.SizeBytes, Note: note}
	return m.DeleteVolume(ctx, id)
}

func (m *memMover) DetachedVolume(ctx context.Context, id string) (DetachedVolume, error) {
	d, ok := m.heads[id]
	if !ok {
		return d, ErrVolumeNotFound
	}
	return d, nil
}

func (m *memMover) AttachVolume(ctx context.Context, id string) (DetachedVolume, error) {
	d, err := m.DetachedVolume(ctx, id)
	if err != nil {
		return d, err
	}
	delete(m.heads, id)
	return d, m.CreateVolume(ctx, VolumeSpec{VolumeID: id, SizeBytes: d.SizeBytes})
}

func (m *memMover) DeleteDetachedVolume(ctx context.Context, id string) error {
	if _, ok := m.heads[id]; !ok {
		return ErrVolumeNotFound
	}
	delete(m.heads, id)
	return nil
}

// TestFailedDetachChangesNothing: an engine that cannot release the head
// (the store refuses) leaves the volume attached and exported, its CHAP
// credentials and schedule in place, and the call answers the error; a
// retry then detaches it, after which the target is gone and the volume
// DETACHED. Re-attaching on the same gateway gives back its target name,
// tags and schedule.
func TestFailedDetachChangesNothing(t *testing.T) {
	f := newFixture(t)
	mover := &memMover{memEngine: f.engine, heads: map[string]DetachedVolume{}, fail: errors.New("store refused the head")}
	f.wrapped = mover
	f.open(2)
	ctx := context.Background()
	gw := f.activated()
	arn := f.volume(gw, "db")
	if _, err := f.svc.AddTagsToResource(ctx, arn, []Tag{{Key: "k", Value: "v"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.DetachVolume(ctx, arn, false); err == nil {
		t.Fatal("a failed engine detach was not reported")
	}
	if _, ok := f.exporter.spec(IQNPrefix + "db"); !ok {
		t.Fatal("the volume is not exported after a failed detach")
	}
	_, infos, _, err := f.svc.ListVolumes(ctx, gw, "", 0)
	if err != nil || len(infos) != 1 || infos[0].VolumeAttachmentStatus != "ATTACHED" {
		t.Fatalf("after a failed detach: %+v %v", infos, err)
	}
	mover.fail = nil
	if _, err := f.svc.DetachVolume(ctx, arn, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.exporter.spec(IQNPrefix + "db"); ok {
		t.Fatal("a detached volume is still exported")
	}
	if _, err := f.svc.DetachVolume(ctx, arn, false); err != nil {
		t.Fatalf("detaching a DETACHED volume again (a retry): %v", err)
	}
	_, _, err = f.svc.CreateSnapshot(ctx, SnapshotInput{VolumeARN: arn})
	wantCode(t, err, CodeVolumeNotReady)
	got, target, err := f.svc.AttachVolume(ctx, AttachVolumeInput{GatewayARN: gw, VolumeARN: arn, NetworkInterfaceID: "127.0.0.1"})
	if err != nil || got != arn || target != gw+"/target/"+IQNPrefix+"db" {
		t.Fatalf("re-attach on the same gateway: %s %s %v", got, target, err)
	}
	tags, _, err := f.svc.ListTagsForResource(ctx, arn, "", 0)
	if err != nil || len(tags) != 1 || tags[0].Key != "k" {
		t.Fatalf("tags after the move: %+v %v", tags, err)
	}
	if _, err := f.svc.DescribeSnapshotSchedule(ctx, arn); err != nil {
		t.Fatalf("schedule after the move: %v", err)
	}
}
