package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
	bolt "go.etcd.io/bbolt"

	"github.com/volgw/volgw/internal/catalog"
)

// runVolgw runs the binary to completion (a deadline of two minutes, far
// above the fraction of a second a refusal takes) and returns its output
// and exit status.
func runVolgw(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish within its deadline (it was killed); stderr:\n%s", bin, args, errOut.String())
	}
	return out.String(), errOut.String(), code
}

func serveArgs(dataDir string) []string {
	return []string{"serve", "--listen", "127.0.0.1:0", "--iscsi-listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--cache-disk-size", "2GiB", "--upload-buffer-disk-size", "1GiB"}
}

// apiView is what the API says about a gateway, minus what legitimately
// changes across a restart (the iSCSI port, usage and recovery points),
// as JSON for comparison.
func apiView(t *testing.T, ctx context.Context, c sdkClients, gatewayARN string, volumeARNs []string) map[string]string {
	t.Helper()
	view := map[string]string{}
	add := func(name string, v any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		view[name] = string(raw)
	}
	gws, err := c.sgw.ListGateways(ctx, &storagegateway.ListGatewaysInput{})
	add("ListGateways", gws.Gateways, err)
	info, err := c.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: aws.String(gatewayARN)})
	if err == nil {
		info.ResultMetadata = storagegateway.DescribeGatewayInformationOutput{}.ResultMetadata
	}
	add("DescribeGatewayInformation", info, err)
	disks, err := c.sgw.ListLocalDisks(ctx, &storagegateway.ListLocalDisksInput{GatewayARN: aws.String(gatewayARN)})
	add("ListLocalDisks", disks.Disks, err)
	cache, err := c.sgw.DescribeCache(ctx, &storagegateway.DescribeCacheInput{GatewayARN: aws.String(gatewayARN)})
	add("DescribeCache.DiskIds", cache.DiskIds, err)
	buf, err := c.sgw.DescribeUploadBuffer(ctx, &storagegateway.DescribeUploadBufferInput{GatewayARN: aws.String(gatewayARN)})
	add("DescribeUploadBuffer.DiskIds", buf.DiskIds, err)
	vols, err := c.sgw.ListVolumes(ctx, &storagegateway.ListVolumesInput{GatewayARN: aws.String(gatewayARN)})
	add("ListVolumes", vols.VolumeInfos, err)
	desc, err := c.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: volumeARNs})
	if err == nil {
		for i := range desc.CachediSCSIVolumes {
			v := &desc.CachediSCSIVolumes[i]
			v.VolumeUsedInBytes, v.VolumeiSCSIAttributes.NetworkInterfacePort = nil, 0
		}
	}
	add("DescribeCachediSCSIVolumes", desc.CachediSCSIVolumes, err)
	tags, err := c.sgw.ListTagsForResource(ctx, &storagegateway.ListTagsForResourceInput{ResourceARN: aws.String(gatewayARN)})
	add("tags of the gateway", tags.Tags, err)
	for i, arn := range volumeARNs {
		n := strconv.Itoa(i)
		tags, err := c.sgw.ListTagsForResource(ctx, &storagegateway.ListTagsForResourceInput{ResourceARN: aws.String(arn)})
		add("tags of volume "+n, tags.Tags, err)
		sched, err := c.sgw.DescribeSnapshotSchedule(ctx, &storagegateway.DescribeSnapshotScheduleInput{VolumeARN: aws.String(arn)})
		if err == nil {
			sched.ResultMetadata = storagegateway.DescribeSnapshotScheduleOutput{}.ResultMetadata
		}
		add("schedule of volume "+n, sched, err)
		var target *string
		for _, v := range desc.CachediSCSIVolumes {
			if aws.ToString(v.VolumeARN) == arn {
				target = v.VolumeiSCSIAttributes.TargetARN
			}
		}
		chap, err := c.sgw.DescribeChapCredentials(ctx, &storagegateway.DescribeChapCredentialsInput{TargetARN: target})
		add("CHAP of volume "+n, chap.ChapCredentials, err)
	}
	snaps, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
	add("DescribeSnapshots", snaps.Snapshots, err)
	return view
}

