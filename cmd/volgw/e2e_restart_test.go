package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
)

// TestRestartKeepsState stops volgw serve and starts it again on the same
// data dir: gateways, disks, volumes and their bytes, targets, tags,
// schedules, CHAP, ClientTokens and snapshots are all still there.
func TestRestartKeepsState(t *testing.T) {
	dataDir := t.TempDir()
	ctx := context.Background()

	first := startServer(t, dataDir)
	c := newSDKClients(first.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, first.endpoint())
	create := &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn), VolumeSizeInBytes: 3 << 30,
		TargetName: aws.String("persist"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("persist-1")}
	vol, err := c.sgw.CreateCachediSCSIVolume(ctx, create)
	if err != nil {
		t.Fatal(err)
	}
	// Written and flushed (qemu-img flushes before it exits), not
	// necessarily uploaded yet: the restart must keep it either way.
	data := writeRandomOverISCSI(t, volumeLUNURL(t, ctx, c, aws.ToString(vol.VolumeARN)), 6<<20)
	if _, err := c.sgw.AddTagsToResource(ctx, &storagegateway.AddTagsToResourceInput{ResourceARN: vol.VolumeARN,
		Tags: []sgwtypes.Tag{{Key: aws.String("keep"), Value: aws.String("me")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.sgw.UpdateSnapshotSchedule(ctx, &storagegateway.UpdateSnapshotScheduleInput{VolumeARN: vol.VolumeARN,
		StartAt: aws.Int32(5), RecurrenceInHours: aws.Int32(24)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.sgw.UpdateChapCredentials(ctx, &storagegateway.UpdateChapCredentialsInput{TargetARN: vol.TargetARN,
		InitiatorName: aws.String("iqn.2026-11.test:host"), SecretToAuthenticateInitiator: aws.String("persisted-secret")}); err != nil {
		t.Fatal(err)
	}
	snap, err := c.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
		VolumeARN: vol.VolumeARN, SnapshotDescription: aws.String("before restart")})
	if err != nil {
		t.Fatal(err)
	}
	rpsBefore, err := c.sgw.ListVolumeRecoveryPoints(ctx, &storagegateway.ListVolumeRecoveryPointsInput{GatewayARN: aws.String(g.arn)})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	second := startServer(t, dataDir)
	c = newSDKClients(second.endpoint(), e2eKeyID, e2eSecret)
	gws, err := c.sgw.ListGateways(ctx, &storagegateway.ListGatewaysInput{})
	if err != nil || len(gws.Gateways) != 1 || aws.ToString(gws.Gateways[0].GatewayARN) != g.arn {
		t.Fatalf("ListGateways after restart: %+v %v", gws, err)
	}
	cache, err := c.sgw.DescribeCache(ctx, &storagegateway.DescribeCacheInput{GatewayARN: aws.String(g.arn)})
	if err != nil || len(cache.DiskIds) != 1 {
		t.Fatalf("DescribeCache after restart: %+v %v", cache, err)
	}
	desc, err := c.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: []string{aws.ToString(vol.VolumeARN)}})
	if err != nil || len(desc.CachediSCSIVolumes) != 1 || desc.CachediSCSIVolumes[0].VolumeSizeInBytes != 3<<30 ||
		aws.ToString(desc.CachediSCSIVolumes[0].VolumeiSCSIAttributes.TargetARN) != aws.ToString(vol.TargetARN) {
		t.Fatalf("DescribeCachediSCSIVolumes after restart: %+v %v", desc, err)
	}
	// The target is exported again, at the address the API now reports,
	// and still demands the CHAP secret set before the restart.
	attrs := desc.CachediSCSIVolumes[0].VolumeiSCSIAttributes
	const initiator = "iqn.2026-11.test:host"
	target := aws.ToString(attrs.NetworkInterfaceId) + ":" + strconv.Itoa(int(attrs.NetworkInterfacePort)) + "/" +
		strings.TrimPrefix(aws.ToString(attrs.TargetARN), g.arn+"/target/") + "/" + strconv.Itoa(int(aws.ToInt32(attrs.LunNumber)))
	if out, err := runTool(t, os.Environ(), time.Minute, "iscsi-inq", "-i", initiator, "iscsi://"+target); err == nil {
		t.Fatalf("login without CHAP accepted after restart:\n%s", out)
	}
	if out, err := runTool(t, os.Environ(), time.Minute, "iscsi-inq", "-i", initiator,
		"iscsi://"+initiator+"%persisted-secret@"+target); err != nil {
		t.Fatalf("iscsi-inq %s with CHAP after restart: %v\n%s", target, err, out)
	}
	checkBytesOverISCSI(t, "iscsi://"+initiator+"%persisted-secret@"+target, data)
	again, err := c.sgw.CreateCachediSCSIVolume(ctx, create)
	if err != nil || aws.ToString(again.VolumeARN) != aws.ToString(vol.VolumeARN) {
		t.Fatalf("ClientToken after restart: %+v %v", again, err)
	}
	tags, err := c.sgw.ListTagsForResource(ctx, &storagegateway.ListTagsForResourceInput{ResourceARN: vol.VolumeARN})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Value) != "me" {
		t.Fatalf("tags after restart: %+v %v", tags, err)
	}
	sched, err := c.sgw.DescribeSnapshotSchedule(ctx, &storagegateway.DescribeSnapshotScheduleInput{VolumeARN: vol.VolumeARN})
	if err != nil || aws.ToInt32(sched.StartAt) != 5 || aws.ToInt32(sched.RecurrenceInHours) != 24 {
		t.Fatalf("schedule after restart: %+v %v", sched, err)
	}
	chap, err := c.sgw.DescribeChapCredentials(ctx, &storagegateway.DescribeChapCredentialsInput{TargetARN: vol.TargetARN})
	if err != nil || len(chap.ChapCredentials) != 1 || aws.ToString(chap.ChapCredentials[0].SecretToAuthenticateInitiator) != "persisted-secret" {
		t.Fatalf("CHAP after restart: %+v %v", chap, err)
	}
	rpsAfter, err := c.sgw.ListVolumeRecoveryPoints(ctx, &storagegateway.ListVolumeRecoveryPointsInput{GatewayARN: aws.String(g.arn)})
	if err != nil || len(rpsAfter.VolumeRecoveryPointInfos) != 1 || rpsAfter.VolumeRecoveryPointInfos[0].VolumeSizeInBytes != 3<<30 ||
		!recoveryPointTime.MatchString(aws.ToString(rpsAfter.VolumeRecoveryPointInfos[0].VolumeRecoveryPointTime)) {
		t.Fatalf("recovery points after restart: %+v %v", rpsAfter, err)
	}
	// The engine reports an idle volume as consistent "now" while it runs,
	// and its last published cut after a restart, so the time may move
	// back; both are true recovery points of the same data.
	t.Logf("recovery point before restart %s, after %s", aws.ToString(rpsBefore.VolumeRecoveryPointInfos[0].VolumeRecoveryPointTime),
		aws.ToString(rpsAfter.VolumeRecoveryPointInfos[0].VolumeRecoveryPointTime))
	ds, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{aws.ToString(snap.SnapshotId)}})
	if err != nil || len(ds.Snapshots) != 1 || aws.ToString(ds.Snapshots[0].Description) != "before restart" {
		t.Fatalf("snapshot after restart: %+v %v", ds, err)
	}
}

