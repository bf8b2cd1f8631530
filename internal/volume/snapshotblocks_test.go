package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// snapshotNow snapshots volume id as of now (a cut completes it).
func snapshotNow(t *testing.T, te *testEngine, vol, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: id, VolumeID: vol}); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, vol); err != nil {
		t.Fatal(err)
	}
	if s, err := te.Snapshot(ctx, id); err != nil || s.Status != control.SnapshotCompleted {
		t.Fatalf("snapshot %s: %+v %v", id, s, err)
	}
}

// TestChangedBlocksSkipsEqualPages: between two snapshots of a 16 GiB
// volume (8 pages, each holding a block) that differ in one block,
// ChangedBlocks names that block and loads only the two versions of its
// page; the other pages are compared by hash alone.
func TestChangedBlocksSkipsEqualPages(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-CB", SizeBytes: 16 * gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-CB")
	for p := range int64(8) {
		if err := v.WriteAt(ctx, pattern(byte(p+1), 4096), p*pageBlocks*BlockSize+BlockSize); err != nil {
			t.Fatal(err)
		}
	}
	snapshotNow(t, te, "vol-CB", "snap-a")
	changedAt := int64(5*pageBlocks + 77)
	if err := v.WriteAt(ctx, pattern(99, 4096), changedAt*BlockSize); err != nil {
		t.Fatal(err)
	}
	snapshotNow(t, te, "vol-CB", "snap-b")

	a, err := te.OpenSnapshotTree(ctx, "snap-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := te.OpenSnapshotTree(ctx, "snap-b")
	if err != nil {
		t.Fatal(err)
	}
	changed, next, st, err := b.ChangedBlocks(ctx, a, 0, 100)
	if err != nil || next != -1 || len(changed) != 1 || changed[0].Index != changedAt || changed[0].First != ([32]byte{}) {
		t.Fatalf("ChangedBlocks: %+v next %d err %v", changed, next, err)
	}
	if st.PagesCompared != 8 || st.PagesLoaded != 2 {
		t.Errorf("ChangedBlocks read %+v; want 8 pages compared, 2 loaded", st)
	}
	blocks, next, err := b.Blocks(ctx, 0, 5)
	if err != nil || len(blocks) != 5 || next != 5*pageBlocks+1 {
		t.Fatalf("Blocks(0, 5): %d blocks, next %d, %v", len(blocks), next, err)
	}
	data, _, err := b.Block(ctx, changedAt, changed[0].Second)
	want := make([]byte, BlockSize)
	copy(want, pattern(99, 4096))
	if err != nil || !bytes.Equal(data, want) {
		t.Fatalf("Block(%d): %v", changedAt, err)
	}
	if _, _, err := b.Block(ctx, changedAt+1, changed[0].Second); !errors.Is(err, ErrBlockMismatch) {
		t.Errorf("Block with another block's hash: %v", err)
	}
}

// TestImportSurvivesGC: blocks put into an import are kept by GC while
// the import is pending, however long ago they were put (entries name
// them), and by the root once it completes; an import idle for its
// timeout is cancelled and its blocks are then collected.
func TestImportSurvivesGC(t *testing.T) {
	ctx := context.Background()
	const grace = 200 * time.Millisecond
	store := blobtest.NewFS(t)
	te := newTestEngine(t, store, engineOpts{grace: grace})
	put := func(id string, index int64, seed byte) [32]byte {
		t.Helper()
		data := bytes.Repeat([]byte{seed}, BlockSize)
		sum := sha256.Sum256(data)
		if err := te.PutImportBlock(ctx, id, index, data, sum, -1); err != nil {
			t.Fatal(err)
		}
		return sum
	}
	gc := func() {
		t.Helper()
		if _, err := te.GC(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stored := func(h [32]byte) bool {
		_, err := store.Stat(ctx, blockKey(h))
		return err == nil
	}
	if _, err := te.StartImport(ctx, ImportRequest{SnapshotID: "snap-i1", SizeBytes: gib, Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	h1, h2 := put("snap-i1", 3, 1), put("snap-i1", 9000%2048, 2)
	time.Sleep(2 * grace) // the blocks are older than the grace period
	gc()
	if !stored(h1) || !stored(h2) {
		t.Fatal("GC swept blocks of a pending import")
	}
	if _, err := te.CompleteImport(ctx, "snap-i1", 1, nil); !errors.Is(err, ErrChangedBlocksCount) {
		t.Fatalf("CompleteImport with a wrong count: %v", err)
	}
	if _, err := te.CompleteImport(ctx, "snap-i1", 2, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * grace)
	gc()
	tree, err := te.OpenSnapshotTree(ctx, "snap-i1")
	if err != nil {
		t.Fatal(err)
	}
	blocks, _, err := tree.Blocks(ctx, 0, 100)
	if err != nil || len(blocks) != 2 || blocks[0].Index != 3 || blocks[0].Hash != h1 {
		t.Fatalf("the import's blocks: %+v %v", blocks, err)
	}
	if _, _, err := tree.Block(ctx, 3, h1); err != nil {
		t.Fatalf("block 3 after GC: %v", err)
	}
	var entries int
	_ = store.List(ctx, "imports/", func(blob.ObjectInfo) error { entries++; return nil })
	if entries != 0 {
		t.Errorf("%d import entries left after completion", entries)
	}

	// An import whose client stopped: cancelled after its timeout, its
	// blocks then collected.
	if _, err := te.StartImport(ctx, ImportRequest{SnapshotID: "snap-i2", SizeBytes: gib, Timeout: grace}); err != nil {
		t.Fatal(err)
	}
	h3 := put("snap-i2", 0, 3)
	time.Sleep(2 * grace)
	gc() // cancels it
	if s, err := te.Snapshot(ctx, "snap-i2"); err != nil || s.Status != control.SnapshotError {
		t.Fatalf("an idle import after its timeout: %+v %v", s, err)
	}
	if err := te.PutImportBlock(ctx, "snap-i2", 1, bytes.Repeat([]byte{4}, BlockSize), sha256.Sum256(bytes.Repeat([]byte{4}, BlockSize)), -1); !errors.Is(err, ErrSnapshotNotWritable) {
		t.Errorf("a put into a cancelled import: %v", err)
	}
	gc() // sweeps its block
	if stored(h3) || !stored(h1) {
		t.Errorf("after the cancelled import: its block stored %v, the completed import's %v", stored(h3), stored(h1))
	}
	if err := te.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
}
