package control

import (
	"context"
	"testing"

	"github.com/volgw/volgw/internal/catalog"
)

// resetEngine records ResetCache calls.
type resetEngine struct {
	*memEngine
	resets int
	failed []string
}

func (e *resetEngine) FailedCacheDisks() []string { return e.failed }

func (e *resetEngine) ResetCache(ctx context.Context) ([]string, error) {
	e.resets++
	return nil, nil
}

func TestResetCache(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	gw := f.activated()
	// An engine that cannot reset its cache: NotSupported, nothing changes.
	_, err := f.svc.ResetCache(ctx, gw)
	wantCode(t, err, CodeNotSupported)

	re := &resetEngine{memEngine: f.engine}
	f.wrapped = re
	f.open(2)
	disks, _ := f.svc.ListLocalDisks(ctx, gw)
	for _, d := range disks {
		if d.DiskID == "cache0" {
			re.failed = []string{d.DiskPath}
		}
	}
	disks, _ = f.svc.ListLocalDisks(ctx, gw)
	for _, d := range disks {
		if want := map[string]string{"cache0": "mismatch", "buffer0": "present"}[d.DiskID]; d.DiskStatus != want {
			t.Errorf("with the cache disk failed, %s is %s, want %s", d.DiskID, d.DiskStatus, want)
		}
	}
	re.failed = nil // the engine forgets it at the reset
	arn, err := f.svc.ResetCache(ctx, gw)
	if err != nil || arn != gw || re.resets != 1 {
		t.Fatalf("ResetCache = %q, %v (%d resets)", arn, err, re.resets)
	}
	disks, _ = f.svc.ListLocalDisks(ctx, gw)
	for _, d := range disks {
		want := map[string]string{"cache0": catalog.DiskAvailable, "buffer0": catalog.DiskUploadBuffer}[d.DiskID]
		if d.DiskAllocationType != want {
			t.Errorf("after ResetCache %s is %s, want %s", d.DiskID, d.DiskAllocationType, want)
		}
	}
	c, err := f.svc.DescribeCache(ctx, gw)
	if err != nil || len(c.DiskIDs) != 0 || c.CacheAllocatedInBytes != 0 || c.Stats != nil {
		t.Fatalf("DescribeCache after ResetCache = %+v, %v", c, err)
	}
	// A restart does not hand the reset disk back; AddCache does.
	f.open(3)
	if _, err := f.svc.AddCache(ctx, gw, []string{"cache0"}); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.svc.DescribeCache(ctx, gw); len(c.DiskIDs) != 1 {
		t.Fatalf("DescribeCache after AddCache = %+v", c)
	}
	// ResetCache with no cache disk is not an error (nothing to reset).
	if _, err := f.svc.ResetCache(ctx, gw); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.ResetCache(ctx, gw); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.ResetCache(ctx, gw[:len(gw)-1]+"X")
	wantCode(t, err, CodeGatewayNotFound)
	if _, err := f.svc.ShutdownGateway(ctx, gw); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.ResetCache(ctx, gw)
	wantCode(t, err, CodeGatewayNotConnected)
}
