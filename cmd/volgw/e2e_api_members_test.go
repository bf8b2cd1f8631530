package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// TestMemberNamesAreCaseSensitive: a member the model does not define is
// ignored, as AWS ignores it, even when it differs from a real member
// only in letter case. encoding/json matches fields case-insensitively,
// so "snapshotdescription" used to reach the handler unchecked (a
// 300-character description stored past the 255 limit), and
// "gatewayarn": 5 used to answer a SerializationException naming Go types.
// Sent as raw HTTP signed by aws-sdk-go-v2's signer (no SDK sends unknown
// members); the result is read back through aws-sdk-go-v2.
func TestMemberNamesAreCaseSensitive(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	f := newSnapshotFixture(t, ctx, c, s, "members")
	long := strings.Repeat("x", 300)

	body, _ := json.Marshal(map[string]any{"VolumeARN": f.volumeARN, "SnapshotDescription": "checked", "snapshotdescription": long})
	b := badRequest{name: "lower-case twin of a member", op: "CreateSnapshotFromVolumeRecoveryPoint", rawBody: string(body)}
	if got := b.sendRaw(t, s.endpoint()); !got.OK {
		t.Fatalf("CreateSnapshotFromVolumeRecoveryPoint with an unknown member: %+v", got)
	}
	out, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range out.Snapshots {
		if d := aws.ToString(sn.Description); len(d) > 255 {
			t.Errorf("snapshot %s stored a %d-character description, past the model's 255", aws.ToString(sn.SnapshotId), len(d))
		}
	}
	found := false
	for _, sn := range out.Snapshots {
		found = found || aws.ToString(sn.Description) == "checked"
	}
	if !found {
		t.Errorf("no snapshot with the validated description: %+v", out.Snapshots)
	}

	body, _ = json.Marshal(map[string]any{"GatewayARN": f.arn, "gatewayarn": 5})
	b = badRequest{name: "unknown member of another type", op: "ListVolumeRecoveryPoints", rawBody: string(body)}
	if got := b.sendRaw(t, s.endpoint()); !got.OK {
		t.Errorf("ListVolumeRecoveryPoints with an unknown member: %+v", got)
	}
}
