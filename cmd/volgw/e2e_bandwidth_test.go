package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
)

// metricValue reads one sample of /metrics, named as /metrics writes it
// (with its labels, if any).
func metricValue(t *testing.T, s *testServer, name string) float64 {
	t.Helper()
	resp, err := http.Get(s.endpoint() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestBandwidthRateLimitClients: the five bandwidth operations through
// boto3, the AWS CLI and the Go SDK: no limits on a new gateway (fields
// absent), limits set, partly deleted and read back, schedules set, read
// back and removed, the refusals, the rates in force on /metrics (the
// limiter the store's traffic passes), and all of it across a restart.
func TestBandwidthRateLimitClients(t *testing.T) {
	dataDir := t.TempDir()
	s := startServer(t, dataDir)
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint()) // GMT
	unknownGW := "arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-0000AAAA"

	call := func(name, op string, p map[string]any) boto3Call {
		if p == nil {
			p = map[string]any{}
		}
		if _, ok := p["GatewayARN"]; !ok {
			p["GatewayARN"] = g.arn
		}
		return boto3Call{Name: name, Service: "storagegateway", Op: op, Params: p}
	}
	allWeek := []int{0, 1, 2, 3, 4, 5, 6}
	calls := []boto3Call{
		call("describe new", "DescribeBandwidthRateLimit", nil),
		call("schedule new", "DescribeBandwidthRateLimitSchedule", nil),
		call("set upload", "UpdateBandwidthRateLimit", map[string]any{"AverageUploadRateLimitInBitsPerSec": 100_000_000}),
		call("set download", "UpdateBandwidthRateLimit", map[string]any{"AverageDownloadRateLimitInBitsPerSec": 200_000_000}),
		call("describe both", "DescribeBandwidthRateLimit", nil),
		call("set none", "UpdateBandwidthRateLimit", nil),
		call("upload too low", "UpdateBandwidthRateLimit", map[string]any{"AverageUploadRateLimitInBitsPerSec": 51199}),
		call("delete upload", "DeleteBandwidthRateLimit", map[string]any{"BandwidthType": "UPLOAD"}),
		call("delete bad type", "DeleteBandwidthRateLimit", map[string]any{"BandwidthType": "SIDEWAYS"}),
		call("describe download only", "DescribeBandwidthRateLimit", nil),
		call("set schedule", "UpdateBandwidthRateLimitSchedule", map[string]any{"BandwidthRateLimitIntervals": []map[string]any{
			{"StartHourOfDay": 9, "StartMinuteOfHour": 0, "EndHourOfDay": 16, "EndMinuteOfHour": 59, "DaysOfWeek": []int{5, 1, 2, 3, 4},
				"AverageUploadRateLimitInBitsPerSec": 10_000_000},
			{"StartHourOfDay": 0, "StartMinuteOfHour": 0, "EndHourOfDay": 23, "EndMinuteOfHour": 59, "DaysOfWeek": []int{0, 6},
				"AverageUploadRateLimitInBitsPerSec": 500_000_000, "AverageDownloadRateLimitInBitsPerSec": 500_000_000},
		}}),
		call("describe schedule", "DescribeBandwidthRateLimitSchedule", nil),
		call("overlap", "UpdateBandwidthRateLimitSchedule", map[string]any{"BandwidthRateLimitIntervals": []map[string]any{
			{"StartHourOfDay": 9, "StartMinuteOfHour": 0, "EndHourOfDay": 12, "EndMinuteOfHour": 0, "DaysOfWeek": []int{1}},
			{"StartHourOfDay": 12, "StartMinuteOfHour": 0, "EndHourOfDay": 13, "EndMinuteOfHour": 0, "DaysOfWeek": []int{1, 2}},
		}}),
		call("backwards", "UpdateBandwidthRateLimitSchedule", map[string]any{"BandwidthRateLimitIntervals": []map[string]any{
			{"StartHourOfDay": 10, "StartMinuteOfHour": 0, "EndHourOfDay": 9, "EndMinuteOfHour": 0, "DaysOfWeek": allWeek},
		}}),
		call("day 7", "UpdateBandwidthRateLimitSchedule", map[string]any{"BandwidthRateLimitIntervals": []map[string]any{
			{"StartHourOfDay": 0, "StartMinuteOfHour": 0, "EndHourOfDay": 1, "EndMinuteOfHour": 0, "DaysOfWeek": []int{7}},
		}}),
		call("describe schedule after refusals", "DescribeBandwidthRateLimitSchedule", nil),
		call("unknown gateway", "DescribeBandwidthRateLimit", map[string]any{"GatewayARN": unknownGW}),
	}
	seen := runBoto3(t, s, calls)
	response := func(name string) map[string]any {
		t.Helper()
		r := seen[name]
		if !r.OK {
			t.Fatalf("boto3 %s: %+v", name, r.seenError)
		}
		var m map[string]any
		if err := json.Unmarshal(r.Response, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "ResponseMetadata")
		return m
	}
	same := func(name string, got any, want string) {
		t.Helper()
		var w any
		if err := json.Unmarshal([]byte(want), &w); err != nil {
			t.Fatal(err)
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(w)
		if string(gb) != string(wb) {
			t.Errorf("boto3 %s:\n got %s\nwant %s", name, gb, wb)
		}
	}
	arn := `"GatewayARN":"` + g.arn + `"`
	same("describe new", response("describe new"), `{`+arn+`}`)
	same("schedule new", response("schedule new"), `{`+arn+`,"BandwidthRateLimitIntervals":[]}`)
	same("describe both", response("describe both"), `{`+arn+`,"AverageUploadRateLimitInBitsPerSec":100000000,"AverageDownloadRateLimitInBitsPerSec":200000000}`)
	same("describe download only", response("describe download only"), `{`+arn+`,"AverageDownloadRateLimitInBitsPerSec":200000000}`)
	schedule := `{` + arn + `,"BandwidthRateLimitIntervals":[
		{"StartHourOfDay":9,"StartMinuteOfHour":0,"EndHourOfDay":16,"EndMinuteOfHour":59,"DaysOfWeek":[1,2,3,4,5],"AverageUploadRateLimitInBitsPerSec":10000000},
		{"StartHourOfDay":0,"StartMinuteOfHour":0,"EndHourOfDay":23,"EndMinuteOfHour":59,"DaysOfWeek":[0,6],"AverageUploadRateLimitInBitsPerSec":500000000,"AverageDownloadRateLimitInBitsPerSec":500000000}]}`
	same("describe schedule", response("describe schedule"), schedule)
	same("describe schedule after refusals", response("describe schedule after refusals"), schedule)
	for name, w := range map[string][2]string{
		"set none":        {"InvalidParameters", "The request must contain AverageUploadRateLimitInBitsPerSec, AverageDownloadRateLimitInBitsPerSec, or both."},
		"delete bad type": {"InvalidParameters", `The bandwidth type "SIDEWAYS" is not valid: it must be UPLOAD, DOWNLOAD or ALL.`},
		"overlap":         {"InvalidParameters", "Bandwidth rate limit intervals 1 and 2 overlap."},
		"backwards":       {"InvalidParameters", "Bandwidth rate limit interval 1: the start time must not be later than the end time."},
		"unknown gateway": {"GatewayNotFound", gatewayNotFound},
	} {
		got := seen[name].seenError
		if got.OK || got.Status != 400 || got.Code != "InvalidGatewayRequestException" || got.ErrorCode != w[0] || got.Message != w[1] {
			t.Errorf("boto3 %s: %+v; want %v", name, got, w)
		}
	}
	// Below the model's minimum: the model's validation answers.
	if got := seen["upload too low"].seenError; got.OK || got.Status != 400 || got.Code != "ValidationException" {
		t.Errorf("boto3 upload too low: %+v", got)
	}
	if got := seen["day 7"].seenError; got.OK || got.Status != 400 || got.Code != "ValidationException" ||
		!strings.Contains(got.Message, "Member must have value less than or equal to 6") {
		t.Errorf("boto3 day 7: %+v", got)
	}

	// The AWS CLI: what a script or Terraform does.
	for name, cli := range awsCLIs(t) {
		out, ok := runCLI(t, s, cli, "storagegateway", "update-bandwidth-rate-limit", "--gateway-arn", g.arn,
			"--average-upload-rate-limit-in-bits-per-sec", "104857600")
		if !ok || !strings.Contains(out, g.arn) {
			t.Fatalf("%s update-bandwidth-rate-limit: %s", name, out)
		}
		out, ok = runCLI(t, s, cli, "storagegateway", "describe-bandwidth-rate-limit", "--gateway-arn", g.arn)
		var m map[string]any
		if !ok || json.Unmarshal([]byte(out), &m) != nil || m["AverageUploadRateLimitInBitsPerSec"] != 104857600.0 {
			t.Fatalf("%s describe-bandwidth-rate-limit: %s", name, out)
		}
		out, ok = runCLI(t, s, cli, "storagegateway", "update-bandwidth-rate-limit-schedule", "--gateway-arn", g.arn,
			"--bandwidth-rate-limit-intervals", `[{"StartHourOfDay":8,"StartMinuteOfHour":0,"EndHourOfDay":17,"EndMinuteOfHour":59,"DaysOfWeek":[1,2,3,4,5],"AverageUploadRateLimitInBitsPerSec":52428800}]`)
		if !ok {
			t.Fatalf("%s update-bandwidth-rate-limit-schedule: %s", name, out)
		}
		out, ok = runCLI(t, s, cli, "storagegateway", "describe-bandwidth-rate-limit-schedule", "--gateway-arn", g.arn)
		m = nil
		if !ok || json.Unmarshal([]byte(out), &m) != nil {
			t.Fatalf("%s describe-bandwidth-rate-limit-schedule: %s", name, out)
		}
		if ivs, _ := m["BandwidthRateLimitIntervals"].([]any); len(ivs) != 1 || ivs[0].(map[string]any)["EndHourOfDay"] != 17.0 {
			t.Fatalf("%s describe-bandwidth-rate-limit-schedule: %s", name, out)
		}
		out, ok = runCLI(t, s, cli, "storagegateway", "delete-bandwidth-rate-limit", "--gateway-arn", g.arn, "--bandwidth-type", "ALL")
		if !ok || !strings.Contains(out, g.arn) {
			t.Fatalf("%s delete-bandwidth-rate-limit: %s", name, out)
		}
		out, ok = runCLI(t, s, cli, "storagegateway", "update-bandwidth-rate-limit", "--gateway-arn", g.arn)
		wantCLIError(t, name+" update-bandwidth-rate-limit with no limit", out, ok, "InvalidGatewayRequestException",
			"The request must contain AverageUploadRateLimitInBitsPerSec, AverageDownloadRateLimitInBitsPerSec, or both.")
	}

	// The Go SDK (Terraform's client): plain limits with no schedule, and
	// they are what the store's traffic is paced at.
	if _, err := c.sgw.UpdateBandwidthRateLimitSchedule(ctx, &storagegateway.UpdateBandwidthRateLimitScheduleInput{
		GatewayARN: aws.String(g.arn), BandwidthRateLimitIntervals: []sgwtypes.BandwidthRateLimitInterval{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.sgw.UpdateBandwidthRateLimit(ctx, &storagegateway.UpdateBandwidthRateLimitInput{GatewayARN: aws.String(g.arn),
		AverageUploadRateLimitInBitsPerSec: aws.Int64(80_000_000), AverageDownloadRateLimitInBitsPerSec: aws.Int64(160_000_000)}); err != nil {
		t.Fatal(err)
	}
	if up, down := metricValue(t, s, "volgw_bandwidth_upload_limit_bits_per_second"), metricValue(t, s, "volgw_bandwidth_download_limit_bits_per_second"); up != 80e6 || down != 160e6 {
		t.Fatalf("rates in force: upload %v, download %v", up, down)
	}
	// A schedule interval covering the whole week overrides the plain
	// limits while it is in force (always, here).
	if _, err := c.sgw.UpdateBandwidthRateLimitSchedule(ctx, &storagegateway.UpdateBandwidthRateLimitScheduleInput{
		GatewayARN: aws.String(g.arn), BandwidthRateLimitIntervals: []sgwtypes.BandwidthRateLimitInterval{{
			StartHourOfDay: aws.Int32(0), StartMinuteOfHour: aws.Int32(0), EndHourOfDay: aws.Int32(23), EndMinuteOfHour: aws.Int32(59),
			DaysOfWeek: []int32{0, 1, 2, 3, 4, 5, 6}, AverageUploadRateLimitInBitsPerSec: aws.Int64(8_000_000)}}}); err != nil {
		t.Fatal(err)
	}
	if up, down := metricValue(t, s, "volgw_bandwidth_upload_limit_bits_per_second"), metricValue(t, s, "volgw_bandwidth_download_limit_bits_per_second"); up != 8e6 || down != 0 {
		t.Fatalf("rates in force under the schedule: upload %v, download %v", up, down)
	}
	// Everything the gateway sends goes through the limiter: the catalog's
	// copy at every change, at least.
	if sent := metricValue(t, s, "volgw_store_sent_bytes_total"); sent <= 0 {
		t.Fatalf("volgw_store_sent_bytes_total = %v", sent)
	}

	// Across a restart: the limits, the schedule and the rates in force.
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, dataDir)
	c = newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	got, err := c.sgw.DescribeBandwidthRateLimit(ctx, &storagegateway.DescribeBandwidthRateLimitInput{GatewayARN: aws.String(g.arn)})
	if err != nil || aws.ToInt64(got.AverageUploadRateLimitInBitsPerSec) != 80_000_000 || aws.ToInt64(got.AverageDownloadRateLimitInBitsPerSec) != 160_000_000 {
		t.Fatalf("limits after a restart: %+v %v", got, err)
	}
	sched, err := c.sgw.DescribeBandwidthRateLimitSchedule(ctx, &storagegateway.DescribeBandwidthRateLimitScheduleInput{GatewayARN: aws.String(g.arn)})
	if err != nil || len(sched.BandwidthRateLimitIntervals) != 1 {
		t.Fatalf("schedule after a restart: %+v %v", sched, err)
	}
	if up := metricValue(t, s, "volgw_bandwidth_upload_limit_bits_per_second"); up != 8e6 {
		t.Fatalf("upload rate in force after a restart: %v", up)
	}
}
