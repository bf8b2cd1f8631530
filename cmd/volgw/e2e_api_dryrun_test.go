package main

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

const (
	dryRunCode    = "DryRunOperation"
	dryRunMessage = "Request would have succeeded, but DryRun flag is set."
)

// TestEC2DryRun: a dry run changes nothing and answers DryRunOperation
// (HTTP 412) when the call would have succeeded, or the error the call
// would have had — through the AWS CLI, boto3 and aws-sdk-go-v2. The
// snapshot must survive every dry-run delete (it was deleted before).
func TestEC2DryRun(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	f := newSnapshotFixture(t, ctx, c, s, "dry run")
	unknown := "snap-0123456789abcdef0"

	mustExist := func(after string) {
		t.Helper()
		if !snapshotExists(t, ctx, c, f.snapshotID) {
			t.Fatalf("snapshot %s deleted by %s", f.snapshotID, after)
		}
	}

	// The AWS CLI's --dry-run.
	for name, cli := range awsCLIs(t) {
		out, ok := runCLI(t, s, cli, "ec2", "delete-snapshot", "--snapshot-id", f.snapshotID, "--dry-run")
		wantCLIError(t, name+" delete-snapshot --dry-run", out, ok, dryRunCode, dryRunMessage)
		mustExist(name + " delete-snapshot --dry-run")
		out, ok = runCLI(t, s, cli, "ec2", "describe-snapshots", "--snapshot-ids", f.snapshotID, "--dry-run")
		wantCLIError(t, name+" describe-snapshots --dry-run", out, ok, dryRunCode, dryRunMessage)
		out, ok = runCLI(t, s, cli, "ec2", "describe-snapshots", "--dry-run")
		wantCLIError(t, name+" describe-snapshots --dry-run (all)", out, ok, dryRunCode, dryRunMessage)
		out, ok = runCLI(t, s, cli, "ec2", "delete-snapshot", "--snapshot-id", unknown, "--dry-run")
		wantCLIError(t, name+" delete-snapshot --dry-run unknown", out, ok, "InvalidSnapshot.NotFound",
			"The snapshot '"+unknown+"' does not exist.")
	}

	// boto3's DryRun=True.
	seen := runBoto3(t, s, []boto3Call{
		{Name: "delete", Service: "ec2", Op: "DeleteSnapshot", Params: map[string]any{"SnapshotId": f.snapshotID, "DryRun": true}},
		{Name: "describe", Service: "ec2", Op: "DescribeSnapshots", Params: map[string]any{"SnapshotIds": []string{f.snapshotID}, "DryRun": true}},
		{Name: "delete unknown", Service: "ec2", Op: "DeleteSnapshot", Params: map[string]any{"SnapshotId": unknown, "DryRun": true}},
		{Name: "delete malformed", Service: "ec2", Op: "DeleteSnapshot", Params: map[string]any{"SnapshotId": "snap-xyz", "DryRun": true}},
		{Name: "describe unknown", Service: "ec2", Op: "DescribeSnapshots", Params: map[string]any{"SnapshotIds": []string{unknown}, "DryRun": true}},
	})
	want := map[string]seenError{
		"delete":           {Status: 412, Code: dryRunCode, Message: dryRunMessage},
		"describe":         {Status: 412, Code: dryRunCode, Message: dryRunMessage},
		"delete unknown":   {Status: 400, Code: "InvalidSnapshot.NotFound", Message: "The snapshot '" + unknown + "' does not exist."},
		"delete malformed": {Status: 400, Code: "InvalidParameterValue", Message: "Value (snap-xyz) for parameter snapshotId is invalid. Expected: 'snap-...'."},
		"describe unknown": {Status: 400, Code: "InvalidSnapshot.NotFound", Message: "The snapshot '" + unknown + "' does not exist."},
	}
	for name, w := range want {
		if got := seen[name].seenError; got.OK || got.Status != w.Status || got.Code != w.Code || got.Message != w.Message {
			t.Errorf("boto3 %s: got %+v, want %+v", name, got, w)
		}
	}
	mustExist("boto3 DryRun=True")

	// aws-sdk-go-v2's DryRun.
	_, err := c.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(f.snapshotID), DryRun: aws.Bool(true)})
	if got := sdkSeen("delete", err); got.Status != 412 || got.Code != dryRunCode || got.Message != dryRunMessage {
		t.Errorf("aws-sdk-go-v2 DeleteSnapshot DryRun: %+v (%v)", got, err)
	}
	_, err = c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{DryRun: aws.Bool(true), OwnerIds: []string{"self"}})
	if got := sdkSeen("describe", err); got.Status != 412 || got.Code != dryRunCode {
		t.Errorf("aws-sdk-go-v2 DescribeSnapshots DryRun: %+v (%v)", got, err)
	}
	mustExist("aws-sdk-go-v2 DryRun")

	// DryRun=false is an ordinary call: the CLI's --no-dry-run deletes.
	for name, cli := range awsCLIs(t) {
		out, ok := runCLI(t, s, cli, "ec2", "delete-snapshot", "--snapshot-id", f.snapshotID, "--no-dry-run")
		if !ok {
			t.Fatalf("%s delete-snapshot --no-dry-run: %s", name, out)
		}
		break
	}
	if snapshotExists(t, ctx, c, f.snapshotID) {
		t.Fatalf("snapshot %s survived delete-snapshot --no-dry-run", f.snapshotID)
	}
}
