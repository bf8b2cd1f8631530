package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"

	"github.com/volgw/volgw/internal/volume"
)

// TestResetCacheAfterCacheDiskFailure: a cache disk file truncated under
// a running gateway (what an operator's stray truncate, or a file system
// that lost the file's blocks, does) holds 8 MiB uploaded and clean plus
// 4 MiB written over it, flushed and only in the upload buffer. Reads over
// iSCSI then fail (never return wrong data), the server logs an ERROR
// naming the disk, the volume is PASS THROUGH; ResetCache (AWS CLI, or
// boto3) makes the disk AVAILABLE and DescribeCache empty, the volume
// still refuses I/O; AddCache of the same disk brings back every byte
// acknowledged, with or without a restart in between.
func TestResetCacheAfterCacheDiskFailure(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "live", true: "restart"}[restart], func(t *testing.T) {
			var (
				mu     sync.Mutex
				engine *volume.Engine
			)
			dataDir := t.TempDir()
			p := noCutParts(&engine, &mu)
			s, logs := startServerLogging(t, dataDir, p)
			ctx := context.Background()
			c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
			g := activateGateway(t, ctx, c, s.endpoint())
			vol, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
				VolumeSizeInBytes: 1 << 30, TargetName: aws.String("reset"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("reset-1")})
			if err != nil {
				t.Fatal(err)
			}
			volARN := aws.ToString(vol.VolumeARN)
			lun := volumeLUNURL(t, ctx, c, volARN)
			a := writeRandomOverISCSI(t, lun, 8<<20)
			mu.Lock()
			e := engine
			mu.Unlock()
			if err := e.Cut(ctx, volumeID(volARN)); err != nil { // a is uploaded, its slots clean
				t.Fatal(err)
			}
			b := writeRandomOverISCSI(t, lun, 4<<20) // flushed, in the upload buffer only
			want := append(b, a[4<<20:]...)

			disks, err := c.sgw.ListLocalDisks(ctx, &storagegateway.ListLocalDisksInput{GatewayARN: aws.String(g.arn)})
			if err != nil {
				t.Fatal(err)
			}
			var cacheID, cachePath string
			for _, d := range disks.Disks {
				if aws.ToString(d.DiskAllocationType) == "CACHE_STORAGE" {
					cacheID, cachePath = aws.ToString(d.DiskId), aws.ToString(d.DiskPath)
				}
			}
			if err := os.Truncate(cachePath, 0); err != nil {
				t.Fatal(err)
			}
			if out, err := runTool(t, os.Environ(), 2*time.Minute, "qemu-img", "dd", "-f", "raw", "-O", "raw", "bs=1M", "count=12",
				"if="+lun, "of="+t.TempDir()+"/back.img"); err == nil {
				t.Fatalf("read of a volume whose cache disk failed succeeded:\n%s", out)
			} else {
				t.Logf("read with the cache disk failed: %v: %s", err, strings.TrimSpace(out))
			}
			if l := logs(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, cachePath) {
				t.Fatalf("no ERROR naming %s in the server log:\n%s", cachePath, l)
			}
			wantStatus := func(status string) {
				t.Helper()
				d, err := c.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{volARN}})
				if err != nil || len(d.CachediSCSIVolumes) != 1 || aws.ToString(d.CachediSCSIVolumes[0].VolumeStatus) != status {
					t.Fatalf("DescribeCachediSCSIVolumes: %+v %v; want %s", d, err, status)
				}
			}
			wantStatus("PASS THROUGH")
			// AWS's DiskStatus for a disk whose "content is corrupted".
			disks, err = c.sgw.ListLocalDisks(ctx, &storagegateway.ListLocalDisksInput{GatewayARN: aws.String(g.arn)})
			for _, d := range disks.Disks {
				if aws.ToString(d.DiskId) == cacheID && (aws.ToString(d.DiskStatus) != "mismatch" || aws.ToString(d.DiskAllocationType) != "CACHE_STORAGE") {
					t.Fatalf("the failed cache disk is listed %s, %s; want mismatch, CACHE_STORAGE (%v)", aws.ToString(d.DiskStatus), aws.ToString(d.DiskAllocationType), err)
				}
			}

			if restart {
				seen := runBoto3(t, s, []boto3Call{{Name: "reset", Service: "storagegateway", Op: "ResetCache", Params: map[string]any{"GatewayARN": g.arn}}})
				if r := seen["reset"]; !r.OK || !strings.Contains(string(r.Response), g.arn) {
					t.Fatalf("boto3 ResetCache: %+v %s", r.seenError, r.Response)
				}
			} else {
				cli := awsCLIs(t)["v2"]
				if cli == "" {
					cli = awsCLIs(t)["v1"]
				}
				out, ok := runCLI(t, s, cli, "storagegateway", "reset-cache", "--gateway-arn", g.arn)
				var got map[string]string
				if !ok || json.Unmarshal([]byte(out), &got) != nil || got["GatewayARN"] != g.arn {
					t.Fatalf("aws storagegateway reset-cache: %s", out)
				}
			}
			checkReset := func() {
				t.Helper()
				disks, err := c.sgw.ListLocalDisks(ctx, &storagegateway.ListLocalDisksInput{GatewayARN: aws.String(g.arn)})
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range disks.Disks {
					if aws.ToString(d.DiskId) == cacheID && (aws.ToString(d.DiskAllocationType) != "AVAILABLE" || aws.ToString(d.DiskStatus) != "present") {
						t.Fatalf("the reset cache disk is %s, %s", aws.ToString(d.DiskAllocationType), aws.ToString(d.DiskStatus))
					}
				}
				cache, err := c.sgw.DescribeCache(ctx, &storagegateway.DescribeCacheInput{GatewayARN: aws.String(g.arn)})
				if err != nil || len(cache.DiskIds) != 0 || cache.CacheAllocatedInBytes != 0 {
					t.Fatalf("DescribeCache after ResetCache: %+v %v", cache, err)
				}
				wantStatus("PASS THROUGH")
			}
			checkReset()
			if restart {
				if err := s.close(); err != nil {
					t.Fatal(err)
				}
				s, _ = startServerLogging(t, dataDir, p)
				c = newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
				checkReset()
				lun = volumeLUNURL(t, ctx, c, volARN)
			}
			if out, err := runTool(t, os.Environ(), 2*time.Minute, "qemu-img", "dd", "-f", "raw", "-O", "raw", "bs=1M", "count=1",
				"if="+lun, "of="+t.TempDir()+"/back.img"); err == nil {
				t.Fatalf("read with no cache disk succeeded:\n%s", out)
			}

			if _, err := c.sgw.AddCache(ctx, &storagegateway.AddCacheInput{GatewayARN: aws.String(g.arn), DiskIds: []string{cacheID}}); err != nil {
				t.Fatalf("AddCache of the reset disk: %v", err)
			}
			wantStatus("AVAILABLE")
			checkBytesOverISCSI(t, lun, want)
			cache, err := c.sgw.DescribeCache(ctx, &storagegateway.DescribeCacheInput{GatewayARN: aws.String(g.arn)})
			if err != nil || len(cache.DiskIds) != 1 || aws.ToString(&cache.DiskIds[0]) != cacheID {
				t.Fatalf("DescribeCache after AddCache: %+v %v", cache, err)
			}
		})
	}
}

