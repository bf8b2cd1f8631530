package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
)

// TestGatewaySoftware: UpdateGatewaySoftwareNow on a gateway whose software
// is current answers as AWS does (200, the ARN; nothing restarts; the log
// line is control's TestUpdateGatewaySoftwareNow's), DescribeGatewayInformation reports the build's SoftwareVersion
// and leaves the update fields out, DescribeAvailabilityMonitorTest reports
// no test, and StartAvailabilityMonitorTest / SetLocalConsolePassword answer
// NotSupported — through aws-sdk-go-v2, the raw wire (each output checked
// against the model), boto3 and the AWS CLI, with their errors.
func TestGatewaySoftware(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	gw := aws.String(g.arn)
	unknownGW := "arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-0000AAAA"

	// aws-sdk-go-v2.
	up, err := c.sgw.UpdateGatewaySoftwareNow(ctx, &storagegateway.UpdateGatewaySoftwareNowInput{GatewayARN: gw})
	if err != nil || aws.ToString(up.GatewayARN) != g.arn {
		t.Fatalf("UpdateGatewaySoftwareNow: %+v %v", up, err)
	}
	info, err := c.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: gw})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(info.SoftwareVersion) != buildVersion() || info.GatewayState == nil || *info.GatewayState != "STATE_RUNNING" {
		t.Errorf("after the update: SoftwareVersion %q (want %q), state %v", aws.ToString(info.SoftwareVersion), buildVersion(), info.GatewayState)
	}
	if info.NextUpdateAvailabilityDate != nil || info.LastSoftwareUpdate != nil || info.SoftwareUpdatesEndDate != nil ||
		info.DeprecationDate != nil || info.GatewayCapacity != "" || info.HostEnvironmentId != nil || info.Ec2InstanceId != nil {
		t.Errorf("fields AWS leaves out for a current on-premises cached gateway: %+v", info)
	}
	amt, err := c.sgw.DescribeAvailabilityMonitorTest(ctx, &storagegateway.DescribeAvailabilityMonitorTestInput{GatewayARN: gw})
	if err != nil || aws.ToString(amt.GatewayARN) != g.arn || amt.Status != "" || amt.StartTime != nil {
		t.Errorf("DescribeAvailabilityMonitorTest: %+v %v", amt, err)
	}
	_, err = c.sgw.UpdateGatewaySoftwareNow(ctx, &storagegateway.UpdateGatewaySoftwareNowInput{GatewayARN: aws.String(unknownGW)})
	wantGatewayError(t, "UpdateGatewaySoftwareNow unknown gateway", err, sgwtypes.ErrorCodeGatewayNotFound, gatewayNotFound)
	_, err = c.sgw.StartAvailabilityMonitorTest(ctx, &storagegateway.StartAvailabilityMonitorTestInput{GatewayARN: gw})
	wantGatewayError(t, "StartAvailabilityMonitorTest", err, sgwtypes.ErrorCodeNotSupported, notSupported)
	_, err = c.sgw.SetLocalConsolePassword(ctx, &storagegateway.SetLocalConsolePasswordInput{GatewayARN: gw,
		LocalConsolePassword: aws.String("PassWordMustBeAtLeast6Chars.")})
	wantGatewayError(t, "SetLocalConsolePassword", err, sgwtypes.ErrorCodeNotSupported, notSupported)

	// The wire, against the model's output shapes.
	for _, op := range []string{"UpdateGatewaySoftwareNow", "DescribeGatewayInformation", "DescribeAvailabilityMonitorTest"} {
		status, body := callJSON(t, s.endpoint(), op, map[string]any{"GatewayARN": g.arn})
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", op, status, body)
		}
		checkOutputAgainstModel(t, op, body)
	}

	// boto3 (client-side validation off: the server's checks answer).
	seen := runBoto3(t, s, []boto3Call{
		{Name: "update", Service: "storagegateway", Op: "UpdateGatewaySoftwareNow", Params: map[string]any{"GatewayARN": g.arn}},
		{Name: "describe", Service: "storagegateway", Op: "DescribeGatewayInformation", Params: map[string]any{"GatewayARN": g.arn}},
		{Name: "amt", Service: "storagegateway", Op: "DescribeAvailabilityMonitorTest", Params: map[string]any{"GatewayARN": g.arn}},
		{Name: "update unknown", Service: "storagegateway", Op: "UpdateGatewaySoftwareNow", Params: map[string]any{"GatewayARN": unknownGW}},
		{Name: "update malformed", Service: "storagegateway", Op: "UpdateGatewaySoftwareNow", Params: map[string]any{"GatewayARN": "sgw-0000AAAA"}},
		{Name: "amt unknown", Service: "storagegateway", Op: "DescribeAvailabilityMonitorTest", Params: map[string]any{"GatewayARN": unknownGW}},
		{Name: "start amt", Service: "storagegateway", Op: "StartAvailabilityMonitorTest", Params: map[string]any{"GatewayARN": g.arn}},
		{Name: "console password", Service: "storagegateway", Op: "SetLocalConsolePassword", Params: map[string]any{"GatewayARN": g.arn,
			"LocalConsolePassword": "PassWordMustBeAtLeast6Chars."}},
		{Name: "console password short", Service: "storagegateway", Op: "SetLocalConsolePassword", Params: map[string]any{"GatewayARN": g.arn,
			"LocalConsolePassword": "short"}},
	})
	var upd struct{ GatewayARN string }
	if r := seen["update"]; !r.OK || json.Unmarshal(r.Response, &upd) != nil || upd.GatewayARN != g.arn {
		t.Errorf("boto3 UpdateGatewaySoftwareNow: %+v %s", r.seenError, r.Response)
	}
	// Debian's botocore (1.29) predates SoftwareVersion in the model and
	// drops it; a newer one must see the build's version.
	var desc map[string]any
	if r := seen["describe"]; !r.OK || json.Unmarshal(r.Response, &desc) != nil {
		t.Errorf("boto3 DescribeGatewayInformation: %+v %s", r.seenError, r.Response)
	} else if v, ok := desc["SoftwareVersion"]; ok && v != buildVersion() {
		t.Errorf("boto3 DescribeGatewayInformation SoftwareVersion %v, want %q", v, buildVersion())
	}
	for _, absent := range []string{"NextUpdateAvailabilityDate", "LastSoftwareUpdate", "SoftwareUpdatesEndDate", "DeprecationDate",
		"GatewayCapacity", "SupportedGatewayCapacities", "HostEnvironmentId", "Ec2InstanceId", "Ec2InstanceRegion", "VPCEndpoint"} {
		if _, ok := desc[absent]; ok {
			t.Errorf("boto3 DescribeGatewayInformation has %s: %v", absent, desc[absent])
		}
	}
	var amtOut map[string]any
	if r := seen["amt"]; !r.OK || json.Unmarshal(r.Response, &amtOut) != nil || len(amtOut) != 1 || amtOut["GatewayARN"] != g.arn {
		t.Errorf("boto3 DescribeAvailabilityMonitorTest: %+v %s", r.seenError, r.Response)
	}
	const igre = "InvalidGatewayRequestException"
	want := map[string]seenError{
		"update unknown": {Status: 400, Code: igre, ErrorCode: "GatewayNotFound", Message: gatewayNotFound},
		"update malformed": {Status: 400, Code: "ValidationException",
			Message: "1 validation error detected: Value 'sgw-0000AAAA' at 'gatewayARN' failed to satisfy constraint: Member must have length greater than or equal to 50"},
		"amt unknown":      {Status: 400, Code: igre, ErrorCode: "GatewayNotFound", Message: gatewayNotFound},
		"start amt":        {Status: 400, Code: igre, ErrorCode: "NotSupported", Message: notSupported},
		"console password": {Status: 400, Code: igre, ErrorCode: "NotSupported", Message: notSupported},
		"console password short": {Status: 400, Code: "ValidationException",
			Message: "1 validation error detected: Value 'short' at 'localConsolePassword' failed to satisfy constraint: Member must have length greater than or equal to 6"},
	}
	for name, w := range want {
		got := seen[name].seenError
		got.Name, got.OK = "", false
		if seen[name].OK || got != w {
			t.Errorf("boto3 %s:\n got  %+v\n want %+v", name, seen[name].seenError, w)
		}
	}

	// The AWS CLI.
	for name, cli := range awsCLIs(t) {
		out, ok := runCLI(t, s, cli, "storagegateway", "update-gateway-software-now", "--gateway-arn", g.arn)
		var o struct{ GatewayARN string }
		if !ok || json.Unmarshal([]byte(out), &o) != nil || o.GatewayARN != g.arn {
			t.Errorf("%s update-gateway-software-now: %v %s", name, ok, out)
		}
		out, ok = runCLI(t, s, cli, "storagegateway", "describe-gateway-information", "--gateway-arn", g.arn, "--query", "SoftwareVersion")
		// null from the Debian CLI v2, whose model (2.9's) predates the
		// member; v1 runs on a current botocore.
		if got := strings.TrimSpace(out); !ok || (got != fmt.Sprintf("%q", buildVersion()) && (name == "v1" || got != "null")) {
			t.Errorf("%s describe-gateway-information SoftwareVersion: %v %s", name, ok, out)
		}
		out, ok = runCLI(t, s, cli, "storagegateway", "describe-availability-monitor-test", "--gateway-arn", g.arn)
		var a map[string]any
		if !ok || json.Unmarshal([]byte(out), &a) != nil || len(a) != 1 || a["GatewayARN"] != g.arn {
			t.Errorf("%s describe-availability-monitor-test: %v %s", name, ok, out)
		}
		out, ok = runCLI(t, s, cli, "storagegateway", "update-gateway-software-now", "--gateway-arn", unknownGW)
		wantCLIError(t, name+" update-gateway-software-now unknown", out, ok, igre, gatewayNotFound)
		out, ok = runCLI(t, s, cli, "storagegateway", "start-availability-monitor-test", "--gateway-arn", g.arn)
		wantCLIError(t, name+" start-availability-monitor-test", out, ok, igre, notSupported)
		out, ok = runCLI(t, s, cli, "storagegateway", "set-local-console-password", "--gateway-arn", g.arn,
			"--local-console-password", "PassWordMustBeAtLeast6Chars.")
		wantCLIError(t, name+" set-local-console-password", out, ok, igre, notSupported)
	}

	// A shut-down gateway is not connected: the update, like every call
	// that needs the appliance, is refused; DescribeGatewayInformation
	// still answers.
	if _, err := c.sgw.ShutdownGateway(ctx, &storagegateway.ShutdownGatewayInput{GatewayARN: gw}); err != nil {
		t.Fatal(err)
	}
	_, err = c.sgw.UpdateGatewaySoftwareNow(ctx, &storagegateway.UpdateGatewaySoftwareNowInput{GatewayARN: gw})
	wantGatewayError(t, "UpdateGatewaySoftwareNow shut down", err, sgwtypes.ErrorCodeGatewayNotConnected, "The specified gateway is not connected.")
	_, err = c.sgw.DescribeAvailabilityMonitorTest(ctx, &storagegateway.DescribeAvailabilityMonitorTestInput{GatewayARN: gw})
	wantGatewayError(t, "DescribeAvailabilityMonitorTest shut down", err, sgwtypes.ErrorCodeGatewayNotConnected, "The specified gateway is not connected.")
	info, err = c.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: gw})
	if err != nil || aws.ToString(info.SoftwareVersion) != buildVersion() {
		t.Errorf("DescribeGatewayInformation of a shut-down gateway: %+v %v", info, err)
	}
}

