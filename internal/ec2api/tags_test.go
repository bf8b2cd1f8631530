package ec2api

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/volgw/volgw/internal/awsproto"
)

// TestTagParams: Tag.N in index order whatever the gaps, a value sent
// empty told from no value (DeleteTags deletes differently), other
// Tag.N.* members ignored.
func TestTagParams(t *testing.T) {
	p := awsproto.QueryParams(url.Values{
		"Tag.10.Key": {"ten"}, "Tag.10.Value": {""},
		"Tag.2.Key": {"two"}, "Tag.2.Value": {"v2"},
		"Tag.3.Key":   {"three"},
		"Tag.4.Other": {"x"}, "Tag.x.Key": {"bad"},
	})
	got := tagParams(p)
	want := []ec2Tag{{"two", "v2", true}, {"three", "", false}, {"ten", "", true}}
	if len(got) != len(want) {
		t.Fatalf("tagParams: %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("tag %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestCheckTagAndResourceIDs: the limits count characters, not bytes; the
// reserved prefix in any case; each kind of ID its own error.
func TestCheckTagAndResourceIDs(t *testing.T) {
	code := func(err error) string {
		var e *awsproto.Error
		if !errors.As(err, &e) {
			return ""
		}
		return e.Type
	}
	for _, c := range []struct {
		tag  ec2Tag
		want string
	}{
		{ec2Tag{key: strings.Repeat("é", 128), value: strings.Repeat("ü", 256)}, ""},
		{ec2Tag{key: strings.Repeat("é", 129)}, "InvalidParameterValue"},
		{ec2Tag{key: "k", value: strings.Repeat("ü", 257)}, "InvalidParameterValue"},
		{ec2Tag{key: "AWS:x"}, "InvalidParameterValue"},
		{ec2Tag{key: "awsx"}, ""},
		{ec2Tag{key: ""}, "InvalidParameterValue"},
	} {
		if got := code(checkTag(c.tag)); got != c.want {
			t.Errorf("checkTag(%.20q): %q, want %q", c.tag.key, got, c.want)
		}
	}
	for id, want := range map[string]string{
		"snap-0123456789abcdef0": "InvalidSnapshot.NotFound",
		"snap-01234567":          "InvalidSnapshot.NotFound",
		"vol-0123456789abcdef0":  "InvalidVolume.NotFound",
		"i-01234567":             "InvalidInstanceID.NotFound",
		"ami-0123456789abcdef0":  "InvalidAMIID.NotFound",
		"sg-0123456789abcdef0":   "InvalidID",
		"vol-9F243ADC76BD1DD59":  "InvalidID", // Storage Gateway's form of a volume ID
		"snap-xyz":               "InvalidID",
		"":                       "InvalidID",
	} {
		if got := code(resourceNotFound(id)); got != want {
			t.Errorf("resourceNotFound(%q): %q, want %q", id, got, want)
		}
	}
}
