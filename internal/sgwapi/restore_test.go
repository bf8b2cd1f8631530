package sgwapi_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// readyGateway activates a stack's appliance and configures its disks.
func (s *stack) readyGateway(t *testing.T, name string) (gw, nic string) {
	t.Helper()
	ctx := context.Background()
	act, err := s.sgw.ActivateGateway(ctx, &storagegateway.ActivateGatewayInput{
		ActivationKey: aws.String(s.activationKey(t)), GatewayName: aws.String(name), GatewayTimezone: aws.String("GMT"),
		GatewayRegion: aws.String(region), GatewayType: aws.String("CACHED"),
	})
	if err != nil {
		t.Fatal(err)
	}
	gw = aws.ToString(act.GatewayARN)
	if _, err := s.sgw.AddCache(ctx, &storagegateway.AddCacheInput{GatewayARN: aws.String(gw), DiskIds: []string{"cache0"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.sgw.AddUploadBuffer(ctx, &storagegateway.AddUploadBufferInput{GatewayARN: aws.String(gw), DiskIds: []string{"buffer0"}}); err != nil {
		t.Fatal(err)
	}
	return gw, s.iscsiAddr.IP.String()
}

func (s *stack) createVolume(t *testing.T, in storagegateway.CreateCachediSCSIVolumeInput) string {
	t.Helper()
	in.ClientToken = aws.String("token-" + aws.ToString(in.TargetName))
	out, err := s.sgw.CreateCachediSCSIVolume(context.Background(), &in)
	if err != nil {
		t.Fatalf("create %s: %v", aws.ToString(in.TargetName), err)
	}
	return aws.ToString(out.VolumeARN)
}

// qemuIO runs qemu-io commands on LUN 0 of a target over iSCSI.
func (s *stack) qemuIO(t *testing.T, targetName string, cmds ...string) {
	t.Helper()
	args := []string{"-f", "raw"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	u := "iscsi://" + s.iscsiAddr.IP.String() + ":" + strconv.Itoa(s.iscsiAddr.Port) + "/iqn.1997-05.com.amazon:" + targetName + "/0"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "qemu-io", append(args, u)...).CombinedOutput()
	// qemu-io reports a pattern mismatch on stdout without failing.
	if err != nil || strings.Contains(string(out), "Pattern verification failed") || strings.Contains(string(out), "failed") {
		t.Fatalf("qemu-io %v on %s: %v\n%s", cmds, targetName, err, out)
	}
}

// TestRestoreAndCloneThroughAPI writes data over iSCSI, snapshots it
// through the API, and restores it three ways: a volume from the snapshot,
// a clone of the source volume, and a volume from the snapshot on a second
// gateway that shares only the object store.
func TestRestoreAndCloneThroughAPI(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Fatalf("qemu-io is needed: run scripts/install-test-deps.sh: %v", err)
	}
	storeDir := filepath.Join(t.TempDir(), "store")
	first := newStackOn(t, storeDir)
	ctx := context.Background()
	gw, nic := first.readyGateway(t, "first")

	src := first.createVolume(t, storagegateway.CreateCachediSCSIVolumeInput{
		GatewayARN: aws.String(gw), VolumeSizeInBytes: 1 << 30, TargetName: aws.String("src"), NetworkInterfaceId: aws.String(nic),
	})
	first.qemuIO(t, "src", "write -P 0xab 0 1M", "write -P 0x5c 512M 64k", "flush")

	snap, err := first.sgw.CreateSnapshot(ctx, &storagegateway.CreateSnapshotInput{
		VolumeARN: aws.String(src), SnapshotDescription: aws.String("with data"),
	})
	if err != nil {
		t.Fatal(err)
	}
	snapID := aws.ToString(snap.SnapshotId)
	// A forced snapshot is pending until its cut is in the store; wait
	// (bounded) for EC2 to show it completed.
	for i := 0; ; i++ {
		ds, err := first.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}})
		if err != nil {
			t.Fatal(err)
		}
		if ds.Snapshots[0].State == ec2types.SnapshotStateCompleted {
			if aws.ToString(ds.Snapshots[0].Progress) != "100%" {
				t.Fatalf("completed at %s", aws.ToString(ds.Snapshots[0].Progress))
			}
			break
		}
		if i == 600 {
			t.Fatalf("snapshot still %s", ds.Snapshots[0].State)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The source changes after the snapshot; the restore must not see it.
	first.qemuIO(t, "src", "write -P 0xee 0 4k", "flush")

	first.createVolume(t, storagegateway.CreateCachediSCSIVolumeInput{
		GatewayARN: aws.String(gw), VolumeSizeInBytes: 2 << 30, TargetName: aws.String("restored"),
		NetworkInterfaceId: aws.String(nic), SnapshotId: aws.String(snapID),
	})
	first.qemuIO(t, "restored", "read -P 0xab 0 1M", "read -P 0x5c 512M 64k", "read -P 0 1M 1M", "read -P 0 1G 1M")

	first.createVolume(t, storagegateway.CreateCachediSCSIVolumeInput{
		GatewayARN: aws.String(gw), VolumeSizeInBytes: 1 << 30, TargetName: aws.String("clone"),
		NetworkInterfaceId: aws.String(nic), SourceVolumeARN: aws.String(src),
	})
	// A clone is of the source's recovery point: it holds at least what the
	// snapshot held beyond the first 4 KiB rewritten since.
	first.qemuIO(t, "clone", "read -P 0xab 4k 1020k", "read -P 0x5c 512M 64k")

	// A second gateway, its own data dir, the same bucket: the snapshot is
	// listed there and restores there.
	second := newStackOn(t, storeDir)
	gw2, nic2 := second.readyGateway(t, "second")
	ds, err := second.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}})
	if err != nil || len(ds.Snapshots) != 1 || aws.ToString(ds.Snapshots[0].Description) != "with data" {
		t.Fatalf("snapshot seen from the second gateway: %+v %v", ds, err)
	}
	second.createVolume(t, storagegateway.CreateCachediSCSIVolumeInput{
		GatewayARN: aws.String(gw2), VolumeSizeInBytes: 1 << 30, TargetName: aws.String("elsewhere"),
		NetworkInterfaceId: aws.String(nic2), SnapshotId: aws.String(snapID),
	})
	second.qemuIO(t, "elsewhere", "read -P 0xab 0 1M", "read -P 0x5c 512M 64k")

	// An unknown snapshot: refused.
	_, err = second.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{
		GatewayARN: aws.String(gw2), VolumeSizeInBytes: 1 << 30, TargetName: aws.String("fits"),
		NetworkInterfaceId: aws.String(nic2), SnapshotId: aws.String("snap-0000000000000000f"), ClientToken: aws.String("token-unknown"),
	})
	if code, _ := gatewayError(t, err); code != "SnapshotNotFound" {
		t.Fatalf("unknown snapshot: %s", code)
	}
}

func createInput(gw, nic, target string) storagegateway.CreateCachediSCSIVolumeInput {
	return storagegateway.CreateCachediSCSIVolumeInput{
		GatewayARN: aws.String(gw), VolumeSizeInBytes: 1 << 30, TargetName: aws.String(target), NetworkInterfaceId: aws.String(nic),
	}
}
