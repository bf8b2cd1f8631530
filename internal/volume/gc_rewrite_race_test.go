package volume

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// hookedStore calls its hooks (when set) before the Stat, Delete or Put of
// a key.
type hookedStore struct {
	*clockStore
	mu                   sync.Mutex
	onStat, onDel, onPut func(key string)
}

func (s *hookedStore) hook(f *func(string)) func(string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *f
}

func (s *hookedStore) Stat(ctx context.Context, key string) (blob.ObjectInfo, error) {
	if f := s.hook(&s.onStat); f != nil {
		f(key)
	}
	return s.clockStore.Stat(ctx, key)
}

func (s *hookedStore) Delete(ctx context.Context, key string) error {
	if f := s.hook(&s.onDel); f != nil {
		f(key)
	}
	return s.clockStore.Delete(ctx, key)
}

func (s *hookedStore) Put(ctx context.Context, key string, data []byte, o blob.PutOptions) (blob.ObjectInfo, error) {
	if f := s.hook(&s.onPut); f != nil {
		f(key)
	}
	return s.clockStore.Put(ctx, key, data, o)
}

func (s *hookedStore) set(f *func(string), to func(string)) {
	s.mu.Lock()
	*f = to
	s.mu.Unlock()
}

// rewriteRace sets up a dead block object older than G (content p, written
// then overwritten, the clock moved on 2G) on a volume; it returns the
// engine, the store, the volume and p's object key.
func rewriteRace(t *testing.T) (*testEngine, *hookedStore, *fakeClock, *Volume, []byte) {
	t.Helper()
	ctx := context.Background()
	const grace = 4 * time.Minute
	clock := newFakeClock()
	store := &hookedStore{clockStore: newClockStore(blobtest.NewFS(t), clock)}
	te := newClockedEngine(t, store, clock, grace)
	const id = "vol-0000000000000RACE1"
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol(id)
	p := pattern(9, BlockSize)
	for _, data := range [][]byte{p, pattern(10, BlockSize)} {
		if err := v.WriteAt(ctx, data, 0); err != nil {
			t.Fatal(err)
		}
		if err := te.Cut(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	clock.advance(2 * grace)
	return te, store, clock, v, p
}

// TestGCSweepRacesRewrite: a GC round lists a dead block object as
// unmarked and older than G; before the round deletes it, a cut writes the
// same content again (the object is older than the cut may reuse, so it is
// stored again, fresh) and publishes a root naming it. The round must not
// delete it: it looks at the object again before the DELETE (G4). Before
// that look the round deleted the fresh object, and the published root
// named a block the store no longer had.
func TestGCSweepRacesRewrite(t *testing.T) {
	ctx := context.Background()
	te, store, _, v, p := rewriteRace(t)
	key := blockObject(p)
	listed, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	// The round's next step with the object after listing it (its look
	// before the DELETE; the DELETE itself, were there none) waits until
	// the cut has published.
	hold := func(k string) {
		if k == key {
			once.Do(func() { close(listed); <-resume })
		}
	}
	store.set(&store.onStat, hold)
	store.set(&store.onDel, hold)
	gcDone := make(chan error, 1)
	go func() { _, err := te.GC(ctx); gcDone <- err }()
	<-listed
	store.set(&store.onStat, nil)
	if err := v.WriteAt(ctx, p, 0); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, v.id); err != nil {
		t.Fatal(err)
	}
	close(resume)
	if err := <-gcDone; err != nil {
		t.Fatal(err)
	}
	if err := te.Check(ctx); err != nil {
		t.Fatalf("after the round: %v", err)
	}
}

// TestCutChecksRewrittenObjects: the window G4's look leaves — the
// round's DELETE of the old copy lands after the cut stored it again —
// fails the cut when the DELETE lands before the cut's root is published:
// the cut finds the object gone after its root landed (checkRewritten),
// does not publish, and the next attempt stores the object afresh.
func TestCutChecksRewrittenObjects(t *testing.T) {
	ctx := context.Background()
	te, store, _, v, p := rewriteRace(t)
	key := blockObject(p)
	deleting, deleted := make(chan struct{}), make(chan struct{})
	var once sync.Once
	store.set(&store.onDel, func(k string) {
		if k == key {
			once.Do(func() { close(deleting); <-deleted })
		}
	})
	gcDone := make(chan error, 1)
	go func() { _, err := te.GC(ctx); gcDone <- err }()
	<-deleting // the round has looked and is about to delete
	// The cut's root PUT lets the DELETE land first.
	var rootOnce sync.Once
	store.set(&store.onPut, func(k string) {
		if strings.Contains(k, "/roots/") {
			rootOnce.Do(func() {
				close(deleted)
				if err := <-gcDone; err != nil {
					t.Error(err)
				}
			})
		}
	})
	if err := v.WriteAt(ctx, p, 0); err != nil {
		t.Fatal(err)
	}
	seq := seqOf(v)
	if err := te.Cut(ctx, v.id); err == nil || !strings.Contains(err.Error(), "deleted by a GC round") {
		t.Fatalf("the cut whose rewritten block was deleted under it: %v", err)
	}
	if seqOf(v) != seq {
		t.Fatalf("the failed cut published seq %d", seqOf(v))
	}
	// Its root is in the store, named by nothing, until the retry writes
	// it again (its key carries the cut's token) with the block stored anew.
	if err := te.Cut(ctx, v.id); err != nil {
		t.Fatal(err)
	}
	if err := te.Check(ctx); err != nil {
		t.Fatalf("after the cut again: %v", err)
	}
	got := make([]byte, BlockSize)
	if err := v.ReadAt(ctx, got, 0); err != nil || string(got) != string(p) {
		t.Fatalf("block 0 reads %v, want what was written", err)
	}
}
