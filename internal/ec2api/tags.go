package ec2api

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/control"
)

// CreateTags and DeleteTags on snapshots, in EC2's query protocol:
// ResourceId.N, Tag.N.Key, Tag.N.Value. The subset of the EC2 model volgw
// carries has no shapes for them, so the parameters are read here by hand,
// with the rules EC2 documents:
//
//   - CreateTags adds or overwrites: a key the snapshot already has gets
//     the new value. A tag sent without a value gets the empty string.
//   - DeleteTags: a tag with a value deletes the key only when its value is
//     that value (an empty Value.N only an empty value); a tag with only a
//     key deletes the key whatever its value; no Tag.N at all deletes every
//     tag of the resource. Keys the resource does not have are ignored.
//   - At most 50 tags per resource, counted after the request (overwriting
//     a key of a resource already at 50 succeeds): TagLimitExceeded.
//   - Keys at most 128 and values at most 256 characters (Unicode
//     characters, not bytes); keys starting with aws: are reserved, on
//     DeleteTags too: InvalidParameterValue.
//   - Every resource is looked up before anything changes, and an unknown
//     one fails the whole request: InvalidSnapshot.NotFound for a
//     snapshot; for an ID of another EC2 resource (vol-…, i-…, ami-…),
//     that resource's NotFound, since volgw has none of them; InvalidID for
//     what is not an EC2 ID at all.
//
// Wording: "The request must contain the parameter resourceIdSet", the
// aws: message, the NotFound messages and InvalidID's are EC2's as clients
// and tools quote them; TagLimitExceeded's message and the length and
// empty-key messages are not published and are volgw's (moto's for the
// limit). EC2 also limits a request to 1000 resource IDs and 1000 tags;
// volgw does not, since nothing here grows with them but the request.

// Tag limits EC2 documents for every resource.
const (
	maxTagsPerResource = control.MaxTags // 50
	maxTagKeyChars     = 128
	maxTagValueChars   = 256
)

// ec2Tag is one Tag.N; hasValue tells Tag.N.Value="" from no Tag.N.Value,
// which DeleteTags treats differently.
type ec2Tag struct {
	key, value string
	hasValue   bool
}

// tagParams reads Tag.N.Key / Tag.N.Value in index order. A Tag.N with a
// value and no key has an empty key (refused by checkTag).
func tagParams(p awsproto.QueryParams) []ec2Tag {
	var idx []int
	seen := map[int]bool{}
	for k := range p {
		rest, ok := strings.CutPrefix(k, "Tag.")
		if !ok {
			continue
		}
		num, field, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || seen[n] || (field != "Key" && field != "Value") {
			continue
		}
		seen[n] = true
		idx = append(idx, n)
	}
	slices.Sort(idx)
	out := make([]ec2Tag, 0, len(idx))
	for _, n := range idx {
		base := "Tag." + strconv.Itoa(n)
		out = append(out, ec2Tag{key: p.Get(base + ".Key"), value: p.Get(base + ".Value"), hasValue: p.Has(base + ".Value")})
	}
	return out
}

func checkTag(t ec2Tag) error {
	switch {
	case t.key == "":
		return invalidParameter("Tag key cannot be empty")
	case len(t.key) >= 4 && strings.EqualFold(t.key[:4], "aws:"):
		// AWS reserves the prefix in any letter case ("aws:, AWS:, or any
		// upper or lowercase combination"), as volgw's Storage Gateway
		// tags do (control.checkTags).
		return invalidParameter(fmt.Sprintf("Value ( %s ) for parameter key is invalid. Tag keys starting with 'aws:' are reserved for internal use", t.key))
	case utf8.RuneCountInString(t.key) > maxTagKeyChars:
		return invalidParameter(fmt.Sprintf("Tag key exceeds the maximum length of %d characters", maxTagKeyChars))
	case utf8.RuneCountInString(t.value) > maxTagValueChars:
		return invalidParameter(fmt.Sprintf("Tag value exceeds the maximum length of %d characters", maxTagValueChars))
	}
	return nil
}

// ec2IDPattern is the form of every EC2 resource ID: a prefix, a dash and
// 8 or 17 lower-case hex digits.
var ec2IDPattern = regexp.MustCompile(`^([a-z]+(?:-[a-z]+)*)-([0-9a-f]{8}|[0-9a-f]{17})$`)

