package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// Helpers shared by the e2e_api_*_test.go files.

// boto3Call is one call for scripts/e2e-api-boto3-calls.py.
type boto3Call struct {
	Name    string         `json:"name"`
	Service string         `json:"service"`
	Op      string         `json:"op"`
	Params  map[string]any `json:"params"`
}

// boto3Result is what boto3 returned for one call: the parsed response,
// or the error.
type boto3Result struct {
	seenError
	Response json.RawMessage `json:"response"`
}

// runBoto3 makes the calls through boto3 (client-side validation off) and
// returns what boto3 saw of each, by name.
func runBoto3(t *testing.T, s *testServer, calls []boto3Call) map[string]boto3Result {
	t.Helper()
	return runBoto3Env(t, scriptEnv(s), calls)
}

// runBoto3Env is runBoto3 with the script's environment given (e.g. an
// AWS_DATA_PATH holding another service's model).
func runBoto3Env(t *testing.T, env []string, calls []boto3Call) map[string]boto3Result {
	t.Helper()
	in, err := json.Marshal(calls)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runToolInput(t, env, 2*time.Minute, in, "/usr/bin/python3", filepath.Join(repoRoot(t), "scripts", "e2e-api-boto3-calls.py"))
	if err != nil {
		t.Fatalf("e2e-api-boto3-calls.py: %v\n%s", err, out)
	}
	var seen []boto3Result
	if err := json.Unmarshal([]byte(out), &seen); err != nil || len(seen) != len(calls) {
		t.Fatalf("boto3 results %q: %v", out, err)
	}
	byName := map[string]boto3Result{}
	for _, got := range seen {
		byName[got.Name] = got
	}
	return byName
}

// runCLI runs one AWS CLI command against s and returns its combined
// output and whether it succeeded.
func runCLI(t *testing.T, s *testServer, cli string, args ...string) (string, bool) {
	t.Helper()
	args = append(args, "--endpoint-url", s.endpoint(), "--region", "us-east-1", "--output", "json")
	out, err := runTool(t, scriptEnv(s), 2*time.Minute, cli, args...)
	return out, err == nil
}

// wantCLIError checks that a CLI command failed with the error code and
// message (the CLI prints "An error occurred (CODE) when calling the OP
// operation: MESSAGE").
func wantCLIError(t *testing.T, what, out string, ok bool, code, message string) {
	t.Helper()
	if ok || !strings.Contains(out, "("+code+")") || !strings.HasSuffix(out, ": "+message) {
		t.Errorf("%s: ok=%v output %q; want (%s) %q", what, ok, out, code, message)
	}
}

// snapshotFixture is an activated gateway with one volume and one
// snapshot of it.
type snapshotFixture struct {
	gatewayFixture
	volumeARN, volumeID, snapshotID string
}

func newSnapshotFixture(t *testing.T, ctx context.Context, c sdkClients, s *testServer, desc string) snapshotFixture {
	t.Helper()
	g := activateGateway(t, ctx, c, s.endpoint())
	vol, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String("api-vol"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("api-1")})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := c.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
		VolumeARN: vol.VolumeARN, SnapshotDescription: aws.String(desc)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(vol.VolumeARN)
	return snapshotFixture{gatewayFixture: g, volumeARN: arn, volumeID: arn[strings.LastIndex(arn, "/")+1:],
		snapshotID: aws.ToString(snap.SnapshotId)}
}

// snapshotExists asks EC2 (through aws-sdk-go-v2) whether the snapshot is
// still there.
func snapshotExists(t *testing.T, ctx context.Context, c sdkClients, id string) bool {
	t.Helper()
	out, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
	if err != nil {
		t.Fatalf("DescribeSnapshots: %v", err)
	}
	for _, sn := range out.Snapshots {
		if aws.ToString(sn.SnapshotId) == id {
			return true
		}
	}
	return false
}
