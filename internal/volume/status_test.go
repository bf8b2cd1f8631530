package volume

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// TestSnapshotStartTimeFixed: a snapshot's StartTime is when it was
// initiated (EC2) and does not change when a pending snapshot completes;
// the point it holds is reported separately. The clock ticks a second at
// every reading, so the cut that completes it is always later.
func TestSnapshotStartTimeFixed(t *testing.T) {
	ctx := context.Background()
	var ticks atomic.Int64
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	te.Engine.Close()
	te.cfg.Now = func() time.Time { return t0.Add(time.Duration(ticks.Add(1)) * time.Second) }
	te.open()
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-SNAPTIME", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	if err := te.vol("vol-SNAPTIME").WriteAt(ctx, pattern(1, 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	s, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-time", VolumeID: "vol-SNAPTIME"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != control.SnapshotPending || !s.RecoveryPointTime.IsZero() {
		t.Fatalf("new snapshot %s, point %v", s.Status, s.RecoveryPointTime)
	}
	started := s.StartTime
	if err := te.Cut(ctx, "vol-SNAPTIME"); err != nil {
		t.Fatal(err)
	}
	got, err := te.Snapshot(ctx, "snap-time")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != control.SnapshotCompleted {
		t.Fatalf("after the cut: %s", got.Status)
	}
	if !got.StartTime.Equal(started) {
		t.Fatalf("StartTime changed from %v (pending) to %v (completed)", started, got.StartTime)
	}
	if !got.RecoveryPointTime.After(started) {
		t.Fatalf("point %v, not after the start %v", got.RecoveryPointTime, started)
	}
	// And it stays so across a restart (it is the stored record).
	te.reopen()
	again, err := te.Snapshot(ctx, "snap-time")
	if err != nil {
		t.Fatal(err)
	}
	if !again.StartTime.Equal(started) || !again.RecoveryPointTime.Equal(got.RecoveryPointTime) {
		t.Fatalf("after a restart: start %v point %v", again.StartTime, again.RecoveryPointTime)
	}
}