// usedCatalogPages are the pages of a catalog file bbolt reaches, and the
// file's high-water mark in pages.
func usedCatalogPages(t *testing.T, path string) (used []int, highWater int) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.View(func(tx *bolt.Tx) error {
		for id := 0; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				highWater = id
				return err
			}
			if p.Type != "free" {
				used = append(used, id)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return used, highWater
}

// TestCatalogDamageRefusedThenRebuilt is the scenario end to end:
// a gateway with volumes, targets, tags, schedules, CHAP and data written
// over iSCSI; catalog.db damaged in each way the issue names; volgw serve
// (the built binary) refuses every one with a message naming the file and
// the way back, exits 1 and does not panic; volgw rebuild-catalog restores
// it from the object store, and the API then shows everything as before,
// CHAP is enforced again and the data reads back.
//
// On the code before the fix the half-truncated file killed volgw with
// SIGBUS, random pages panicked in bbolt, and the empty, deleted and
// overwritten-meta files started it without its gateway or volume; there
// was no copy to rebuild from.
func TestCatalogDamageRefusedThenRebuilt(t *testing.T) {
	for _, tool := range []string{"qemu-img", "iscsi-inq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: run scripts/install-test-deps.sh", tool)
		}
	}
	bin := buildTestBinary(t)
	dataDir := t.TempDir()
	catalogPath := filepath.Join(dataDir, catalog.FileName)
	ctx := context.Background()

	s := startServer(t, dataDir)
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	var volumeARNs, targetARNs []string
	for _, name := range []string{"dr-chap", "dr-data"} {
		v, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
			VolumeSizeInBytes: 1 << 30, TargetName: aws.String(name), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String(name + "-token"),
			Tags: []sgwtypes.Tag{{Key: aws.String("volume"), Value: aws.String(name)}}})
		if err != nil {
			t.Fatal(err)
		}
		volumeARNs, targetARNs = append(volumeARNs, aws.ToString(v.VolumeARN)), append(targetARNs, aws.ToString(v.TargetARN))
	}
	// A backup of catalog.db taken now (volgw stopped, so the file is
	// quiet) is older than what follows.
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	backup, err := os.ReadFile(catalogPath)
	if err != nil {
		t.Fatal(err)
	}
	s = startServer(t, dataDir)
	c = newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	if _, err := c.sgw.AddTagsToResource(ctx, &storagegateway.AddTagsToResourceInput{ResourceARN: aws.String(g.arn),
		Tags: []sgwtypes.Tag{{Key: aws.String("site"), Value: aws.String("dr-test")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.sgw.UpdateSnapshotSchedule(ctx, &storagegateway.UpdateSnapshotScheduleInput{VolumeARN: aws.String(volumeARNs[1]),
		StartAt: aws.Int32(7), RecurrenceInHours: aws.Int32(12), Description: aws.String("twice a day")}); err != nil {
		t.Fatal(err)
	}
	const initiator, chapSecret = "iqn.2026-11.test:dr-host", "dr-chap-secret01"
	if _, err := c.sgw.UpdateChapCredentials(ctx, &storagegateway.UpdateChapCredentialsInput{TargetARN: aws.String(targetARNs[0]),
		InitiatorName: aws.String(initiator), SecretToAuthenticateInitiator: aws.String(chapSecret)}); err != nil {
		t.Fatal(err)
	}
	desc, err := c.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: volumeARNs})
	if err != nil {
		t.Fatal(err)
	}
	// lunURL is the iSCSI URL of volume i as d describes it (d lists
	// volumes by ARN, not in the order asked).
	lunURL := func(i int, d *storagegateway.DescribeCachediSCSIVolumesOutput, auth string) string {
		var a *sgwtypes.VolumeiSCSIAttributes
		for _, v := range d.CachediSCSIVolumes {
			if aws.ToString(v.VolumeARN) == volumeARNs[i] {
				a = v.VolumeiSCSIAttributes
			}
		}
		return "iscsi://" + auth + aws.ToString(a.NetworkInterfaceId) + ":" + strconv.Itoa(int(a.NetworkInterfacePort)) + "/" +
			strings.TrimPrefix(aws.ToString(a.TargetARN), g.arn+"/target/") + "/" + strconv.Itoa(int(aws.ToInt32(a.LunNumber)))
	}
	// 4 MiB written over iSCSI before the damage.
	work := t.TempDir()
	data := make([]byte, 4<<20)
	rand.Read(data)
	src := filepath.Join(work, "src.img")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, os.Environ(), 2*time.Minute, "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, lunURL(1, desc, "")); err != nil {
		t.Fatalf("qemu-img convert to iSCSI: %v\n%s", err, out)
	}
	if _, err := c.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
		VolumeARN: aws.String(volumeARNs[1]), SnapshotDescription: aws.String("before the damage")}); err != nil {
		t.Fatal(err)
	}
	before := apiView(t, ctx, c, g.arn, volumeARNs)
	gatewayID := g.arn[strings.LastIndex(g.arn, "/")+1:]
	copyPath := filepath.Join(dataDir, "store", "gateways", gatewayID, "catalog.json")
	if raw, err := os.ReadFile(copyPath); err != nil {
		t.Fatalf("no copy of the catalog in the store: %v", err)
	} else if bytes.Contains(raw, []byte(chapSecret)) {
		t.Fatal("the catalog's copy in the store holds the CHAP secret in clear")
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}

	pristine, err := os.ReadFile(catalogPath)
	if err != nil {
		t.Fatal(err)
	}
	used, highWater := usedCatalogPages(t, catalogPath)
	if int64(highWater)*4096 <= int64(len(pristine))/2 {
		t.Fatalf("the test needs a catalog whose pages reach past half its file (%d pages in %d bytes)", highWater, len(pristine))
	}
	overwrite := func(off int64) func() error {
		return func() error {
			f, err := os.OpenFile(catalogPath, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			junk := make([]byte, 4096)
			rand.Read(junk)
			_, err = f.WriteAt(junk, off)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}
	}
	type damage struct {
		name, want string
		do         func() error
	}
	// Bytes that no reachable page holds (free pages, unused tails) change
	// nothing and are rightly accepted, so random bytes go where pages are
	// in use.
	cases := []damage{
		{"truncated to half", "is damaged", func() error { return os.Truncate(catalogPath, int64(len(pristine))/2) }},
		{"truncated to 0", "is missing", func() error { return os.Truncate(catalogPath, 0) }},
		{"deleted", "is missing", func() error { return os.Remove(catalogPath) }},
		{"meta page 0 overwritten", "is damaged", overwrite(0)},
		{"meta page 1 overwritten", "is damaged", overwrite(4096)},
		{"4 KiB of random bytes at offset 100", "is damaged", overwrite(100)},
	}
	// Straddling two pages, across the head of the first data page in use.
	straddle := int64(used[2])*4096 - 2000
	cases = append(cases, damage{"4 KiB of random bytes at offset " + strconv.FormatInt(straddle, 10), "is damaged", overwrite(straddle)})
	cases = append(cases, damage{"replaced by an older backup of itself", "is older than its copy",
		func() error { return os.WriteFile(catalogPath, backup, 0o600) }})
	for _, p := range used[2:] {
		cases = append(cases, damage{"4 KiB of random bytes over page " + strconv.Itoa(p), "is damaged", overwrite(int64(p) * 4096)})
	}
	env := append(os.Environ(), "VOLGW_ACCESS_KEY_ID="+e2eKeyID, "VOLGW_SECRET_ACCESS_KEY="+e2eSecret)
	for _, d := range cases {
		if err := os.WriteFile(catalogPath, pristine, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := d.do(); err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		_, stderr, code := runVolgw(t, bin, env, serveArgs(dataDir)...)
		for _, bad := range []string{"panic", "goroutine ", "SIGBUS", "SIGSEGV", "fatal error", "volgw serving"} {
			if strings.Contains(stderr, bad) {
				t.Fatalf("catalog %s: volgw serve printed %q:\n%s", d.name, bad, stderr)
			}
		}
		if code != 1 || !strings.Contains(stderr, "the catalog "+catalogPath+" "+d.want) || !strings.Contains(stderr, "volgw rebuild-catalog --data-dir "+dataDir) {
			t.Fatalf("catalog %s: volgw serve exited %d with:\n%s\nwant exit 1, %q naming the file and the rebuild command", d.name, code, stderr, d.want)
		}
		t.Logf("catalog %s: %s", d.name, strings.SplitN(stderr, "\n", 2)[0])
	}

	// rebuild-catalog never replaces a catalog.db, even a damaged one.
	if err := os.WriteFile(catalogPath, pristine, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := overwrite(0)(); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runVolgw(t, bin, env, "rebuild-catalog", "--data-dir", dataDir); code != 1 || !strings.Contains(stderr, "mv "+catalogPath) {
		t.Fatalf("rebuild-catalog over an existing catalog.db: exit %d\n%s", code, stderr)
	}
	if err := os.Rename(catalogPath, catalogPath+".damaged"); err != nil {
		t.Fatal(err)
	}
	// Without the API secret: everything but CHAP, and it says so.
	noSecret := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	stdout, stderr, code := runVolgw(t, bin, noSecret, "rebuild-catalog", "--data-dir", dataDir)
	if code != 0 || !strings.Contains(stdout, "WARNING: 1 CHAP credentials were NOT restored") || !strings.Contains(stdout, initiator+" on "+targetARNs[0]) ||
		!strings.Contains(stdout, e2eKeyID) {
		t.Fatalf("rebuild-catalog without the API secret: exit %d\n%s%s", code, stdout, stderr)
	}
	if err := os.Remove(catalogPath); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = runVolgw(t, bin, env, "rebuild-catalog", "--data-dir", dataDir)
	if code != 0 || strings.Contains(stdout, "WARNING") || !strings.Contains(stdout, "2 volumes") || !strings.Contains(stdout, "1 CHAP credentials") {
		t.Fatalf("rebuild-catalog: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("rebuild-catalog:\n%s", stdout)

	s = startServer(t, dataDir)
	c = newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	after := apiView(t, ctx, c, g.arn, volumeARNs)
	for name, want := range before {
		if after[name] != want {
			t.Errorf("%s after the rebuild:\n%s\nbefore the damage:\n%s", name, after[name], want)
		}
	}
	desc, err = c.sgw.DescribeCachediSCSIVolumes(ctx, &storagegateway.DescribeCachediSCSIVolumesInput{VolumeARNs: volumeARNs})
	if err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(work, "back.img")
	if out, err := runTool(t, os.Environ(), 2*time.Minute, "qemu-img", "dd", "-f", "raw", "-O", "raw", "bs=1M", "count=4",
		"if="+lunURL(1, desc, ""), "of="+back); err != nil {
		t.Fatalf("qemu-img dd from iSCSI after the rebuild: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("data written before the damage reads back different after the rebuild (%d bytes, %v)", len(got), err)
	}
	if out, err := runTool(t, os.Environ(), time.Minute, "iscsi-inq", "-i", initiator, lunURL(0, desc, "")); err == nil {
		t.Fatalf("login without CHAP accepted after the rebuild:\n%s", out)
	}
	if out, err := runTool(t, os.Environ(), time.Minute, "iscsi-inq", "-i", initiator, lunURL(0, desc, initiator+"%"+chapSecret+"@")); err != nil {
		t.Fatalf("login with the CHAP secret refused after the rebuild: %v\n%s", err, out)
	}
}

// TestSecondVolgwOnSameDataDirRefused: a second volgw serve on a data dir
// in use exits 1 at once, saying that the data dir is in use and by which
// pid (it used to wait five seconds and say only "timeout"); the first one
// keeps serving.
func TestSecondVolgwOnSameDataDirRefused(t *testing.T) {
	bin := buildTestBinary(t)
	dataDir := t.TempDir()
	s := startServer(t, dataDir)
	env := append(os.Environ(), "VOLGW_ACCESS_KEY_ID="+e2eKeyID, "VOLGW_SECRET_ACCESS_KEY="+e2eSecret)
	_, stderr, code := runVolgw(t, bin, env, serveArgs(dataDir)...)
	want := "the data dir " + dataDir + " is in use by another process (pid " + strconv.Itoa(os.Getpid()) + ")"
	if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "timeout") {
		t.Fatalf("second volgw serve: exit %d\n%s\nwant exit 1 and %q", code, stderr, want)
	}
	t.Logf("second volgw serve: %s", strings.TrimSpace(stderr))
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	if _, err := c.sgw.ListGateways(context.Background(), &storagegateway.ListGatewaysInput{}); err != nil {
		t.Fatalf("the first volgw after the second was refused: %v", err)
	}
}

// TestCatalogChangeFailsWhenTheStoreRefusesItsCopy: when the object store
// cannot take the catalog's copy, the API call fails with
// InternalServerError and changes nothing, so no acknowledged change is
// missing from the copy; once the store takes writes again, the next change
// brings the copy up to date.
func TestCatalogChangeFailsWhenTheStoreRefusesItsCopy(t *testing.T) {
	dataDir := t.TempDir()
	s := startServer(t, dataDir)
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	gatewayID := g.arn[strings.LastIndex(g.arn, "/")+1:]
	// The store is the default file store in the data dir: putting a plain
	// file where the copy's directory is makes every write of the copy fail
	// in the file system itself (root ignores permissions; not this).
	copyDir := filepath.Join(dataDir, "store", "gateways", gatewayID)
	if err := os.RemoveAll(copyDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyDir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	tag := func(key string) error {
		_, err := c.sgw.AddTagsToResource(ctx, &storagegateway.AddTagsToResourceInput{ResourceARN: aws.String(g.arn),
			Tags: []sgwtypes.Tag{{Key: aws.String(key), Value: aws.String("v")}}})
		return err
	}
	err := tag("refused")
	var apiErr interface{ ErrorCode() string }
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InternalServerError" {
		t.Fatalf("AddTagsToResource with the store refusing the catalog's copy = %v, want InternalServerError", err)
	}
	tags, err := c.sgw.ListTagsForResource(ctx, &storagegateway.ListTagsForResourceInput{ResourceARN: aws.String(g.arn)})
	if err != nil || len(tags.Tags) != 0 {
		t.Fatalf("tags after the refused change: %+v %v, want none", tags, err)
	}
	if err := os.Remove(copyDir); err != nil {
		t.Fatal(err)
	}
	if err := tag("kept"); err != nil {
		t.Fatalf("AddTagsToResource once the store takes writes again: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(copyDir, "catalog.json"))
	if err != nil || !bytes.Contains(raw, []byte(`"Key":"kept"`)) || bytes.Contains(raw, []byte(`"Key":"refused"`)) {
		t.Fatalf("the copy after the store came back: %v\n%s", err, raw)
	}
}

// TestRebuildCatalogChoosesAmongGateways: with several gateways' copies in
// one store, rebuild-catalog names them and asks for --gateway-id, then
// restores the one chosen; with none, it says so; a stray argument is a
// usage error.
func TestRebuildCatalogChoosesAmongGateways(t *testing.T) {
	ctx := context.Background()
	store := "file://" + filepath.Join(t.TempDir(), "shared-store")
	var ids []string
	for range 2 {
		s := startServerWith(t, "", []string{"--store", store}, nil)
		c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
		g := activateGateway(t, ctx, c, s.endpoint())
		ids = append(ids, g.arn[strings.LastIndex(g.arn, "/")+1:])
		if err := s.close(); err != nil {
			t.Fatal(err)
		}
	}
	env := func(k string) string { return map[string]string{"VOLGW_SECRET_ACCESS_KEY": e2eSecret}[k] }
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"rebuild-catalog", "extra"}, &out, &errOut, env); !errors.Is(err, errUsage) {
		t.Fatalf("rebuild-catalog with a stray argument = %v, want a usage error", err)
	}
	dir := t.TempDir()
	err := run(ctx, []string{"rebuild-catalog", "--data-dir", dir, "--store", store}, &out, &errOut, env)
	if err == nil || !strings.Contains(err.Error(), "--gateway-id") || !strings.Contains(err.Error(), ids[0]) || !strings.Contains(err.Error(), ids[1]) {
		t.Fatalf("rebuild-catalog with two gateways' copies = %v, want both named and --gateway-id asked for", err)
	}
	if err := run(ctx, []string{"rebuild-catalog", "--data-dir", dir, "--store", store, "--gateway-id", ids[1]}, &out, &errOut, env); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, dir)
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	gws, err := c.sgw.ListGateways(ctx, &storagegateway.ListGatewaysInput{})
	if err != nil || len(gws.Gateways) != 1 || aws.ToString(gws.Gateways[0].GatewayId) != ids[1] {
		t.Fatalf("ListGateways after rebuilding %s: %+v %v", ids[1], gws, err)
	}
	err = run(ctx, []string{"rebuild-catalog", "--data-dir", t.TempDir(), "--store", "file://" + t.TempDir()}, &out, &errOut, env)
	if err == nil || !strings.Contains(err.Error(), "holds no catalog copy") {
		t.Fatalf("rebuild-catalog from a store without copies = %v", err)
	}
}
