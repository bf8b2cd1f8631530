package control

import (
	"context"
	"testing"
	"time"

	"github.com/volgw/volgw/internal/catalog"
)

func TestLastWindowStart(t *testing.T) {
	ip := func(n int) *int { return &n }
	for _, c := range []struct {
		tz, now string
		m       catalog.Maintenance
		want    string
	}{
		// Weekly: 2026-11-23 is a Monday (1).
		{"GMT", "2026-11-23 10:00", catalog.Maintenance{DayOfWeek: ip(1), HourOfDay: 9, MinuteOfHour: 30}, "2026-11-23 09:30"},
		{"GMT", "2026-11-23 09:29", catalog.Maintenance{DayOfWeek: ip(1), HourOfDay: 9, MinuteOfHour: 30}, "2026-11-16 09:30"},
		{"GMT", "2026-11-23 09:30", catalog.Maintenance{DayOfWeek: ip(1), HourOfDay: 9, MinuteOfHour: 30}, "2026-11-23 09:30"},
		{"GMT", "2026-11-23 10:00", catalog.Maintenance{DayOfWeek: ip(0), HourOfDay: 23, MinuteOfHour: 59}, "2026-11-22 23:59"},
		{"GMT", "2026-11-23 10:00", catalog.Maintenance{DayOfWeek: ip(6), HourOfDay: 0, MinuteOfHour: 0}, "2026-11-21 00:00"},
		{"GMT", "2026-11-23 10:00", catalog.Maintenance{DayOfWeek: ip(2), HourOfDay: 0, MinuteOfHour: 0}, "2026-11-17 00:00"},
		// Monthly, across a year's end; day 28 exists in February.
		{"GMT", "2026-11-23 10:00", catalog.Maintenance{DayOfMonth: ip(23), HourOfDay: 4, MinuteOfHour: 5}, "2026-11-23 04:05"},
		{"GMT", "2026-11-23 03:00", catalog.Maintenance{DayOfMonth: ip(23), HourOfDay: 4, MinuteOfHour: 5}, "2026-10-23 04:05"},
		{"GMT", "2027-01-02 10:00", catalog.Maintenance{DayOfMonth: ip(28), HourOfDay: 0, MinuteOfHour: 0}, "2026-12-28 00:00"},
		{"GMT", "2027-03-01 10:00", catalog.Maintenance{DayOfMonth: ip(28), HourOfDay: 0, MinuteOfHour: 0}, "2027-02-28 00:00"},
		// In the gateway's time zone: Monday 01:00 at GMT+5:30 is Sunday
		// 19:30 GMT.
		{"GMT+5:30", "2026-11-23 02:00", catalog.Maintenance{DayOfWeek: ip(1), HourOfDay: 1, MinuteOfHour: 0}, "2026-11-23 01:00"},
		{"GMT-8:00", "2026-11-23 02:00", catalog.Maintenance{DayOfWeek: ip(1), HourOfDay: 1, MinuteOfHour: 0}, "2026-11-23 01:00"},
	} {
		loc := gatewayLocation(c.tz)
		at := func(s string) time.Time {
			tm, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
			if err != nil {
				t.Fatal(err)
			}
			return tm
		}
		got := lastWindowStart(at(c.now), c.m, loc)
		if !got.Equal(at(c.want)) {
			t.Errorf("%s %s %+v: %s, want %s", c.tz, c.now, c.m, got.In(loc), c.want)
		}
	}
}

// maintEngine counts maintenance runs.
type maintEngine struct {
	*memEngine
	runs int
}

func (e *maintEngine) Maintain(ctx context.Context) (MaintenanceReport, error) {
	e.runs++
	return MaintenanceReport{ScrubbedSlots: 3}, nil
}

