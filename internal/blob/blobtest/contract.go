package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/volgw/volgw/internal/blob"
)

// ContractOptions tells the suite what a store cannot do, so that the suite
// checks what the store really does instead of skipping silently.
type ContractOptions struct {
	// SameContentSameETag: replacing an object with identical content may
	// keep its ETag (S3: the ETag is the content's MD5). When false the
	// suite requires a new ETag on every replace.
	SameContentSameETag bool
}

// RunContractTests runs the blob.Store contract suite with the strictest
// options. newStore must return an empty store, isolated from every other
// store it returned (a new directory, a new bucket prefix); it is called
// once per subtest.
func RunContractTests(t *testing.T, newStore func(t testing.TB) blob.Store) {
	RunContractTestsWith(t, newStore, ContractOptions{})
}

// RunContractTestsWith is RunContractTests for a store that cannot keep
// every promise the strict suite checks; opts says which.
func RunContractTestsWith(t *testing.T, newStore func(t testing.TB) blob.Store, opts ContractOptions) {
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newStore(t)) })
	t.Run("PutGetStat", func(t *testing.T) { testPutGetStat(t, newStore(t)) })
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(t, newStore(t), opts) })
	t.Run("DeleteIdempotent", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("ListOrderAndPrefix", func(t *testing.T) { testList(t, newStore(t)) })
	t.Run("ListStopsOnError", func(t *testing.T) { testListStop(t, newStore(t)) })
	t.Run("LargeObject", func(t *testing.T) { testLarge(t, newStore(t)) })
	t.Run("GetRange", func(t *testing.T) { testGetRange(t, newStore(t)) })
	t.Run("EmptyObject", func(t *testing.T) { testEmpty(t, newStore(t)) })
	t.Run("IfNoneMatch", func(t *testing.T) { testIfNoneMatch(t, newStore(t)) })
	t.Run("IfMatch", func(t *testing.T) { testIfMatch(t, newStore(t)) })
	t.Run("IfNoneMatchRace", func(t *testing.T) { testIfNoneMatchRace(t, newStore(t)) })
	t.Run("IfMatchRace", func(t *testing.T) { testIfMatchRace(t, newStore(t)) })
	t.Run("AtomicOverwriteUnderReaders", func(t *testing.T) { testAtomicOverwrite(t, newStore(t)) })
	t.Run("ContextCancelled", func(t *testing.T) { testCancelled(t, newStore(t)) })
	t.Run("KeyEdgeCases", func(t *testing.T) { testKeys(t, newStore(t)) })
	t.Run("InvalidKeys", func(t *testing.T) { testInvalidKeys(t, newStore(t)) })
}

