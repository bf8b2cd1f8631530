package main

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
)

// TestShutDownGatewayAnswersOnlyWhatAWSDoes: once a gateway is shut down,
// AWS documents that "you cannot call any other API except StartGateway,
// DescribeGatewayInformation, and ListGateways". Every other operation on
// the gateway, its volumes, targets and tags answers
// InvalidGatewayRequestException GatewayNotConnected and changes nothing;
// ListGateways still reports the gateway ACTIVE (its documented values are
// ACTIVE and DISABLED); DeleteGateway retires a shut-down gateway.
func TestShutDownGatewayAnswersOnlyWhatAWSDoes(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	gw := aws.String(g.arn)
	vol, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: gw,
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String("shut"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("shut-1")})
	if err != nil {
		t.Fatal(err)
	}
	const initiator = "iqn.2026-11.test:shut"
	if _, err := c.sgw.UpdateChapCredentials(ctx, &storagegateway.UpdateChapCredentialsInput{TargetARN: vol.TargetARN,
		InitiatorName: aws.String(initiator), SecretToAuthenticateInitiator: aws.String("shut-secret-01")}); err != nil {
		t.Fatal(err)
	}
	// The default schedule starts at the hour the volume was created; the
	// refused update below asks for another hour, whatever the clock says.
	sched0, err := c.sgw.DescribeSnapshotSchedule(ctx, &storagegateway.DescribeSnapshotScheduleInput{VolumeARN: vol.VolumeARN})
	if err != nil {
		t.Fatal(err)
	}
	refusedStartAt := (aws.ToInt32(sched0.StartAt) + 3) % 24
	if _, err := c.sgw.ShutdownGateway(ctx, &storagegateway.ShutdownGatewayInput{GatewayARN: gw}); err != nil {
		t.Fatal(err)
	}

	tag := []sgwtypes.Tag{{Key: aws.String("k"), Value: aws.String("v")}}
	refused := map[string]func() error{
		"ShutdownGateway": func() error {
			_, err := c.sgw.ShutdownGateway(ctx, &storagegateway.ShutdownGatewayInput{GatewayARN: gw})
			return err
		},
		"UpdateGatewayInformation": func() error {
			_, err := c.sgw.UpdateGatewayInformation(ctx, &storagegateway.UpdateGatewayInformationInput{GatewayARN: gw, GatewayName: aws.String("renamed")})
			return err
		},
		"ListLocalDisks": func() error {
			_, err := c.sgw.ListLocalDisks(ctx, &storagegateway.ListLocalDisksInput{GatewayARN: gw})
			return err
		},
		"AddCache": func() error {
			_, err := c.sgw.AddCache(ctx, &storagegateway.AddCacheInput{GatewayARN: gw, DiskIds: []string{"cache0"}})
			return err
		},
		"AddUploadBuffer": func() error {
			_, err := c.sgw.AddUploadBuffer(ctx, &storagegateway.AddUploadBufferInput{GatewayARN: gw, DiskIds: []string{"buffer0"}})
			return err
		},
		"DescribeCache": func() error {
			_, err := c.sgw.DescribeCache(ctx, &storagegateway.DescribeCacheInput{GatewayARN: gw})
			return err
		},
		"DescribeUploadBuffer": func() error {
			_, err := c.sgw.DescribeUploadBuffer(ctx, &storagegateway.DescribeUploadBufferInput{GatewayARN: gw})
			return err
		},
		"CreateCachediSCSIVolume": func() error {
			_, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: gw,
				VolumeSizeInBytes: 1 << 30, TargetName: aws.String("shut2"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("shut-2")})
			return err
		},
		"CreateCachediSCSIVolume (retried ClientToken)": func() error {
			_, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: gw,
				VolumeSizeInBytes: 1 << 30, TargetName: aws.String("shut"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("shut-1")})
			return err
		},
		"DescribeCachediSCSIVolumes": func() error {
			_, err := c.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{aws.ToString(vol.VolumeARN)}})
			return err
		},
		"ListVolumes": func() error {
			_, err := c.sgw.ListVolumes(ctx, &storagegateway.ListVolumesInput{GatewayARN: gw})
			return err
		},
		"DeleteVolume": func() error {
			_, err := c.sgw.DeleteVolume(ctx, &storagegateway.DeleteVolumeInput{VolumeARN: vol.VolumeARN})
			return err
		},
		"ListVolumeInitiators": func() error {
			_, err := c.sgw.ListVolumeInitiators(ctx, &storagegateway.ListVolumeInitiatorsInput{VolumeARN: vol.VolumeARN})
			return err
		},
		"ListVolumeRecoveryPoints": func() error {
			_, err := c.sgw.ListVolumeRecoveryPoints(ctx, &storagegateway.ListVolumeRecoveryPointsInput{GatewayARN: gw})
			return err
		},
		"CreateSnapshotFromVolumeRecoveryPoint": func() error {
			_, err := c.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
				VolumeARN: vol.VolumeARN, SnapshotDescription: aws.String("x")})
			return err
		},
		"CreateSnapshot": func() error {
			_, err := c.sgw.CreateSnapshot(ctx, &storagegateway.CreateSnapshotInput{VolumeARN: vol.VolumeARN, SnapshotDescription: aws.String("x")})
			return err
		},
		"AddTagsToResource (gateway)": func() error {
			_, err := c.sgw.AddTagsToResource(ctx, &storagegateway.AddTagsToResourceInput{ResourceARN: gw, Tags: tag})
			return err
		},
		"AddTagsToResource (volume)": func() error {
			_, err := c.sgw.AddTagsToResource(ctx, &storagegateway.AddTagsToResourceInput{ResourceARN: vol.VolumeARN, Tags: tag})
			return err
		},
		"RemoveTagsFromResource": func() error {
			_, err := c.sgw.RemoveTagsFromResource(ctx, &storagegateway.RemoveTagsFromResourceInput{ResourceARN: vol.VolumeARN, TagKeys: []string{"k"}})
			return err
		},
		"ListTagsForResource": func() error {
			_, err := c.sgw.ListTagsForResource(ctx, &storagegateway.ListTagsForResourceInput{ResourceARN: gw})
			return err
		},
		"UpdateSnapshotSchedule": func() error {
			_, err := c.sgw.UpdateSnapshotSchedule(ctx, &storagegateway.UpdateSnapshotScheduleInput{VolumeARN: vol.VolumeARN,
				StartAt: aws.Int32(refusedStartAt), RecurrenceInHours: aws.Int32(24)})
			return err
		},
		"DescribeSnapshotSchedule": func() error {
			_, err := c.sgw.DescribeSnapshotSchedule(ctx, &storagegateway.DescribeSnapshotScheduleInput{VolumeARN: vol.VolumeARN})
			return err
		},
		"DeleteSnapshotSchedule": func() error {
			_, err := c.sgw.DeleteSnapshotSchedule(ctx, &storagegateway.DeleteSnapshotScheduleInput{VolumeARN: vol.VolumeARN})
			return err
		},
		"UpdateChapCredentials": func() error {
			_, err := c.sgw.UpdateChapCredentials(ctx, &storagegateway.UpdateChapCredentialsInput{TargetARN: vol.TargetARN,
				InitiatorName: aws.String(initiator), SecretToAuthenticateInitiator: aws.String("other-secret-1")})
			return err
		},
		"DescribeChapCredentials": func() error {
			_, err := c.sgw.DescribeChapCredentials(ctx, &storagegateway.DescribeChapCredentialsInput{TargetARN: vol.TargetARN})
			return err
		},
		"DeleteChapCredentials": func() error {
			_, err := c.sgw.DeleteChapCredentials(ctx, &storagegateway.DeleteChapCredentialsInput{TargetARN: vol.TargetARN,
				InitiatorName: aws.String(initiator)})
			return err
		},
	}
	for op, call := range refused {
		checkGatewayError(t, op+" on a shut-down gateway", call(), sgwtypes.ErrorCodeGatewayNotConnected,
			"The specified gateway is not connected.")
	}
	if t.Failed() {
		t.FailNow()
	}

	info, err := c.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: gw})
	if err != nil || aws.ToString(info.GatewayState) != "STATE_SHUTDOWN" || aws.ToString(info.GatewayName) != "e2e-gateway" {
		t.Fatalf("DescribeGatewayInformation of a shut-down gateway: %+v %v", info, err)
	}
	list, err := c.sgw.ListGateways(ctx, &storagegateway.ListGatewaysInput{})
	if err != nil || len(list.Gateways) != 1 || aws.ToString(list.Gateways[0].GatewayOperationalState) != "ACTIVE" {
		t.Fatalf("ListGateways with a shut-down gateway: %+v %v", list, err)
	}

	// Started again, nothing the refused calls named has changed.
	if _, err := c.sgw.StartGateway(ctx, &storagegateway.StartGatewayInput{GatewayARN: gw}); err != nil {
		t.Fatal(err)
	}
	vols, err := c.sgw.ListVolumes(ctx, &storagegateway.ListVolumesInput{GatewayARN: gw})
	if err != nil || len(vols.VolumeInfos) != 1 || aws.ToString(vols.VolumeInfos[0].VolumeARN) != aws.ToString(vol.VolumeARN) {
		t.Fatalf("ListVolumes after StartGateway: %+v %v", vols, err)
	}
	tags, err := c.sgw.ListTagsForResource(ctx, &storagegateway.ListTagsForResourceInput{ResourceARN: vol.VolumeARN})
	if err != nil || len(tags.Tags) != 0 {
		t.Fatalf("tags after StartGateway: %+v %v", tags, err)
	}
	chap, err := c.sgw.DescribeChapCredentials(ctx, &storagegateway.DescribeChapCredentialsInput{TargetARN: vol.TargetARN})
	if err != nil || len(chap.ChapCredentials) != 1 || aws.ToString(chap.ChapCredentials[0].SecretToAuthenticateInitiator) != "shut-secret-01" {
		t.Fatalf("CHAP after StartGateway: %+v %v", chap, err)
	}
	sched, err := c.sgw.DescribeSnapshotSchedule(ctx, &storagegateway.DescribeSnapshotScheduleInput{VolumeARN: vol.VolumeARN})
	if err != nil || aws.ToInt32(sched.RecurrenceInHours) != 24 || aws.ToInt32(sched.StartAt) != aws.ToInt32(sched0.StartAt) {
		t.Fatalf("schedule after StartGateway: %+v %v", sched, err)
	}
	info, err = c.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: gw})
	if err != nil || aws.ToString(info.GatewayState) != "STATE_RUNNING" || aws.ToString(info.GatewayName) != "e2e-gateway" {
		t.Fatalf("DescribeGatewayInformation after StartGateway: %+v %v", info, err)
	}

	// A gateway that will not come back is deleted while shut down.
	if _, err := c.sgw.ShutdownGateway(ctx, &storagegateway.ShutdownGatewayInput{GatewayARN: gw}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.sgw.DeleteGateway(ctx, &storagegateway.DeleteGatewayInput{GatewayARN: gw}); err != nil {
		t.Fatalf("DeleteGateway of a shut-down gateway: %v", err)
	}
	list, err = c.sgw.ListGateways(ctx, &storagegateway.ListGatewaysInput{})
	if err != nil || len(list.Gateways) != 0 {
		t.Fatalf("ListGateways after DeleteGateway: %+v %v", list, err)
	}
}

// checkGatewayError is wantGatewayError that lets the test go on, so that
// one run reports every operation that answers wrongly.
func checkGatewayError(t *testing.T, what string, err error, code sgwtypes.ErrorCode, message string) {
	t.Helper()
	var e *sgwtypes.InvalidGatewayRequestException
	switch {
	case !errors.As(err, &e):
		t.Errorf("%s: got %v, want InvalidGatewayRequestException %s", what, err, code)
	case e.Error_ == nil || e.Error_.ErrorCode != code || (message != "" && aws.ToString(e.Message) != message):
		t.Errorf("%s: got %s %+v %q, want %s %q", what, e.ErrorCode(), e.Error_, aws.ToString(e.Message), code, message)
	}
}
