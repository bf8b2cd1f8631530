package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/volgw/volgw/internal/catalog"
)

// Bandwidth rate limits (UpdateBandwidthRateLimit, its schedule, and the
// Describe and Delete operations), and the rates they put in force.
//
// How the plain limits and the schedule combine. On AWS both exist for a
// volume gateway: the plain limits are the gateway's standing limits, and
// a schedule interval, while it is in force, sets the limits instead. volgw
// keeps that model: at any instant the rates in force are those of the
// schedule interval that covers it (in the gateway's time zone; an
// interval's absent rate is no limit in that direction), else the plain
// limits (absent: no limit). DescribeBandwidthRateLimit reports the plain
// limits, and only those set: absent, not zero, when there is none, as AWS
// answers. Intervals are whole minutes, the end minute included (00:00 to
// 23:59 is the whole day), and may not overlap on a day.
//
// One volgw process has one object store, so its limits are one pair of
// rates: with several gateways activated on it, the smallest rate any of
// them puts in force applies.

// BandwidthLimiter is where the rates in force go: the pacing of the
// gateway's traffic with its object store. Rates are in bits per second;
// zero means no limit.
type BandwidthLimiter interface {
	SetRates(uploadBitsPerSec, downloadBitsPerSec int64)
}

// BandwidthLimits is DescribeBandwidthRateLimit's answer and
// UpdateBandwidthRateLimit's input: zero is "not set".
type BandwidthLimits struct {
	GatewayARN         string
	UploadBitsPerSec   int64
	DownloadBitsPerSec int64
}

// BandwidthInterval is one interval of a schedule, as the API has it.
type BandwidthInterval struct {
	StartHourOfDay, StartMinuteOfHour int
	EndHourOfDay, EndMinuteOfHour     int
	DaysOfWeek                        []int
	UploadBitsPerSec                  int64 // 0: no limit in the interval
	DownloadBitsPerSec                int64
}

// The bandwidth types of DeleteBandwidthRateLimit.
const (
	BandwidthUpload   = "UPLOAD"
	BandwidthDownload = "DOWNLOAD"
	BandwidthAll      = "ALL"
)

// Minimum rates, as the model constrains them (the validator refuses less
// before control is reached; control checks again for other callers).
const (
	minUploadBitsPerSec   = 51200
	minDownloadBitsPerSec = 102400
)

func bandwidthOf(tx *catalog.Tx, g catalog.Gateway) (catalog.Bandwidth, error) {
	b, err := tx.Bandwidth(g.ARN)
	if errors.Is(err, catalog.ErrNotFound) {
		return catalog.Bandwidth{GatewayARN: g.ARN}, nil
	}
	return b, err
}

// DescribeBandwidthRateLimit returns the gateway's plain limits.
func (s *Service) DescribeBandwidthRateLimit(ctx context.Context, gatewayARN string) (BandwidthLimits, error) {
	var out BandwidthLimits
	err := s.view(func(tx *catalog.Tx) error {
		g, err := s.runningGatewayTx(tx, gatewayARN)
		if err != nil {
			return err
		}
		b, err := bandwidthOf(tx, g)
		out = BandwidthLimits{GatewayARN: g.ARN, UploadBitsPerSec: b.Upload, DownloadBitsPerSec: b.Download}
		return err
	})
	return out, err
}

// UpdateBandwidthRateLimit sets the plain limits given (a zero one is left
// as it is); at least one must be given.
func (s *Service) UpdateBandwidthRateLimit(ctx context.Context, in BandwidthLimits) (string, error) {
	if in.UploadBitsPerSec == 0 && in.DownloadBitsPerSec == 0 {
		// AWS: "you must specify at least one of the rate limits".
		return "", invalidParameters("The request must contain AverageUploadRateLimitInBitsPerSec, AverageDownloadRateLimitInBitsPerSec, or both.")
	}
	if err := checkRates(in.UploadBitsPerSec, in.DownloadBitsPerSec); err != nil {
		return "", err
	}
	return s.changeBandwidth(ctx, in.GatewayARN, func(b *catalog.Bandwidth) {
		if in.UploadBitsPerSec != 0 {
			b.Upload = in.UploadBitsPerSec
		}
		if in.DownloadBitsPerSec != 0 {
			b.Download = in.DownloadBitsPerSec
		}
	})
}

