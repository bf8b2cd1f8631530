package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// TestDiskFull puts the data dir on a 40 MiB tmpfs while the appliance's
// disk files (sparse) claim 2 GiB: writing 64 MiB runs the filesystem out
// of space. The initiator gets an error for what could not be stored (no
// write is acknowledged that is not in the upload buffer); once space is
// freed the same volume takes writes again, and after a restart it serves
// exactly what was last written.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=40m,mode=0700"); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("mounting a tmpfs is not permitted here (%v): the disk-full test needs it", err)
		}
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	dataDir := filepath.Join(dir, "data")
	flags := []string{"--cache-disk-size", "1GiB", "--upload-buffer-disk-size", "1GiB"}
	ctx := context.Background()

	gw := startServerWith(t, dataDir, flags, nil)
	c := newSDKClients(gw.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, gw.endpoint())
	vol, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String("full"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("full-1")})
	if err != nil {
		t.Fatal(err)
	}
	lun := volumeLUNURL(t, ctx, c, aws.ToString(vol.VolumeARN))

	src := filepath.Join(t.TempDir(), "big.img")
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>12)
	}
	if err := os.WriteFile(src, big, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runTool(t, os.Environ(), 2*time.Minute, "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, lun)
	if err == nil {
		t.Fatalf("64 MiB written to a data dir with 40 MiB of space, and every write acknowledged:\n%s", out)
	}
	t.Logf("as expected, the initiator was told: %s", out)

	// Space comes back (the tmpfs grows): the same volume takes writes.
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT, "size=400m,mode=0700"); err != nil {
		t.Fatalf("grow tmpfs: %v", err)
	}
	data := writeRandomOverISCSI(t, lun, 32<<20)
	checkBytesOverISCSI(t, lun, data)
	if err := gw.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	again := startServerWith(t, dataDir, flags, nil)
	c = newSDKClients(again.endpoint(), e2eKeyID, e2eSecret)
	checkBytesOverISCSI(t, volumeLUNURL(t, ctx, c, aws.ToString(vol.VolumeARN)), data)
}