// resourceNotFound is EC2's answer for a well-formed ID of a resource that
// does not exist (volgw has only snapshots).
func resourceNotFound(id string) error {
	m := ec2IDPattern.FindStringSubmatch(id)
	if m == nil {
		return invalidID(id)
	}
	bad := func(code, message string) error {
		return awsproto.NewEC2Error(http.StatusBadRequest, code, message)
	}
	switch m[1] {
	case "snap":
		return snapshotNotFound(id)
	case "vol":
		return bad("InvalidVolume.NotFound", fmt.Sprintf("The volume '%s' does not exist.", id))
	case "i":
		return bad("InvalidInstanceID.NotFound", fmt.Sprintf("The instance ID '%s' does not exist", id))
	case "ami":
		return bad("InvalidAMIID.NotFound", fmt.Sprintf("The image id '[%s]' does not exist", id))
	}
	return invalidID(id)
}

func invalidID(id string) error {
	return awsproto.NewEC2Error(http.StatusBadRequest, "InvalidID", fmt.Sprintf("The ID '%s' is not valid", id))
}

// tagLimitExceeded: EC2's code; the message is moto's (EC2 publishes none).
func tagLimitExceeded() error {
	return awsproto.NewEC2Error(http.StatusBadRequest, "TagLimitExceeded",
		"The maximum number of Tags for a resource has been reached.")
}

// tagRequest is what CreateTags and DeleteTags share: the resources,
// checked to be existing snapshots, and the tags, checked.
func (a *API) tagRequest(ctx context.Context, p awsproto.QueryParams, tagsRequired bool) ([]string, []ec2Tag, map[string][]control.Tag, error) {
	ids := p.List("ResourceId")
	if len(ids) == 0 {
		return nil, nil, nil, awsproto.NewEC2Error(http.StatusBadRequest, awsproto.TypeEC2MissingParameter,
			"The request must contain the parameter resourceIdSet")
	}
	tags := tagParams(p)
	if tagsRequired && len(tags) == 0 {
		return nil, nil, nil, awsproto.NewEC2Error(http.StatusBadRequest, awsproto.TypeEC2MissingParameter,
			"The request must contain the parameter tagSet")
	}
	for _, t := range tags {
		if err := checkTag(t); err != nil {
			return nil, nil, nil, err
		}
	}
	all, err := a.snaps.Snapshots(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	current := map[string][]control.Tag{}
	for _, s := range all {
		current[s.ID] = s.Tags
	}
	for _, id := range ids {
		if _, ok := current[id]; !ok {
			return nil, nil, nil, resourceNotFound(id)
		}
	}
	return ids, tags, current, nil
}

// createTags: the change is computed against the tags read in prepare (so
// a dry run answers TagLimitExceeded as the call would) and again, under
// the control plane's lock, against the tags current when it commits.
func (a *API) createTags(ctx context.Context, p awsproto.QueryParams) (func(context.Context) (any, error), error) {
	ids, tags, current, err := a.tagRequest(ctx, p, true)
	if err != nil {
		return nil, err
	}
	change := func(_ string, old []control.Tag) ([]control.Tag, error) {
		out := slices.Clone(old)
		for _, t := range tags {
			if i := slices.IndexFunc(out, func(o control.Tag) bool { return o.Key == t.key }); i >= 0 {
				out[i].Value = t.value
			} else {
				out = append(out, control.Tag{Key: t.key, Value: t.value})
			}
		}
		if len(out) > maxTagsPerResource {
			return nil, tagLimitExceeded()
		}
		return out, nil
	}
	for _, id := range ids {
		if _, err := change(id, current[id]); err != nil {
			return nil, err
		}
	}
	return a.commitTags(ids, change), nil
}

func (a *API) deleteTags(ctx context.Context, p awsproto.QueryParams) (func(context.Context) (any, error), error) {
	ids, tags, _, err := a.tagRequest(ctx, p, false)
	if err != nil {
		return nil, err
	}
	change := func(_ string, old []control.Tag) ([]control.Tag, error) {
		if len(tags) == 0 {
			return []control.Tag{}, nil // every user tag; a snapshot has no aws: ones
		}
		return slices.DeleteFunc(slices.Clone(old), func(o control.Tag) bool {
			return slices.ContainsFunc(tags, func(t ec2Tag) bool {
				return t.key == o.Key && (!t.hasValue || t.value == o.Value)
			})
		}), nil
	}
	return a.commitTags(ids, change), nil
}

func (a *API) commitTags(ids []string, change func(string, []control.Tag) ([]control.Tag, error)) func(context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		missing, err := a.snaps.UpdateSnapshotTags(ctx, ids, change)
		if missing != "" {
			return nil, snapshotNotFound(missing)
		}
		if err != nil {
			return nil, err
		}
		return deleteSnapshotResponse{Return: true}, nil
	}
}
