package ec2api

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/volgw/volgw/internal/awsproto"
)

// filter is one Filter.N: a snapshot matches if the named field matches any
// of the values. Filters are ANDed.
type filter struct {
	name     string
	patterns []*regexp.Regexp
}

type filters []filter

// compileFilters turns EC2 filter values into anchored patterns: * is any
// run of characters, ? any one character, and a backslash escapes either.
func compileFilters(in []awsproto.Filter) (filters, error) {
	var out filters
	for _, f := range in {
		if !knownFilter(f.Name) {
			return nil, invalidParameter(fmt.Sprintf("The filter '%s' is invalid", f.Name))
		}
		cf := filter{name: f.Name}
		for _, v := range f.Values {
			cf.patterns = append(cf.patterns, wildcard(v))
		}
		out = append(out, cf)
	}
	return out, nil
}

func knownFilter(name string) bool {
	switch name {
	case "snapshot-id", "volume-id", "status", "description", "tag-key", "owner-id", "owner-alias", "progress",
		"volume-size", "encrypted", "storage-tier", "start-time":
		return true
	}
	return strings.HasPrefix(name, "tag:") && len(name) > len("tag:")
}

// wildcard compiles one filter value; v must be valid UTF-8 (awsproto
// refuses a request whose parameters are not). It goes rune by rune: a
// byte-wise walk would quote each byte of a multi-byte character as a
// character of its own, and "café" would never match.
func wildcard(v string) *regexp.Regexp {
	var sb strings.Builder
	sb.WriteString(`^`)
	runes := []rune(v)
	for i := 0; i < len(runes); i++ {
		switch c := runes[i]; c {
		case '\\':
			if i+1 < len(runes) && (runes[i+1] == '*' || runes[i+1] == '?' || runes[i+1] == '\\') {
				i++
				sb.WriteString(regexp.QuoteMeta(string(runes[i])))
			} else {
				sb.WriteString(`\\`)
			}
		case '*':
			sb.WriteString(`.*`)
		case '?':
			sb.WriteString(`.`)
		default:
			sb.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	sb.WriteString(`$`)
	// (?s) so that * spans newlines in descriptions.
	return regexp.MustCompile(`(?s)` + sb.String())
}

func (fs filters) match(s snapshotItem) bool {
	for _, f := range fs {
		if !f.match(s) {
			return false
		}
	}
	return true
}

func (f filter) match(s snapshotItem) bool {
	var fields []string
	switch {
	case f.name == "snapshot-id":
		fields = []string{s.SnapshotID}
	case f.name == "volume-id":
		fields = []string{s.VolumeID, s.gatewayVolumeID}
	case f.name == "status":
		fields = []string{s.Status}
	case f.name == "description":
		fields = []string{s.Description}
	case f.name == "owner-id":
		fields = []string{s.OwnerID}
	case f.name == "owner-alias":
		// The alias is from Amazon's list (amazon, aws-marketplace, …)
		// and only Amazon's own snapshots have one; a snapshot of this
		// gateway's account has none, so no value matches it.
	case f.name == "progress":
		fields = []string{s.Progress}
	case f.name == "volume-size":
		fields = []string{strconv.FormatInt(s.VolumeSize, 10)}
	case f.name == "encrypted":
		fields = []string{strconv.FormatBool(s.Encrypted)}
	case f.name == "storage-tier":
		fields = []string{s.StorageTier}
	case f.name == "start-time":
		fields = []string{s.StartTime}
	case f.name == "tag-key":
		if s.TagSet != nil {
			for _, t := range s.TagSet.Items {
				fields = append(fields, t.Key)
			}
		}
	case strings.HasPrefix(f.name, "tag:"):
		key := strings.TrimPrefix(f.name, "tag:")
		if s.TagSet != nil {
			for _, t := range s.TagSet.Items {
				if t.Key == key {
					fields = append(fields, t.Value)
				}
			}
		}
	}
	for _, v := range fields {
		for _, p := range f.patterns {
			if p.MatchString(v) {
				return true
			}
		}
	}
	return false
}