// TestGeneratedCredentials: with no VOLGW_* keys, the first start writes a
// key pair to <data-dir>/credentials (0600) and prints how to export it;
// the next start uses the same pair and prints no secret.
func TestGeneratedCredentials(t *testing.T) {
	dataDir := t.TempDir()
	opts, err := parseServeFlags([]string{"--listen", "127.0.0.1:0", "--iscsi-listen", "127.0.0.1:0", "--data-dir", dataDir}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	var out bytes.Buffer
	a, err := start(context.Background(), opts, &out, noEnv, productionParts)
	if err != nil {
		t.Fatal(err)
	}
	creds := a.creds
	if err := a.close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dataDir, "credentials"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", st, err)
	}
	want := "export AWS_ACCESS_KEY_ID=" + creds.AccessKeyID + " AWS_SECRET_ACCESS_KEY=" + creds.SecretAccessKey
	if !strings.Contains(out.String(), want) || len(creds.AccessKeyID) != 20 || len(creds.SecretAccessKey) != 40 {
		t.Fatalf("first start printed %q", out.String())
	}
	// The generated pair works with a real client.
	out.Reset()
	a, err = start(context.Background(), opts, &out, noEnv, productionParts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.close() })
	if a.creds.AccessKeyID != creds.AccessKeyID || a.creds.SecretAccessKey != creds.SecretAccessKey || a.creds.Generated {
		t.Fatalf("second start: %+v, want %+v", a.creds, creds)
	}
	if strings.Contains(out.String(), creds.SecretAccessKey) {
		t.Fatalf("second start printed the secret: %q", out.String())
	}
	c := newSDKClients("http://"+a.APIAddr(), creds.AccessKeyID, creds.SecretAccessKey)
	if _, err := c.sgw.ListGateways(context.Background(), &storagegateway.ListGatewaysInput{}); err != nil {
		t.Fatalf("ListGateways with the generated pair: %v", err)
	}
}

