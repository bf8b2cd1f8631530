package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway/types"

	"github.com/volgw/volgw/internal/blob/blobtest"
)

// sharedS3Store starts versitygw and returns the --store flag and the
// environment of gateways sharing its bucket.
func sharedS3Store(t *testing.T) (flags []string, env map[string]string) {
	t.Helper()
	srv := blobtest.StartVersityGW(t)
	q := url.Values{"endpoint": {srv.Endpoint}, "region": {srv.Region}, "path_style": {"true"}}
	return []string{"--store", "s3://" + srv.Bucket + "/shared?" + q.Encode()},
		map[string]string{"VOLGW_S3_ACCESS_KEY_ID": srv.AccessKeyID, "VOLGW_S3_SECRET_ACCESS_KEY": srv.SecretAccessKey}
}

// moveGateway is one volgw serve of the ring, with its activated gateway.
type moveGateway struct {
	name string
	srv  *testServer
	c    sdkClients
	g    gatewayFixture
}

// qemuWrite writes count bytes of the byte fill at off through the LUN
// with qemu-io. Flushed: SYNCHRONIZE CACHE follows (qemu flushes at
// close). Not flushed: --cache=unsafe drops every flush, so the write is
// acknowledged and nothing more.
func qemuWrite(t *testing.T, lunURL string, fill byte, off, count int64, flushed bool) {
	t.Helper()
	cache := "none"
	if !flushed {
		cache = "unsafe"
	}
	cmd := fmt.Sprintf("write -P %d %d %d", fill, off, count)
	if out, err := runTool(t, os.Environ(), 2*time.Minute, "qemu-io", "-f", "raw", "--cache="+cache, "-c", cmd, lunURL); err != nil ||
		strings.Contains(out, "error") {
		t.Fatalf("qemu-io %s on %s: %v\n%s", cmd, lunURL, err, out)
	}
}

// cmpOverISCSI reads the whole LUN with qemu-img into a file and compares
// it with ref using cmp.
func cmpOverISCSI(t *testing.T, lunURL, ref string) {
	t.Helper()
	back := filepath.Join(t.TempDir(), "back.img")
	if out, err := runTool(t, os.Environ(), 2*time.Minute, "qemu-img", "convert", "-f", "raw", "-O", "raw", lunURL, back); err != nil {
		t.Fatalf("qemu-img convert from %s: %v\n%s", lunURL, err, out)
	}
	if out, err := exec.Command("cmp", ref, back).CombinedOutput(); err != nil {
		t.Fatalf("cmp %s (every acknowledged write) with %s read over iSCSI: %v\n%s", ref, lunURL, err, out)
	}
}