// DeleteBandwidthRateLimit removes the plain upload limit, download limit
// or both (the schedule stays).
func (s *Service) DeleteBandwidthRateLimit(ctx context.Context, gatewayARN, bandwidthType string) (string, error) {
	switch bandwidthType {
	case BandwidthUpload, BandwidthDownload, BandwidthAll:
	default:
		return "", invalidParameters(fmt.Sprintf("The bandwidth type %q is not valid: it must be UPLOAD, DOWNLOAD or ALL.", bandwidthType))
	}
	return s.changeBandwidth(ctx, gatewayARN, func(b *catalog.Bandwidth) {
		if bandwidthType != BandwidthDownload {
			b.Upload = 0
		}
		if bandwidthType != BandwidthUpload {
			b.Download = 0
		}
	})
}

// DescribeBandwidthRateLimitSchedule returns the gateway's schedule (an
// empty list when it has none, as AWS answers).
func (s *Service) DescribeBandwidthRateLimitSchedule(ctx context.Context, gatewayARN string) (string, []BandwidthInterval, error) {
	var arn string
	var out []BandwidthInterval
	err := s.view(func(tx *catalog.Tx) error {
		g, err := s.runningGatewayTx(tx, gatewayARN)
		if err != nil {
			return err
		}
		arn = g.ARN
		b, err := bandwidthOf(tx, g)
		out = make([]BandwidthInterval, 0, len(b.Intervals))
		for _, iv := range b.Intervals {
			out = append(out, BandwidthInterval{StartHourOfDay: iv.Start / 60, StartMinuteOfHour: iv.Start % 60,
				EndHourOfDay: iv.End / 60, EndMinuteOfHour: iv.End % 60, DaysOfWeek: slices.Clone(iv.DaysOfWeek),
				UploadBitsPerSec: iv.Upload, DownloadBitsPerSec: iv.Download})
		}
		return err
	})
	return arn, out, err
}

// UpdateBandwidthRateLimitSchedule replaces the gateway's schedule (an
// empty list removes it).
func (s *Service) UpdateBandwidthRateLimitSchedule(ctx context.Context, gatewayARN string, intervals []BandwidthInterval) (string, error) {
	ivs, err := checkSchedule(intervals)
	if err != nil {
		return "", err
	}
	return s.changeBandwidth(ctx, gatewayARN, func(b *catalog.Bandwidth) { b.Intervals = ivs })
}

func checkRates(up, down int64) error {
	if up != 0 && up < minUploadBitsPerSec {
		return invalidParameters(fmt.Sprintf("The upload rate limit %d is below the minimum of %d bits per second.", up, minUploadBitsPerSec))
	}
	if down != 0 && down < minDownloadBitsPerSec {
		return invalidParameters(fmt.Sprintf("The download rate limit %d is below the minimum of %d bits per second.", down, minDownloadBitsPerSec))
	}
	return nil
}

