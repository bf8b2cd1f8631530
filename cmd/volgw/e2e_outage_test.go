package main

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"

	"github.com/volgw/volgw/internal/blob/blobtest"
)

// TestStoreOutage takes the object store (a real versitygw) away while a
// volume is written: writes and flushes are still acknowledged (they are
// in the upload buffer), the recovery point does not move past what the
// store holds, and once the store is back the recovery point catches up
// and a snapshot restored on a second gateway holds every flushed byte.
func TestStoreOutage(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	q := url.Values{"endpoint": {srv.Endpoint}, "region": {srv.Region}, "path_style": {"true"}}
	store := "s3://" + srv.Bucket + "/outage?" + q.Encode()
	env := map[string]string{"VOLGW_S3_ACCESS_KEY_ID": srv.AccessKeyID, "VOLGW_S3_SECRET_ACCESS_KEY": srv.SecretAccessKey}
	ctx := context.Background()

	gw := startServerWith(t, "", []string{"--store", store}, env)
	c := newSDKClients(gw.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, gw.endpoint())
	vol, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String("outage"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("outage-1")})
	if err != nil {
		t.Fatal(err)
	}
	lun := volumeLUNURL(t, ctx, c, aws.ToString(vol.VolumeARN))
	writeRandomOverISCSI(t, lun, 8<<20)
	first, err := c.sgw.CreateSnapshot(ctx, &storagegateway.CreateSnapshotInput{VolumeARN: vol.VolumeARN, SnapshotDescription: aws.String("before")})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshotCompleted(t, ctx, c, aws.ToString(first.SnapshotId))

	srv.Stop()
	outage := time.Now()
	data := writeRandomOverISCSI(t, lun, 8<<20) // acknowledged and flushed into the upload buffer
	written := time.Now()
	// Give the uploader more than one cut interval (5 s) to try, and fail.
	time.Sleep(7 * time.Second)
	if rp := recoveryPointOf(t, ctx, c, g.arn, aws.ToString(vol.VolumeARN)); !rp.Before(outage) {
		t.Fatalf("during the outage the recovery point moved to %s, after the outage began at %s", rp, outage)
	}
	ub, err := c.sgw.DescribeUploadBuffer(ctx, &storagegateway.DescribeUploadBufferInput{GatewayARN: aws.String(g.arn)})
	if err != nil || ub.UploadBufferUsedInBytes < 8<<20 {
		t.Fatalf("upload buffer during the outage: %+v %v (want at least the 8 MiB not yet uploaded)", ub, err)
	}
	checkBytesOverISCSI(t, lun, data) // the gateway serves what it acknowledged

	srv.Restart()
	deadline := time.Now().Add(3 * time.Minute)
	for rp := recoveryPointOf(t, ctx, c, g.arn, aws.ToString(vol.VolumeARN)); !rp.After(written); rp = recoveryPointOf(t, ctx, c, g.arn, aws.ToString(vol.VolumeARN)) {
		if time.Now().After(deadline) {
			t.Fatalf("recovery point still %s, 3 minutes after the store came back (writes ended %s)", rp, written)
		}
		time.Sleep(500 * time.Millisecond)
	}
	snap, err := c.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
		VolumeARN: vol.VolumeARN, SnapshotDescription: aws.String("after the outage")})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshotCompleted(t, ctx, c, aws.ToString(snap.SnapshotId))

	// A second gateway with an empty data dir restores it from the bucket.
	other := startServerWith(t, "", []string{"--store", store}, env)
	c2 := newSDKClients(other.endpoint(), e2eKeyID, e2eSecret)
	g2 := activateGateway(t, ctx, c2, other.endpoint())
	restored, err := c2.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g2.arn),
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String("restored"), NetworkInterfaceId: aws.String(g2.ip), ClientToken: aws.String("outage-2"),
		SnapshotId: snap.SnapshotId})
	if err != nil {
		t.Fatal(err)
	}
	checkBytesOverISCSI(t, volumeLUNURL(t, ctx, c2, aws.ToString(restored.VolumeARN)), data)
}

// recoveryPointOf is the volume's VolumeRecoveryPointTime as
// ListVolumeRecoveryPoints reports it.
func recoveryPointOf(t *testing.T, ctx context.Context, c sdkClients, gatewayARN, volumeARN string) time.Time {
	t.Helper()
	rps, err := c.sgw.ListVolumeRecoveryPoints(ctx, &storagegateway.ListVolumeRecoveryPointsInput{GatewayARN: aws.String(gatewayARN)})
	if err != nil {
		t.Fatal(err)
	}
	for _, rp := range rps.VolumeRecoveryPointInfos {
		if aws.ToString(rp.VolumeARN) == volumeARN {
			tm, err := time.Parse(time.RFC3339Nano, aws.ToString(rp.VolumeRecoveryPointTime))
			if err != nil {
				t.Fatalf("VolumeRecoveryPointTime %q: %v", aws.ToString(rp.VolumeRecoveryPointTime), err)
			}
			return tm
		}
	}
	t.Fatalf("ListVolumeRecoveryPoints has no %s: %+v", volumeARN, rps)
	return time.Time{}
}