// TestMoveVolumeAroundThreeGateways runs three volgw serve, each with its
// own data dir, API port and iSCSI port, on one versitygw bucket, and
// moves a volume around the ring twice (A→B→C→A→B→C→A) with DetachVolume
// and AttachVolume. Between moves each gateway writes over iSCSI, some
// writes flushed and some only acknowledged before the detach; after
// every move the whole volume is read over iSCSI from its new gateway and
// compared with cmp to a reference file holding every acknowledged write.
// The gateway a volume left lists it DETACHED until another attaches it,
// then no more.
func TestMoveVolumeAroundThreeGateways(t *testing.T) {
	flags, env := sharedS3Store(t)
	ctx := context.Background()
	var ring []*moveGateway
	for _, name := range []string{"A", "B", "C"} {
		s := startServerWith(t, "", flags, env)
		c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
		ring = append(ring, &moveGateway{name: name, srv: s, c: c, g: activateGateway(t, ctx, c, s.endpoint())})
	}
	const size = 1 << 30 // AWS's smallest cached volume
	a := ring[0]
	vol, err := a.c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(a.g.arn),
		VolumeSizeInBytes: size, TargetName: aws.String("moving"), NetworkInterfaceId: aws.String(a.g.ip), ClientToken: aws.String("move-1"),
		Tags: []types.Tag{{Key: aws.String("app"), Value: aws.String("ring")}}})
	if err != nil {
		t.Fatal(err)
	}
	volARN := aws.ToString(vol.VolumeARN)
	volID := volARN[strings.LastIndex(volARN, "/")+1:]
	refPath := filepath.Join(t.TempDir(), "ref.img")
	ref, err := os.Create(refPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if err := ref.Truncate(size); err != nil {
		t.Fatal(err)
	}
	write := func(lun string, fill byte, off, n int64, flushed bool) {
		t.Helper()
		qemuWrite(t, lun, fill, off, n, flushed)
		if _, err := ref.WriteAt([]byte(strings.Repeat(string([]byte{fill}), int(n))), off); err != nil {
			t.Fatal(err)
		}
	}
	for move := range 6 {
		from, to := ring[move%3], ring[(move+1)%3]
		lun := volumeLUNURL(t, ctx, from.c, volARN)
		// Writes of this round: one flushed across block boundaries, one
		// acknowledged only, overlapping earlier rounds' data, and one far
		// out in the volume.
		m := int64(move)
		write(lun, byte(0x10+m), m*3<<20+4096, 1<<20+512, true)
		write(lun, byte(0x40+m), m*3<<20+(512<<10)-1024, 64<<10, false)
		write(lun, byte(0x70+m), size-(m+1)*(8<<20), 4096, false)

		// Detach without ForceDetach: qemu-io has logged out.
		if _, err := from.c.sgw.DetachVolume(ctx, &storagegateway.DetachVolumeInput{VolumeARN: aws.String(volARN)}); err != nil {
			t.Fatalf("move %d: DetachVolume on %s: %v", move, from.name, err)
		}
		lv, err := from.c.sgw.ListVolumes(ctx, &storagegateway.ListVolumesInput{GatewayARN: aws.String(from.g.arn)})
		if err != nil || len(lv.VolumeInfos) != 1 || aws.ToString(lv.VolumeInfos[0].VolumeAttachmentStatus) != "DETACHED" {
			t.Fatalf("move %d: %s lists %+v %v, want the volume DETACHED", move, from.name, lv, err)
		}
		in := &storagegateway.AttachVolumeInput{GatewayARN: aws.String(to.g.arn), VolumeARN: aws.String(volARN),
			NetworkInterfaceId: aws.String(to.g.ip)}
		if move%2 == 1 {
			in.TargetName = aws.String(fmt.Sprintf("moving-%d", move)) // otherwise the previous one
		}
		att, err := to.c.sgw.AttachVolume(ctx, in)
		if err != nil {
			t.Fatalf("move %d: AttachVolume on %s: %v", move, to.name, err)
		}
		volARN = aws.ToString(att.VolumeARN)
		if want := to.g.arn + "/volume/" + volID; volARN != want {
			t.Fatalf("move %d: attached as %s, want %s", move, volARN, want)
		}
		if lv, err := from.c.sgw.ListVolumes(ctx, &storagegateway.ListVolumesInput{}); err != nil || len(lv.VolumeInfos) != 0 {
			t.Fatalf("move %d: %s still lists %+v %v after %s attached it", move, from.name, lv, err, to.name)
		}
		tags, err := to.c.sgw.ListTagsForResource(ctx, &storagegateway.ListTagsForResourceInput{ResourceARN: aws.String(volARN)})
		if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Value) != "ring" {
			t.Fatalf("move %d: tags on %s: %+v %v", move, to.name, tags, err)
		}
		cmpOverISCSI(t, volumeLUNURL(t, ctx, to.c, volARN), refPath)
	}
	// Back on A after two rounds; the other two hold nothing.
	for _, g := range ring[1:] {
		if lv, err := g.c.sgw.ListVolumes(ctx, &storagegateway.ListVolumesInput{}); err != nil || len(lv.VolumeInfos) != 0 {
			t.Fatalf("%s lists %+v %v", g.name, lv, err)
		}
	}
}
