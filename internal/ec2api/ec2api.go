package ec2api

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/volgw/volgw/internal/awsproto"
	"github.com/volgw/volgw/internal/control"
)

// Snapshots is what ec2api needs of the control plane; *control.Service
// implements it.
type Snapshots interface {
	Snapshots(ctx context.Context) ([]control.Snapshot, error)
	DeleteSnapshot(ctx context.Context, snapshotID string) error
	// UpdateSnapshotTags changes several snapshots' tags at once, or none
	// (tags.go).
	UpdateSnapshotTags(ctx context.Context, ids []string, change func(id string, old []control.Tag) ([]control.Tag, error)) (notFound string, err error)
	Account() string
}

// API implements awsproto.QueryService.
type API struct {
	snaps   Snapshots
	actions map[string]action
}

// action is one EC2 action in two steps, so that DryRun is honoured by
// every action by construction: prepare checks the request and looks up
// everything it names, failing exactly as the real call would, and returns
// the commit that acts (or, for a Describe, answers). A dry run stops
// between the two. prepare must change nothing.
type action func(ctx context.Context, p awsproto.QueryParams) (commit func(ctx context.Context) (any, error), err error)

// New returns the EC2 API over snaps.
func New(snaps Snapshots) *API {
	a := &API{snaps: snaps}
	a.actions = map[string]action{
		"DescribeSnapshots": a.describeSnapshots,
		"DeleteSnapshot":    a.deleteSnapshot,
		"CreateTags":        a.createTags, // tags.go
		"DeleteTags":        a.deleteTags, // tags.go
	}
	return a
}

