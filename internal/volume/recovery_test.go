package volume

import (
	"context"
	"testing"

	"github.com/volgw/volgw/internal/blob/blobtest"
	"github.com/volgw/volgw/internal/control"
)

// TestRecoveryPointTakesNoVolumeLock: RecoveryPoint answers while a writer
// holds the volume's lock (as one does across its journal appends, which
// stall when the kernel throttles writeback), and answers what it answers
// with the lock free. Called with the lock held here: if it took the lock,
// the test would hang.
func TestRecoveryPointTakesNoVolumeLock(t *testing.T) {
	ctx := context.Background()
	te := newTestEngine(t, blobtest.NewFS(t), engineOpts{})
	if err := te.CreateVolume(ctx, control.VolumeSpec{VolumeID: "vol-NOLOCK", SizeBytes: gib}); err != nil {
		t.Fatal(err)
	}
	v := te.vol("vol-NOLOCK")
	if err := v.WriteAt(ctx, pattern(1, BlockSize), 0); err != nil {
		t.Fatal(err)
	}
	if err := te.Cut(ctx, "vol-NOLOCK"); err != nil {
		t.Fatal(err)
	}
	free, err := te.RecoveryPoint(ctx, "vol-NOLOCK")
	if err != nil || free.UsageBytes != BlockSize {
		t.Fatalf("RecoveryPoint = %+v, %v; want %d bytes used", free, err, BlockSize)
	}
	v.mu.Lock()
	held, err := te.RecoveryPoint(ctx, "vol-NOLOCK")
	v.mu.Unlock()
	if err != nil || held != free {
		t.Fatalf("with the volume lock held: %+v, %v; with it free: %+v", held, err, free)
	}
	if err := te.Check(ctx); err != nil {
		t.Fatal(err)
	}
}