// checkSchedule validates a schedule and returns it as the catalog keeps
// it (days sorted and unique).
func checkSchedule(intervals []BandwidthInterval) ([]catalog.BandwidthInterval, error) {
	out := make([]catalog.BandwidthInterval, 0, len(intervals))
	for i, in := range intervals {
		iv := catalog.BandwidthInterval{Start: in.StartHourOfDay*60 + in.StartMinuteOfHour, End: in.EndHourOfDay*60 + in.EndMinuteOfHour,
			Upload: in.UploadBitsPerSec, Download: in.DownloadBitsPerSec}
		if in.StartHourOfDay < 0 || in.StartHourOfDay > 23 || in.EndHourOfDay < 0 || in.EndHourOfDay > 23 ||
			in.StartMinuteOfHour < 0 || in.StartMinuteOfHour > 59 || in.EndMinuteOfHour < 0 || in.EndMinuteOfHour > 59 {
			return nil, invalidParameters(fmt.Sprintf("Bandwidth rate limit interval %d: hours must be 0 to 23 and minutes 0 to 59.", i+1))
		}
		if iv.Start > iv.End {
			return nil, invalidParameters(fmt.Sprintf("Bandwidth rate limit interval %d: the start time must not be later than the end time.", i+1))
		}
		if len(in.DaysOfWeek) == 0 {
			return nil, invalidParameters(fmt.Sprintf("Bandwidth rate limit interval %d: DaysOfWeek must name at least one day.", i+1))
		}
		for _, d := range in.DaysOfWeek {
			if d < 0 || d > 6 {
				return nil, invalidParameters(fmt.Sprintf("Bandwidth rate limit interval %d: days of the week are 0 (Sunday) to 6.", i+1))
			}
			if !slices.Contains(iv.DaysOfWeek, d) {
				iv.DaysOfWeek = append(iv.DaysOfWeek, d)
			}
		}
		slices.Sort(iv.DaysOfWeek)
		if err := checkRates(iv.Upload, iv.Download); err != nil {
			return nil, err
		}
		for j, o := range out {
			if o.Start <= iv.End && iv.Start <= o.End && slices.ContainsFunc(o.DaysOfWeek, func(d int) bool { return slices.Contains(iv.DaysOfWeek, d) }) {
				return nil, invalidParameters(fmt.Sprintf("Bandwidth rate limit intervals %d and %d overlap.", j+1, i+1))
			}
		}
		out = append(out, iv)
	}
	return out, nil
}

// changeBandwidth applies change to the gateway's record and puts the
// resulting rates in force.
func (s *Service) changeBandwidth(ctx context.Context, gatewayARN string, change func(*catalog.Bandwidth)) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var arn string
	err := s.update(func(tx *catalog.Tx) error {
		g, err := s.runningGatewayTx(tx, gatewayARN)
		if err != nil {
			return err
		}
		arn = g.ARN
		b, err := bandwidthOf(tx, g)
		if err != nil {
			return err
		}
		change(&b)
		return tx.PutBandwidth(b)
	})
	if err != nil {
		return "", err
	}
	return arn, s.applyBandwidthLocked()
}

// ApplyBandwidth puts in force the rates of now (the schedule's interval
// or the plain limits). main calls it every minute, at the minute, so
// that a schedule's boundary takes effect within a second; control calls
// it at Start and after every change.
func (s *Service) ApplyBandwidth(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applyBandwidthLocked()
}

// applyBandwidthLocked: s.mu held.
func (s *Service) applyBandwidthLocked() error {
	if s.bandwidth == nil {
		return nil
	}
	now := s.now()
	var up, down int64
	err := s.view(func(tx *catalog.Tx) error {
		gs, err := tx.Gateways()
		if err != nil {
			return err
		}
		for _, g := range gs {
			if g.State != catalog.GatewayRunning {
				continue
			}
			b, err := bandwidthOf(tx, g)
			if err != nil {
				return err
			}
			u, d := ratesAt(b, now.In(gatewayLocation(g.Timezone)))
			up, down = strictest(up, u), strictest(down, d)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if up != s.rates[0] || down != s.rates[1] {
		s.log.Info("bandwidth rate limits in force", "upload_bits_per_sec", up, "download_bits_per_sec", down)
		s.rates = [2]int64{up, down}
	}
	s.bandwidth.SetRates(up, down)
	return nil
}

// ratesAt returns the rates in force at local (in the gateway's zone).
func ratesAt(b catalog.Bandwidth, local time.Time) (up, down int64) {
	minute := local.Hour()*60 + local.Minute()
	day := int(local.Weekday())
	for _, iv := range b.Intervals {
		if iv.Start <= minute && minute <= iv.End && slices.Contains(iv.DaysOfWeek, day) {
			return iv.Upload, iv.Download
		}
	}
	return b.Upload, b.Download
}

// strictest combines two rates where 0 is no limit.
func strictest(a, b int64) int64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}
