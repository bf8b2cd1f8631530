package ec2api

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
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
	Account() string
}

// API implements awsproto.QueryService.
type API struct {
	snaps Snapshots
}

// New returns the EC2 API over snaps.
func New(snaps Snapshots) *API { return &API{snaps: snaps} }

// Actions lists the implemented actions.
func (a *API) Actions() []string { return []string{"DescribeSnapshots", "DeleteSnapshot"} }

// Invoke runs one action.
func (a *API) Invoke(ctx context.Context, action string, p awsproto.QueryParams) (any, error) {
	switch action {
	case "DescribeSnapshots":
		return a.describeSnapshots(ctx, p)
	case "DeleteSnapshot":
		return a.deleteSnapshot(ctx, p)
	}
	return nil, awsproto.NewEC2Error(http.StatusBadRequest, awsproto.TypeInvalidAction,
		"The action "+action+" is not valid for this web service.")
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

type deleteSnapshotResponse struct {
	Return bool `xml:"return"`
}

func (a *API) deleteSnapshot(ctx context.Context, p awsproto.QueryParams) (any, error) {
	id := p.Get("SnapshotId")
	if id == "" {
		return nil, awsproto.NewEC2Error(http.StatusBadRequest, awsproto.TypeEC2MissingParameter,
			"The request must contain the parameter snapshotId")
	}
	if !snapshotIDPattern.MatchString(id) {
		return nil, invalidParameter(fmt.Sprintf("Value (%s) for parameter snapshotId is invalid. Expected: 'snap-...'.", id))
	}
	if err := a.snaps.DeleteSnapshot(ctx, id); err != nil {
		if control.IsCode(err, control.CodeSnapshotNotFound) {
			return nil, snapshotNotFound(id)
		}
		return nil, err
	}
	return deleteSnapshotResponse{Return: true}, nil
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
	StorageTier string  `xml:"storageTier"`
	TagSet      *tagSet `xml:"tagSet,omitempty"`
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

func (a *API) describeSnapshots(ctx context.Context, p awsproto.QueryParams) (any, error) {
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
	return out, nil
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
		SnapshotID:  s.ID,
		VolumeID:    strings.ToLower(s.VolumeID),
		Status:      string(s.Status),
		StartTime:   s.StartTime.UTC().Format(ec2TimeLayout),
		Progress:    strconv.Itoa(s.Progress) + "%",
		OwnerID:     account,
		VolumeSize:  (s.VolumeSizeBytes + gib - 1) / gib,
		Description: s.Description,
		StorageTier: "standard",
	}
	if len(s.Tags) > 0 {
		item.TagSet = &tagSet{}
		for _, t := range s.Tags {
			item.TagSet.Items = append(item.TagSet.Items, tagItem{Key: t.Key, Value: t.Value})
		}
	}
	return item
}
