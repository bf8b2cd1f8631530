package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
	"github.com/aws/smithy-go"
)

var (
	recoveryPointTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	snapshotIDRe      = regexp.MustCompile(`^snap-[0-9a-f]{17}$`)
	gatewayARNRe      = regexp.MustCompile(`^arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-[0-9A-F]{8}$`)
	volumeARNRe       = regexp.MustCompile(`^arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-[0-9A-F]{8}/volume/vol-[0-9A-F]{17}$`)
)

type sdkClients struct {
	sgw *storagegateway.Client
	ec2 *ec2.Client
}

func newSDKClients(endpoint, keyID, secret string) sdkClients {
	cfg := aws.Config{Region: "us-east-1", RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(keyID, secret, "")}
	return sdkClients{
		sgw: storagegateway.NewFromConfig(cfg, func(o *storagegateway.Options) { o.BaseEndpoint = aws.String(endpoint) }),
		ec2: ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(endpoint) }),
	}
}

// activationKey asks the appliance page for a key, as a browser or curl
// does before ActivateGateway.
func activationKey(t *testing.T, endpoint string) string {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(endpoint + "/?activationRegion=us-east-1&gatewayType=CACHED")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("activation page: status %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	key := loc.Query().Get("activationKey")
	if !regexp.MustCompile(`^[0-9A-Z]{5}(-[0-9A-Z]{5}){4}$`).MatchString(key) {
		t.Fatalf("activation key %q in %q", key, loc)
	}
	return key
}

// gatewayFixture is an activated gateway with its cache and upload buffer
// allocated, as every volume operation needs.
type gatewayFixture struct {
	arn, ip string
}

func activateGateway(t *testing.T, ctx context.Context, c sdkClients, endpoint string) gatewayFixture {
	t.Helper()
	act, err := c.sgw.ActivateGateway(ctx, &storagegateway.ActivateGatewayInput{
		ActivationKey: aws.String(activationKey(t, endpoint)), GatewayName: aws.String("e2e-gateway"),
		GatewayTimezone: aws.String("GMT"), GatewayRegion: aws.String("us-east-1"), GatewayType: aws.String("CACHED"),
	})
	if err != nil {
		t.Fatalf("ActivateGateway: %v", err)
	}
	g := gatewayFixture{arn: aws.ToString(act.GatewayARN)}
	if !gatewayARNRe.MatchString(g.arn) {
		t.Fatalf("GatewayARN %q", g.arn)
	}
	info, err := c.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: act.GatewayARN})
	if err != nil {
		t.Fatalf("DescribeGatewayInformation: %v", err)
	}
	if len(info.GatewayNetworkInterfaces) != 1 {
		t.Fatalf("GatewayNetworkInterfaces %+v", info.GatewayNetworkInterfaces)
	}
	g.ip = aws.ToString(info.GatewayNetworkInterfaces[0].Ipv4Address)
	disks, err := c.sgw.ListLocalDisks(ctx, &storagegateway.ListLocalDisksInput{GatewayARN: act.GatewayARN})
	if err != nil {
		t.Fatalf("ListLocalDisks: %v", err)
	}
	var cacheDisk, bufferDisk string
	for _, d := range disks.Disks {
		switch {
		case strings.HasPrefix(aws.ToString(d.DiskId), "cache"):
			cacheDisk = aws.ToString(d.DiskId)
		case strings.HasPrefix(aws.ToString(d.DiskId), "buffer"):
			bufferDisk = aws.ToString(d.DiskId)
		}
	}
	if cacheDisk == "" || bufferDisk == "" {
		t.Fatalf("ListLocalDisks: %+v", disks.Disks)
	}
	if _, err := c.sgw.AddCache(ctx, &storagegateway.AddCacheInput{GatewayARN: act.GatewayARN, DiskIds: []string{cacheDisk}}); err != nil {
		t.Fatalf("AddCache: %v", err)
	}
	if _, err := c.sgw.AddUploadBuffer(ctx, &storagegateway.AddUploadBufferInput{GatewayARN: act.GatewayARN, DiskIds: []string{bufferDisk}}); err != nil {
		t.Fatalf("AddUploadBuffer: %v", err)
	}
	return g
}

