package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
)

func localDisks(t *testing.T, ctx context.Context, c sdkClients, gw string) map[string]sgwtypes.Disk {
	t.Helper()
	out, err := c.sgw.ListLocalDisks(ctx, &storagegateway.ListLocalDisksInput{GatewayARN: aws.String(gw)})
	if err != nil {
		t.Fatal(err)
	}
	disks := map[string]sgwtypes.Disk{}
	for _, d := range out.Disks {
		disks[aws.ToString(d.DiskId)] = d
	}
	return disks
}

// TestDisksGrowWithTheConfiguredSizes: restarted with a larger
// --cache-disk-size and --upload-buffer-disk-size, the appliance has a new
// disk for each difference, AVAILABLE in ListLocalDisks and added with
// AddCache / AddUploadBuffer, as a disk attached to the appliance's VM is.
// Restarted with a smaller size, it refuses to start and says why.
func TestDisksGrowWithTheConfiguredSizes(t *testing.T) {
	dataDir := t.TempDir()
	ctx := context.Background()
	first := startServer(t, dataDir) // 2 GiB of cache, 1 GiB of upload buffer
	c := newSDKClients(first.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, first.endpoint())
	if _, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String("grow"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("grow-1")}); err != nil {
		t.Fatal(err)
	}
	if err := first.close(); err != nil {
		t.Fatal(err)
	}

	larger := []string{"--cache-disk-size", "3GiB", "--upload-buffer-disk-size", "3GiB"}
	second := startServerWith(t, dataDir, larger, nil)
	c = newSDKClients(second.endpoint(), e2eKeyID, e2eSecret)
	disks := localDisks(t, ctx, c, g.arn)
	want := map[string]struct {
		size  int64
		alloc string
	}{
		"cache0": {2 << 30, "CACHE_STORAGE"}, "buffer0": {1 << 30, "UPLOAD_BUFFER"},
		"cache1": {1 << 30, "AVAILABLE"}, "buffer1": {2 << 30, "AVAILABLE"},
	}
	if len(disks) != len(want) {
		t.Fatalf("ListLocalDisks after growing: %+v", disks)
	}
	for id, w := range want {
		d := disks[id]
		if d.DiskSizeInBytes != w.size || aws.ToString(d.DiskAllocationType) != w.alloc || aws.ToString(d.DiskStatus) != "present" {
			t.Fatalf("disk %s after growing: size %d allocation %s status %s, want %d %s present", id, d.DiskSizeInBytes,
				aws.ToString(d.DiskAllocationType), aws.ToString(d.DiskStatus), w.size, w.alloc)
		}
	}
	if _, err := c.sgw.AddCache(ctx, &storagegateway.AddCacheInput{GatewayARN: aws.String(g.arn), DiskIds: []string{"cache1"}}); err != nil {
		t.Fatalf("AddCache cache1: %v", err)
	}
	if _, err := c.sgw.AddUploadBuffer(ctx, &storagegateway.AddUploadBufferInput{GatewayARN: aws.String(g.arn), DiskIds: []string{"buffer1"}}); err != nil {
		t.Fatalf("AddUploadBuffer buffer1: %v", err)
	}
	checkAllocated := func(what string, c sdkClients) {
		t.Helper()
		cache, err := c.sgw.DescribeCache(ctx, &storagegateway.DescribeCacheInput{GatewayARN: aws.String(g.arn)})
		if err != nil || cache.CacheAllocatedInBytes != 3<<30 || len(cache.DiskIds) != 2 {
			t.Fatalf("DescribeCache %s: %+v %v", what, cache, err)
		}
		buf, err := c.sgw.DescribeUploadBuffer(ctx, &storagegateway.DescribeUploadBufferInput{GatewayARN: aws.String(g.arn)})
		if err != nil || buf.UploadBufferAllocatedInBytes != 3<<30 || len(buf.DiskIds) != 2 {
			t.Fatalf("DescribeUploadBuffer %s: %+v %v", what, buf, err)
		}
	}
	checkAllocated("after adding the new disks", c)
	if err := second.close(); err != nil {
		t.Fatal(err)
	}

	// The same sizes again: nothing new, everything still allocated.
	third := startServerWith(t, dataDir, larger, nil)
	c = newSDKClients(third.endpoint(), e2eKeyID, e2eSecret)
	if disks := localDisks(t, ctx, c, g.arn); len(disks) != 4 {
		t.Fatalf("ListLocalDisks after a restart with the same sizes: %+v", disks)
	}
	checkAllocated("after a restart", c)
	vols, err := c.sgw.ListVolumes(ctx, &storagegateway.ListVolumesInput{GatewayARN: aws.String(g.arn)})
	if err != nil || len(vols.VolumeInfos) != 1 {
		t.Fatalf("ListVolumes after growing: %+v %v", vols, err)
	}
	if err := third.close(); err != nil {
		t.Fatal(err)
	}

	// Smaller: refused, with what is configured and what exists.
	for _, flags := range [][]string{{"--cache-disk-size", "2GiB", "--upload-buffer-disk-size", "3GiB"},
		{"--cache-disk-size", "3GiB", "--upload-buffer-disk-size", "1GiB"}} {
		opts, err := parseServeFlags(append([]string{"--listen", "127.0.0.1:0", "--iscsi-listen", "127.0.0.1:0", "--data-dir", dataDir,
			"--log-level", "error"}, flags...), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"VOLGW_ACCESS_KEY_ID": e2eKeyID, "VOLGW_SECRET_ACCESS_KEY": e2eSecret}
		a, err := start(ctx, opts, io.Discard, func(k string) string { return env[k] }, productionParts)
		if err == nil {
			a.close()
			t.Fatalf("start with %v (smaller than the disks there) succeeded", flags)
		}
		msg := err.Error()
		wantMsg := "the configured cache disk size (--cache-disk-size) is 2GiB, but the cache disks already created (cache0, cache1) hold 3GiB: disks cannot shrink; configure 3GiB or more"
		if flags[3] == "1GiB" {
			wantMsg = "the configured upload-buffer disk size (--upload-buffer-disk-size) is 1GiB, but the upload-buffer disks already created (buffer0, buffer1) hold 3GiB: disks cannot shrink; configure 3GiB or more"
		}
		if !strings.Contains(msg, wantMsg) {
			t.Fatalf("start with %v: %q, want it to say %q", flags, msg, wantMsg)
		}
	}
	// Refusing changed nothing: the sizes that match start as before.
	fourth := startServerWith(t, dataDir, larger, nil)
	c = newSDKClients(fourth.endpoint(), e2eKeyID, e2eSecret)
	checkAllocated("after the refused starts", c)
}
