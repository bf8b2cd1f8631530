package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// TestJSONTextThatCannotBeKept: a string that is not valid UTF-8, or a
// \u escape of an unpaired surrogate, is a SerializationException and
// creates nothing — it used to be stored with U+FFFD in its place. Sent
// as raw bytes (signed by aws-sdk-go-v2's signer), by boto3 (a Python
// string with a lone surrogate, which botocore escapes as \ud800) and by
// the AWS CLI (an argument with a byte that is not UTF-8, which Python
// turns into a lone surrogate).
func TestJSONTextThatCannotBeKept(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	f := newSnapshotFixture(t, ctx, c, s, "utf8")
	countSnapshots := func() int {
		t.Helper()
		out, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Snapshots)
	}
	before := countSnapshots()
	const op = "CreateSnapshotFromVolumeRecoveryPoint"

	for _, raw := range []string{"bad\xff", "bad\xe2\x82", `x\ud800y`, `\udc00`} {
		b := badRequest{name: "raw " + raw, op: op, rawBody: `{"VolumeARN":"` + f.volumeARN + `","SnapshotDescription":"` + raw + `"}`,
			status: 400, typ: "SerializationException"}
		b.check(t, "raw HTTP", b.sendRaw(t, s.endpoint()))
	}

	seen := runBoto3(t, s, []boto3Call{
		{Name: "lone surrogate", Service: "storagegateway", Op: op,
			Params: map[string]any{"VolumeARN": f.volumeARN, "SnapshotDescription": json.RawMessage(`"x\ud800y"`)}},
		{Name: "paired surrogates", Service: "storagegateway", Op: op,
			Params: map[string]any{"VolumeARN": f.volumeARN, "SnapshotDescription": json.RawMessage(`"smile \ud83d\ude00"`)}},
	})
	if got := seen["lone surrogate"].seenError; got.OK || got.Status != 400 || got.Code != "SerializationException" {
		t.Errorf("boto3 lone surrogate: %+v", got)
	}
	if got := seen["paired surrogates"]; !got.OK {
		t.Errorf("boto3 paired surrogates (an emoji): %+v", got.seenError)
	}

	for name, cli := range awsCLIs(t) {
		out, ok := runCLI(t, s, cli, "storagegateway", "create-snapshot-from-volume-recovery-point",
			"--volume-arn", f.volumeARN, "--snapshot-description", "bad\xff")
		if ok || !strings.Contains(out, "(SerializationException)") {
			t.Errorf("%s with a byte that is not UTF-8: ok=%v %q", name, ok, out)
		}
	}

	// Only the emoji snapshot was made.
	if after := countSnapshots(); after != before+1 {
		t.Fatalf("%d snapshots after the refused requests, want %d", after, before+1)
	}
}
