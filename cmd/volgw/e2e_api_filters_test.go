package main

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestEC2SnapshotFilters: DescribeSnapshots' volume-id filter finds a
// Storage Gateway snapshot by the volume ID in either form (EC2's
// lower-case vol-… and Storage Gateway's vol-…ABC…), and owner-alias is a
// known filter that matches none of the account's own snapshots — through
// the AWS CLI, boto3 and aws-sdk-go-v2.
func TestEC2SnapshotFilters(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	f := newSnapshotFixture(t, ctx, c, s, "filters")
	gwForm, ec2Form := f.volumeID, strings.ToLower(f.volumeID)
	if gwForm == ec2Form {
		t.Fatalf("volume ID %s has no upper-case letters to tell the forms apart", gwForm)
	}
	cases := []struct {
		name, filter string
		values       []string
		want         []string
	}{
		{"volume-id, EC2 form", "volume-id", []string{ec2Form}, []string{f.snapshotID}},
		{"volume-id, Storage Gateway form", "volume-id", []string{gwForm}, []string{f.snapshotID}},
		{"volume-id, wildcard", "volume-id", []string{gwForm[:10] + "*"}, []string{f.snapshotID}},
		{"volume-id, another volume", "volume-id", []string{"vol-0123456789abcdef0"}, nil},
		{"owner-alias amazon", "owner-alias", []string{"amazon"}, nil},
		{"owner-alias any", "owner-alias", []string{"amazon", "aws-marketplace", "self"}, nil},
		{"owner-id", "owner-id", []string{"123456789012"}, []string{f.snapshotID}},
	}
	same := func(got, want []string) bool {
		return len(got) == len(want) && (len(got) == 0 || strings.Join(got, ",") == strings.Join(want, ","))
	}

	// aws-sdk-go-v2.
	for _, tc := range cases {
		out, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{
			Filters: []ec2types.Filter{{Name: aws.String(tc.filter), Values: tc.values}}})
		if err != nil {
			t.Errorf("aws-sdk-go-v2 %s: %v", tc.name, err)
			continue
		}
		var got []string
		for _, sn := range out.Snapshots {
			got = append(got, aws.ToString(sn.SnapshotId))
			if aws.ToString(sn.VolumeId) != ec2Form {
				t.Errorf("aws-sdk-go-v2 %s: VolumeId %q, want EC2's form %q", tc.name, aws.ToString(sn.VolumeId), ec2Form)
			}
		}
		if !same(got, tc.want) {
			t.Errorf("aws-sdk-go-v2 %s: got %v, want %v", tc.name, got, tc.want)
		}
	}

	// The AWS CLI.
	for name, cli := range awsCLIs(t) {
		for _, tc := range cases {
			out, ok := runCLI(t, s, cli, "ec2", "describe-snapshots", "--filters",
				"Name="+tc.filter+",Values="+strings.Join(tc.values, ","), "--query", "Snapshots[].SnapshotId")
			var got []string
			if !ok || json.Unmarshal([]byte(out), &got) != nil || !same(got, tc.want) {
				t.Errorf("%s %s: ok=%v %q, want %v", name, tc.name, ok, out, tc.want)
			}
		}
	}

	// boto3.
	var calls []boto3Call
	for _, tc := range cases {
		calls = append(calls, boto3Call{Name: tc.name, Service: "ec2", Op: "DescribeSnapshots",
			Params: map[string]any{"Filters": []map[string]any{{"Name": tc.filter, "Values": tc.values}}}})
	}
	calls = append(calls, boto3Call{Name: "unknown filter", Service: "ec2", Op: "DescribeSnapshots",
		Params: map[string]any{"Filters": []map[string]any{{"Name": "colour", "Values": []string{"x"}}}}})
	seen := runBoto3(t, s, calls)
	for _, tc := range cases {
		got := seen[tc.name]
		var resp struct {
			Snapshots []struct{ SnapshotId, VolumeId string }
		}
		if !got.OK || json.Unmarshal(got.Response, &resp) != nil {
			t.Errorf("boto3 %s: %+v %s", tc.name, got.seenError, got.Response)
			continue
		}
		var ids []string
		for _, sn := range resp.Snapshots {
			ids = append(ids, sn.SnapshotId)
		}
		if !same(ids, tc.want) {
			t.Errorf("boto3 %s: got %v, want %v", tc.name, ids, tc.want)
		}
	}
	if got := seen["unknown filter"]; got.OK || got.Code != "InvalidParameterValue" || got.Message != "The filter 'colour' is invalid" {
		t.Errorf("boto3 unknown filter: %+v", got.seenError)
	}
}

// TestEC2FiltersNonASCII: a filter value with characters beyond ASCII
// matches them as characters ("café", "caf?") — it used to be compiled
// byte by byte and never matched — and a parameter that is not UTF-8 at
// all is refused (MalformedQueryString) rather than matched as U+FFFD.
func TestEC2FiltersNonASCII(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	f := newSnapshotFixture(t, ctx, c, s, "café crème")
	values := []string{"café crème", "caf? crème", "*crème", "café*"}
	for _, v := range values {
		out, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{
			Filters: []ec2types.Filter{{Name: aws.String("description"), Values: []string{v}}}})
		if err != nil || len(out.Snapshots) != 1 || aws.ToString(out.Snapshots[0].SnapshotId) != f.snapshotID {
			t.Errorf("aws-sdk-go-v2 description=%q: %+v %v", v, out, err)
		}
	}
	for name, cli := range awsCLIs(t) {
		out, ok := runCLI(t, s, cli, "ec2", "describe-snapshots", "--filters", "Name=description,Values=caf? crème",
			"--query", "Snapshots[].SnapshotId")
		var got []string
		if !ok || json.Unmarshal([]byte(out), &got) != nil || len(got) != 1 || got[0] != f.snapshotID {
			t.Errorf("%s description=caf? crème: %q", name, out)
		}
	}
	var calls []boto3Call
	for _, v := range values {
		calls = append(calls, boto3Call{Name: v, Service: "ec2", Op: "DescribeSnapshots",
			Params: map[string]any{"Filters": []map[string]any{{"Name": "description", "Values": []string{v}}}}})
	}
	for name, got := range runBoto3(t, s, calls) {
		var resp struct{ Snapshots []struct{ SnapshotId string } }
		if !got.OK || json.Unmarshal(got.Response, &resp) != nil || len(resp.Snapshots) != 1 || resp.Snapshots[0].SnapshotId != f.snapshotID {
			t.Errorf("boto3 description=%q: %+v %s", name, got.seenError, got.Response)
		}
	}
	// No client sends bytes that are not UTF-8; sign them by hand.
	b := badRequest{name: "filter value not UTF-8", op: "ec2:DescribeSnapshots",
		form:   url.Values{"Filter.1.Name": {"description"}, "Filter.1.Value.1": {"caf\xe9 cr\xe8me"}},
		status: 400, typ: "MalformedQueryString", message: "The query string is malformed"}
	b.check(t, "raw HTTP", b.sendRaw(t, s.endpoint()))
}