// callJSON makes one signed Storage Gateway call over plain HTTP and
// returns the status and the body as sent.
func callJSON(t *testing.T, endpoint, op string, input any) (int, []byte) {
	t.Helper()
	body, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "StorageGateway_20130630."+op)
	err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: e2eKeyID, SecretAccessKey: e2eSecret},
		req, sha256Hex(string(body)), "storagegateway", "us-east-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// checkOutputAgainstModel checks an answer against the operation's output
// shape in the model volgw embeds (botocore's): no member the shape does
// not define, every value of its shape's type, within its enum, length
// and range. (SDKs drop members they do not know, so only the wire shows
// an extra one.)
func checkOutputAgainstModel(t *testing.T, op string, body []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "internal", "sgwapi", "model", "storagegateway-2013-06-30.service.json"))
	if err != nil {
		t.Fatal(err)
	}
	type shape struct {
		Type     string
		Members  map[string]struct{ Shape string }
		Member   struct{ Shape string }
		Enum     []string
		Min, Max *float64
	}
	var model struct {
		Operations map[string]struct{ Output struct{ Shape string } }
		Shapes     map[string]shape
	}
	if err := json.Unmarshal(raw, &model); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: output %q: %v", op, body, err)
	}
	var walk func(path, name string, v any)
	walk = func(path, name string, v any) {
		s, ok := model.Shapes[name]
		if !ok {
			t.Fatalf("model has no shape %s", name)
		}
		bad := func(why string) { t.Errorf("%s output %s = %v: %s (shape %s)", op, path, v, why, name) }
		switch s.Type {
		case "structure":
			obj, ok := v.(map[string]any)
			if !ok {
				bad("not an object")
				return
			}
			for k, mv := range obj {
				m, ok := s.Members[k]
				if !ok {
					bad("member " + k + " is not in the model")
					continue
				}
				walk(path+"."+k, m.Shape, mv)
			}
		case "list":
			arr, ok := v.([]any)
			if !ok {
				bad("not a list")
				return
			}
			for i, e := range arr {
				walk(fmt.Sprintf("%s[%d]", path, i), s.Member.Shape, e)
			}
		case "string":
			str, ok := v.(string)
			if !ok {
				bad("not a string")
				return
			}
			n := float64(utf8.RuneCountInString(str))
			if (s.Min != nil && n < *s.Min) || (s.Max != nil && n > *s.Max) {
				bad("length out of the model's bounds")
			}
			if len(s.Enum) > 0 && !containsString(s.Enum, str) {
				bad("not one of " + strings.Join(s.Enum, ", "))
			}
		case "integer", "long", "double", "timestamp":
			f, ok := v.(float64)
			if !ok {
				bad("not a number")
				return
			}
			if (s.Min != nil && f < *s.Min) || (s.Max != nil && f > *s.Max) {
				bad("out of the model's range")
			}
		case "boolean":
			if _, ok := v.(bool); !ok {
				bad("not a boolean")
			}
		}
	}
	walk(op, model.Operations[op].Output.Shape, v)
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
