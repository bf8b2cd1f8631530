package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// TestImportAcrossRestart: an import's state is in the store (its record
// and entries), not in the process: blocks put before a restart of the
// engine — or by another engine on the same store — count at
// CompleteImport after it, and the snapshot holds exactly what was put.
func TestImportAcrossRestart(t *testing.T) {
	ctx := context.Background()
	store := blobtest.NewFS(t)
	te := newTestEngine(t, store, engineOpts{})
	block := func(seed byte) ([]byte, [32]byte) {
		data := bytes.Repeat([]byte{seed}, BlockSize)
		return data, sha256.Sum256(data)
	}
	if _, err := te.StartImport(ctx, ImportRequest{SnapshotID: "snap-r1", SizeBytes: gib, Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	d1, h1 := block(1)
	if err := te.PutImportBlock(ctx, "snap-r1", 5, d1, h1, -1); err != nil {
		t.Fatal(err)
	}
	te.reopen()
	if s, err := te.Snapshot(ctx, "snap-r1"); err != nil || s.Status != control.SnapshotPending {
		t.Fatalf("the import after a restart: %+v %v", s, err)
	}
	d2, h2 := block(2)
	if err := te.PutImportBlock(ctx, "snap-r1", 700, d2, h2, -1); err != nil {
		t.Fatal(err)
	}
	// The same block put twice (a client's retry) is one change.
	if err := te.PutImportBlock(ctx, "snap-r1", 700, d2, h2, -1); err != nil {
		t.Fatal(err)
	}
	if s, err := te.CompleteImport(ctx, "snap-r1", 2, nil); err != nil || s.Status != control.SnapshotCompleted {
		t.Fatalf("CompleteImport after a restart: %+v %v", s, err)
	}
	tree, err := te.OpenSnapshotTree(ctx, "snap-r1")
	if err != nil {
		t.Fatal(err)
	}
	blocks, _, err := tree.Blocks(ctx, 0, 100)
	if err != nil || len(blocks) != 2 || blocks[0].Index != 5 || blocks[0].Hash != h1 || blocks[1].Index != 700 || blocks[1].Hash != h2 {
		t.Fatalf("the import's blocks: %+v %v", blocks, err)
	}
	for _, b := range blocks {
		got, _, err := tree.Block(ctx, b.Index, b.Hash)
		if err != nil || !bytes.Equal(got, map[int64][]byte{5: d1, 700: d2}[b.Index]) {
			t.Fatalf("block %d: %v", b.Index, err)
		}
	}
	if err := te.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestImportTokensReclaimed: a StartSnapshot ClientToken answers retries
// while its snapshot lives, however old, and is reclaimed by GC once the
// snapshot is deleted.
func TestImportTokensReclaimed(t *testing.T) {
	ctx := context.Background()
	const grace = 200 * time.Millisecond
	store := blobtest.NewFS(t)
	te := newTestEngine(t, store, engineOpts{grace: grace})
	tokens := func() int {
		n := 0
		_ = store.List(ctx, "importtokens/", func(blob.ObjectInfo) error { n++; return nil })
		return n
	}
	req := ImportRequest{SnapshotID: "snap-t1", SizeBytes: gib, Timeout: time.Hour, ClientToken: "retry-me"}
	if _, err := te.StartImport(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := te.CompleteImport(ctx, "snap-t1", 0, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * grace)
	if st, err := te.GC(ctx); err != nil || st.DeletedImportTokens != 0 || tokens() != 1 {
		t.Fatalf("GC with the snapshot alive: %+v %v, %d tokens", st, err, tokens())
	}
	retry := req
	retry.SnapshotID = "snap-t2" // a retry gets a fresh ID from the control plane
	if s, err := te.StartImport(ctx, retry); err != nil || s.ID != "snap-t1" {
		t.Fatalf("a retry with the token: %+v %v", s, err)
	}
	if err := te.DeleteSnapshot(ctx, "snap-t1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * grace)
	if st, err := te.GC(ctx); err != nil || st.DeletedImportTokens != 1 || tokens() != 0 {
		t.Fatalf("GC after the snapshot's deletion: %+v %v, %d tokens", st, err, tokens())
	}
	if err := te.Check(ctx); err != nil {
		t.Fatal(err)
	}
}
