package sgwapi

import (
	"context"

	"github.com/volgw/volgw/internal/control"
)

type softwareUpdatePreferences struct {
	AutomaticUpdatePolicy *string `json:"AutomaticUpdatePolicy,omitempty"`
}

type updateMaintenanceStartTimeInput struct {
	GatewayARN                string                     `json:"GatewayARN"`
	HourOfDay                 *int                       `json:"HourOfDay"`
	MinuteOfHour              *int                       `json:"MinuteOfHour"`
	DayOfWeek                 *int                       `json:"DayOfWeek"`
	DayOfMonth                *int                       `json:"DayOfMonth"`
	SoftwareUpdatePreferences *softwareUpdatePreferences `json:"SoftwareUpdatePreferences"`
}

// describeMaintenanceStartTimeOutput: DayOfWeek or DayOfMonth, whichever
// the window has, as AWS answers.
type describeMaintenanceStartTimeOutput struct {
	GatewayARN                string                    `json:"GatewayARN"`
	HourOfDay                 int                       `json:"HourOfDay"`
	MinuteOfHour              int                       `json:"MinuteOfHour"`
	DayOfWeek                 *int                      `json:"DayOfWeek,omitempty"`
	DayOfMonth                *int                      `json:"DayOfMonth,omitempty"`
	Timezone                  string                    `json:"Timezone"`
	SoftwareUpdatePreferences softwareUpdatePreferences `json:"SoftwareUpdatePreferences"`
}

func describeMaintenanceStartTime(svc *control.Service) handler {
	return op(func(ctx context.Context, in gatewayARNInput) (any, error) {
		w, err := svc.DescribeMaintenanceStartTime(ctx, in.GatewayARN)
		if err != nil {
			return nil, err
		}
		return describeMaintenanceStartTimeOutput{
			GatewayARN: w.GatewayARN, HourOfDay: w.HourOfDay, MinuteOfHour: w.MinuteOfHour,
			DayOfWeek: w.DayOfWeek, DayOfMonth: w.DayOfMonth, Timezone: w.Timezone,
			SoftwareUpdatePreferences: softwareUpdatePreferences{AutomaticUpdatePolicy: &w.AutomaticUpdatePolicy},
		}, nil
	})
}

func updateMaintenanceStartTime(svc *control.Service) handler {
	return op(func(ctx context.Context, in updateMaintenanceStartTimeInput) (any, error) {
		u := control.MaintenanceUpdate{GatewayARN: in.GatewayARN, HourOfDay: in.HourOfDay, MinuteOfHour: in.MinuteOfHour,
			DayOfWeek: in.DayOfWeek, DayOfMonth: in.DayOfMonth}
		if p := in.SoftwareUpdatePreferences; p != nil {
			u.AutomaticUpdatePolicy = p.AutomaticUpdatePolicy
		}
		arn, err := svc.UpdateMaintenanceStartTime(ctx, u)
		return gatewayARNOutput{arn}, err
	})
}
