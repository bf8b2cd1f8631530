package ec2api

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/control"
)

func TestWildcards(t *testing.T) {
	for _, c := range []struct {
		pattern, value string
		want           bool
	}{
		{"snap-*", "snap-0123456789abcdef0", true},
		{"snap-*", "vol-1", false},
		{"daily?", "daily1", true},
		{"daily?", "daily12", false},
		{"*", "", true},
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{`a\?`, "a?", true},
		{"a.b", "axb", false}, // regexp metacharacters are literal
		{"multi*", "multi\nline", true},
		{"Nightly", "nightly", false}, // case-sensitive, as EC2
		{"café", "café", true},        // multi-byte characters are one character
		{"caf?", "café", true},
		{"caf??", "café", false},
		{"*é", "café", true},
	} {
		if got := wildcard(c.pattern).MatchString(c.value); got != c.want {
			t.Errorf("%q ~ %q = %v, want %v", c.pattern, c.value, got, c.want)
		}
	}
}

func TestFilters(t *testing.T) {
	snap := toItem(control.Snapshot{
		ID: "snap-0123456789abcdef0", VolumeID: "vol-0123456789ABCDEF0", VolumeSizeBytes: 3<<30 + 1,
		StartTime: time.Date(2026, 11, 23, 10, 0, 0, 5e6, time.UTC), Description: "nightly backup",
		Tags: []control.Tag{{Key: "env", Value: "prod"}}, Status: control.SnapshotCompleted, Progress: 100,
	}, "111122223333")
	if snap.VolumeID != "vol-0123456789abcdef0" || snap.VolumeSize != 4 || snap.Progress != "100%" ||
		snap.StartTime != "2026-11-23T10:00:00.005Z" || snap.StorageTier != "standard" || snap.Encrypted {
		t.Fatalf("item = %+v", snap)
	}
	for _, c := range []struct {
		filters []awsproto.Filter
		want    bool
	}{
		{[]awsproto.Filter{{Name: "snapshot-id", Values: []string{"snap-0123456789abcdef0"}}}, true},
		{[]awsproto.Filter{{Name: "volume-id", Values: []string{"vol-0123456789abcdef0"}}}, true},
		// Storage Gateway's form of the same ID finds it too.
		{[]awsproto.Filter{{Name: "volume-id", Values: []string{"vol-0123456789ABCDEF0"}}}, true},
		{[]awsproto.Filter{{Name: "volume-id", Values: []string{"vol-0123456789ABCDEF*"}}}, true},
		{[]awsproto.Filter{{Name: "volume-id", Values: []string{"vol-0123456789ABCDEF1"}}}, false},
		// Only Amazon's own snapshots have an owner alias.
		{[]awsproto.Filter{{Name: "owner-alias", Values: []string{"amazon", "aws-marketplace"}}}, false},
		{[]awsproto.Filter{{Name: "owner-alias", Values: []string{"*"}}}, false},
		{[]awsproto.Filter{{Name: "owner-id", Values: []string{"111122223333"}}}, true},
		{[]awsproto.Filter{{Name: "status", Values: []string{"pending", "completed"}}}, true},
		{[]awsproto.Filter{{Name: "description", Values: []string{"nightly*"}}}, true},
		{[]awsproto.Filter{{Name: "tag:env", Values: []string{"prod"}}}, true},
		{[]awsproto.Filter{{Name: "tag:env", Values: []string{"dev"}}}, false},
		{[]awsproto.Filter{{Name: "tag:other", Values: []string{"*"}}}, false},
		{[]awsproto.Filter{{Name: "tag-key", Values: []string{"e?v"}}}, true},
		{[]awsproto.Filter{{Name: "volume-size", Values: []string{"4"}}}, true},
		// Filters are ANDed.
		{[]awsproto.Filter{{Name: "status", Values: []string{"completed"}}, {Name: "tag:env", Values: []string{"dev"}}}, false},
	} {
		fs, err := compileFilters(c.filters)
		if err != nil {
			t.Fatal(err)
		}
		if got := fs.match(snap); got != c.want {
			t.Errorf("%+v = %v, want %v", c.filters, got, c.want)
		}
	}
	_, err := compileFilters([]awsproto.Filter{{Name: "colour", Values: []string{"x"}}})
	if e, ok := err.(*awsproto.Error); !ok || e.Type != "InvalidParameterValue" || e.Message != "The filter 'colour' is invalid" {
		t.Fatalf("unknown filter: %v", err)
	}
}

func TestEmptySnapshotSetIsStillSent(t *testing.T) {
	b, err := awsproto.EncodeQueryResponse("DescribeSnapshots", "req-1", describeSnapshotsResponse{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "<snapshotSet></snapshotSet>") {
		t.Fatalf("answer without snapshotSet: %s", b)
	}
	var parsed struct {
		XMLName   xml.Name
		RequestID string `xml:"requestId"`
	}
	if err := xml.Unmarshal(b, &parsed); err != nil || parsed.XMLName.Local != "DescribeSnapshotsResponse" || parsed.RequestID != "req-1" {
		t.Fatalf("parsed %+v, %v", parsed, err)
	}
}
