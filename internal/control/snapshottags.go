package control

import (
	"context"
	"errors"
)

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
		err := s.engine.SetSnapshotTags(ctx, id, next[id])
		if errors.Is(err, ErrSnapshotNotFound) {
			return id, engineError(err)
		}
		if err != nil {
			return "", engineError(err)
		}
	}
	return "", nil
}
