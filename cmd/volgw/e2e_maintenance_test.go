package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
)

// TestMaintenanceStartTimeClients: DescribeMaintenanceStartTime and
// UpdateMaintenanceStartTime through boto3 and the AWS CLI: the default
// weekly window of a new gateway, weekly and monthly updates and the
// update policy alone, each read back, refusals that change nothing, and
// the window kept across a restart.
func TestMaintenanceStartTimeClients(t *testing.T) {
	dataDir := t.TempDir()
	s := startServer(t, dataDir)
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint()) // GMT
	unknownGW := "arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-0000AAAA"
	const badSchedule = "The maintenance schedule is not valid: give both HourOfDay and MinuteOfHour, and either DayOfWeek or DayOfMonth (not both), or only SoftwareUpdatePreferences."

	describe := func(name string) boto3Call {
		return boto3Call{Name: name, Service: "storagegateway", Op: "DescribeMaintenanceStartTime", Params: map[string]any{"GatewayARN": g.arn}}
	}
	update := func(name string, p map[string]any) boto3Call {
		p["GatewayARN"] = g.arn
		return boto3Call{Name: name, Service: "storagegateway", Op: "UpdateMaintenanceStartTime", Params: p}
	}
	calls := []boto3Call{
		describe("default"),
		update("weekly", map[string]any{"HourOfDay": 3, "MinuteOfHour": 15, "DayOfWeek": 6}),
		describe("after weekly"),
		update("no minute", map[string]any{"HourOfDay": 3, "DayOfWeek": 6}),
		update("no day", map[string]any{"HourOfDay": 3, "MinuteOfHour": 0}),
		update("both days", map[string]any{"HourOfDay": 3, "MinuteOfHour": 0, "DayOfWeek": 1, "DayOfMonth": 1}),
		update("nothing", map[string]any{}),
		update("hour 24", map[string]any{"HourOfDay": 24, "MinuteOfHour": 0, "DayOfWeek": 1}),
		update("day of month 29", map[string]any{"HourOfDay": 1, "MinuteOfHour": 0, "DayOfMonth": 29}),
		{Name: "unknown gateway", Service: "storagegateway", Op: "DescribeMaintenanceStartTime", Params: map[string]any{"GatewayARN": unknownGW}},
		describe("after refusals"),
	}
	seen := runBoto3(t, s, calls)
	window := func(name string) map[string]any {
		t.Helper()
		r := seen[name]
		if !r.OK {
			t.Fatalf("boto3 %s: %+v", name, r.seenError)
		}
		var m map[string]any
		if err := json.Unmarshal(r.Response, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	// (Debian's boto3 1.26 predates SoftwareUpdatePreferences: it drops
	// the member; the Go SDK and the AWS CLI v1 check it below.)
	def := window("default")
	if def["GatewayARN"] != g.arn || def["Timezone"] != "GMT" || def["DayOfMonth"] != nil || def["DayOfWeek"] == nil ||
		def["HourOfDay"] == nil || def["MinuteOfHour"] == nil {
		t.Errorf("default window %v", def)
	}
	want := func(name string, hour, minute, dow float64) {
		t.Helper()
		m := window(name)
		if m["HourOfDay"] != hour || m["MinuteOfHour"] != minute || m["DayOfWeek"] != dow || m["DayOfMonth"] != nil {
			t.Errorf("%s: %v", name, m)
		}
	}
	if r := seen["weekly"]; !r.OK || !strings.Contains(string(r.Response), g.arn) {
		t.Errorf("weekly update: %+v %s", r.seenError, r.Response)
	}
	want("after weekly", 3, 15, 6)
	want("after refusals", 3, 15, 6)

	// The update policy alone, through the Go SDK: the window stays.
	sgw, rec := recordingSGW(s.endpoint())
	if _, err := sgw.DescribeMaintenanceStartTime(ctx, &storagegateway.DescribeMaintenanceStartTimeInput{GatewayARN: aws.String(g.arn)}); err != nil {
		t.Fatal(err)
	}
	if p, _ := rec.members(t)["SoftwareUpdatePreferences"].(map[string]any); p["AutomaticUpdatePolicy"] != "ALL_VERSIONS" {
		t.Errorf("default update policy: %v", rec.members(t))
	}
	if _, err := sgw.UpdateMaintenanceStartTime(ctx, &storagegateway.UpdateMaintenanceStartTimeInput{GatewayARN: aws.String(g.arn),
		SoftwareUpdatePreferences: &sgwtypes.SoftwareUpdatePreferences{AutomaticUpdatePolicy: sgwtypes.AutomaticUpdatePolicyEmergencyVersionsOnly}}); err != nil {
		t.Fatal(err)
	}
	got, err := sgw.DescribeMaintenanceStartTime(ctx, &storagegateway.DescribeMaintenanceStartTimeInput{GatewayARN: aws.String(g.arn)})
	if err != nil || aws.ToInt32(got.HourOfDay) != 3 || aws.ToInt32(got.MinuteOfHour) != 15 || aws.ToInt32(got.DayOfWeek) != 6 ||
		got.SoftwareUpdatePreferences == nil || got.SoftwareUpdatePreferences.AutomaticUpdatePolicy != sgwtypes.AutomaticUpdatePolicyEmergencyVersionsOnly {
		t.Fatalf("after the policy update: %+v %v", got, err)
	}
	for name, w := range map[string][3]string{
		"no minute":       {"InvalidGatewayRequestException", "InvalidParameters", badSchedule},
		"no day":          {"InvalidGatewayRequestException", "InvalidParameters", badSchedule},
		"both days":       {"InvalidGatewayRequestException", "InvalidParameters", badSchedule},
		"nothing":         {"InvalidGatewayRequestException", "InvalidParameters", badSchedule},
		"unknown gateway": {"InvalidGatewayRequestException", "GatewayNotFound", gatewayNotFound},
	} {
		got := seen[name].seenError
		if got.OK || got.Status != 400 || got.Code != w[0] || got.ErrorCode != w[1] || got.Message != w[2] {
			t.Errorf("boto3 %s: %+v; want %v", name, got, w)
		}
	}
	// Out of the model's range or enum: the model's validation answers.
	for _, name := range []string{"hour 24", "day of month 29"} {
		if got := seen[name].seenError; got.OK || got.Status != 400 {
			t.Errorf("boto3 %s: %+v; want a 400", name, got)
		}
	}

	// The AWS CLI: monthly, read back, refusals.
	for name, cli := range awsCLIs(t) {
		out, ok := runCLI(t, s, cli, "storagegateway", "update-maintenance-start-time", "--gateway-arn", g.arn,
			"--hour-of-day", "23", "--minute-of-hour", "59", "--day-of-month", "28")
		if !ok || !strings.Contains(out, g.arn) {
			t.Fatalf("%s update-maintenance-start-time: %s", name, out)
		}
		out, ok = runCLI(t, s, cli, "storagegateway", "describe-maintenance-start-time", "--gateway-arn", g.arn)
		var m map[string]any
		if !ok || json.Unmarshal([]byte(out), &m) != nil || m["HourOfDay"] != 23.0 || m["MinuteOfHour"] != 59.0 ||
			m["DayOfMonth"] != 28.0 || m["DayOfWeek"] != nil || m["Timezone"] != "GMT" {
			t.Fatalf("%s describe-maintenance-start-time: %s", name, out)
		}
		out, ok = runCLI(t, s, cli, "storagegateway", "update-maintenance-start-time", "--gateway-arn", g.arn,
			"--hour-of-day", "1", "--minute-of-hour", "0", "--day-of-week", "2", "--day-of-month", "3")
		wantCLIError(t, name+" update-maintenance-start-time with both days", out, ok, "InvalidGatewayRequestException", badSchedule)
		if name == "v1" { // the v2 CLI of Debian predates the member
			out, ok = runCLI(t, s, cli, "storagegateway", "update-maintenance-start-time", "--gateway-arn", g.arn,
				"--software-update-preferences", "AutomaticUpdatePolicy=NOT_A_POLICY")
			if ok {
				t.Errorf("%s update-maintenance-start-time with a bad policy: %s", name, out)
			}
		}
		out, ok = runCLI(t, s, cli, "storagegateway", "describe-maintenance-start-time", "--gateway-arn", unknownGW)
		wantCLIError(t, name+" describe-maintenance-start-time unknown gateway", out, ok, "InvalidGatewayRequestException", gatewayNotFound)
	}

	// Across a restart.
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, dataDir)
	seen = runBoto3(t, s, []boto3Call{describe("after restart")})
	m := window("after restart")
	if m["HourOfDay"] != 23.0 || m["MinuteOfHour"] != 59.0 || m["DayOfMonth"] != 28.0 || m["DayOfWeek"] != nil {
		t.Fatalf("window after a restart: %v", m)
	}
	sgw, _ = recordingSGW(s.endpoint())
	got, err = sgw.DescribeMaintenanceStartTime(ctx, &storagegateway.DescribeMaintenanceStartTimeInput{GatewayARN: aws.String(g.arn)})
	if err != nil || got.SoftwareUpdatePreferences == nil || got.SoftwareUpdatePreferences.AutomaticUpdatePolicy != sgwtypes.AutomaticUpdatePolicyEmergencyVersionsOnly {
		t.Fatalf("update policy after a restart: %+v %v", got, err)
	}
}
