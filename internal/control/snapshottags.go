package control

import (
	"context"
	"errors"
)

// SnapshotTagUpdater is implemented by engines that change a snapshot's tags
// with a compare-and-swap of its record: change sees the tags as stored
// and its result replaces exactly those. Gateways sharing a store each
// serialise their own changes (Service.mu), but not each other's; without
// it a change computed from tags read a moment earlier overwrites what
// another gateway wrote in between. *volume.Engine implements it.
type SnapshotTagUpdater interface {
	UpdateSnapshotTags(ctx context.Context, snapshotID string, change func(old []Tag) ([]Tag, error)) error
}

// setSnapshotTags writes a snapshot's tags: by change, applied to the
// stored tags, when the engine can swap them (SnapshotTagUpdater); else
// the tags computed from the ones read (an engine alone on its store).
func (s *Service) setSnapshotTags(ctx context.Context, id string, computed []Tag, change func(old []Tag) ([]Tag, error)) error {
	if u, ok := s.engine.(SnapshotTagUpdater); ok {
		return u.UpdateSnapshotTags(ctx, id, change)
	}
	return s.engine.SetSnapshotTags(ctx, id, computed)
}

// UpdateSnapshotTags changes the tags of several snapshots in one request,
// as EC2's CreateTags and DeleteTags do: change computes each snapshot's
// new tags from its current ones. Every snapshot is read and every change
// computed before the first one is written, so a request that fails (an
// unknown snapshot, a change that refuses) changes none of them. The tags
// live with the snapshot in the object store (VolumeEngine.SetSnapshotTags),
// so every gateway on the store sees them. notFound names the snapshot that
// does not exist (or no longer does), when that is the error.
func (s *Service) UpdateSnapshotTags(ctx context.Context, ids []string, change func(id string, old []Tag) ([]Tag, error)) (notFound string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[string][]Tag{}
	var order []string
	for _, id := range ids {
		if _, seen := next[id]; seen {
			continue
		}
		snap, err := s.engine.Snapshot(ctx, id)
		if errors.Is(err, ErrSnapshotNotFound) {
			return id, engineError(err)
		}
		if err != nil {
			return "", engineError(err)
		}
		tags, err := change(id, snap.Tags)
		if err != nil {
			return "", err
		}
		next[id] = tags
		order = append(order, id)
	}
	for _, id := range order {
		err := s.setSnapshotTags(ctx, id, next[id], func(old []Tag) ([]Tag, error) { return change(id, old) })
		if errors.Is(err, ErrSnapshotNotFound) {
			return id, engineError(err)
		}
		if err != nil {
			return "", engineError(err)
		}
	}
	return "", nil
}