// Actions lists the implemented actions.
func (a *API) Actions() []string {
	names := make([]string, 0, len(a.actions))
	for name := range a.actions {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Invoke runs one action. With DryRun=true it answers DryRunOperation
// when the request would have succeeded, and otherwise the error the
// request would have had; it changes nothing either way. (EC2 also
// answers UnauthorizedOperation to a dry run the caller has no permission
// for; volgw has one set of credentials with every permission, and a bad
// signature is refused before any action runs.)
func (a *API) Invoke(ctx context.Context, name string, p awsproto.QueryParams) (any, error) {
	act, ok := a.actions[name]
	if !ok {
		return nil, awsproto.NewEC2Error(http.StatusBadRequest, awsproto.TypeInvalidAction,
			"The action "+name+" is not valid for this web service.")
	}
	dryRun, err := boolParam(p, "DryRun")
	if err != nil {
		return nil, err
	}
	commit, err := act(ctx, p)
	if err != nil {
		return nil, err
	}
	if dryRun {
		return nil, awsproto.NewEC2Error(http.StatusPreconditionFailed, "DryRunOperation",
			"Request would have succeeded, but DryRun flag is set.")
	}
	return commit(ctx)
}

// boolParam reads an EC2 boolean parameter: absent is false; the value is
// true or false in any letter case, as the SDKs and the CLI send it.
func boolParam(p awsproto.QueryParams, name string) (bool, error) {
	if !p.Has(name) {
		return false, nil
	}
	switch v := p.Get(name); strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	default:
		return false, invalidParameter(fmt.Sprintf("Value (%s) for parameter %s is invalid. Expected: 'true' or 'false'.",
			v, lowerFirst(name)))
	}
}

// lowerFirst is a parameter's name as EC2's messages print it (DryRun →
// dryRun).
func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// snapshotIDPattern is EC2's snapshot ID: snap- and 8 or 17 hex digits.
var snapshotIDPattern = regexp.MustCompile(`^snap-([0-9a-f]{8}|[0-9a-f]{17})$`)

func invalidParameter(message string) error {
	return awsproto.NewEC2Error(http.StatusBadRequest, awsproto.TypeEC2InvalidParameter, message)
}

func snapshotNotFound(id string) error {
	return awsproto.NewEC2Error(http.StatusBadRequest, "InvalidSnapshot.NotFound",
		fmt.Sprintf("The snapshot '%s' does not exist.", id))
}

// deleteSnapshotResponse is the answer of every action that returns
// <return>true</return> (DeleteSnapshot, CreateTags, DeleteTags).
type deleteSnapshotResponse struct {
	Return bool `xml:"return"`
}

func (a *API) deleteSnapshot(ctx context.Context, p awsproto.QueryParams) (func(context.Context) (any, error), error) {
	id := p.Get("SnapshotId")
	if id == "" {
		return nil, awsproto.NewEC2Error(http.StatusBadRequest, awsproto.TypeEC2MissingParameter,
			"The request must contain the parameter snapshotId")
	}
	if !snapshotIDPattern.MatchString(id) {
		return nil, invalidParameter(fmt.Sprintf("Value (%s) for parameter snapshotId is invalid. Expected: 'snap-...'.", id))
	}
	// The snapshot must exist for the request to succeed: a dry run of a
	// delete of an unknown snapshot answers InvalidSnapshot.NotFound.
	all, err := a.snaps.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(all, func(s control.Snapshot) bool { return s.ID == id }) {
		return nil, snapshotNotFound(id)
	}
	return func(ctx context.Context) (any, error) {
		if err := a.snaps.DeleteSnapshot(ctx, id); err != nil {
			if control.IsCode(err, control.CodeSnapshotNotFound) {
				return nil, snapshotNotFound(id)
			}
			return nil, err
		}
		return deleteSnapshotResponse{Return: true}, nil
	}, nil
}

type tagItem struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type tagSet struct {
	Items []tagItem `xml:"item"`
}

type snapshotItem struct {
	SnapshotID  string  `xml:"snapshotId"`
	VolumeID    string  `xml:"volumeId"`
	Status      string  `xml:"status"`
	StartTime   string  `xml:"startTime"`
	Progress    string  `xml:"progress"`
	OwnerID     string  `xml:"ownerId"`
	VolumeSize  int64   `xml:"volumeSize"`
	Description string  `xml:"description"`
	Encrypted   bool    `xml:"encrypted"`
	KmsKeyID    string  `xml:"kmsKeyId,omitempty"` // the key it is sealed with; EC2 sends it only when encrypted
	StorageTier string  `xml:"storageTier"`
	TagSet      *tagSet `xml:"tagSet,omitempty"`

	// gatewayVolumeID is the volume's ID as Storage Gateway prints it
	// (vol-5366931FD0BBB1D65); volumeId carries EC2's lower-case form.
	// The volume-id filter matches either, so that an ID copied from
	// either API finds the snapshot. Unexported: not on the wire.
	gatewayVolumeID string
}

type snapshotSet struct {
	Items []snapshotItem `xml:"item"`
}

type describeSnapshotsResponse struct {
	// A struct, not `xml:"snapshotSet>item"`, so that an empty answer
	// still carries <snapshotSet/>, as EC2's does (boto3 then returns
	// Snapshots: []).
	SnapshotSet snapshotSet `xml:"snapshotSet"`
	NextToken   string      `xml:"nextToken,omitempty"`
}

// EC2 times: ISO 8601 with milliseconds, UTC.
const ec2TimeLayout = "2006-01-02T15:04:05.000Z"

const gib = 1 << 30

func (a *API) describeSnapshots(ctx context.Context, p awsproto.QueryParams) (func(context.Context) (any, error), error) {
	ids := p.List("SnapshotId")
	for _, id := range ids {
		if !snapshotIDPattern.MatchString(id) {
			return nil, awsproto.NewEC2Error(http.StatusBadRequest, "InvalidSnapshotID.Malformed",
				fmt.Sprintf("Invalid id: \"%s\" (expecting \"snap-...\")", id))
		}
	}
	maxResults := 0
	if p.Has("MaxResults") {
		n, err := strconv.Atoi(p.Get("MaxResults"))
		if err != nil {
			return nil, invalidParameter(fmt.Sprintf("Value (%s) for parameter maxResults is invalid. Expected: integer.", p.Get("MaxResults")))
		}
		// EC2's wording for too small a value (as the Ruby SDK's issue
		// #2575 quotes it), mirrored for too large a one.
		if n < 5 {
			return nil, invalidParameter(fmt.Sprintf("Value ( %d ) for parameter maxResults is invalid. Expecting a value greater than 5.", n))
		}
		if n > 1000 {
			return nil, invalidParameter(fmt.Sprintf("Value ( %d ) for parameter maxResults is invalid. Expecting a value less than 1000.", n))
		}
		if len(ids) > 0 {
			return nil, awsproto.NewEC2Error(http.StatusBadRequest, "InvalidParameterCombination",
				"The parameter snapshotSet cannot be used with the parameter maxResults")
		}
		maxResults = n
	}
	filters, err := compileFilters(p.Filters())
	if err != nil {
		return nil, err
	}
	account := a.snaps.Account()
	owners := p.List("Owner")
	all, err := a.snaps.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		have := map[string]bool{}
		for _, s := range all {
			have[s.ID] = true
		}
		for _, id := range ids {
			if !have[id] {
				return nil, snapshotNotFound(id)
			}
		}
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var matched []snapshotItem
	for _, s := range all {
		if len(want) > 0 && !want[s.ID] {
			continue
		}
		if !ownerMatches(owners, account) {
			continue
		}
		item := toItem(s, account)
		if !filters.match(item) {
			continue
		}
		matched = append(matched, item)
	}
	// EC2 pages in a stable order; ours is by snapshot ID.
	sort.Slice(matched, func(i, j int) bool { return matched[i].SnapshotID < matched[j].SnapshotID })
	if tok := p.Get("NextToken"); tok != "" {
		after, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || !snapshotIDPattern.Match(after) {
			return nil, invalidParameter(fmt.Sprintf("Invalid value '%s' for nextToken", tok))
		}
		i := sort.Search(len(matched), func(i int) bool { return matched[i].SnapshotID > string(after) })
		matched = matched[i:]
	}
	out := describeSnapshotsResponse{SnapshotSet: snapshotSet{Items: matched}}
	if maxResults > 0 && len(matched) > maxResults {
		out.SnapshotSet.Items = matched[:maxResults]
		out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(matched[maxResults-1].SnapshotID))
	}
	return func(context.Context) (any, error) { return out, nil }, nil
}

// ownerMatches: every snapshot belongs to this gateway's account; Owner.N
// may say self or the account ID (anything else, such as amazon, matches
// none).
func ownerMatches(owners []string, account string) bool {
	if len(owners) == 0 {
		return true
	}
	for _, o := range owners {
		if o == "self" || o == account {
			return true
		}
	}
	return false
}

func toItem(s control.Snapshot, account string) snapshotItem {
	item := snapshotItem{
		SnapshotID:      s.ID,
		VolumeID:        strings.ToLower(s.VolumeID),
		gatewayVolumeID: s.VolumeID,
		Status:          string(s.Status),
		StartTime:       s.StartTime.UTC().Format(ec2TimeLayout),
		Progress:        strconv.Itoa(s.Progress) + "%",
		OwnerID:         account,
		VolumeSize:      (s.VolumeSizeBytes + gib - 1) / gib,
		Description:     s.Description,
		Encrypted:       s.KMSKey != "",
		KmsKeyID:        s.KMSKey,
		StorageTier:     "standard",
	}
	if len(s.Tags) > 0 {
		item.TagSet = &tagSet{}
		for _, t := range s.Tags {
			item.TagSet.Items = append(item.TagSet.Items, tagItem{Key: t.Key, Value: t.Value})
		}
	}
	return item
}
