package volume

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// afterGetStore runs hook once, right after the first Get of key returns:
// a write that lands between a read of a record and its ETag.
type afterGetStore struct {
	blob.Store
	key  string
	done atomic.Bool
	hook func()
}

func (s *afterGetStore) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := s.Store.Get(ctx, key)
	// The hook itself reads the record: only the first Get runs it.
	if key == s.key && s.hook != nil && s.done.CompareAndSwap(false, true) {
		s.hook()
	}
	return b, err
}

// TestSnapshotTagChangesCompose: a tag change made while another one is
// between reading the snapshot's record and swapping it (as another
// gateway on the store does) is kept: the swap fails, is read again and
// applied to the newer record. Reading the ETag after the body would pair
// the old body with the new ETag and lose the other change.
func TestSnapshotTagChangesCompose(t *testing.T) {
	ctx := context.Background()
	store := &afterGetStore{Store: blobtest.NewFS(t), key: snapshotKey("snap-0123456789abcdef0")}
	te := newTestEngine(t, store, engineOpts{})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-TAGS", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	if _, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-0123456789abcdef0", VolumeID: "vol-TAGS",
		FromRecoveryPoint: true}); err != nil {
		t.Fatal(err)
	}
	add := func(key string) func([]control.Tag) ([]control.Tag, error) {
		return func(old []control.Tag) ([]control.Tag, error) { return append(old, control.Tag{Key: key}), nil }
	}
	store.hook = func() {
		if err := te.UpdateSnapshotTags(ctx, "snap-0123456789abcdef0", add("other")); err != nil {
			t.Errorf("the interleaved change: %v", err)
		}
	}
	if err := te.UpdateSnapshotTags(ctx, "snap-0123456789abcdef0", add("mine")); err != nil {
		t.Fatal(err)
	}
	s, err := te.Snapshot(ctx, "snap-0123456789abcdef0")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, tg := range s.Tags {
		keys = append(keys, tg.Key)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"mine", "other"}) {
		t.Errorf("tags %v, want both changes", keys)
	}
}
