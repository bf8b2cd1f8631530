package main

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// TestRecoveryPointRetention: volgw serve --recovery-point-retention 1h;
// three generations of data written over iSCSI, each made a recovery
// point; boto3, loading the recovery-point API's model from the repo
// (AWS_DATA_PATH), lists the retained points and snapshots the one of the
// first generation by time, and sees Storage Gateway's errors; the
// `volgw recovery-points` binary lists them and snapshots the second by
// time and the third by sequence; each snapshot, restored with the Go
// SDK's CreateCachediSCSIVolume --snapshot-id and read over iSCSI, holds
// exactly what was written then.
func TestRecoveryPointRetention(t *testing.T) {
	s := startServerWith(t, "", []string{"--recovery-point-retention", "1h"}, nil)
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	vol := createVolumes(t, ctx, c, g, "cdp-source")[0]
	lun := volumeLUNURL(t, ctx, c, vol)

	// Generation i is on the volume's recovery point by after[i] (a
	// snapshot forces the cut), and generation i+1 is written more than a
	// second later: a time in whole seconds (what boto3 sends) between
	// them names generation i's point.
	var gens [][]byte
	var after []time.Time
	for i := range 3 {
		gens = append(gens, writeRandomOverISCSI(t, lun, 1<<20))
		snap, err := c.sgw.CreateSnapshot(ctx, &storagegateway.CreateSnapshotInput{VolumeARN: aws.String(vol), SnapshotDescription: aws.String("cut " + strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		waitSnapshotCompleted(t, ctx, c, aws.ToString(snap.SnapshotId))
		after = append(after, time.Now())
		time.Sleep(1100 * time.Millisecond)
	}

	// boto3 with the model from the repo.
	env := append(scriptEnv(s), "AWS_DATA_PATH="+filepath.Join(repoRoot(t), "internal", "cdpapi", "model"))
	const svc = "volgw-recoverypoints"
	at0 := after[0].Truncate(time.Second).Add(time.Second).Unix() // boto3 sends whole seconds
	calls := []boto3Call{
		{Name: "list", Service: svc, Op: "ListRetainedRecoveryPoints", Params: map[string]any{"VolumeARN": vol}},
		{Name: "snap0", Service: svc, Op: "CreateSnapshotFromRetainedRecoveryPoint", Params: map[string]any{"VolumeARN": vol,
			"RecoveryPointTime": at0, "SnapshotDescription": "generation 0", "Tags": []map[string]string{{"Key": "by", "Value": "boto3"}}}},
		{Name: "neither", Service: svc, Op: "CreateSnapshotFromRetainedRecoveryPoint", Params: map[string]any{"VolumeARN": vol, "SnapshotDescription": "x"}},
		{Name: "before", Service: svc, Op: "CreateSnapshotFromRetainedRecoveryPoint", Params: map[string]any{"VolumeARN": vol, "SnapshotDescription": "x", "RecoveryPointTime": 1000000000}},
		{Name: "nodesc", Service: svc, Op: "CreateSnapshotFromRetainedRecoveryPoint", Params: map[string]any{"VolumeARN": vol, "Sequence": 1}},
		{Name: "novol", Service: svc, Op: "ListRetainedRecoveryPoints", Params: map[string]any{"VolumeARN": vol[:strings.LastIndex(vol, "/")+1] + "vol-0123456789ABCDEF0"}},
	}
	res := runBoto3Env(t, env, calls)
	var list struct {
		VolumeARN              string
		RetainedRecoveryPoints []struct {
			RecoveryPointTime string // boto3 parsed it as a timestamp; printed with str()
			Sequence          uint64
			VolumeSizeInBytes int64
			Current           bool
		}
	}
	if err := json.Unmarshal(res["list"].Response, &list); err != nil {
		t.Fatalf("list: %v (%+v)", err, res["list"])
	}
	pts := list.RetainedRecoveryPoints
	// The create, three forced cuts, and whatever periodic cuts happened.
	if list.VolumeARN != vol || len(pts) < 4 || !pts[len(pts)-1].Current || pts[0].Sequence != 0 || pts[0].VolumeSizeInBytes != 1<<30 {
		t.Fatalf("boto3 listed %+v", list)
	}
	if _, err := time.Parse("2006-01-02 15:04:05.999999-07:00", pts[0].RecoveryPointTime); err != nil {
		t.Fatalf("boto3 did not parse RecoveryPointTime as a timestamp: %q", pts[0].RecoveryPointTime)
	}
	var snap0 struct{ SnapshotId, VolumeARN, VolumeRecoveryPointTime string }
	if err := json.Unmarshal(res["snap0"].Response, &snap0); err != nil || snap0.VolumeARN != vol || !strings.HasPrefix(snap0.SnapshotId, "snap-") {
		t.Fatalf("snap0: %+v %v (%+v)", snap0, err, res["snap0"])
	}
	for name, want := range map[string][3]string{
		"neither": {"InvalidGatewayRequestException", "InvalidParameters", "Give exactly one of RecoveryPointTime and Sequence."},
		"before":  {"InvalidGatewayRequestException", "InvalidParameters", "No retained recovery point of the volume matches the time or sequence number given."},
		"nodesc":  {"ValidationException", "", "1 validation error detected: Value null at 'snapshotDescription' failed to satisfy constraint: Member must not be null"},
		"novol":   {"InvalidGatewayRequestException", "VolumeNotFound", "The specified volume was not found."},
	} {
		r := res[name]
		if r.Code != want[0] || r.ErrorCode != want[1] || r.Message != want[2] || r.Status != 400 {
			t.Errorf("%s: boto3 saw %+v, want %v", name, r.seenError, want)
		}
	}

	// The CLI binary.
	bin := filepath.Join(t.TempDir(), "volgw")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	volID := vol[strings.LastIndex(vol, "/")+1:]
	env = append(env, "VOLGW_ACCESS_KEY_ID="+e2eKeyID, "VOLGW_SECRET_ACCESS_KEY="+e2eSecret) // as volgw status takes them
	cli := func(args ...string) string {
		t.Helper()
		args = append(args, "--endpoint", s.endpoint(), "--volume", volID)
		out, err := runTool(t, env, time.Minute, bin, append([]string{"recovery-points"}, args...)...)
		if err != nil {
			t.Fatalf("volgw recovery-points %v: %v\n%s", args, err, out)
		}
		return out
	}
	lines := strings.Split(cli("list"), "\n")
	header := regexp.MustCompile(`^SEQ +RECOVERY POINT +AGE +SIZE +USED$`)
	row := regexp.MustCompile(`^(\d+) +(\S+) +\S+ +1\.0 GiB +\S+ \S+( +current)?$`)
	if !header.MatchString(lines[0]) || len(lines) != len(pts)+1 || !strings.HasSuffix(lines[len(lines)-1], "current") {
		t.Fatalf("volgw recovery-points list:\n%s", strings.Join(lines, "\n"))
	}
	for i, l := range lines[1:] {
		m := row.FindStringSubmatch(l)
		if m == nil || m[1] != strconv.FormatUint(pts[i].Sequence, 10) {
			t.Fatalf("list row %q, want seq %d", l, pts[i].Sequence)
		}
	}
	snapRow := regexp.MustCompile(`(?m)^(snap-[0-9a-f]{17}) +` + volID + ` +(\d+) +(\S+)$`)
	out1 := cli("snapshot", "--at", after[1].Format(time.RFC3339Nano), "--description", "generation 1")
	m1 := snapRow.FindStringSubmatch(out1)
	lastSeq := strconv.FormatUint(pts[len(pts)-1].Sequence, 10)
	out2 := cli("snapshot", "--seq", lastSeq)
	m2 := snapRow.FindStringSubmatch(out2)
	if m1 == nil || m2 == nil || m2[2] != lastSeq {
		t.Fatalf("volgw recovery-points snapshot:\n%s\n%s", out1, out2)
	}
	if out, err := runTool(t, env, time.Minute, bin, "recovery-points", "snapshot", "--endpoint", s.endpoint(), "--volume", volID, "--at", "-100h"); err == nil ||
		!strings.Contains(out, "InvalidGatewayRequestException (HTTP 400): No retained recovery point") {
		t.Fatalf("--at before the window: %v\n%s", err, out)
	}

	// Each snapshot is an ordinary one: EC2 sees it completed with its
	// point's time, and it restores to what was written then.
	for i, id := range []string{snap0.SnapshotId, m1[1], m2[1]} {
		ds, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
		if err != nil || len(ds.Snapshots) != 1 || ds.Snapshots[0].State != "completed" {
			t.Fatalf("DescribeSnapshots %s: %+v %v", id, ds, err)
		}
		rv, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn), SnapshotId: aws.String(id),
			VolumeSizeInBytes: 1 << 30, TargetName: aws.String("cdp-restore-" + strconv.Itoa(i)), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("cdp-" + id)})
		if err != nil {
			t.Fatalf("restore %s: %v", id, err)
		}
		checkBytesOverISCSI(t, volumeLUNURL(t, ctx, c, aws.ToString(rv.VolumeARN)), gens[i])
	}
}

// TestRecoveryPointsUsage: mistakes on the command line are usage errors
// (exit status 2) before anything is asked of a server; --at takes RFC 3339
// or a time relative to now.
func TestRecoveryPointsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"recovery-points"},
		{"recovery-points", "delete", "--volume", "vol-1"},
		{"recovery-points", "list"},
		{"recovery-points", "snapshot", "--volume", "vol-1"},
		{"recovery-points", "snapshot", "--volume", "vol-1", "--at", "-1h", "--seq", "3"},
		{"recovery-points", "snapshot", "--volume", "vol-1", "--at", "yesterday"},
	} {
		var out strings.Builder
		if err := run(context.Background(), args, &out, &out, func(string) string { return "" }); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error\n%s", args, err, out.String())
		}
	}
	now := time.Date(2026, 11, 24, 2, 30, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"now":                              now,
		"-15m":                             now.Add(-15 * time.Minute),
		"-1h30m":                           now.Add(-90 * time.Minute),
		"2026-11-24T01:00:00Z":             time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC),
		"2026-11-24T03:00:00.123456+02:00": time.Date(2026, 11, 24, 1, 0, 0, 123456000, time.UTC),
	} {
		if got, err := parseWhen(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
