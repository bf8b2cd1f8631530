package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/catalog"
	"github.com/volgw/volgw/internal/control"
	"github.com/volgw/volgw/internal/volume"
)

// enginePartsOf are productionParts that also hand the test the engine the
// server opened, so that it can do to the engine what a crash between two
// steps of an operation leaves behind.
func enginePartsOf(engine **volume.Engine, mu *sync.Mutex) parts {
	return enginePartsWith(engine, mu, nil)
}

// enginePartsWith are productionParts whose engine configuration adjust
// changes (when not nil), and which set *engine (under mu) to the engine
// once the server has opened it.
func enginePartsWith(engine **volume.Engine, mu *sync.Mutex, adjust func(*volume.Config)) parts {
	p := productionParts
	p.openEngine = func(ctx context.Context, eo engineOptions, store blob.Store, log *slog.Logger) (openedEngine, error) {
		cfg := engineConfig(eo, store, log)
		if adjust != nil {
			adjust(&cfg)
		}
		e, err := volume.Open(ctx, cfg)
		if err != nil {
			return openedEngine{}, err
		}
		mu.Lock()
		*engine = e
		mu.Unlock()
		return wrapEngine(e), nil
	}
	return p
}

// startServerLogging is startServerParts with the server's log (which goes
// to standard error) written to a file whose contents log returns. The
// tests of this package do not run in parallel, so swapping os.Stderr while
// the server starts is seen by no one else.
func startServerLogging(t *testing.T, dataDir string, p parts) (s *testServer, log func() string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "server.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	stderr := os.Stderr
	os.Stderr = f
	defer func() { os.Stderr = stderr }()
	s = startServerParts(t, dataDir, []string{"--log-level", "info"}, nil, p)
	return s, func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}

func volumeID(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

// TestLostEngineVolumeIsIrrecoverable: a volume the catalog names and the
// engine no longer holds (its local state lost) is logged at ERROR at start
// and shown IRRECOVERABLE, never AVAILABLE; it offers no recovery point,
// snapshots of it answer VolumeNotReady saying why, and it can be deleted.
// The other volume is untouched.
func TestLostEngineVolumeIsIrrecoverable(t *testing.T) {
	dataDir := t.TempDir()
	ctx := context.Background()
	var (
		mu     sync.Mutex
		engine *volume.Engine
	)
	first := startServerParts(t, dataDir, nil, nil, enginePartsOf(&engine, &mu))
	c := newSDKClients(first.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, first.endpoint())
	arns := createVolumes(t, ctx, c, g, "kept", "lost")
	kept, lost := arns[0], arns[1]
	// The engine loses the volume behind the control plane's back.
	mu.Lock()
	e := engine
	mu.Unlock()
	if err := e.DeleteVolume(ctx, volumeID(lost)); err != nil {
		t.Fatal(err)
	}
	if err := first.close(); err != nil {
		t.Fatal(err)
	}

	second, log := startServerLogging(t, dataDir, enginePartsOf(&engine, &mu))
	if l := log(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "IRRECOVERABLE") || !strings.Contains(l, volumeID(lost)) {
		t.Fatalf("start did not log the lost volume at ERROR:\n%s", l)
	}
	c = newSDKClients(second.endpoint(), e2eKeyID, e2eSecret)
	desc, err := c.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: arns})
	if err != nil || len(desc.CachediSCSIVolumes) != 2 {
		t.Fatalf("DescribeCachediSCSIVolumes: %+v %v", desc, err)
	}
	for _, v := range desc.CachediSCSIVolumes {
		want := "AVAILABLE"
		if aws.ToString(v.VolumeARN) == lost {
			want = "IRRECOVERABLE"
		}
		if aws.ToString(v.VolumeStatus) != want || v.VolumeProgress != nil {
			t.Fatalf("volume %s: status %q progress %v, want %s and no progress", aws.ToString(v.VolumeARN),
				aws.ToString(v.VolumeStatus), v.VolumeProgress, want)
		}
	}
	rps, err := c.sgw.ListVolumeRecoveryPoints(ctx, &storagegateway.ListVolumeRecoveryPointsInput{GatewayARN: aws.String(g.arn)})
	if err != nil || len(rps.VolumeRecoveryPointInfos) != 1 || aws.ToString(rps.VolumeRecoveryPointInfos[0].VolumeARN) != kept {
		t.Fatalf("ListVolumeRecoveryPoints: %+v %v", rps, err)
	}
	_, err = c.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
		VolumeARN: aws.String(lost), SnapshotDescription: aws.String("of a lost volume")})
	wantNotReady(t, "CreateSnapshotFromVolumeRecoveryPoint", err)
	_, err = c.sgw.CreateSnapshot(ctx, &storagegateway.CreateSnapshotInput{VolumeARN: aws.String(lost), SnapshotDescription: aws.String("x")})
	wantNotReady(t, "CreateSnapshot", err)
	_, err = c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String("clone"), NetworkInterfaceId: aws.String(g.ip),
		ClientToken: aws.String("token-clone"), SourceVolumeARN: aws.String(lost)})
	wantNotReady(t, "CreateCachediSCSIVolume cloning it", err)
	if _, err := c.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
		VolumeARN: aws.String(kept), SnapshotDescription: aws.String("of the kept volume")}); err != nil {
		t.Fatalf("snapshot of the kept volume: %v", err)
	}

	// Shut down and started again, the gateway puts back on the wire what
	// it can.
	if _, err := c.sgw.ShutdownGateway(ctx, &storagegateway.ShutdownGatewayInput{GatewayARN: aws.String(g.arn)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.sgw.StartGateway(ctx, &storagegateway.StartGatewayInput{GatewayARN: aws.String(g.arn)}); err != nil {
		t.Fatalf("StartGateway with a lost volume: %v", err)
	}

	if _, err := c.sgw.DeleteVolume(ctx, &storagegateway.DeleteVolumeInput{VolumeARN: aws.String(lost)}); err != nil {
		t.Fatalf("DeleteVolume of the lost volume: %v", err)
	}
	_, err = c.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{lost}})
	wantGatewayError(t, "DescribeCachediSCSIVolumes of the deleted volume", err, sgwtypes.ErrorCodeVolumeNotFound, "The specified volume was not found.")
}