func wantGatewayError(t *testing.T, what string, err error, code sgwtypes.ErrorCode, message string) {
	t.Helper()
	var e *sgwtypes.InvalidGatewayRequestException
	if !errors.As(err, &e) {
		t.Fatalf("%s: got %v, want InvalidGatewayRequestException %s", what, err, code)
	}
	if e.Error_ == nil || e.Error_.ErrorCode != code || (message != "" && aws.ToString(e.Message) != message) {
		t.Fatalf("%s: got %s %+v %q, want %s %q", what, e.ErrorCode(), e.Error_, aws.ToString(e.Message), code, message)
	}
}

func wantAPIError(t *testing.T, what string, err error, code, message string) {
	t.Helper()
	var e smithy.APIError
	if !errors.As(err, &e) || e.ErrorCode() != code || (message != "" && e.ErrorMessage() != message) {
		t.Fatalf("%s: got %v, want %s %q", what, err, code, message)
	}
}

// TestGoSDKEveryOperation drives every implemented Storage Gateway
// operation and both EC2 actions through aws-sdk-go-v2 against volgw
// serve, checking the answers' shapes and values.
func TestGoSDKEveryOperation(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	gwARN := aws.String(g.arn)
	_, iscsiPortStr, _ := net.SplitHostPort(s.ISCSIAddr())
	iscsiPort, _ := strconv.Atoi(iscsiPortStr)

	// Gateways.
	list, err := c.sgw.ListGateways(ctx, &storagegateway.ListGatewaysInput{Limit: aws.Int32(1)})
	if err != nil || len(list.Gateways) != 1 || aws.ToString(list.Gateways[0].GatewayARN) != g.arn ||
		aws.ToString(list.Gateways[0].GatewayType) != "CACHED" {
		t.Fatalf("ListGateways: %+v %v", list, err)
	}
	upd, err := c.sgw.UpdateGatewayInformation(ctx, &storagegateway.UpdateGatewayInformationInput{GatewayARN: gwARN, GatewayName: aws.String("renamed")})
	if err != nil || aws.ToString(upd.GatewayName) != "renamed" {
		t.Fatalf("UpdateGatewayInformation: %+v %v", upd, err)
	}
	info, err := c.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: gwARN})
	if err != nil || aws.ToString(info.GatewayName) != "renamed" || aws.ToString(info.GatewayState) != "STATE_RUNNING" ||
		aws.ToString(info.GatewayType) != "CACHED" || g.ip != "127.0.0.1" {
		t.Fatalf("DescribeGatewayInformation: name %q state %q type %q ip %q: %v", aws.ToString(info.GatewayName),
			aws.ToString(info.GatewayState), aws.ToString(info.GatewayType), g.ip, err)
	}

	// Disks: both allocated by activateGateway; allocating again fails.
	cache, err := c.sgw.DescribeCache(ctx, &storagegateway.DescribeCacheInput{GatewayARN: gwARN})
	if err != nil || len(cache.DiskIds) != 1 || cache.CacheAllocatedInBytes != 2<<30 {
		t.Fatalf("DescribeCache: %+v %v", cache, err)
	}
	buf, err := c.sgw.DescribeUploadBuffer(ctx, &storagegateway.DescribeUploadBufferInput{GatewayARN: gwARN})
	if err != nil || len(buf.DiskIds) != 1 || buf.UploadBufferAllocatedInBytes != 1<<30 {
		t.Fatalf("DescribeUploadBuffer: %+v %v", buf, err)
	}
	_, err = c.sgw.AddCache(ctx, &storagegateway.AddCacheInput{GatewayARN: gwARN, DiskIds: cache.DiskIds})
	wantGatewayError(t, "AddCache twice", err, sgwtypes.ErrorCodeDiskAlreadyAllocated, "")
	_, err = c.sgw.AddUploadBuffer(ctx, &storagegateway.AddUploadBufferInput{GatewayARN: gwARN, DiskIds: []string{"no-such-disk"}})
	wantGatewayError(t, "AddUploadBuffer unknown disk", err, sgwtypes.ErrorCodeDiskDoesNotExist, "")

	// Volumes.
	create := &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: gwARN, VolumeSizeInBytes: 1 << 30,
		TargetName: aws.String("e2e-vol"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("token-1")}
	vol, err := c.sgw.CreateCachediSCSIVolume(ctx, create)
	if err != nil {
		t.Fatalf("CreateCachediSCSIVolume: %v", err)
	}
	volARN := aws.ToString(vol.VolumeARN)
	wantTarget := g.arn + "/target/iqn.1997-05.com.amazon:e2e-vol"
	if !volumeARNRe.MatchString(volARN) || aws.ToString(vol.TargetARN) != wantTarget {
		t.Fatalf("CreateCachediSCSIVolume: %s %s", volARN, aws.ToString(vol.TargetARN))
	}
	again, err := c.sgw.CreateCachediSCSIVolume(ctx, create)
	if err != nil || aws.ToString(again.VolumeARN) != volARN {
		t.Fatalf("CreateCachediSCSIVolume with the same ClientToken: %+v %v", again, err)
	}
	create.ClientToken = aws.String("token-2")
	_, err = c.sgw.CreateCachediSCSIVolume(ctx, create)
	wantGatewayError(t, "second volume on the same target", err, sgwtypes.ErrorCodeTargetAlreadyExists, "")

	desc, err := c.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{volARN}})
	if err != nil || len(desc.CachediSCSIVolumes) != 1 {
		t.Fatalf("DescribeCachediSCSIVolumes: %+v %v", desc, err)
	}
	v := desc.CachediSCSIVolumes[0]
	attrs := v.VolumeiSCSIAttributes
	if aws.ToString(v.VolumeARN) != volARN || v.VolumeSizeInBytes != 1<<30 || aws.ToString(v.VolumeType) != "CACHED iSCSI" ||
		attrs == nil || aws.ToString(attrs.TargetARN) != wantTarget || attrs.NetworkInterfacePort != int32(iscsiPort) ||
		aws.ToString(attrs.NetworkInterfaceId) != g.ip || attrs.LunNumber == nil {
		t.Fatalf("DescribeCachediSCSIVolumes: %+v attrs %+v", v, attrs)
	}
	vols, err := c.sgw.ListVolumes(ctx, &storagegateway.ListVolumesInput{GatewayARN: gwARN, Limit: aws.Int32(10)})
	if err != nil || len(vols.VolumeInfos) != 1 || aws.ToString(vols.VolumeInfos[0].VolumeARN) != volARN {
		t.Fatalf("ListVolumes: %+v %v", vols, err)
	}
	inits, err := c.sgw.ListVolumeInitiators(ctx, &storagegateway.ListVolumeInitiatorsInput{VolumeARN: vol.VolumeARN})
	if err != nil || len(inits.Initiators) != 0 {
		t.Fatalf("ListVolumeInitiators: %+v %v", inits, err)
	}

	// The seed operations.
	rps, err := c.sgw.ListVolumeRecoveryPoints(ctx, &storagegateway.ListVolumeRecoveryPointsInput{GatewayARN: gwARN})
	if err != nil || aws.ToString(rps.GatewayARN) != g.arn || len(rps.VolumeRecoveryPointInfos) != 1 {
		t.Fatalf("ListVolumeRecoveryPoints: %+v %v", rps, err)
	}
	rp := rps.VolumeRecoveryPointInfos[0]
	if aws.ToString(rp.VolumeARN) != volARN || rp.VolumeSizeInBytes != 1<<30 || !recoveryPointTime.MatchString(aws.ToString(rp.VolumeRecoveryPointTime)) {
		t.Fatalf("VolumeRecoveryPointInfo: %+v", rp)
	}
	snap, err := c.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
		VolumeARN: vol.VolumeARN, SnapshotDescription: aws.String("snapshot description"),
		Tags: []sgwtypes.Tag{{Key: aws.String("env"), Value: aws.String("e2e")}},
	})
	if err != nil || !snapshotIDRe.MatchString(aws.ToString(snap.SnapshotId)) || aws.ToString(snap.VolumeARN) != volARN ||
		!recoveryPointTime.MatchString(aws.ToString(snap.VolumeRecoveryPointTime)) ||
		aws.ToString(snap.VolumeRecoveryPointTime) < aws.ToString(rp.VolumeRecoveryPointTime) {
		// An idle volume is consistent as of now: the snapshot's point is
		// the listed one or later (same format, so strings compare).
		t.Fatalf("CreateSnapshotFromVolumeRecoveryPoint: %+v %v (recovery point %s)", snap, err, aws.ToString(rp.VolumeRecoveryPointTime))
	}
	snap2, err := c.sgw.CreateSnapshot(ctx, &storagegateway.CreateSnapshotInput{VolumeARN: vol.VolumeARN, SnapshotDescription: aws.String("second")})
	if err != nil || !snapshotIDRe.MatchString(aws.ToString(snap2.SnapshotId)) || aws.ToString(snap2.VolumeARN) != volARN {
		t.Fatalf("CreateSnapshot: %+v %v", snap2, err)
	}

	// Tags on the gateway, the volume and a snapshot.
	snapARN := "arn:aws:ec2:us-east-1::snapshot/" + aws.ToString(snap.SnapshotId)
	for _, arn := range []string{g.arn, volARN, snapARN} {
		if _, err := c.sgw.AddTagsToResource(ctx, &storagegateway.AddTagsToResourceInput{ResourceARN: aws.String(arn),
			Tags: []sgwtypes.Tag{{Key: aws.String("team"), Value: aws.String("storage")}, {Key: aws.String("tmp"), Value: aws.String("x")}}}); err != nil {
			t.Fatalf("AddTagsToResource %s: %v", arn, err)
		}
		if _, err := c.sgw.RemoveTagsFromResource(ctx, &storagegateway.RemoveTagsFromResourceInput{ResourceARN: aws.String(arn), TagKeys: []string{"tmp"}}); err != nil {
			t.Fatalf("RemoveTagsFromResource %s: %v", arn, err)
		}
		tags, err := c.sgw.ListTagsForResource(ctx, &storagegateway.ListTagsForResourceInput{ResourceARN: aws.String(arn)})
		if err != nil || aws.ToString(tags.ResourceARN) != arn {
			t.Fatalf("ListTagsForResource %s: %+v %v", arn, tags, err)
		}
		got := map[string]string{}
		for _, tg := range tags.Tags {
			got[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		if got["team"] != "storage" || got["tmp"] != "" {
			t.Fatalf("tags of %s: %v", arn, got)
		}
	}

	// Snapshot schedule.
	if _, err := c.sgw.UpdateSnapshotSchedule(ctx, &storagegateway.UpdateSnapshotScheduleInput{VolumeARN: vol.VolumeARN,
		StartAt: aws.Int32(3), RecurrenceInHours: aws.Int32(12), Description: aws.String("nightly")}); err != nil {
		t.Fatalf("UpdateSnapshotSchedule: %v", err)
	}
	sched, err := c.sgw.DescribeSnapshotSchedule(ctx, &storagegateway.DescribeSnapshotScheduleInput{VolumeARN: vol.VolumeARN})
	if err != nil || aws.ToInt32(sched.StartAt) != 3 || aws.ToInt32(sched.RecurrenceInHours) != 12 || aws.ToString(sched.Description) != "nightly" {
		t.Fatalf("DescribeSnapshotSchedule: %+v %v", sched, err)
	}
	if _, err := c.sgw.DeleteSnapshotSchedule(ctx, &storagegateway.DeleteSnapshotScheduleInput{VolumeARN: vol.VolumeARN}); err != nil {
		t.Fatalf("DeleteSnapshotSchedule: %v", err)
	}

	// CHAP on the volume's target.
	chap := &storagegateway.UpdateChapCredentialsInput{TargetARN: aws.String(wantTarget), InitiatorName: aws.String("iqn.1994-05.com.redhat:e2e"),
		SecretToAuthenticateInitiator: aws.String("initiatorsecret1")}
	if _, err := c.sgw.UpdateChapCredentials(ctx, chap); err != nil {
		t.Fatalf("UpdateChapCredentials: %v", err)
	}
	creds, err := c.sgw.DescribeChapCredentials(ctx, &storagegateway.DescribeChapCredentialsInput{TargetARN: aws.String(wantTarget)})
	if err != nil || len(creds.ChapCredentials) != 1 || aws.ToString(creds.ChapCredentials[0].InitiatorName) != "iqn.1994-05.com.redhat:e2e" ||
		aws.ToString(creds.ChapCredentials[0].SecretToAuthenticateInitiator) != "initiatorsecret1" {
		t.Fatalf("DescribeChapCredentials: %+v %v", creds, err)
	}
	if _, err := c.sgw.DeleteChapCredentials(ctx, &storagegateway.DeleteChapCredentialsInput{TargetARN: aws.String(wantTarget),
		InitiatorName: chap.InitiatorName}); err != nil {
		t.Fatalf("DeleteChapCredentials: %v", err)
	}

	// EC2: the snapshots as EC2 shows them.
	ds, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(snap.SnapshotId)}})
	if err != nil || len(ds.Snapshots) != 1 {
		t.Fatalf("DescribeSnapshots: %+v %v", ds, err)
	}
	es := ds.Snapshots[0]
	volID := strings.ToLower(volARN[strings.LastIndex(volARN, "/")+1:])
	if aws.ToString(es.SnapshotId) != aws.ToString(snap.SnapshotId) || aws.ToString(es.VolumeId) != volID ||
		aws.ToInt32(es.VolumeSize) != 1 || es.State != ec2types.SnapshotStateCompleted || aws.ToString(es.Description) != "snapshot description" ||
		es.StartTime == nil || aws.ToString(es.OwnerId) != "123456789012" {
		t.Fatalf("DescribeSnapshots: %+v", es)
	}
	filtered, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: []ec2types.Filter{
		{Name: aws.String("volume-id"), Values: []string{volID}}, {Name: aws.String("tag:env"), Values: []string{"e2e"}}}})
	if err != nil || len(filtered.Snapshots) != 1 || aws.ToString(filtered.Snapshots[0].SnapshotId) != aws.ToString(snap.SnapshotId) {
		t.Fatalf("DescribeSnapshots with filters: %+v %v", filtered, err)
	}
	all, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	if err != nil || len(all.Snapshots) != 2 {
		t.Fatalf("DescribeSnapshots Owner self: %+v %v", all, err)
	}
	if _, err := c.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: snap2.SnapshotId}); err != nil {
		t.Fatalf("DeleteSnapshot: %v", err)
	}
	_, err = c.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: snap2.SnapshotId})
	wantAPIError(t, "DeleteSnapshot twice", err, "InvalidSnapshot.NotFound", "The snapshot '"+aws.ToString(snap2.SnapshotId)+"' does not exist.")

	// Tear down, in the order a user would.
	if _, err := c.sgw.DeleteVolume(ctx, &storagegateway.DeleteVolumeInput{VolumeARN: vol.VolumeARN}); err != nil {
		t.Fatalf("DeleteVolume: %v", err)
	}
	_, err = c.sgw.DescribeSnapshotSchedule(ctx, &storagegateway.DescribeSnapshotScheduleInput{VolumeARN: vol.VolumeARN})
	wantGatewayError(t, "deleted volume", err, sgwtypes.ErrorCodeVolumeNotFound, "The specified volume was not found.")
	if _, err := c.sgw.ShutdownGateway(ctx, &storagegateway.ShutdownGatewayInput{GatewayARN: gwARN}); err != nil {
		t.Fatalf("ShutdownGateway: %v", err)
	}
	info, err = c.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: gwARN})
	if err != nil || aws.ToString(info.GatewayState) != "STATE_SHUTDOWN" {
		t.Fatalf("after ShutdownGateway: %+v %v", info, err)
	}
	if _, err := c.sgw.StartGateway(ctx, &storagegateway.StartGatewayInput{GatewayARN: gwARN}); err != nil {
		t.Fatalf("StartGateway: %v", err)
	}
	if _, err := c.sgw.DeleteGateway(ctx, &storagegateway.DeleteGatewayInput{GatewayARN: gwARN}); err != nil {
		t.Fatalf("DeleteGateway: %v", err)
	}
	_, err = c.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: gwARN})
	wantGatewayError(t, "deleted gateway", err, sgwtypes.ErrorCodeGatewayNotFound, "The specified gateway was not found.")
}
