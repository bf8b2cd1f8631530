package control

import (
	"context"
	"regexp"
	"sort"
	"strings"

	"github.com/volgw/volgw/internal/catalog"
)

// MaxTags is how many tags one resource may carry.
const MaxTags = 50

// errAWSTagKey: AWS reserves the aws: prefix (in any case) for its own
// tags; the model documents "The key can't start with aws:".
var errAWSTagKey = invalidParameters("The tag key can't start with aws:.")

// checkTags is the check every set of tags a client sends gets: at most
// MaxTags, and no key in AWS's reserved aws: namespace.
func checkTags(tags []Tag) error {
	for _, t := range tags {
		if len(t.Key) >= 4 && strings.EqualFold(t.Key[:4], "aws:") {
			return errAWSTagKey
		}
	}
	return checkTagLimit(tags)
}

func checkTagLimit(tags []Tag) error {
	if len(tags) > MaxTags {
		return invalidParameters("A resource can have at most 50 tags.")
	}
	return nil
}

func toCatalogTags(tags []Tag) []catalog.Tag {
	out := make([]catalog.Tag, 0, len(tags))
	for _, t := range tags {
		out = append(out, catalog.Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

func fromCatalogTags(tags []catalog.Tag) []Tag {
	out := make([]Tag, 0, len(tags))
	for _, t := range tags {
		out = append(out, Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

// mergeTags sets add over old: an existing key gets the new value, a new
// key is appended.
func mergeTags(old, add []Tag) []Tag {
	out := append([]Tag{}, old...)
	for _, t := range add {
		replaced := false
		for i := range out {
			if out[i].Key == t.Key {
				out[i].Value, replaced = t.Value, true
				break
			}
		}
		if !replaced {
			out = append(out, t)
		}
	}
	return out
}

func removeTags(old []Tag, keys []string) []Tag {
	drop := map[string]bool{}
	for _, k := range keys {
		drop[k] = true
	}
	out := []Tag{}
	for _, t := range old {
		if !drop[t.Key] {
			out = append(out, t)
		}
	}
	return out
}

// resource is a taggable resource: tags of gateways and volumes live in the
// catalog, tags of snapshots with the snapshot in the object store.
type resource struct {
	arn        string
	snapshotID string // set for a snapshot
}

func (s *Service) resolveResource(tx *catalog.Tx, arn string) (resource, error) {
	if m := snapshotARNPattern.FindStringSubmatch(arn); m != nil {
		return resource{arn: arn, snapshotID: m[2]}, nil
	}
	if _, ok := parseGatewayARN(arn); ok {
		_, err := s.runningGatewayTx(tx, arn)
		return resource{arn: arn}, err
	}
	if _, _, ok := parseVolumeARN(arn); ok {
		_, _, err := s.volumeTx(tx, arn)
		return resource{arn: arn}, err
	}
	return resource{}, invalidParameters("The specified resource ARN is not valid.")
}

// AddTagsToResource adds or overwrites tags on a gateway, volume or snapshot.
func (s *Service) AddTagsToResource(ctx context.Context, arn string, tags []Tag) (string, error) {
	if err := checkTags(tags); err != nil {
		return "", err
	}
	return arn, s.changeTags(ctx, arn, func(old []Tag) []Tag { return mergeTags(old, tags) })
}

// RemoveTagsFromResource removes tags by key; absent keys are ignored.
func (s *Service) RemoveTagsFromResource(ctx context.Context, arn string, keys []string) (string, error) {
	return arn, s.changeTags(ctx, arn, func(old []Tag) []Tag { return removeTags(old, keys) })
}

func (s *Service) changeTags(ctx context.Context, arn string, change func([]Tag) []Tag) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res resource
	if err := s.view(func(tx *catalog.Tx) error {
		var err error
		res, err = s.resolveResource(tx, arn)
		return err
	}); err != nil {
		return err
	}
	if res.snapshotID != "" {
		snap, err := s.engine.Snapshot(ctx, res.snapshotID)
		if err != nil {
			return engineError(err)
		}
		limited := func(old []Tag) ([]Tag, error) {
			tags := change(old)
			return tags, checkTagLimit(tags)
		}
		tags, err := limited(snap.Tags)
		if err != nil {
			return err
		}
		return engineError(s.setSnapshotTags(ctx, res.snapshotID, tags, limited))
	}
	return s.update(func(tx *catalog.Tx) error {
		if _, err := s.resolveResource(tx, arn); err != nil {
			return err
		}
		old, err := tx.Tags(arn)
		if err != nil {
			return err
		}
		tags := change(fromCatalogTags(old))
		if err := checkTagLimit(tags); err != nil {
			return err
		}
		return tx.PutTags(arn, toCatalogTags(tags))
	})
}

// tagKeyPattern is the model's TagKey pattern.
var tagKeyPattern = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)

func isTagKey(k string) bool {
	return len(k) <= 128 && tagKeyPattern.MatchString(k)
}

// ListTagsForResource lists a resource's tags ordered by key, from marker
// (a key), at most limit (0: all).
func (s *Service) ListTagsForResource(ctx context.Context, arn, marker string, limit int) ([]Tag, string, error) {
	var res resource
	var tags []Tag
	if err := s.view(func(tx *catalog.Tx) error {
		var err error
		if res, err = s.resolveResource(tx, arn); err != nil {
			return err
		}
		old, err := tx.Tags(arn)
		tags = fromCatalogTags(old)
		return err
	}); err != nil {
		return nil, "", err
	}
	if res.snapshotID != "" {
		snap, err := s.engine.Snapshot(ctx, res.snapshotID)
		if err != nil {
			return nil, "", engineError(err)
		}
		tags = append([]Tag{}, snap.Tags...)
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].Key < tags[j].Key })
	keys := make([]string, len(tags))
	for i, t := range tags {
		keys[i] = t.Key
	}
	// A marker is the key that starts the next page: any string that is
	// not of a tag key's form was never handed out.
	from, to, next, err := page(keys, marker, limit, MaxTags, isTagKey)
	if err != nil {
		return nil, "", err
	}
	return tags[from:to], next, nil
}
