package product

import (
	"context"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
)

// bucketMeter samples the bytes a versitygw bucket holds (its posix
// directory), once a second: what arrived in the store, measured at the
// store.
type bucketMeter struct {
	dir     string
	mu      sync.Mutex
	samples []meterSample
	stop    chan struct{}
	done    chan struct{}
}

type meterSample struct {
	at    time.Time
	bytes int64
}

func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func startMeter(dir string, every time.Duration) *bucketMeter {
	m := &bucketMeter{dir: dir, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s := meterSample{at: time.Now(), bytes: dirBytes(dir)}
			m.mu.Lock()
			m.samples = append(m.samples, s)
			m.mu.Unlock()
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

func (m *bucketMeter) finish() []meterSample {
	close(m.stop)
	<-m.done
	return m.samples
}

// rateBetween is the rate in Mbit/s of the bytes that arrived between the
// samples at or after from and at or before to.
func rateBetween(s []meterSample, from, to time.Time) float64 {
	var a, b *meterSample
	for i := range s {
		if a == nil && !s[i].at.Before(from) {
			a = &s[i]
		}
		if !s[i].at.After(to) {
			b = &s[i]
		}
	}
	if a == nil || b == nil || !b.at.After(a.at) {
		return 0
	}
	return float64(b.bytes-a.bytes) * 8 / b.at.Sub(a.at).Seconds() / 1e6
}

// steadyRate is the rate over the part of a transfer between 10% and 90%
// of the bytes that arrived (the start and the tail are not the
// limiter's); a transfer too short for that, from its first sample that
// grew to its last.
func steadyRate(s []meterSample) float64 {
	if len(s) < 3 {
		return 0
	}
	base, total := s[0].bytes, s[len(s)-1].bytes-s[0].bytes
	var from, to, first, last time.Time
	for i, x := range s {
		if from.IsZero() && x.bytes-base >= total/10 {
			from = x.at
		}
		if x.bytes-base <= total*9/10 {
			to = x.at
		}
		if i > 0 && x.bytes > s[i-1].bytes {
			if first.IsZero() {
				first = s[i-1].at
			}
			last = x.at
		}
	}
	if r := rateBetween(s, from, to); r > 0 {
		return r
	}
	return rateBetween(s, first, last)
}

// TestThrottleBench: bandwidth limits as a user sets them, measured at the
// store. volgw serve on a versitygw bucket, a gateway and a 4 GiB volume
// created through the API, fresh random data written over iSCSI
// (qemu-img convert); the bucket's bytes sampled every second.
//
//   - An upload limit of 100 Mbit/s (UpdateBandwidthRateLimit): the rate
//     at which the data arrives in the bucket, and while it is throttled,
//     what ListVolumeRecoveryPoints and DescribeUploadBuffer say against
//     what has reached the bucket. Also without a limit, for scale.
//   - A schedule (UpdateBandwidthRateLimitSchedule) at 50 Mbit/s until a
//     minute boundary and 200 Mbit/s from it: the rates before and after,
//     and when after the boundary the rate switched.
//   - A download limit of 200 Mbit/s: a cold sequential read after a
//     restart (qemu-img bench), its rate against the limit.
func TestThrottleBench(t *testing.T) {
	e := newBenchEnv(t)
	ctx := context.Background()
	rounds := envInt("VOLGW_BENCH_ROUNDS", 3)
	loadBefore := loadavg()
	endpoint, err := e.startVersityGW("volgw")
	if err != nil {
		t.Fatal(err)
	}
	bucket := filepath.Join(e.dir, "s3", "volgw")
	q := url.Values{"endpoint": {endpoint}, "region": {"us-east-1"}, "path_style": {"true"}}
	g, err := e.startGateway(ctx, filepath.Join(e.dir, "volgw-data"), []string{"--store", "s3://volgw/gw?" + q.Encode()},
		[]string{"VOLGW_S3_ACCESS_KEY_ID=" + s3Key, "VOLGW_S3_SECRET_ACCESS_KEY=" + s3Secret})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.activate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.createVolume(ctx, 4<<30, "throttle"); err != nil {
		t.Fatal(err)
	}
	gw := aws.String(g.gwARN)
	setUpload := func(bits int64) {
		t.Helper()
		var err error
		if bits == 0 {
			_, err = g.sgw.DeleteBandwidthRateLimit(ctx, &storagegateway.DeleteBandwidthRateLimitInput{GatewayARN: gw, BandwidthType: aws.String("ALL")})
		} else {
			_, err = g.sgw.UpdateBandwidthRateLimit(ctx, &storagegateway.UpdateBandwidthRateLimitInput{GatewayARN: gw, AverageUploadRateLimitInBitsPerSec: aws.Int64(bits)})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// write copies n bytes of fresh random data to the volume and returns
	// when qemu-img returned (acknowledged), and the file.
	write := func(n int64, round int) time.Time {
		t.Helper()
		src, err := randomFile(filepath.Join(e.dir, fmt.Sprintf("data-%d", round)), n)
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(src)
		_, end, err := qemuConvert(ctx, device{name: "volgw", url: g.lun}, src)
		if err != nil {
			t.Fatal(err)
		}
		return end
	}
	var report strings.Builder
	fmt.Fprintf(&report, "volgw serve on one versitygw on 127.0.0.1, a 4 GiB volume created through the API, fresh random data written with `qemu-img convert -W -m 8` over iSCSI; rates measured at the store (the bucket's bytes, sampled every second), between 10%% and 90%% of each transfer; load average %s before.\n\n", loadBefore)
	report.WriteString("| row | limit | measured, median (min–max) | ÷ limit |\n|---|---:|---:|---:|\n")
	row := func(name string, limit float64, xs []float64) {
		lim, ratio := "none", "—"
		if limit > 0 {
			lim = num(limit) + " Mbit/s"
			ratio = fmt.Sprintf("%.3f", median(xs)/limit)
		}
		fmt.Fprintf(&report, "| %s | %s | %s Mbit/s (%s–%s) | %s |\n", name, lim, num(median(xs)), num(minOf(xs)), num(maxOf(xs)), ratio)
	}

	// 1. Upload: 100 Mbit/s, and none, interleaved.
	const upData = 256 << 20
	var limited, unlimited []float64
	var truth []string
	for r := range rounds {
		for _, bits := range []int64{100_000_000, 0} {
			setUpload(bits)
			m := startMeter(bucket, 200*time.Millisecond)
			end := write(upData, 10*r+int(bits/1e8))
			if bits != 0 && r == 0 {
				// Half way through the upload: what the API says against
				// what the bucket holds.
				time.Sleep(8 * time.Second)
				truth = append(truth, throttledTruth(ctx, t, g, bucket, m, upData, end))
			}
			if _, err := g.waitDurable(ctx, end); err != nil {
				t.Fatal(err)
			}
			rate := steadyRate(m.finish())
			if bits != 0 {
				limited = append(limited, rate)
			} else {
				unlimited = append(unlimited, rate)
			}
			t.Logf("round %d, upload limit %d bit/s: %.1f Mbit/s into the bucket", r, bits, rate)
		}
	}
	row("upload, `UpdateBandwidthRateLimit` 100 Mbit/s", 100, limited)
	row("upload, no limit (for scale)", 0, unlimited)

	// 2. A schedule switching at a minute boundary.
	var before, after, switchAt []float64
	for r := range rounds {
		setUpload(0)
		// The boundary: the next minute start at least 35 s away (and not
		// at midnight, which a same-day interval cannot span).
		now := time.Now().UTC()
		boundary := now.Truncate(time.Minute).Add(time.Minute)
		if boundary.Sub(now) < 35*time.Second {
			boundary = boundary.Add(time.Minute)
		}
		if boundary.Hour() == 0 && boundary.Minute() <= 1 || boundary.Hour() == 23 && boundary.Minute() >= 57 {
			time.Sleep(boundary.Sub(now) + 3*time.Minute)
			now = time.Now().UTC()
			boundary = now.Truncate(time.Minute).Add(2 * time.Minute)
		}
		start := boundary.Add(-2 * time.Minute)
		last := boundary.Add(3 * time.Minute)
		day := []int32{int32(boundary.Weekday())}
		iv := func(from, to time.Time, bits int64) sgwtypes.BandwidthRateLimitInterval {
			return sgwtypes.BandwidthRateLimitInterval{StartHourOfDay: aws.Int32(int32(from.Hour())), StartMinuteOfHour: aws.Int32(int32(from.Minute())),
				EndHourOfDay: aws.Int32(int32(to.Hour())), EndMinuteOfHour: aws.Int32(int32(to.Minute())), DaysOfWeek: day,
				AverageUploadRateLimitInBitsPerSec: aws.Int64(bits)}
		}
		if _, err := g.sgw.UpdateBandwidthRateLimitSchedule(ctx, &storagegateway.UpdateBandwidthRateLimitScheduleInput{GatewayARN: gw,
			BandwidthRateLimitIntervals: []sgwtypes.BandwidthRateLimitInterval{
				iv(start, boundary.Add(-time.Minute), 50_000_000), iv(boundary, last, 200_000_000)}}); err != nil {
			t.Fatal(err)
		}
		m := startMeter(bucket, 500*time.Millisecond)
		// Enough for the upload to run well past the boundary: what 50
		// Mbit/s leaves by then plus 15 s at 200.
		n := int64(time.Until(boundary).Seconds()*50e6/8) + 15*200e6/8
		n = n >> 20 << 20
		end := write(n, 100+r)
		if _, err := g.waitDurable(ctx, end); err != nil {
			t.Fatal(err)
		}
		s := m.finish()
		b := rateBetween(s, boundary.Add(-20*time.Second), boundary.Add(-time.Second))
		a := rateBetween(s, boundary.Add(2*time.Second), boundary.Add(10*time.Second))
		sw := -1.0
		for i := 1; i < len(s); i++ {
			if !s[i-1].at.Before(boundary) {
				per := float64(s[i].bytes-s[i-1].bytes) * 8 / s[i].at.Sub(s[i-1].at).Seconds() / 1e6
				if per > 125 {
					sw = s[i-1].at.Sub(boundary).Seconds()
					break
				}
			}
		}
		before, after, switchAt = append(before, b), append(after, a), append(switchAt, sw)
		t.Logf("round %d: boundary %s, %.1f Mbit/s before, %.1f after, switched %.1f s after it", r, boundary.Format("15:04"), b, a, sw)
		if _, err := g.sgw.UpdateBandwidthRateLimitSchedule(ctx, &storagegateway.UpdateBandwidthRateLimitScheduleInput{GatewayARN: gw,
			BandwidthRateLimitIntervals: []sgwtypes.BandwidthRateLimitInterval{}}); err != nil {
			t.Fatal(err)
		}
	}
	row("upload, schedule: the 20 s before the boundary", 50, before)
	row("upload, schedule: 2–10 s after the boundary", 200, after)

	// 3. Download: a cold read under 200 Mbit/s.
	var down []float64
	if _, err := g.sgw.UpdateBandwidthRateLimit(ctx, &storagegateway.UpdateBandwidthRateLimitInput{GatewayARN: gw, AverageDownloadRateLimitInBitsPerSec: aws.Int64(200_000_000)}); err != nil {
		t.Fatal(err)
	}
	for r := range rounds {
		if err := g.restart(ctx); err != nil { // the cache is cold after a restart
			t.Fatal(err)
		}
		mbps, out, err := qemuBench(ctx, device{name: "volgw", url: g.lun}, false, 1<<20, 0, 8, 256)
		if err != nil {
			t.Fatalf("qemu-img bench: %v\n%s", err, out)
		}
		down = append(down, mbps*8)
		t.Logf("round %d: cold read at %.1f Mbit/s under a 200 Mbit/s download limit", r, mbps*8)
	}
	row("cold read (qemu-img bench 1 MiB QD8, 256 MiB), `AverageDownloadRateLimitInBitsPerSec` 200 Mbit/s", 200, down)
	fmt.Fprintf(&report, "\nThe schedule switched %s s after the boundary (median of %d; the gateway applies its schedule at every minute's start). %d rounds, interleaved where they can be; load average %s after.\n",
		num(median(switchAt)), rounds, rounds, loadavg())
	for _, s := range truth {
		fmt.Fprintf(&report, "\n%s\n", s)
	}
	t.Logf("\n%s", report.String())
	if path := os.Getenv("VOLGW_BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// throttledTruth compares, mid-upload, what the API says with what the
// bucket holds: the recovery point's age, DescribeUploadBuffer's used
// bytes against the data written and not yet in the bucket.
func throttledTruth(ctx context.Context, t *testing.T, g *gateway, bucket string, m *bucketMeter, written int64, writeEnd time.Time) string {
	rp, err := g.recoveryPoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ub, err := g.sgw.DescribeUploadBuffer(ctx, &storagegateway.DescribeUploadBufferInput{GatewayARN: aws.String(g.gwARN)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m.mu.Lock()
	arrived := dirBytes(bucket) - m.samples[0].bytes
	m.mu.Unlock()
	used := ub.UploadBufferUsedInBytes
	return fmt.Sprintf("While throttled at 100 Mbit/s, %.0f s after %d MiB were acknowledged: %d MiB had reached the bucket, so %d MiB were still to upload; `DescribeUploadBuffer` said `UploadBufferUsedInBytes` %d MiB; `ListVolumeRecoveryPoints` said %s, %.1f s old (the write ended %.1f s before: the recovery point stays before the write until its last byte is in the store).",
		now.Sub(writeEnd).Seconds(), written>>20, arrived>>20, (written-arrived)>>20, used>>20, rp.Format(time.RFC3339), now.Sub(rp).Seconds(), now.Sub(writeEnd).Seconds())
}

func minOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