// TestResetCacheErrors: ResetCache of an unknown gateway, through boto3
// and the AWS CLI.
func TestResetCacheErrors(t *testing.T) {
	s := startServer(t, "")
	unknownGW := "arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-0000AAAA"
	seen := runBoto3(t, s, []boto3Call{
		{Name: "unknown", Service: "storagegateway", Op: "ResetCache", Params: map[string]any{"GatewayARN": unknownGW}},
		{Name: "short", Service: "storagegateway", Op: "ResetCache", Params: map[string]any{"GatewayARN": "arn:short"}},
	})
	if got := seen["unknown"].seenError; got.OK || got.Status != 400 || got.Code != "InvalidGatewayRequestException" ||
		got.ErrorCode != "GatewayNotFound" || got.Message != gatewayNotFound {
		t.Errorf("boto3 ResetCache of an unknown gateway: %+v", got)
	}
	if got := seen["short"].seenError; got.OK || got.Status != 400 {
		t.Errorf("boto3 ResetCache of a 9-character ARN: %+v", got)
	}
	for name, cli := range awsCLIs(t) {
		out, ok := runCLI(t, s, cli, "storagegateway", "reset-cache", "--gateway-arn", unknownGW)
		wantCLIError(t, name+" reset-cache unknown gateway", out, ok, "InvalidGatewayRequestException", gatewayNotFound)
	}
}
