package control

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestUpdateGatewaySoftwareNow: an up-to-date gateway answers its ARN and
// the check is logged with the running version; an unknown gateway is
// GatewayNotFound, a shut-down one GatewayNotConnected.
func TestUpdateGatewaySoftwareNow(t *testing.T) {
	f := newFixture(t)
	var logged bytes.Buffer
	f.svc.log = slog.New(slog.NewTextHandler(&logged, nil))
	f.svc.softwareVersion = "v1.2.3"
	gw := f.activated()
	ctx := context.Background()
	arn, err := f.svc.UpdateGatewaySoftwareNow(ctx, gw)
	if err != nil || arn != gw {
		t.Fatalf("UpdateGatewaySoftwareNow: %q %v", arn, err)
	}
	if !strings.Contains(logged.String(), `msg="update gateway software: the gateway is up to date; no update to apply"`) ||
		!strings.Contains(logged.String(), "software_version=v1.2.3") {
		t.Errorf("log: %s", logged.String())
	}
	if f.svc.SoftwareVersion() != "v1.2.3" {
		t.Errorf("SoftwareVersion %q", f.svc.SoftwareVersion())
	}
	_, err = f.svc.UpdateGatewaySoftwareNow(ctx, gw[:len(gw)-1]+"0")
	wantCode(t, err, CodeGatewayNotFound)
	if _, err := f.svc.ShutdownGateway(ctx, gw); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.UpdateGatewaySoftwareNow(ctx, gw)
	wantCode(t, err, CodeGatewayNotConnected)
	_, err = f.svc.DescribeAvailabilityMonitorTest(ctx, gw)
	wantCode(t, err, CodeGatewayNotConnected)
}

// TestUpdateSnapshotTagsAllOrNothing: a change that fails for one
// snapshot changes none; an unknown snapshot is named.
func TestUpdateSnapshotTagsAllOrNothing(t *testing.T) {
	f := newFixture(t)
	gw := f.activated()
	vol := f.volume(gw, "tags")
	ctx := context.Background()
	var ids []string
	for range 2 {
		id, _, err := f.svc.CreateSnapshot(ctx, SnapshotInput{VolumeARN: vol, Tags: []Tag{{Key: "k", Value: "old"}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	refuse := errors.New("refused")
	_, err := f.svc.UpdateSnapshotTags(ctx, ids, func(id string, old []Tag) ([]Tag, error) {
		if id == ids[1] {
			return nil, refuse
		}
		return []Tag{{Key: "k", Value: "new"}}, nil
	})
	if !errors.Is(err, refuse) {
		t.Fatalf("UpdateSnapshotTags: %v", err)
	}
	for _, id := range ids {
		s, err := f.engine.Snapshot(ctx, id)
		if err != nil || len(s.Tags) != 1 || s.Tags[0].Value != "old" {
			t.Errorf("%s after a refused change: %+v %v", id, s.Tags, err)
		}
	}
	missing, err := f.svc.UpdateSnapshotTags(ctx, []string{ids[0], "snap-0123456789abcdef0"}, func(string, []Tag) ([]Tag, error) {
		return nil, nil
	})
	if missing != "snap-0123456789abcdef0" {
		t.Errorf("unknown snapshot: %q %v", missing, err)
	}
	wantCode(t, err, CodeSnapshotNotFound)
	if _, err := f.svc.UpdateSnapshotTags(ctx, ids, func(string, []Tag) ([]Tag, error) {
		return []Tag{{Key: "k", Value: "new"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if s, _ := f.engine.Snapshot(ctx, id); len(s.Tags) != 1 || s.Tags[0].Value != "new" {
			t.Errorf("%s: %+v", id, s.Tags)
		}
	}
}