func mustPut(t testing.TB, s blob.Store, key string, data []byte) blob.ObjectInfo {
	t.Helper()
	info, err := s.Put(context.Background(), key, data, blob.PutOptions{})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func mustGet(t testing.TB, s blob.Store, key string) []byte {
	t.Helper()
	data, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return data
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func listKeys(t testing.TB, s blob.Store, prefix string) []string {
	t.Helper()
	var keys []string
	err := s.List(context.Background(), prefix, func(info blob.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func testNotFound(t *testing.T, s blob.Store) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "missing/key"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Get of a missing key: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "missing/key"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat of a missing key: err = %v, want ErrNotFound", err)
	}
	// A key that only prefixes others is not an object.
	mustPut(t, s, "dir/child", []byte("x"))
	if _, err := s.Get(ctx, "dir"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Get of a key that only prefixes another: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "dir"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat of a key that only prefixes another: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "dir/child/below"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Get below an object: err = %v, want ErrNotFound", err)
	}
	if got := listKeys(t, s, "missing/"); len(got) != 0 {
		t.Errorf("List of an empty prefix = %q, want nothing", got)
	}
}

func testPutGetStat(t *testing.T, s blob.Store) {
	ctx := context.Background()
	data := randomBytes(t, 4096+17)
	put := mustPut(t, s, "volumes/vol-1/roots/00000001", data)
	if put.Key != "volumes/vol-1/roots/00000001" || put.Size != int64(len(data)) || put.ETag == "" || put.ModTime.IsZero() {
		t.Errorf("Put returned %+v; want the key, size %d, an ETag and a ModTime", put, len(data))
	}
	if got := mustGet(t, s, put.Key); !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(data))
	}
	st, err := s.Stat(ctx, put.Key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if st.Key != put.Key || st.Size != put.Size || st.ETag != put.ETag || !st.ModTime.Equal(put.ModTime) && st.ModTime.Sub(put.ModTime).Abs() > 1e9 {
		t.Errorf("Stat = %+v, Put returned %+v", st, put)
	}
	var listed []blob.ObjectInfo
	if err := s.List(ctx, "volumes/", func(i blob.ObjectInfo) error { listed = append(listed, i); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(listed) != 1 || listed[0].Key != put.Key || listed[0].Size != put.Size || listed[0].ETag != put.ETag {
		t.Errorf("List = %+v, want one entry matching %+v", listed, put)
	}
}

func testOverwrite(t *testing.T, s blob.Store, opts ContractOptions) {
	first := mustPut(t, s, "head", []byte("seq=1 owner=a"))
	second := mustPut(t, s, "head", []byte("seq=2 owner=a, longer"))
	if got := string(mustGet(t, s, "head")); got != "seq=2 owner=a, longer" {
		t.Errorf("after overwrite Get = %q", got)
	}
	if first.ETag == second.ETag {
		t.Errorf("ETag %q unchanged by a replace with different content", first.ETag)
	}
	third := mustPut(t, s, "head", []byte("seq=2 owner=a, longer"))
	if !opts.SameContentSameETag && third.ETag == second.ETag {
		t.Errorf("ETag %q unchanged by a replace with equal content", third.ETag)
	}
	if got := listKeys(t, s, ""); !slices.Equal(got, []string{"head"}) {
		t.Errorf("List after overwrites = %q, want [head]", got)
	}
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := context.Background()
	if err := s.Delete(ctx, "never/existed"); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
	mustPut(t, s, "a/b", []byte("x"))
	mustPut(t, s, "a/c", []byte("y"))
	for i := range 2 {
		if err := s.Delete(ctx, "a/b"); err != nil {
			t.Errorf("Delete #%d: %v", i+1, err)
		}
	}
	if _, err := s.Get(ctx, "a/b"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if got := listKeys(t, s, ""); !slices.Equal(got, []string{"a/c"}) {
		t.Errorf("List after Delete = %q, want [a/c]", got)
	}
	// The emptied "directory" can be used again.
	mustPut(t, s, "a/b", []byte("again"))
	if got := string(mustGet(t, s, "a/b")); got != "again" {
		t.Errorf("Get after re-Put = %q", got)
	}
}

func testList(t *testing.T, s blob.Store) {
	// Keys chosen so that sorting by path components and sorting bytes
	// disagree: '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0' < 'A' < 'a'.
	keys := []string{
		"p/a/b", "p/a.c", "p/a-", "p/ab", "p/a/d/e", "p/b", "p/A", "p/a0",
		"p/a/d/f", "p/a/d.x", "q", "pp/x", "p-/y",
	}
	for _, k := range keys {
		mustPut(t, s, k, []byte(k))
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if got := listKeys(t, s, ""); !slices.Equal(got, want) {
		t.Errorf("List(\"\") =\n  %q\nwant\n  %q", got, want)
	}
	for _, prefix := range []string{"p/", "p/a", "p/a/", "p/a/d", "p/a/d/", "p", "pp", "p/zz", "p/a/d/e", "z", "p/a/b/"} {
		var w []string
		for _, k := range want {
			if strings.HasPrefix(k, prefix) {
				w = append(w, k)
			}
		}
		if got := listKeys(t, s, prefix); !slices.Equal(got, w) {
			t.Errorf("List(%q) =\n  %q\nwant\n  %q", prefix, got, w)
		}
	}
	// Many keys in one "directory": enough to span several list pages on a
	// store configured with a small page size.
	var many []string
	for i := range 40 {
		k := fmt.Sprintf("many/%03d", i)
		many = append(many, k)
		mustPut(t, s, k, []byte{byte(i)})
	}
	if got := listKeys(t, s, "many/"); !slices.Equal(got, many) {
		t.Errorf("List(many/) = %q, want %q", got, many)
	}
}

func testListStop(t *testing.T, s blob.Store) {
	for i := range 5 {
		mustPut(t, s, fmt.Sprintf("k/%d", i), []byte("x"))
	}
	stop := errors.New("enough")
	var seen []string
	err := s.List(context.Background(), "k/", func(i blob.ObjectInfo) error {
		seen = append(seen, i.Key)
		if len(seen) == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("List returned %v, want the callback's error", err)
	}
	if !slices.Equal(seen, []string{"k/0", "k/1"}) {
		t.Errorf("List visited %q after the callback failed, want [k/0 k/1]", seen)
	}
}

func testLarge(t *testing.T, s blob.Store) {
	data := randomBytes(t, 8<<20+3)
	info := mustPut(t, s, "blocks/ab/large", data)
	if info.Size != int64(len(data)) {
		t.Errorf("Put size = %d, want %d", info.Size, len(data))
	}
	got := mustGet(t, s, "blocks/ab/large")
	if !bytes.Equal(got, data) {
		t.Fatalf("8 MiB object read back differently (%d bytes)", len(got))
	}
}

// testGetRange reads ranges of an object: whole, inside, at the end, and
// ranges it does not hold.
func testGetRange(t *testing.T, s blob.Store) {
	ctx := context.Background()
	data := randomBytes(t, 1<<20+5)
	mustPut(t, s, "blocks/cd/pack", data)
	for _, r := range []struct{ off, n int64 }{{0, int64(len(data))}, {0, 1}, {4096, 12345}, {int64(len(data)) - 7, 7}, {1 << 19, 1 << 19}} {
		got, err := s.GetRange(ctx, "blocks/cd/pack", r.off, r.n)
		if err != nil {
			t.Fatalf("GetRange(%d, %d): %v", r.off, r.n, err)
		}
		if !bytes.Equal(got, data[r.off:r.off+r.n]) {
			t.Fatalf("GetRange(%d, %d) returned %d other bytes", r.off, r.n, len(got))
		}
	}
	for _, r := range []struct{ off, n int64 }{{int64(len(data)) - 7, 8}, {int64(len(data)), 1}, {int64(len(data)) + 100, 10}, {0, 0}, {-1, 5}} {
		if got, err := s.GetRange(ctx, "blocks/cd/pack", r.off, r.n); !errors.Is(err, blob.ErrRange) {
			t.Errorf("GetRange(%d, %d) of a %d-byte object = %d bytes, %v; want ErrRange", r.off, r.n, len(data), len(got), err)
		}
	}
	if _, err := s.GetRange(ctx, "blocks/cd/absent", 0, 10); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("GetRange of a missing key: %v, want ErrNotFound", err)
	}
}

func testEmpty(t *testing.T, s blob.Store) {
	mustPut(t, s, "empty", nil)
	got, err := s.Get(context.Background(), "empty")
	if err != nil || len(got) != 0 {
		t.Errorf("Get of an empty object = %d bytes, %v", len(got), err)
	}
	st, err := s.Stat(context.Background(), "empty")
	if err != nil || st.Size != 0 {
		t.Errorf("Stat of an empty object = %+v, %v", st, err)
	}
}

func testIfNoneMatch(t *testing.T, s blob.Store) {
	ctx := context.Background()
	create := blob.PutOptions{IfNoneMatch: true}
	if _, err := s.Put(ctx, "volumes/v/head", []byte("first"), create); err != nil {
		t.Fatalf("create-only Put of a new key: %v", err)
	}
	_, err := s.Put(ctx, "volumes/v/head", []byte("second"), create)
	if !errors.Is(err, blob.ErrPreconditionFailed) {
		t.Errorf("create-only Put over an existing key: err = %v, want ErrPreconditionFailed", err)
	}
	if got := string(mustGet(t, s, "volumes/v/head")); got != "first" {
		t.Errorf("failed create-only Put changed the object to %q", got)
	}
	// After a delete, the key can be created again.
	if err := s.Delete(ctx, "volumes/v/head"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "volumes/v/head", []byte("third"), create); err != nil {
		t.Errorf("create-only Put after Delete: %v", err)
	}
}

func testIfMatch(t *testing.T, s blob.Store) {
	ctx := context.Background()
	if _, err := s.Put(ctx, "h", []byte("x"), blob.PutOptions{IfMatch: `"0123"`}); !errors.Is(err, blob.ErrPreconditionFailed) {
		t.Errorf("If-Match Put of a missing key: err = %v, want ErrPreconditionFailed", err)
	}
	if _, err := s.Stat(ctx, "h"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("failed If-Match Put created the object (Stat err = %v)", err)
	}
	v1 := mustPut(t, s, "h", []byte("seq=1"))
	v2, err := s.Put(ctx, "h", []byte("seq=2"), blob.PutOptions{IfMatch: v1.ETag})
	if err != nil {
		t.Fatalf("If-Match Put with the current ETag: %v", err)
	}
	if v2.ETag == v1.ETag {
		t.Errorf("ETag %q unchanged by a compare-and-swap", v2.ETag)
	}
	if _, err := s.Put(ctx, "h", []byte("seq=3 stale"), blob.PutOptions{IfMatch: v1.ETag}); !errors.Is(err, blob.ErrPreconditionFailed) {
		t.Errorf("If-Match Put with a stale ETag: err = %v, want ErrPreconditionFailed", err)
	}
	if got := string(mustGet(t, s, "h")); got != "seq=2" {
		t.Errorf("object = %q after a failed compare-and-swap, want seq=2", got)
	}
	if _, err := s.Put(ctx, "h", []byte("seq=3"), blob.PutOptions{IfMatch: v2.ETag}); err != nil {
		t.Errorf("If-Match Put with the ETag Put returned: %v", err)
	}
}

// contenders is how many goroutines race in the conditional-write tests.
const contenders = 8

func testIfNoneMatchRace(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for round := range 5 {
		key := fmt.Sprintf("race/%d", round)
		var wg sync.WaitGroup
		errs := make([]error, contenders)
		for i := range contenders {
			wg.Go(func() {
				_, errs[i] = s.Put(ctx, key, fmt.Appendf(nil, "writer %d", i), blob.PutOptions{IfNoneMatch: true})
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: writers %d and %d both created %q", round, winner, i, key)
				}
				winner = i
			case !errors.Is(err, blob.ErrPreconditionFailed):
				t.Fatalf("round %d: writer %d: %v", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer created %q", round, key)
		}
		if got, want := string(mustGet(t, s, key)), fmt.Sprintf("writer %d", winner); got != want {
			t.Errorf("round %d: object = %q, want the winner's %q", round, got, want)
		}
	}
}

func testIfMatchRace(t *testing.T, s blob.Store) {
	ctx := context.Background()
	cur := mustPut(t, s, "cas", []byte("gen 0"))
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make([]error, contenders)
		infos := make([]blob.ObjectInfo, contenders)
		for i := range contenders {
			wg.Go(func() {
				infos[i], errs[i] = s.Put(ctx, "cas", fmt.Appendf(nil, "gen %d writer %d", round+1, i), blob.PutOptions{IfMatch: cur.ETag})
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: writers %d and %d both swapped from ETag %q", round, winner, i, cur.ETag)
				}
				winner = i
			case !errors.Is(err, blob.ErrPreconditionFailed):
				t.Fatalf("round %d: writer %d: %v", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer swapped", round)
		}
		if got, want := string(mustGet(t, s, "cas")), fmt.Sprintf("gen %d writer %d", round+1, winner); got != want {
			t.Errorf("round %d: object = %q, want the winner's %q", round, got, want)
		}
		cur = infos[winner]
	}
}

func testAtomicOverwrite(t *testing.T, s blob.Store) {
	ctx := context.Background()
	// Two versions of different sizes and uniform content: a torn or
	// partial read shows up as a wrong length or a mixed byte.
	a := bytes.Repeat([]byte{'A'}, 1<<20)
	b := bytes.Repeat([]byte{'B'}, 1<<20+4096)
	mustPut(t, s, "blocks/xy/obj", a)
	const writes = 20
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex // guards bad and reads
	var bad []string
	reads := 0
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := s.Get(ctx, "blocks/xy/obj")
				mu.Lock()
				reads++
				switch {
				case err != nil:
					bad = append(bad, err.Error())
				case !bytes.Equal(got, a) && !bytes.Equal(got, b):
					bad = append(bad, fmt.Sprintf("read %d bytes that are neither version", len(got)))
				}
				mu.Unlock()
			}
		})
	}
	for i := range writes {
		v := a
		if i%2 == 0 {
			v = b
		}
		if _, err := s.Put(ctx, "blocks/xy/obj", v, blob.PutOptions{}); err != nil {
			t.Errorf("Put #%d: %v", i, err)
		}
	}
	close(done)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d of %d concurrent reads were wrong; first: %s", len(bad), reads, bad[0])
	}
	t.Logf("%d writes, %d concurrent reads, all whole", writes, reads)
}

func testCancelled(t *testing.T, s blob.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, "cancelled", []byte("x"), blob.PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.Stat(context.Background(), "cancelled"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Put with a cancelled context wrote the object (Stat err = %v)", err)
	}
	mustPut(t, s, "present", []byte("x"))
	if _, err := s.Get(ctx, "present"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.Stat(ctx, "present"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with a cancelled context: err = %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, "present"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context: err = %v, want context.Canceled", err)
	}
	if err := s.List(ctx, "", func(blob.ObjectInfo) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context: err = %v, want context.Canceled", err)
	}
	if got := string(mustGet(t, s, "present")); got != "x" {
		t.Errorf("object = %q after cancelled calls", got)
	}
}

func testKeys(t *testing.T, s blob.Store) {
	keys := []string{
		"with space/and+plus",
		"unicode/ü日本",
		"dots/a.b..c",
		"dots/...",
		"chars/eq=amp&q?hash#",
		"chars/percent%20x",
		"chars/tilde~colon:at@",
		"chars/'quote\"",
		"long/" + strings.Repeat("x", 200),
		"deep/" + strings.Repeat("d/", 30) + "leaf",
		".hidden/.file",
	}
	for _, k := range keys {
		mustPut(t, s, k, []byte(k))
	}
	for _, k := range keys {
		if got := string(mustGet(t, s, k)); got != k {
			t.Errorf("Get(%q) = %q", k, got)
		}
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if got := listKeys(t, s, ""); !slices.Equal(got, want) {
		t.Errorf("List =\n  %q\nwant\n  %q", got, want)
	}
}

func testInvalidKeys(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, k := range []string{
		"", "/abs", "a//b", "a/", "../escape", "a/../../b", "./a", "a/.", "..",
		"a\\b", "nul\x00", ".volgw-tmp-123", "x/.volgw-tmp-1", "bad\xffutf8",
		strings.Repeat("k", blob.MaxKeyLen+1),
	} {
		if _, err := s.Put(ctx, k, []byte("x"), blob.PutOptions{}); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Put(%q): err = %v, want ErrInvalidKey", k, err)
		}
		if _, err := s.Get(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Get(%q): err = %v, want ErrInvalidKey", k, err)
		}
		if _, err := s.Stat(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Stat(%q): err = %v, want ErrInvalidKey", k, err)
		}
		if err := s.Delete(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Delete(%q): err = %v, want ErrInvalidKey", k, err)
		}
	}
	if got := listKeys(t, s, ""); len(got) != 0 {
		t.Errorf("invalid keys left objects: %q", got)
	}
}