func TestCommandLine(t *testing.T) {
	o, err := parseServeFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Listen != "127.0.0.1:8080" || o.ISCSIListen != "127.0.0.1:3260" || o.DataDir != "./volgw-data" || o.Region != "us-east-1" ||
		o.AccountID != "123456789012" || o.Store != "" || o.CacheDiskSize != 10<<30 || o.UploadBufferDiskSize != 5<<30 ||
		o.PprofListen != "" || o.MemoryLimit != defaultMemoryLimit {
		t.Fatalf("defaults: %+v", o)
	}
	o, err = parseServeFlags([]string{"--store", "s3://bucket/p?endpoint=http://127.0.0.1:7070", "--cache-disk-size", "512MiB",
		"--upload-buffer-disk-size", "1073741824", "--log-level", "debug", "--region", "eu-west-1", "--account-id", "111122223333"}, io.Discard)
	if err != nil || o.CacheDiskSize != 512<<20 || o.UploadBufferDiskSize != 1<<30 || o.Region != "eu-west-1" || o.AccountID != "111122223333" ||
		o.Store != "s3://bucket/p?endpoint=http://127.0.0.1:7070" {
		t.Fatalf("flags: %+v %v", o, err)
	}
	o, err = parseServeFlags([]string{"--pprof-listen", ":6060", "--memory-limit", "128MiB"}, io.Discard)
	if err != nil || o.PprofListen != "127.0.0.1:6060" || o.MemoryLimit != 128<<20 {
		t.Fatalf("a bare :port must mean loopback: %+v %v", o, err)
	}
	if o, err = parseServeFlags([]string{"--pprof-listen", "192.0.2.7:6060"}, io.Discard); err != nil || o.PprofListen != "192.0.2.7:6060" {
		t.Fatalf("an explicit address is kept: %+v %v", o, err)
	}
	for _, bad := range [][]string{{"--account-id", "12"}, {"--cache-disk-size", "-1"}, {"--cache-disk-size", "lots"}, {"--listen", "nohost"},
		{"--log-level", "loud"}, {"--region", "US East"}, {"extra"}, {"--no-such-flag"}, {"--pprof-listen", "6060"},
		{"--memory-limit", "1MiB"}, {"--memory-limit", "0"}} {
		if _, err := parseServeFlags(bad, io.Discard); err == nil {
			t.Errorf("parseServeFlags(%q) accepted", bad)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, io.Discard, func(string) string { return "" }); err != nil ||
		!strings.HasPrefix(out.String(), "volgw ") {
		t.Fatalf("version: %q %v", out.String(), err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, io.Discard, io.Discard, nil); err == nil {
		t.Fatal("unknown command accepted")
	}
	if err := run(context.Background(), nil, io.Discard, io.Discard, nil); err == nil {
		t.Fatal("no command accepted")
	}
}

// TestMetrics: /metrics answers unsigned, counts API requests and carries
// the engine's metrics.
func TestMetrics(t *testing.T) {
	s := startServer(t, "")
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	if _, err := c.sgw.ListGateways(context.Background(), &storagegateway.ListGatewaysInput{}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.endpoint() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `volgw_api_requests_total{error="",operation="ListGateways",protocol="json",status="200"} 1`) ||
		!strings.Contains(string(body), `volgw_volume_upload_buffer_damage_total{status="IRRECOVERABLE"} 0`) {
		t.Fatalf("/metrics: %d\n%s", resp.StatusCode, body)
	}
}

// TestStartFailureReleasesEverything: when start fails late (the API port
// is taken), everything it opened is closed again, so the next start on the
// same data dir works.
func TestStartFailureReleasesEverything(t *testing.T) {
	dataDir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// The disk sizes startServer uses: the failed start has created the
	// disks already, and they cannot shrink.
	opts, err := parseServeFlags([]string{"--listen", taken.Addr().String(), "--iscsi-listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--cache-disk-size", "2GiB", "--upload-buffer-disk-size", "1GiB", "--log-level", "error"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	env := func(k string) string {
		return map[string]string{"VOLGW_ACCESS_KEY_ID": e2eKeyID, "VOLGW_SECRET_ACCESS_KEY": e2eSecret}[k]
	}
	if a, err := start(context.Background(), opts, io.Discard, env, productionParts); err == nil {
		a.close()
		t.Fatal("start succeeded on a port in use")
	}
	s := startServer(t, dataDir)
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	if _, err := c.sgw.ListGateways(context.Background(), &storagegateway.ListGatewaysInput{}); err != nil {
		t.Fatal(err)
	}
}
