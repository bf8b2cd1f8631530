package main

import (
	"context"
	"net/url"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"

	"github.com/volgw/volgw/internal/blob/blobtest"
)

// TestTwoGatewaysShareAnS3Store runs volgw serve on a real S3 server
// (versitygw on 127.0.0.1) through --store s3://…, writes random data over
// iSCSI, takes a snapshot, and checks that a second gateway with its own,
// empty data dir on the same bucket lists that snapshot, creates a volume
// from it and serves exactly those bytes over iSCSI: the bucket is the
// shared truth.
func TestTwoGatewaysShareAnS3Store(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	q := url.Values{"endpoint": {srv.Endpoint}, "region": {srv.Region}, "path_style": {"true"}}
	store := "s3://" + srv.Bucket + "/shared?" + q.Encode()
	env := map[string]string{"VOLGW_S3_ACCESS_KEY_ID": srv.AccessKeyID, "VOLGW_S3_SECRET_ACCESS_KEY": srv.SecretAccessKey}
	ctx := context.Background()

	first := startServerWith(t, "", []string{"--store", store}, env)
	c1 := newSDKClients(first.endpoint(), e2eKeyID, e2eSecret)
	g1 := activateGateway(t, ctx, c1, first.endpoint())
	vol, err := c1.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g1.arn),
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String("s3-vol"), NetworkInterfaceId: aws.String(g1.ip), ClientToken: aws.String("s3-token-1")})
	if err != nil {
		t.Fatal(err)
	}
	// 8 MiB across 16 blocks, flushed by qemu-img; CreateSnapshot cuts
	// them and is completed once the cut is in the bucket.
	data := writeRandomOverISCSI(t, volumeLUNURL(t, ctx, c1, aws.ToString(vol.VolumeARN)), 8<<20)
	snap, err := c1.sgw.CreateSnapshot(ctx, &storagegateway.CreateSnapshotInput{
		VolumeARN: vol.VolumeARN, SnapshotDescription: aws.String("shared through S3")})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshotCompleted(t, ctx, c1, aws.ToString(snap.SnapshotId))

	second := startServerWith(t, "", []string{"--store", store}, env)
	c2 := newSDKClients(second.endpoint(), e2eKeyID, e2eSecret)
	ds, err := c2.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(snap.SnapshotId)}})
	if err != nil || len(ds.Snapshots) != 1 || aws.ToString(ds.Snapshots[0].Description) != "shared through S3" {
		t.Fatalf("second gateway's DescribeSnapshots: %+v %v", ds, err)
	}
	g2 := activateGateway(t, ctx, c2, second.endpoint())
	restored, err := c2.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g2.arn),
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String("restored"), NetworkInterfaceId: aws.String(g2.ip), ClientToken: aws.String("s3-token-2"),
		SnapshotId: snap.SnapshotId})
	if err != nil {
		t.Fatalf("second gateway restoring the snapshot: %v", err)
	}
	rps, err := c2.sgw.ListVolumeRecoveryPoints(ctx, &storagegateway.ListVolumeRecoveryPointsInput{GatewayARN: aws.String(g2.arn)})
	if err != nil || len(rps.VolumeRecoveryPointInfos) != 1 || aws.ToString(rps.VolumeRecoveryPointInfos[0].VolumeARN) != aws.ToString(restored.VolumeARN) {
		t.Fatalf("restored volume's recovery point: %+v %v", rps, err)
	}
	checkBytesOverISCSI(t, volumeLUNURL(t, ctx, c2, aws.ToString(restored.VolumeARN)), data)
}