func TestMaintenanceWindow(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	me := &maintEngine{memEngine: f.engine}
	f.wrapped = me
	f.open(2)
	gw := f.activated() // GMT-8:00; the clock is Monday 02:00 there
	ip := func(n int) *int { return &n }
	sp := func(s string) *string { return &s }

	// The default window: weekly, stable, ALL_VERSIONS, the gateway's zone.
	w, err := f.svc.DescribeMaintenanceStartTime(ctx, gw)
	if err != nil || w.DayOfWeek == nil || w.DayOfMonth != nil || w.Timezone != "GMT-8:00" || w.AutomaticUpdatePolicy != catalog.UpdateAllVersions {
		t.Fatalf("default window %+v, %v", w, err)
	}
	w2, _ := f.svc.DescribeMaintenanceStartTime(ctx, gw)
	if *w2.DayOfWeek != *w.DayOfWeek || w2.HourOfDay != w.HourOfDay || w2.MinuteOfHour != w.MinuteOfHour {
		t.Fatalf("the default window moved: %+v then %+v", w, w2)
	}

	// Invalid: incomplete, both days, nothing; none changes anything.
	for _, u := range []MaintenanceUpdate{
		{HourOfDay: ip(1), DayOfWeek: ip(1)},
		{MinuteOfHour: ip(1), DayOfWeek: ip(1)},
		{HourOfDay: ip(1), MinuteOfHour: ip(1)},
		{HourOfDay: ip(1), MinuteOfHour: ip(1), DayOfWeek: ip(1), DayOfMonth: ip(1)},
		{DayOfMonth: ip(3), AutomaticUpdatePolicy: sp(catalog.UpdateEmergencyVersionsOnly)},
		{},
	} {
		u.GatewayARN = gw
		_, err := f.svc.UpdateMaintenanceStartTime(ctx, u)
		wantCode(t, err, CodeInvalidParameters)
	}
	if w3, _ := f.svc.DescribeMaintenanceStartTime(ctx, gw); w3.AutomaticUpdatePolicy != catalog.UpdateAllVersions || *w3.DayOfWeek != *w.DayOfWeek {
		t.Fatalf("a refused update changed the window: %+v", w3)
	}
	_, err = f.svc.UpdateMaintenanceStartTime(ctx, MaintenanceUpdate{GatewayARN: gw[:len(gw)-1] + "X", HourOfDay: ip(1), MinuteOfHour: ip(0), DayOfWeek: ip(1)})
	wantCode(t, err, CodeGatewayNotFound)

	// Monday 02:30 local, weekly; then only the policy: the window stays.
	if _, err := f.svc.UpdateMaintenanceStartTime(ctx, MaintenanceUpdate{GatewayARN: gw, HourOfDay: ip(2), MinuteOfHour: ip(30), DayOfWeek: ip(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.UpdateMaintenanceStartTime(ctx, MaintenanceUpdate{GatewayARN: gw, AutomaticUpdatePolicy: sp(catalog.UpdateEmergencyVersionsOnly)}); err != nil {
		t.Fatal(err)
	}
	f.open(3) // read after write across a restart
	w, err = f.svc.DescribeMaintenanceStartTime(ctx, gw)
	if err != nil || *w.DayOfWeek != 1 || w.DayOfMonth != nil || w.HourOfDay != 2 || w.MinuteOfHour != 30 || w.AutomaticUpdatePolicy != catalog.UpdateEmergencyVersionsOnly {
		t.Fatalf("window after updates and a restart %+v, %v", w, err)
	}

	run := func(want bool) {
		t.Helper()
		ran, _, err := f.svc.RunMaintenance(ctx)
		if err != nil || ran != want {
			t.Fatalf("at %s: ran %v, %v; want %v", f.clock.t, ran, err, want)
		}
	}
	run(false) // 02:00: before the window
	f.clock.t = f.clock.t.Add(30 * time.Minute)
	run(true) // 02:30
	run(false)
	f.clock.t = f.clock.t.Add(59 * time.Minute)
	run(false) // the same window
	f.clock.t = f.clock.t.Add(7*24*time.Hour + 31*time.Minute)
	run(false) // a week later, 04:00: over an hour late, wait for the next
	f.clock.t = f.clock.t.Add(7*24*time.Hour - 90*time.Minute)
	f.open(4)
	run(true) // two weeks later, 02:30, after a restart
	if me.runs != 2 {
		t.Fatalf("maintenance ran %d times, want 2", me.runs)
	}

	// Monthly on the 24th at 00:00 local.
	if _, err := f.svc.UpdateMaintenanceStartTime(ctx, MaintenanceUpdate{GatewayARN: gw, HourOfDay: ip(0), MinuteOfHour: ip(0), DayOfMonth: ip(24)}); err != nil {
		t.Fatal(err)
	}
	w, _ = f.svc.DescribeMaintenanceStartTime(ctx, gw)
	if w.DayOfWeek != nil || *w.DayOfMonth != 24 || w.AutomaticUpdatePolicy != catalog.UpdateEmergencyVersionsOnly {
		t.Fatalf("monthly window %+v", w)
	}
	run(false)

	// A shut-down gateway runs no maintenance and answers no API call.
	if _, err := f.svc.ShutdownGateway(ctx, gw); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.DescribeMaintenanceStartTime(ctx, gw)
	wantCode(t, err, CodeGatewayNotConnected)

	// Deleting the gateway deletes its window (the catalog check at the
	// end of the test would find an orphan).
	if _, err := f.svc.DeleteGateway(ctx, gw); err != nil {
		t.Fatal(err)
	}
}

// TestLastWindowStartDST: a gateway's time zone is a fixed offset from GMT
// (GMT+hr:mm, timezone.go), so its windows never meet a DST change; the
// window logic nonetheless works in a zone that has one: a start in the
// hour skipped in spring is the instant time.Date gives it (within that
// hour's offsets, one window that day), and one in the hour repeated in
// autumn is its first occurrence.
func TestLastWindowStartDST(t *testing.T) {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	sunday := 0
	m := catalog.Maintenance{DayOfWeek: &sunday, HourOfDay: 2, MinuteOfHour: 30}
	spring := time.Date(2026, 3, 8, 12, 0, 0, 0, loc) // DST starts at 02:00
	if got := lastWindowStart(spring, m, loc).UTC(); got.Before(time.Date(2026, 3, 8, 6, 30, 0, 0, time.UTC)) || got.After(time.Date(2026, 3, 8, 7, 30, 0, 0, time.UTC)) {
		t.Errorf("spring: %s, want 06:30 or 07:30 UTC that day", got)
	}
	m.HourOfDay = 1
	autumn := time.Date(2026, 11, 1, 12, 0, 0, 0, loc) // 01:00-02:00 happens twice
	if got, want := lastWindowStart(autumn, m, loc), time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("autumn: %s, want %s", got.UTC(), want)
	}
}