// TestUsageCountsTouchedBlocks: VolumeUsedInBytes (the recovery point's
// UsageBytes) counts blocks written, as AWS does: zeros written over data
// do not lower it (and are still not stored), an unmap does; a restart
// (the root read back from the store) and a snapshot agree.
func TestUsageCountsTouchedBlocks(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	const id = "vol-USAGE"
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: id, SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	usage := func(want int64) {
		t.Helper()
		if err := te.Cut(ctx, id); err != nil {
			t.Fatal(err)
		}
		rp, err := te.RecoveryPoint(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rp.UsageBytes != want {
			t.Fatalf("usage %d, want %d", rp.UsageBytes, want)
		}
	}
	v := te.vol(id)
	// Three blocks of data, one of them in another page (2 GiB away is
	// beyond a 1 GiB volume, so the same page; fine).
	if err := v.WriteAt(ctx, pattern(1, 3*BlockSize), 0); err != nil {
		t.Fatal(err)
	}
	usage(3 * BlockSize)
	// Zeros over the first block: still touched.
	if err := v.WriteAt(ctx, make([]byte, BlockSize), 0); err != nil {
		t.Fatal(err)
	}
	usage(3 * BlockSize)
	if got := mustRead(t, v, 0, BlockSize); !bytes.Equal(got, make([]byte, BlockSize)) {
		t.Fatal("zeros written do not read back")
	}
	// Zeros into a block never written: touched too.
	if err := v.WriteAt(ctx, make([]byte, BlockSize), 10*BlockSize); err != nil {
		t.Fatal(err)
	}
	usage(4 * BlockSize)
	// An unmap frees whole blocks, touched-zero or not.
	if err := v.Unmap(ctx, 0, 2*BlockSize); err != nil {
		t.Fatal(err)
	}
	usage(2 * BlockSize)
	// No zero block is stored: the store holds the two non-zero blocks
	// written (block 2, and block 1's content until GC).
	te.reopen()
	rp, err := te.RecoveryPoint(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if rp.UsageBytes != 2*BlockSize {
		t.Fatalf("after a restart: usage %d", rp.UsageBytes)
	}
	if _, err := te.store.Stat(ctx, blockKey(zeroHash)); err == nil {
		t.Fatal("the zero block is stored")
	}
	s, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-usage", VolumeID: id, FromRecoveryPoint: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-USAGE2", SizeBytes: gib, Source: control.VolumeSource{SnapshotID: s.ID}}); err != nil {
		t.Fatal(err)
	}
	if rp, _ := te.RecoveryPoint(ctx, "vol-USAGE2"); rp.UsageBytes != 2*BlockSize {
		t.Fatalf("restored volume's usage %d", rp.UsageBytes)
	}
	if err := te.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestOldRootsAndPagesDecode: roots and pages written before touched
// counts (three-element page entries, VPG1 pages) decode as before, and a
// VPG1 page with the same blocks encodes to the same bytes.
func TestOldRootsAndPagesDecode(t *testing.T) {
	h := zeroHash // any non-zero hash will do
	old := `{"volume":"vol-OLD","seq":3,"size":1073741824,"cutTime":"2026-11-23T10:00:00Z","owner":"gw-1","journalLSN":42,"pages":[["0","` + h.String() + `","5"]]}`
	r, err := decodeRoot([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if r.usage() != 5*BlockSize || r.Pages[0].Blocks != 5 || r.Pages[0].Touched != 5 {
		t.Fatalf("old root: %+v usage %d", r.Pages[0], r.usage())
	}
	if string(encodeRoot(r)) != old {
		t.Fatalf("old root re-encodes differently:\n%s\n%s", encodeRoot(r), old)
	}
	p := &page{blocks: map[uint16]hash{7: h}}
	b := encodePage(p)
	if string(b[:4]) != "VPG1" {
		t.Fatalf("a page without zero blocks is %q", b[:4])
	}
	p.zeros = map[uint16]bool{3: true}
	b2 := encodePage(p)
	got, err := decodePage(b2)
	if err != nil || got.touched() != 2 || !got.zeros[3] || got.blocks[7] != h {
		t.Fatalf("VPG2 round trip: %+v %v", got, err)
	}
}

// gatedStore holds every block GET until open is closed: it lets a test
// see a restore in progress.
type gatedStore struct {
	blob.Store
	open chan struct{}
}

func (g gatedStore) Get(ctx context.Context, key string) ([]byte, error) {
	if strings.HasPrefix(key, "blocks/") {
		select {
		case <-g.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Store.Get(ctx, key)
}

// TestRestoringUntilFetched: a volume created from a snapshot is RESTORING,
// with a progress, while the snapshot's blocks are being fetched (also
// after a restart), and AVAILABLE once every one was fetched and verified;
// they are then in the cache (reads hit).
func TestRestoringUntilFetched(t *testing.T) {
	ctx := context.Background()
	gate := make(chan struct{})
	te := newTestEngine(t, gatedStore{blobtest.NewFS(t), gate}, engineOpts{})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-SRC", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	data := pattern(3, 8*BlockSize)
	if err := te.vol("vol-SRC").WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-SRC"); err != nil {
		t.Fatal(err)
	}
	s, err := te.CreateSnapshot(ctx, control.SnapshotRequest{SnapshotID: "snap-restore", VolumeID: "vol-SRC", FromRecoveryPoint: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-DST", SizeBytes: gib, Source: control.VolumeSource{SnapshotID: s.ID}}); err != nil {
		t.Fatal(err)
	}
	st, err := te.VolumeStatus(ctx, "vol-DST")
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != control.VolumeRestoring || st.Progress == nil || *st.Progress != 0 {
		t.Fatalf("while no block can be fetched: %q progress %v", st.Status, st.Progress)
	}
	if st, _ := te.VolumeStatus(ctx, "vol-SRC"); st.Status != control.VolumeAvailable {
		t.Fatalf("source: %q", st.Status)
	}
	// A restart resumes the restore.
	te.reopen()
	if st, _ := te.VolumeStatus(ctx, "vol-DST"); st.Status != control.VolumeRestoring {
		t.Fatalf("after a restart: %q", st.Status)
	}
	close(gate)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := te.VolumeStatus(ctx, "vol-DST")
		if err != nil {
			t.Fatal(err)
		}
		if st.Status == control.VolumeAvailable {
			break
		}
		if st.Status != control.VolumeRestoring || time.Now().After(deadline) {
			t.Fatalf("status %q after the blocks could be fetched", st.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := te.cache.hits.Load()
	if got := mustRead(t, te.vol("vol-DST"), 0, len(data)); !bytes.Equal(got, data) {
		t.Fatal("restored data differs")
	}
	if hits := te.cache.hits.Load() - before; hits != 8 {
		t.Fatalf("%d of 8 block reads hit the cache after the restore", hits)
	}
}
