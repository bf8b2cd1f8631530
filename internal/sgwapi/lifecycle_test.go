package sgwapi_test

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
)

// TestPagingSchedulesTagsAndDeleteOverSignedHTTP covers the operations the
// other tests leave out, through the SDK's own paginators where it has them.
func TestPagingSchedulesTagsAndDeleteOverSignedHTTP(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	gw, nic := s.readyGateway(t, "paging")

	var vols []string
	for i := 0; i < 5; i++ {
		vols = append(vols, s.createVolume(t, storagegateway.CreateCachediSCSIVolumeInput{
			GatewayARN: aws.String(gw), VolumeSizeInBytes: 1 << 30, TargetName: aws.String(fmt.Sprintf("v%d", i)),
			NetworkInterfaceId: aws.String(nic),
		}))
	}
	sort.Strings(vols)

	// ListVolumes two at a time with the SDK's paginator: every volume once,
	// in ARN order.
	var listed []string
	pages := 0
	p := storagegateway.NewListVolumesPaginator(s.sgw, &storagegateway.ListVolumesInput{GatewayARN: aws.String(gw), Limit: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, v := range page.VolumeInfos {
			if aws.ToString(v.VolumeType) != "CACHED iSCSI" || v.VolumeSizeInBytes != 1<<30 {
				t.Fatalf("volume info %+v", v)
			}
			listed = append(listed, aws.ToString(v.VolumeARN))
		}
	}
	if pages != 3 || fmt.Sprint(listed) != fmt.Sprint(vols) {
		t.Fatalf("%d pages: %v\nwant %v", pages, listed, vols)
	}
	desc, err := s.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{vols[4], vols[0], vols[2]}})
	if err != nil || len(desc.CachediSCSIVolumes) != 3 || aws.ToString(desc.CachediSCSIVolumes[0].VolumeARN) != vols[0] ||
		aws.ToString(desc.CachediSCSIVolumes[2].VolumeARN) != vols[4] {
		t.Fatalf("DescribeCachediSCSIVolumes is not sorted by ARN: %+v %v", desc, err)
	}

	// EC2 pages snapshots with MaxResults / NextToken.
	var snaps []string
	for i := 0; i < 7; i++ {
		out, err := s.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
			VolumeARN: aws.String(vols[i%5]), SnapshotDescription: aws.String(fmt.Sprintf("snap %d", i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, aws.ToString(out.SnapshotId))
	}
	sort.Strings(snaps)
	var seen []string
	sp := ec2.NewDescribeSnapshotsPaginator(s.ec2, &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(5), OwnerIds: []string{account}})
	for sp.HasMorePages() {
		page, err := sp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Snapshots) > 5 {
			t.Fatalf("page of %d", len(page.Snapshots))
		}
		for _, sn := range page.Snapshots {
			seen = append(seen, aws.ToString(sn.SnapshotId))
		}
	}
	sort.Strings(seen)
	if fmt.Sprint(seen) != fmt.Sprint(snaps) {
		t.Fatalf("paged snapshots %v\nwant %v", seen, snaps)
	}
	none, err := s.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"amazon"}})
	if err != nil || none.Snapshots == nil || len(none.Snapshots) != 0 {
		t.Fatalf("Owner amazon: %+v %v", none, err)
	}

	// Tags on a gateway: add, overwrite, page, remove.
	for _, tags := range [][]sgwtypes.Tag{
		{{Key: aws.String("a"), Value: aws.String("1")}, {Key: aws.String("b"), Value: aws.String("2")}},
		{{Key: aws.String("a"), Value: aws.String("3")}, {Key: aws.String("c"), Value: aws.String("4")}},
	} {
		if _, err := s.sgw.AddTagsToResource(ctx, &storagegateway.AddTagsToResourceInput{ResourceARN: aws.String(gw), Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	tp := storagegateway.NewListTagsForResourcePaginator(s.sgw, &storagegateway.ListTagsForResourceInput{ResourceARN: aws.String(gw), Limit: aws.Int32(2)})
	for tp.HasMorePages() {
		page, err := tp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range page.Tags {
			keys = append(keys, aws.ToString(tag.Key)+"="+aws.ToString(tag.Value))
		}
	}
	if fmt.Sprint(keys) != "[a=3 b=2 c=4]" {
		t.Fatalf("gateway tags %v", keys)
	}
	if _, err := s.sgw.RemoveTagsFromResource(ctx, &storagegateway.RemoveTagsFromResourceInput{ResourceARN: aws.String(gw), TagKeys: []string{"a", "c"}}); err != nil {
		t.Fatal(err)
	}
	info, err := s.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: aws.String(gw)})
	if err != nil || len(info.Tags) != 1 || aws.ToString(info.Tags[0].Key) != "b" {
		t.Fatalf("gateway tags after remove: %+v %v", info.Tags, err)
	}

	// Gateway settings.
	up, err := s.sgw.UpdateGatewayInformation(ctx, &storagegateway.UpdateGatewayInformationInput{
		GatewayARN: aws.String(gw), GatewayName: aws.String("renamed"), GatewayTimezone: aws.String("GMT+2:00"),
	})
	if err != nil || aws.ToString(up.GatewayName) != "renamed" {
		t.Fatalf("UpdateGatewayInformation: %+v %v", up, err)
	}
	buf, err := s.sgw.DescribeUploadBuffer(ctx, &storagegateway.DescribeUploadBufferInput{GatewayARN: aws.String(gw)})
	if err != nil || buf.UploadBufferAllocatedInBytes != 1<<30 || len(buf.DiskIds) != 1 {
		t.Fatalf("DescribeUploadBuffer: %+v %v", buf, err)
	}

	// Snapshot schedules.
	sched, err := s.sgw.DescribeSnapshotSchedule(ctx, &storagegateway.DescribeSnapshotScheduleInput{VolumeARN: aws.String(vols[0])})
	if err != nil || aws.ToInt32(sched.RecurrenceInHours) != 24 || aws.ToString(sched.Timezone) != "GMT+2:00" {
		t.Fatalf("default schedule: %+v %v", sched, err)
	}
	if _, err := s.sgw.UpdateSnapshotSchedule(ctx, &storagegateway.UpdateSnapshotScheduleInput{
		VolumeARN: aws.String(vols[0]), StartAt: aws.Int32(3), RecurrenceInHours: aws.Int32(8), Description: aws.String("thrice"),
	}); err != nil {
		t.Fatal(err)
	}
	sched, _ = s.sgw.DescribeSnapshotSchedule(ctx, &storagegateway.DescribeSnapshotScheduleInput{VolumeARN: aws.String(vols[0])})
	if aws.ToInt32(sched.StartAt) != 3 || aws.ToInt32(sched.RecurrenceInHours) != 8 || aws.ToString(sched.Description) != "thrice" {
		t.Fatalf("updated schedule: %+v", sched)
	}
	_, err = s.sgw.UpdateSnapshotSchedule(ctx, &storagegateway.UpdateSnapshotScheduleInput{
		VolumeARN: aws.String(vols[0]), StartAt: aws.Int32(3), RecurrenceInHours: aws.Int32(5),
	})
	if code, _ := gatewayError(t, err); code != "InvalidParameters" {
		t.Fatalf("every 5 hours: %s", code)
	}
	if _, err := s.sgw.DeleteSnapshotSchedule(ctx, &storagegateway.DeleteSnapshotScheduleInput{VolumeARN: aws.String(vols[0])}); err != nil {
		t.Fatal(err)
	}
	_, err = s.sgw.DeleteSnapshotSchedule(ctx, &storagegateway.DeleteSnapshotScheduleInput{VolumeARN: aws.String(vols[0])})
	if code, _ := gatewayError(t, err); code != "SnapshotScheduleNotFound" {
		t.Fatalf("second DeleteSnapshotSchedule: %s", code)
	}

	ini, err := s.sgw.ListVolumeInitiators(ctx, &storagegateway.ListVolumeInitiatorsInput{VolumeARN: aws.String(vols[1])})
	if err != nil || ini.Initiators == nil {
		t.Fatalf("ListVolumeInitiators: %+v %v", ini, err)
	}

	// Delete the gateway: its volumes go, its snapshots stay, and the
	// appliance can be activated again.
	if _, err := s.sgw.DeleteGateway(ctx, &storagegateway.DeleteGatewayInput{GatewayARN: aws.String(gw)}); err != nil {
		t.Fatal(err)
	}
	gws, err := s.sgw.ListGateways(ctx, &storagegateway.ListGatewaysInput{})
	if err != nil || len(gws.Gateways) != 0 {
		t.Fatalf("ListGateways after delete: %+v %v", gws, err)
	}
	_, err = s.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{vols[0]}})
	if code, _ := gatewayError(t, err); code != "GatewayNotFound" {
		t.Fatalf("volume of a deleted gateway: %s", code)
	}
	left, err := s.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
	if err != nil || len(left.Snapshots) != 7 {
		t.Fatalf("snapshots after DeleteGateway: %d %v", len(left.Snapshots), err)
	}
	gw2, _ := s.readyGateway(t, "again")
	if gw2 == gw {
		t.Fatal("re-activation reused the gateway ID")
	}
}