func wantNotReady(t *testing.T, what string, err error) {
	t.Helper()
	var e *sgwtypes.InvalidGatewayRequestException
	if !errors.As(err, &e) || e.Error_ == nil || e.Error_.ErrorCode != sgwtypes.ErrorCodeVolumeNotReady ||
		!strings.Contains(aws.ToString(e.Message), "IRRECOVERABLE") || !strings.Contains(aws.ToString(e.Message), "local state") {
		t.Fatalf("%s of a lost volume: got %v, want VolumeNotReady saying it is IRRECOVERABLE and why", what, err)
	}
}

// TestInterruptedCreateAndDeleteAreReconciledAtStart: CreateCachediSCSIVolume
// writes the engine first and the catalog last, DeleteVolume the catalog
// first and the engine last; a crash between the two leaves the engine
// holding a volume no catalog record names. The next start deletes it (and
// logs it), and a client retrying its create with the same ClientToken gets
// one volume, the same on every retry.
func TestInterruptedCreateAndDeleteAreReconciledAtStart(t *testing.T) {
	dataDir := t.TempDir()
	ctx := context.Background()
	var (
		mu     sync.Mutex
		engine *volume.Engine
	)
	first := startServerParts(t, dataDir, nil, nil, enginePartsOf(&engine, &mu))
	mu.Lock()
	e := engine
	mu.Unlock()
	if _, ok := any(e).(control.VolumeLister); !ok {
		t.Fatal("the engine does not list its volumes (control.VolumeLister): start cannot reconcile")
	}
	c := newSDKClients(first.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, first.endpoint())
	arns := createVolumes(t, ctx, c, g, "kept", "deleted")
	kept, deleted := arns[0], arns[1]
	// The engine step of a create whose catalog write never happened.
	const orphan = "vol-0123456789ABCDEF0"
	if err := e.CreateVolume(ctx, control.VolumeSpec{VolumeID: orphan, SizeBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if err := first.close(); err != nil {
		t.Fatal(err)
	}
	// The catalog step of a delete whose engine step never happened.
	db, err := catalog.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *catalog.Tx) error {
		v, err := tx.Volume(volumeID(deleted))
		if err != nil {
			return err
		}
		if err := tx.DeleteSchedule(v.ARN); err != nil {
			return err
		}
		if err := tx.PutTags(v.ARN, nil); err != nil {
			return err
		}
		if err := tx.DeleteClientTokensFor(v.ARN); err != nil {
			return err
		}
		return tx.DeleteVolume(v.ID)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	second, log := startServerLogging(t, dataDir, enginePartsOf(&engine, &mu))
	for _, id := range []string{orphan, volumeID(deleted)} {
		if l := log(); !strings.Contains(l, "deleting a volume no catalog record names") || !strings.Contains(l, id) {
			t.Fatalf("start did not log the removal of %s:\n%s", id, l)
		}
	}
	mu.Lock()
	e = engine
	mu.Unlock()
	for _, id := range []string{orphan, volumeID(deleted)} {
		if _, err := e.Volume(id); !errors.Is(err, control.ErrVolumeNotFound) {
			t.Fatalf("engine volume %s after start: %v, want it deleted", id, err)
		}
	}
	if _, err := e.Volume(volumeID(kept)); err != nil {
		t.Fatalf("kept volume: %v", err)
	}

	// The client whose create was interrupted retries it: one new volume,
	// the same one on every retry, and the engine's copy of the first
	// attempt is gone.
	c = newSDKClients(second.endpoint(), e2eKeyID, e2eSecret)
	retry := &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn), VolumeSizeInBytes: 1 << 30,
		TargetName: aws.String("retried"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("interrupted-1")}
	a, err := c.sgw.CreateCachediSCSIVolume(ctx, retry)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.sgw.CreateCachediSCSIVolume(ctx, retry)
	if err != nil || aws.ToString(b.VolumeARN) != aws.ToString(a.VolumeARN) {
		t.Fatalf("second retry: %+v %v, want %s", b, err, aws.ToString(a.VolumeARN))
	}
	vols, err := c.sgw.ListVolumes(ctx, &storagegateway.ListVolumesInput{GatewayARN: aws.String(g.arn)})
	if err != nil || len(vols.VolumeInfos) != 2 {
		t.Fatalf("ListVolumes: %+v %v", vols, err)
	}
	for _, v := range vols.VolumeInfos {
		if id := aws.ToString(v.VolumeId); id == orphan || id == volumeID(deleted) {
			t.Fatalf("ListVolumes shows %s", id)
		}
	}
}
