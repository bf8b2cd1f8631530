package control

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/catalog"
)

// TestStartReconcilesEngineAndCatalog: at start, an engine volume no
// catalog record names (a create interrupted before its catalog write, or a
// delete interrupted after it) is deleted from the engine; a catalog volume
// the engine does not hold is IRRECOVERABLE and not exported; the others
// are untouched.
func TestStartReconcilesEngineAndCatalog(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	gw := f.activated()
	kept, lost := f.volume(gw, "kept"), f.volume(gw, "lost")
	const orphan = "vol-0123456789ABCDEF0"
	if err := f.engine.CreateVolume(ctx, VolumeSpec{VolumeID: orphan, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	if err := f.engine.DeleteVolume(ctx, volumeIDOf(lost)); err != nil {
		t.Fatal(err)
	}
	f.exporter = newMemExporter() // a new process exports afresh
	f.open(2)

	local, _ := f.engine.LocalVolumes(ctx)
	if strings.Join(local, ",") != volumeIDOf(kept) {
		t.Fatalf("engine volumes after start: %v, want only %s", local, volumeIDOf(kept))
	}
	if got := f.exporter.iqns(); len(got) != 1 || got[0] != IQNPrefix+"kept" {
		t.Fatalf("exported %v, want only the kept volume's target", got)
	}
	vols, err := f.svc.DescribeCachediSCSIVolumes(ctx, []string{kept, lost})
	if err != nil || len(vols) != 2 {
		t.Fatalf("DescribeCachediSCSIVolumes: %+v %v", vols, err)
	}
	for _, v := range vols {
		want := VolumeAvailable
		if v.VolumeARN == lost {
			want = VolumeIrrecoverable
		}
		if v.VolumeStatus != want || v.VolumeProgress != nil {
			t.Fatalf("%s: %s %v, want %s", v.VolumeID, v.VolumeStatus, v.VolumeProgress, want)
		}
	}
	_, _, err = f.svc.CreateSnapshot(ctx, SnapshotInput{VolumeARN: lost})
	wantCode(t, err, CodeVolumeNotReady)
	_, _, err = f.svc.CreateCachediSCSIVolume(ctx, CreateCachediSCSIVolumeInput{GatewayARN: gw, VolumeSizeInBytes: gib,
		TargetName: "clone", NetworkInterfaceID: "127.0.0.1", SourceVolumeARN: lost})
	wantCode(t, err, CodeVolumeNotReady)
	_, rps, err := f.svc.ListVolumeRecoveryPoints(ctx, gw)
	if err != nil || len(rps) != 1 || rps[0].VolumeARN != kept {
		t.Fatalf("ListVolumeRecoveryPoints: %+v %v", rps, err)
	}
	if _, _, err := f.svc.UpdateChapCredentials(ctx, ChapCredential{TargetARN: gw + "/target/" + IQNPrefix + "lost",
		InitiatorName: "iqn.x", SecretToAuthenticateInitiator: "111111111111"}); err != nil {
		t.Fatalf("UpdateChapCredentials of a lost volume's target: %v", err)
	}
	if got := f.exporter.iqns(); len(got) != 1 || got[0] != IQNPrefix+"kept" {
		t.Fatalf("exported after UpdateChapCredentials %v, want only the kept volume's target", got)
	}
	// Shut down and started again, the gateway exports what it can.
	if _, err := f.svc.ShutdownGateway(ctx, gw); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.StartGateway(ctx, gw); err != nil {
		t.Fatalf("StartGateway with a lost volume: %v", err)
	}
	if got := f.exporter.iqns(); len(got) != 1 || got[0] != IQNPrefix+"kept" {
		t.Fatalf("exported after StartGateway %v, want only the kept volume's target", got)
	}
	if _, err := f.svc.DeleteVolume(ctx, lost); err != nil {
		t.Fatal(err)
	}
}

// TestStartRefusesAnEngineOfALostCatalog: a catalog without even the
// appliance's disks is new; an engine that already holds volumes belongs to
// a catalog that was lost. Start refuses, saying so, and writes nothing, so
// that it says the same every time and never deletes those volumes as
// orphans.
func TestStartRefusesAnEngineOfALostCatalog(t *testing.T) {
	const id = "vol-0123456789ABCDEF0"
	dir := t.TempDir()
	engine := newMemEngine(time.Now)
	if err := engine.CreateVolume(context.Background(), VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; attempt < 2; attempt++ {
		cat, err := catalog.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := New(Config{Catalog: cat, Engine: engine, Exporter: newMemExporter(), Region: testRegion, Account: testAccount,
			ISCSIAddress: "127.0.0.1", ISCSIPort: 3260, DiskDir: filepath.Join(dir, "disks")})
		if err != nil {
			t.Fatal(err)
		}
		err = svc.Start(context.Background())
		cat.Close()
		if err == nil || !strings.Contains(err.Error(), "the catalog is new but the engine already holds 1 volume(s) ("+id+")") {
			t.Fatalf("start %d over a lost catalog: %v", attempt, err)
		}
		if local, _ := engine.LocalVolumes(context.Background()); len(local) != 1 {
			t.Fatalf("engine volumes after start %d: %v", attempt, local)
		}
		if _, err := os.Stat(filepath.Join(dir, "disks")); !os.IsNotExist(err) {
			t.Fatalf("start %d over a lost catalog created disks: %v", attempt, err)
		}
	}
}
