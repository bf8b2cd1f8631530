package fs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/blob/fs"
)

func TestContract(t *testing.T) {
	blobtest.RunContractTests(t, blobtest.NewFS)
}

// TestNoEscape checks that no key, valid or not, makes the store touch a
// file outside its directory.
func TestNoEscape(t *testing.T) {
	parent := t.TempDir()
	s, err := fs.New(filepath.Join(parent, "store"))
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(parent, "outside")
	if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, k := range []string{"../outside", "a/../../outside", "/" + outside, outside[1:] + "/../../../../outside"} {
		s.Put(ctx, k, []byte("overwritten"), blob.PutOptions{})
		s.Delete(ctx, k)
	}
	if got, err := os.ReadFile(outside); err != nil || string(got) != "keep" {
		t.Fatalf("file outside the store = %q, %v; want it untouched", got, err)
	}
}

// TestObjectAndDirectoryClash documents the one thing fs cannot do that S3
// can: hold both "a" and "a/b".
func TestObjectAndDirectoryClash(t *testing.T) {
	s := blobtest.NewFS(t)
	ctx := context.Background()
	if _, err := s.Put(ctx, "a/b", []byte("x"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "a", []byte("y"), blob.PutOptions{}); err == nil {
		t.Error("Put(a) over the directory of a/b succeeded")
	}
	if _, err := s.Put(ctx, "a/b/c", []byte("z"), blob.PutOptions{}); err == nil {
		t.Error("Put(a/b/c) below the object a/b succeeded")
	}
	if got, err := s.Get(ctx, "a/b"); err != nil || string(got) != "x" {
		t.Errorf("a/b = %q, %v after the failed Puts", got, err)
	}
}

// TestTempFilesInvisible: a temporary file a crash left behind is neither
// listed nor readable as an object.
func TestTempFilesInvisible(t *testing.T) {
	dir := t.TempDir()
	s, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Put(ctx, "blocks/aa/x", []byte("x"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blocks", "aa", blob.ReservedSegmentPrefix+"tmp-123"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := s.List(ctx, "", func(i blob.ObjectInfo) error { keys = append(keys, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"blocks/aa/x"}) {
		t.Errorf("List = %q, want only blocks/aa/x", keys)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "blocks", "aa"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), blob.ReservedSegmentPrefix) && e.Name() != blob.ReservedSegmentPrefix+"tmp-123" {
			t.Errorf("Put left temporary file %s", e.Name())
		}
	}
}

// TestListRemovesStaleTemporaryFiles: a temporary file a crash left in the
// middle of a Put is removed by a later List once it is an hour old; a
// younger one (a Put in flight) is left alone.
func TestListRemovesStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Put(ctx, "blocks/aa/x", []byte("x"), blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "blocks", "aa", blob.ReservedSegmentPrefix+"tmp-1")
	fresh := filepath.Join(dir, "blocks", "aa", blob.ReservedSegmentPrefix+"tmp-2")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("half an object"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if err := s.List(ctx, "blocks/", func(blob.ObjectInfo) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file removed: %v", err)
	}
}

func TestNewRejectsFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.New(f); err == nil {
		t.Error("New on a regular file succeeded")
	}
	if _, err := fs.New(""); err == nil {
		t.Error("New with an empty path succeeded")
	}
}

// TestConditionalPutAcrossStores: two *Store values on one directory (as
// two processes would have; each opens its own lock files) still let
// exactly one create-only Put win, and exactly one compare-and-swap.
func TestConditionalPutAcrossStores(t *testing.T) {
	dir := t.TempDir()
	var stores []*fs.Store
	for range 4 {
		s, err := fs.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	ctx := context.Background()
	for round := range 20 {
		key := fmt.Sprintf("volumes/v/head-%d", round)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() {
				_, err := s.Put(ctx, key, fmt.Appendf(nil, "owner %d", i), blob.PutOptions{IfNoneMatch: true})
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, blob.ErrPreconditionFailed):
					t.Errorf("store %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d create-only Puts won, want 1", round, n)
		}
		cur, err := stores[0].Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		wins.Store(0)
		for i, s := range stores {
			wg.Go(func() {
				_, err := s.Put(ctx, key, fmt.Appendf(nil, "swap %d", i), blob.PutOptions{IfMatch: cur.ETag})
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, blob.ErrPreconditionFailed):
					t.Errorf("store %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d compare-and-swaps won, want 1", round, n)
		}
	}
}

// TestConcurrentPutsShareDirSyncs: many Puts at once, over few and many
// directories, all land whole (they share directory fsyncs; run with
// -race).
func TestConcurrentPutsShareDirSyncs(t *testing.T) {
	s := blobtest.NewFS(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			key := fmt.Sprintf("d%d/k%d", i%5, i)
			if _, err := s.Put(ctx, key, []byte(key), blob.PutOptions{IfNoneMatch: i%2 == 0}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range 64 {
		key := fmt.Sprintf("d%d/k%d", i%5, i)
		if got, err := s.Get(ctx, key); err != nil || string(got) != key {
			t.Errorf("%s = %q, %v", key, got, err)
		}
	}
	// A create-only Put of an existing key fails and leaves it alone.
	if _, err := s.Put(ctx, "d0/k0", []byte("other"), blob.PutOptions{IfNoneMatch: true}); !errors.Is(err, blob.ErrPreconditionFailed) {
		t.Errorf("create-only Put over d0/k0: %v, want ErrPreconditionFailed", err)
	}
}
