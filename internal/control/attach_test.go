package control

import (
	"context"
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
