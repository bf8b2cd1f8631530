package volume

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// TestScrubFindsCorruptCleanSlot: a clean slot whose bytes change on the
// cache disk (a stray write) is found by the maintenance scrub, dropped and
// logged; the next read fetches the block from the store and returns the
// right data.
func TestScrubFindsCorruptCleanSlot(t *testing.T) {
	ctx := context.Background()
	log := &logBuf{}
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	te.cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	te.cfg.ScrubRate = -1
	te.reopen()
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-S", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-S")
	want := pattern(4, 3*BlockSize)
	if err := v.WriteAt(ctx, want, 0); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-S"); err != nil { // the three blocks' slots are clean now
		t.Fatal(err)
	}
	s, ok := te.cache.lookup(v.key(1))
	if !ok {
		t.Fatal("block 1 is not cached clean after its cut")
	}
	f, base := te.cache.where(s)
	if _, err := f.WriteAt([]byte("rot"), base+5000); err != nil {
		t.Fatal(err)
	}

	rep, err := te.Maintain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ScrubbedSlots != 3 || rep.BadSlots != 1 {
		t.Fatalf("scrub report %+v, want 3 slots checked and 1 bad", rep)
	}
	if _, ok := te.cache.lookup(v.key(1)); ok {
		t.Fatal("the corrupt slot is still in the cache")
	}
	if !strings.Contains(log.String(), "cache scrub") || !strings.Contains(log.String(), "bad_slots=1") {
		t.Fatalf("the scrub's finding is not logged:\n%s", log)
	}
	if got := mustRead(t, v, 0, len(want)); !bytes.Equal(got, want) {
		t.Fatal("read after the scrub differs")
	}
	if _, ok := te.cache.lookup(v.key(1)); !ok {
		t.Fatal("block 1 was not cached again by its read")
	}
	rep, err = te.Maintain(ctx)
	if err != nil || rep.BadSlots != 0 || rep.ScrubbedSlots != 3 {
		t.Fatalf("second scrub %+v, %v", rep, err)
	}
	if err := te.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestScrubReadErrorTakesCacheDown: a scrub that meets an I/O error (the
// disk file truncated) reports it as a failed cache disk.
func TestScrubReadErrorTakesCacheDown(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-T", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-T")
	if err := v.WriteAt(ctx, pattern(1, BlockSize), 0); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-T"); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(te.dir, "cache0.img"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := te.Maintain(ctx); err == nil || te.CacheFault() == nil {
		t.Fatalf("scrub of a truncated cache disk: %v, fault %v", err, te.CacheFault())
	}
}
