package sgwapi

import (
	"context"

	"github.com/volgw/volgw/internal/control"
)

// The bandwidth rate limit operations (control/bandwidth.go says how the
// plain limits and the schedule combine). Rates absent on the wire are
// zero in control ("not set"); answers leave out the ones not set.

type bandwidthRateLimit struct {
	GatewayARN                           string `json:"GatewayARN"`
	AverageUploadRateLimitInBitsPerSec   *int64 `json:"AverageUploadRateLimitInBitsPerSec,omitempty"`
	AverageDownloadRateLimitInBitsPerSec *int64 `json:"AverageDownloadRateLimitInBitsPerSec,omitempty"`
}

type deleteBandwidthRateLimitInput struct {
	GatewayARN    string `json:"GatewayARN"`
	BandwidthType string `json:"BandwidthType"`
}

type bandwidthRateLimitInterval struct {
	StartHourOfDay                       int    `json:"StartHourOfDay"`
	StartMinuteOfHour                    int    `json:"StartMinuteOfHour"`
	EndHourOfDay                         int    `json:"EndHourOfDay"`
	EndMinuteOfHour                      int    `json:"EndMinuteOfHour"`
	DaysOfWeek                           []int  `json:"DaysOfWeek"`
	AverageUploadRateLimitInBitsPerSec   *int64 `json:"AverageUploadRateLimitInBitsPerSec,omitempty"`
	AverageDownloadRateLimitInBitsPerSec *int64 `json:"AverageDownloadRateLimitInBitsPerSec,omitempty"`
}

type bandwidthRateLimitSchedule struct {
	GatewayARN                  string                       `json:"GatewayARN"`
	BandwidthRateLimitIntervals []bandwidthRateLimitInterval `json:"BandwidthRateLimitIntervals"`
}

// rate is a set rate's wire form: nil when not set.
func rate(r int64) *int64 {
	if r == 0 {
		return nil
	}
	return &r
}

func rateOf(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func describeBandwidthRateLimit(svc *control.Service) handler {
	return op(func(ctx context.Context, in gatewayARNInput) (any, error) {
		l, err := svc.DescribeBandwidthRateLimit(ctx, in.GatewayARN)
		if err != nil {
			return nil, err
		}
		return bandwidthRateLimit{GatewayARN: l.GatewayARN, AverageUploadRateLimitInBitsPerSec: rate(l.UploadBitsPerSec),
			AverageDownloadRateLimitInBitsPerSec: rate(l.DownloadBitsPerSec)}, nil
	})
}

func updateBandwidthRateLimit(svc *control.Service) handler {
	return op(func(ctx context.Context, in bandwidthRateLimit) (any, error) {
		arn, err := svc.UpdateBandwidthRateLimit(ctx, control.BandwidthLimits{GatewayARN: in.GatewayARN,
			UploadBitsPerSec: rateOf(in.AverageUploadRateLimitInBitsPerSec), DownloadBitsPerSec: rateOf(in.AverageDownloadRateLimitInBitsPerSec)})
		return gatewayARNOutput{arn}, err
	})
}

func deleteBandwidthRateLimit(svc *control.Service) handler {
	return op(func(ctx context.Context, in deleteBandwidthRateLimitInput) (any, error) {
		arn, err := svc.DeleteBandwidthRateLimit(ctx, in.GatewayARN, in.BandwidthType)
		return gatewayARNOutput{arn}, err
	})
}

func describeBandwidthRateLimitSchedule(svc *control.Service) handler {
	return op(func(ctx context.Context, in gatewayARNInput) (any, error) {
		arn, ivs, err := svc.DescribeBandwidthRateLimitSchedule(ctx, in.GatewayARN)
		if err != nil {
			return nil, err
		}
		out := bandwidthRateLimitSchedule{GatewayARN: arn, BandwidthRateLimitIntervals: []bandwidthRateLimitInterval{}}
		for _, iv := range ivs {
			out.BandwidthRateLimitIntervals = append(out.BandwidthRateLimitIntervals, bandwidthRateLimitInterval{
				StartHourOfDay: iv.StartHourOfDay, StartMinuteOfHour: iv.StartMinuteOfHour,
				EndHourOfDay: iv.EndHourOfDay, EndMinuteOfHour: iv.EndMinuteOfHour, DaysOfWeek: iv.DaysOfWeek,
				AverageUploadRateLimitInBitsPerSec: rate(iv.UploadBitsPerSec), AverageDownloadRateLimitInBitsPerSec: rate(iv.DownloadBitsPerSec),
			})
		}
		return out, nil
	})
}

func updateBandwidthRateLimitSchedule(svc *control.Service) handler {
	return op(func(ctx context.Context, in bandwidthRateLimitSchedule) (any, error) {
		ivs := make([]control.BandwidthInterval, 0, len(in.BandwidthRateLimitIntervals))
		for _, iv := range in.BandwidthRateLimitIntervals {
			ivs = append(ivs, control.BandwidthInterval{StartHourOfDay: iv.StartHourOfDay, StartMinuteOfHour: iv.StartMinuteOfHour,
				EndHourOfDay: iv.EndHourOfDay, EndMinuteOfHour: iv.EndMinuteOfHour, DaysOfWeek: iv.DaysOfWeek,
				UploadBitsPerSec: rateOf(iv.AverageUploadRateLimitInBitsPerSec), DownloadBitsPerSec: rateOf(iv.AverageDownloadRateLimitInBitsPerSec)})
		}
		arn, err := svc.UpdateBandwidthRateLimitSchedule(ctx, in.GatewayARN, ivs)
		return gatewayARNOutput{arn}, err
	})
}
