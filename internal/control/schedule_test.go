package control

import (
	"context"
	"testing"
	"time"
)

func TestLastSlot(t *testing.T) {
	loc := gatewayLocation("GMT+5:30")
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, c := range []struct {
		now          string
		start, every int
		want         string
	}{
		{"2026-11-23 10:00", 6, 24, "2026-11-23 06:00"},
		{"2026-11-23 05:59", 6, 24, "2026-11-22 06:00"},
		{"2026-11-23 06:00", 6, 24, "2026-11-23 06:00"},
		{"2026-11-23 13:00", 5, 8, "2026-11-23 13:00"},
		{"2026-11-23 04:59", 5, 8, "2026-11-22 21:00"},
		{"2026-11-23 00:30", 0, 1, "2026-11-23 00:00"},
		{"2026-11-23 23:59", 23, 12, "2026-11-23 23:00"},
		{"2026-11-23 10:59", 23, 12, "2026-11-22 23:00"},
	} {
		got := lastSlot(at(c.now), c.start, c.every, loc)
		if !got.Equal(at(c.want)) {
			t.Errorf("lastSlot(%s, start %d, every %d) = %s, want %s", c.now, c.start, c.every, got.In(loc), c.want)
		}
	}
}

func TestScheduledSnapshots(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	gw := f.activated() // time zone GMT-8:00; the clock is 02:00:00.123 there
	vol := f.volume(gw, "data")
	take := func(want int) []string {
		t.Helper()
		ids, err := f.svc.TakeScheduledSnapshots(ctx)
		if err != nil || len(ids) != want {
			t.Fatalf("at %s: took %v, %v; want %d", f.clock.t, ids, err, want)
		}
		return ids
	}
	// The default daily schedule starts at creation hour: today's slot
	// (02:00:00.000) is before the volume existed.
	take(0)
	f.clock.t = f.clock.t.Add(23 * time.Hour)
	take(0)
	f.clock.t = f.clock.t.Add(time.Hour)
	ids := take(1)
	take(0) // the same slot again: nothing
	snap, err := f.engine.Snapshot(ctx, ids[0])
	if err != nil || snap.VolumeARN != vol || snap.Description != volumeIDOf(gw)+":"+volumeIDOf(vol)+":Schedule" {
		t.Fatalf("scheduled snapshot %+v, %v", snap, err)
	}

	// Every 8 hours from midnight, with tags; a restart keeps the state.
	if _, err := f.svc.UpdateSnapshotSchedule(ctx, SnapshotSchedule{VolumeARN: vol, StartAt: 0, RecurrenceInHours: 8,
		Description: "every 8h", Tags: []Tag{{"by", "schedule"}}}); err != nil {
		t.Fatal(err)
	}
	take(0) // 00:00 passed before the schedule was set
	f.clock.t = f.clock.t.Add(6*time.Hour + 30*time.Minute)
	ids = take(1) // 08:00
	snap, _ = f.engine.Snapshot(ctx, ids[0])
	if snap.Description != "every 8h" || len(snap.Tags) != 1 || snap.Tags[0] != (Tag{"by", "schedule"}) {
		t.Fatalf("scheduled snapshot %+v", snap)
	}
	f.open(7)
	take(0)
	// Three slots missed: one snapshot, not three.
	f.clock.t = f.clock.t.Add(24 * time.Hour)
	take(1)

	// A shut-down gateway takes none; started again, it takes the due one.
	if _, err := f.svc.ShutdownGateway(ctx, gw); err != nil {
		t.Fatal(err)
	}
	f.clock.t = f.clock.t.Add(8 * time.Hour)
	take(0)
	if _, err := f.svc.StartGateway(ctx, gw); err != nil {
		t.Fatal(err)
	}
	take(1)

	// No schedule, no snapshots.
	if _, err := f.svc.DeleteSnapshotSchedule(ctx, vol); err != nil {
		t.Fatal(err)
	}
	f.clock.t = f.clock.t.Add(8 * time.Hour)
	take(0)

	// A volume the engine lost is skipped, not failed every minute; the
	// others still get theirs.
	other := f.volume(gw, "other")
	lost := f.volume(gw, "lost")
	for _, v := range []string{other, lost} {
		if _, err := f.svc.UpdateSnapshotSchedule(ctx, SnapshotSchedule{VolumeARN: v, StartAt: 0, RecurrenceInHours: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.engine.DeleteVolume(ctx, volumeIDOf(lost)); err != nil {
		t.Fatal(err)
	}
	f.clock.t = f.clock.t.Add(time.Hour)
	ids = take(1)
	if snap, _ := f.engine.Snapshot(ctx, ids[0]); snap.VolumeARN != other {
		t.Fatalf("scheduled snapshot of %s, want %s", snap.VolumeARN, other)
	}
}
