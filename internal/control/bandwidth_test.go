package control

import (
	"context"
	"testing"
	"time"
)

// rateLog keeps the rates the service put in force.
type rateLog struct{ up, down int64 }

func (r *rateLog) SetRates(up, down int64) { r.up, r.down = up, down }

// TestBandwidthScheduleInForce: the rates in force follow the schedule in
// the gateway's time zone (GMT-8:00 here), minute by minute, the end
// minute included, and fall back to the plain limits outside it; they are
// put in force at Start, at each change and at each ApplyBandwidth.
func TestBandwidthScheduleInForce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	rates := &rateLog{}
	f.limiter = rates
	f.open(2)
	gw := f.activated() // GMT-8:00; the clock is Monday 2026-11-23 02:00 there
	at := func(local string) {
		t.Helper()
		tm, err := time.ParseInLocation("2006-01-02 15:04:05", local, gatewayLocation("GMT-8:00"))
		if err != nil {
			t.Fatal(err)
		}
		f.clock.t = tm
		if err := f.svc.ApplyBandwidth(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := func(up, down int64) {
		t.Helper()
		if rates.up != up || rates.down != down {
			t.Fatalf("at %s: rates in force %d/%d, want %d/%d", f.clock.t.In(gatewayLocation("GMT-8:00")), rates.up, rates.down, up, down)
		}
	}
	want(0, 0)
	if _, err := f.svc.UpdateBandwidthRateLimit(ctx, BandwidthLimits{GatewayARN: gw, UploadBitsPerSec: 200e6}); err != nil {
		t.Fatal(err)
	}
	want(200e6, 0) // in force at once
	// Office hours on weekdays: 50 Mbit/s up; weekends: no download limit
	// but 1 Gbit/s up.
	if _, err := f.svc.UpdateBandwidthRateLimitSchedule(ctx, gw, []BandwidthInterval{
		{StartHourOfDay: 9, EndHourOfDay: 16, EndMinuteOfHour: 59, DaysOfWeek: []int{1, 2, 3, 4, 5}, UploadBitsPerSec: 50e6, DownloadBitsPerSec: 100e6},
		{EndHourOfDay: 23, EndMinuteOfHour: 59, DaysOfWeek: []int{0, 6}, UploadBitsPerSec: 1e9},
	}); err != nil {
		t.Fatal(err)
	}
	want(200e6, 0) // Monday 02:00: outside, the plain limit
	at("2026-11-23 08:59:59")
	want(200e6, 0)
	at("2026-11-23 09:00:00")
	want(50e6, 100e6)
	at("2026-11-23 16:59:59") // the end minute is in the interval
	want(50e6, 100e6)
	at("2026-11-23 17:00:00")
	want(200e6, 0)
	at("2026-11-28 12:00:00") // Saturday
	want(1e9, 0)
	at("2026-11-29 23:59:30") // Sunday's last minute
	want(1e9, 0)
	at("2026-11-30 00:00:00") // Monday again
	want(200e6, 0)
	// 09:30 on a Monday in GMT-8 is 17:30 GMT: the zone is the gateway's.
	f.clock.t = time.Date(2026, 11, 23, 17, 30, 0, 0, time.UTC)
	if err := f.svc.ApplyBandwidth(ctx); err != nil {
		t.Fatal(err)
	}
	want(50e6, 100e6)
	// A restart puts them in force at Start.
	*rates = rateLog{}
	f.open(3)
	want(50e6, 100e6)
	// Deleting the plain upload limit leaves the schedule; outside it,
	// no limit.
	if _, err := f.svc.DeleteBandwidthRateLimit(ctx, gw, BandwidthUpload); err != nil {
		t.Fatal(err)
	}
	at("2026-11-23 18:00:00")
	want(0, 0)
	// A shut-down gateway's limits are not in force.
	at("2026-11-23 10:00:00")
	want(50e6, 100e6)
	if _, err := f.svc.ShutdownGateway(ctx, gw); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.ApplyBandwidth(ctx); err != nil {
		t.Fatal(err)
	}
	want(0, 0)
}

func TestBandwidthScheduleChecks(t *testing.T) {
	day := []int{1}
	for _, c := range []struct {
		name string
		ivs  []BandwidthInterval
		ok   bool
	}{
		{"whole week", []BandwidthInterval{{EndHourOfDay: 23, EndMinuteOfHour: 59, DaysOfWeek: []int{0, 1, 2, 3, 4, 5, 6}}}, true},
		{"adjacent", []BandwidthInterval{{EndHourOfDay: 8, EndMinuteOfHour: 59, DaysOfWeek: day}, {StartHourOfDay: 9, EndHourOfDay: 10, DaysOfWeek: day}}, true},
		{"same minute", []BandwidthInterval{{EndHourOfDay: 9, DaysOfWeek: day}, {StartHourOfDay: 9, EndHourOfDay: 10, DaysOfWeek: day}}, false},
		{"other days", []BandwidthInterval{{EndHourOfDay: 9, DaysOfWeek: day}, {StartHourOfDay: 9, EndHourOfDay: 10, DaysOfWeek: []int{2}}}, true},
		{"one minute", []BandwidthInterval{{StartHourOfDay: 9, EndHourOfDay: 9, DaysOfWeek: day}}, true},
		{"backwards", []BandwidthInterval{{StartHourOfDay: 9, StartMinuteOfHour: 1, EndHourOfDay: 9, DaysOfWeek: day}}, false},
		{"no day", []BandwidthInterval{{EndHourOfDay: 9}}, false},
		{"upload too low", []BandwidthInterval{{EndHourOfDay: 9, DaysOfWeek: day, UploadBitsPerSec: 51199}}, false},
		{"download too low", []BandwidthInterval{{EndHourOfDay: 9, DaysOfWeek: day, DownloadBitsPerSec: 102399}}, false},
		{"minimums", []BandwidthInterval{{EndHourOfDay: 9, DaysOfWeek: day, UploadBitsPerSec: 51200, DownloadBitsPerSec: 102400}}, true},
		{"hour 24", []BandwidthInterval{{EndHourOfDay: 24, DaysOfWeek: day}}, false},
	} {
		_, err := checkSchedule(c.ivs)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
		if err != nil && !IsCode(err, CodeInvalidParameters) {
			t.Errorf("%s: %v is not InvalidParameters", c.name, err)
		}
	}
}
