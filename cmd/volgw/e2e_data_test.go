package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
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

// createVolumes creates a 1 GiB volume per name (its TargetName, and its
// ClientToken "token-<name>") and returns their ARNs in order.
func createVolumes(t *testing.T, ctx context.Context, c sdkClients, g gatewayFixture, names ...string) []string {
	t.Helper()
	var arns []string
	for _, name := range names {
		v, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
			VolumeSizeInBytes: 1 << 30, TargetName: aws.String(name), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("token-" + name)})
		if err != nil {
			t.Fatalf("CreateCachediSCSIVolume %s: %v", name, err)
		}
		arns = append(arns, aws.ToString(v.VolumeARN))
	}
	return arns
}

// volumeLUNURL is the iscsi:// URL of a volume's LUN, built from what
// DescribeCachediSCSIVolumes reports (as an initiator's user would).
func volumeLUNURL(t *testing.T, ctx context.Context, c sdkClients, volumeARN string) string {
	t.Helper()
	desc, err := c.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{volumeARN}})
	if err != nil || len(desc.CachediSCSIVolumes) != 1 {
		t.Fatalf("DescribeCachediSCSIVolumes %s: %+v %v", volumeARN, desc, err)
	}
	attrs := desc.CachediSCSIVolumes[0].VolumeiSCSIAttributes
	target := aws.ToString(attrs.TargetARN)
	iqn := target[strings.Index(target, "/target/")+len("/target/"):]
	portal := aws.ToString(attrs.NetworkInterfaceId) + ":" + strconv.Itoa(int(attrs.NetworkInterfacePort))
	return "iscsi://" + portal + "/" + iqn + "/" + strconv.Itoa(int(aws.ToInt32(attrs.LunNumber)))
}

// writeRandomOverISCSI writes n bytes of fresh random data at offset 0 of
// the LUN with qemu-img (which flushes before it exits) and returns them.
func writeRandomOverISCSI(t *testing.T, lunURL string, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src.img")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, os.Environ(), 2*time.Minute, "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, lunURL); err != nil {
		t.Fatalf("qemu-img convert to %s: %v\n%s", lunURL, err, out)
	}
	return data
}

// checkBytesOverISCSI reads len(want) bytes from offset 0 of the LUN with
// qemu-img and fails the test unless they are want.
func checkBytesOverISCSI(t *testing.T, lunURL string, want []byte) {
	t.Helper()
	const mib = 1 << 20
	if len(want)%mib != 0 {
		t.Fatalf("checkBytesOverISCSI: %d bytes is not whole MiB", len(want))
	}
	back := filepath.Join(t.TempDir(), "back.img")
	if out, err := runTool(t, os.Environ(), 2*time.Minute, "qemu-img", "dd", "-f", "raw", "-O", "raw", "bs=1M",
		"count="+strconv.Itoa(len(want)/mib), "if="+lunURL, "of="+back); err != nil {
		t.Fatalf("qemu-img dd from %s: %v\n%s", lunURL, err, out)
	}
	got, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: read %d bytes, want %d; first difference at byte %d", lunURL, len(got), len(want), firstDifference(got, want))
	}
}

// firstDifference is the offset of the first byte where a and b differ
// (the shorter one's length if one is a prefix of the other).
func firstDifference(a, b []byte) int {
	i := 0
	for i < min(len(a), len(b)) && a[i] == b[i] {
		i++
	}
	return i
}

// waitSnapshotCompleted polls DescribeSnapshots until the snapshot is
// completed (a CreateSnapshot is pending until its cut is published).
func waitSnapshotCompleted(t *testing.T, ctx context.Context, c sdkClients, snapshotID string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ds, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapshotID}})
		if err != nil || len(ds.Snapshots) != 1 {
			t.Fatalf("DescribeSnapshots %s: %+v %v", snapshotID, ds, err)
		}
		switch ds.Snapshots[0].State {
		case ec2types.SnapshotStateCompleted:
			return
		case ec2types.SnapshotStateError:
			t.Fatalf("snapshot %s is in state error", snapshotID)
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %s still %s after 3 minutes", snapshotID, ds.Snapshots[0].State)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
