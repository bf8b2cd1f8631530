package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
)

// TestValidationAsAWS: what AWS refuses and volgw used to take (time zones
// it then treated as GMT, CHAP secrets of the wrong length, tag keys in
// AWS's aws: namespace, Markers it never handed out, volume sizes that are
// not a whole number of sectors), through aws-sdk-go-v2.
func TestValidationAsAWS(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	const badTZ = `The specified time zone is not valid. The time zone is of the format "GMT", "GMT-hr:mm", or "GMT+hr:mm".`
	for _, tz := range []string{"UTC", "Foo", "GMT+25:00", "GMT+5", "GMT+5:7", "GMT-13:00", "gmt", "GMT+05:60"} {
		_, err := c.sgw.ActivateGateway(ctx, &storagegateway.ActivateGatewayInput{
			ActivationKey: aws.String(activationKey(t, s.endpoint())), GatewayName: aws.String("tz"),
			GatewayTimezone: aws.String(tz), GatewayRegion: aws.String("us-east-1"), GatewayType: aws.String("CACHED")})
		checkGatewayError(t, "ActivateGateway with time zone "+tz, err, sgwtypes.ErrorCodeInvalidParameters, badTZ)
	}
	_, err := c.sgw.ActivateGateway(ctx, &storagegateway.ActivateGatewayInput{
		ActivationKey: aws.String(activationKey(t, s.endpoint())), GatewayName: aws.String("tags"),
		GatewayTimezone: aws.String("GMT"), GatewayRegion: aws.String("us-east-1"), GatewayType: aws.String("CACHED"),
		Tags: []sgwtypes.Tag{{Key: aws.String("AWS:owner"), Value: aws.String("x")}}})
	checkGatewayError(t, "ActivateGateway with an aws: tag", err, sgwtypes.ErrorCodeInvalidParameters, "The tag key can't start with aws:.")

	g := activateGateway(t, ctx, c, s.endpoint())
	gw := aws.String(g.arn)
	for _, tz := range []string{"GMT", "GMT-12:00", "GMT+14:00", "GMT+5:30", "GMT-3:30", "GMT+10:00"} {
		if _, err := c.sgw.UpdateGatewayInformation(ctx, &storagegateway.UpdateGatewayInformationInput{GatewayARN: gw, GatewayTimezone: aws.String(tz)}); err != nil {
			t.Fatalf("UpdateGatewayInformation with time zone %s: %v", tz, err)
		}
	}
	_, err = c.sgw.UpdateGatewayInformation(ctx, &storagegateway.UpdateGatewayInformationInput{GatewayARN: gw, GatewayTimezone: aws.String("UTC")})
	checkGatewayError(t, "UpdateGatewayInformation with time zone UTC", err, sgwtypes.ErrorCodeInvalidParameters, badTZ)
	info, err := c.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: gw})
	if err != nil || aws.ToString(info.GatewayTimezone) != "GMT+10:00" {
		t.Fatalf("time zone after a refused update: %+v %v", info, err)
	}

	_, err = c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: gw,
		VolumeSizeInBytes: 1<<30 + 1, TargetName: aws.String("odd"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("odd-1")})
	checkGatewayError(t, "CreateCachediSCSIVolume of 1 GiB + 1 byte", err, sgwtypes.ErrorCodeInvalidParameters, "The volume size must be a multiple of 512 bytes.")
	_, err = c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: gw,
		VolumeSizeInBytes: 1 << 20, TargetName: aws.String("small"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("small-1")})
	checkGatewayError(t, "CreateCachediSCSIVolume of 1 MiB", err, sgwtypes.ErrorCodeInvalidParameters, "The volume size must be between 1 GiB and 32 TiB.")
	vol, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: gw,
		VolumeSizeInBytes: 1<<30 + 512, TargetName: aws.String("sectors"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("sectors-1")})
	if err != nil {
		t.Fatalf("CreateCachediSCSIVolume of 1 GiB + 512 bytes: %v", err)
	}

	const badSecret = "The secret key must be between 12 and 16 bytes when encoded in UTF-8."
	for _, c2 := range []struct{ initiator, target string }{
		{"eleven-byte", ""}, {"seventeen-bytes-x", ""}, {"twelve-bytes", "short"}, {"twelve-bytes", "seventeen-bytes-x"},
		{"ééééééé", "éééééééé+"}, // 7 characters (14 bytes) is fine; 9 characters (17 bytes) is not
	} {
		in := &storagegateway.UpdateChapCredentialsInput{TargetARN: vol.TargetARN,
			InitiatorName: aws.String("iqn.2026-11.test:v"), SecretToAuthenticateInitiator: aws.String(c2.initiator)}
		if c2.target != "" {
			in.SecretToAuthenticateTarget = aws.String(c2.target)
		}
		_, err := c.sgw.UpdateChapCredentials(ctx, in)
		checkGatewayError(t, "UpdateChapCredentials "+c2.initiator+"/"+c2.target, err, sgwtypes.ErrorCodeInvalidParameters, badSecret)
	}
	if _, err := c.sgw.UpdateChapCredentials(ctx, &storagegateway.UpdateChapCredentialsInput{TargetARN: vol.TargetARN,
		InitiatorName: aws.String("iqn.2026-11.test:v"), SecretToAuthenticateInitiator: aws.String("ééééééé"),
		SecretToAuthenticateTarget: aws.String("twelve-bytes")}); err != nil {
		t.Fatalf("UpdateChapCredentials with 14- and 12-byte secrets: %v", err)
	}

	for _, key := range []string{"aws:created-by", "AWS:x", "Aws:"} {
		_, err = c.sgw.AddTagsToResource(ctx, &storagegateway.AddTagsToResourceInput{ResourceARN: vol.VolumeARN,
			Tags: []sgwtypes.Tag{{Key: aws.String("fine"), Value: aws.String("1")}, {Key: aws.String(key), Value: aws.String("x")}}})
		checkGatewayError(t, "AddTagsToResource "+key, err, sgwtypes.ErrorCodeInvalidParameters, "The tag key can't start with aws:.")
	}
	tags, err := c.sgw.ListTagsForResource(ctx, &storagegateway.ListTagsForResourceInput{ResourceARN: vol.VolumeARN})
	if err != nil || len(tags.Tags) != 0 {
		t.Fatalf("tags after refused AddTagsToResource: %+v %v", tags, err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := c.sgw.AddTagsToResource(ctx, &storagegateway.AddTagsToResourceInput{ResourceARN: vol.VolumeARN,
			Tags: []sgwtypes.Tag{{Key: aws.String(k), Value: aws.String(k)}, {Key: aws.String("awsome"), Value: aws.String("yes")}}}); err != nil {
			t.Fatal(err)
		}
	}

	// Markers: the one handed out works; one never handed out is refused,
	// not read as "from the first page".
	page1, err := c.sgw.ListTagsForResource(ctx, &storagegateway.ListTagsForResourceInput{ResourceARN: vol.VolumeARN, Limit: aws.Int32(2)})
	if err != nil || len(page1.Tags) != 2 || page1.Marker == nil {
		t.Fatalf("ListTagsForResource page 1: %+v %v", page1, err)
	}
	page2, err := c.sgw.ListTagsForResource(ctx, &storagegateway.ListTagsForResourceInput{ResourceARN: vol.VolumeARN, Limit: aws.Int32(2), Marker: page1.Marker})
	if err != nil || len(page2.Tags) != 2 || page2.Marker != nil || aws.ToString(page2.Tags[0].Key) == aws.ToString(page1.Tags[0].Key) {
		t.Fatalf("ListTagsForResource page 2: %+v %v", page2, err)
	}
	const badMarker = "The specified marker is not valid."
	_, err = c.sgw.ListTagsForResource(ctx, &storagegateway.ListTagsForResourceInput{ResourceARN: vol.VolumeARN, Marker: aws.String("no such marker!")})
	checkGatewayError(t, "ListTagsForResource with an invalid Marker", err, sgwtypes.ErrorCodeInvalidParameters, badMarker)
	for _, m := range []string{"aaaa", "0", "arn:aws:storagegateway:us-east-1:123456789012:gateway/not-a-gateway"} {
		_, err = c.sgw.ListGateways(ctx, &storagegateway.ListGatewaysInput{Marker: aws.String(m)})
		checkGatewayError(t, "ListGateways with Marker "+m, err, sgwtypes.ErrorCodeInvalidParameters, badMarker)
		_, err = c.sgw.ListVolumes(ctx, &storagegateway.ListVolumesInput{GatewayARN: gw, Marker: aws.String(m)})
		checkGatewayError(t, "ListVolumes with Marker "+m, err, sgwtypes.ErrorCodeInvalidParameters, badMarker)
	}
	// A volume ARN that sorts first (a marker of a page whose first volume
	// was deleted since) is still a marker.
	first := g.arn + "/volume/vol-00000000000000000"
	vols, err := c.sgw.ListVolumes(ctx, &storagegateway.ListVolumesInput{GatewayARN: gw, Marker: aws.String(first)})
	if err != nil || len(vols.VolumeInfos) != 1 {
		t.Fatalf("ListVolumes from a marker of a deleted volume: %+v %v", vols, err)
	}
}

// TestControlBoto3 runs scripts/e2e-control-boto3.py (a shut-down gateway,
// validation, Markers through boto3's paginator, VolumeStatus) against
// volgw serve.
func TestControlBoto3(t *testing.T) {
	s := startServer(t, "")
	out, err := runTool(t, scriptEnv(s), 3*time.Minute, "/usr/bin/python3", filepath.Join(repoRoot(t), "scripts", "e2e-control-boto3.py"))
	t.Logf("output:\n%s", out)
	if err != nil || !strings.HasSuffix(out, "PASS") {
		t.Fatalf("e2e-control-boto3.py: %v", err)
	}
}
