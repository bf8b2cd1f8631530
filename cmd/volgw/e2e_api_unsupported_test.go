package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
)

const (
	notValidForGateway = "This operation is not valid for the specified gateway."
	notSupported       = "The specified operation is not supported."
	gatewayNotFound    = "The specified gateway was not found."
)

// TestOtherGatewayTypeOperations: operations of other gateway types
// answer, on this cached gateway, what AWS answers —
// InvalidGatewayRequestException "This operation is not valid for the
// specified gateway." (errorCode UnsupportedOperationForGatewayType) —
// while cached-gateway operations volgw lacks answer NotSupported, and an
// unknown gateway is GatewayNotFound for both; through aws-sdk-go-v2
// (including the exact check Terraform's aws_storagegateway_gateway read
// makes), boto3 and the AWS CLI.
func TestOtherGatewayTypeOperations(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	f := newSnapshotFixture(t, ctx, c, s, "unsupported")
	gw := aws.String(f.arn)
	unknownGW := "arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-0000AAAA"

	// Terraform's read of aws_storagegateway_gateway, step by step: it
	// fails the whole read on any DescribeSMBSettings error but this one.
	terraformTolerates := func(err error) bool {
		var e *sgwtypes.InvalidGatewayRequestException
		return errors.As(err, &e) && strings.Contains(e.ErrorMessage(), "This operation is not valid for the specified gateway")
	}
	_, err := c.sgw.DescribeSMBSettings(ctx, &storagegateway.DescribeSMBSettingsInput{GatewayARN: gw})
	if !terraformTolerates(err) {
		t.Errorf("DescribeSMBSettings on a cached gateway: %v; Terraform's read would fail", err)
	}
	wantGatewayError(t, "DescribeSMBSettings", err, "UnsupportedOperationForGatewayType", notValidForGateway)
	_, err = c.sgw.StartAvailabilityMonitorTest(ctx, &storagegateway.StartAvailabilityMonitorTestInput{GatewayARN: gw})
	wantGatewayError(t, "StartAvailabilityMonitorTest", err, sgwtypes.ErrorCodeNotSupported, notSupported)
	_, err = c.sgw.DescribeSMBSettings(ctx, &storagegateway.DescribeSMBSettingsInput{GatewayARN: aws.String(unknownGW)})
	wantGatewayError(t, "DescribeSMBSettings unknown gateway", err, sgwtypes.ErrorCodeGatewayNotFound, gatewayNotFound)
	_, err = c.sgw.ListFileShares(ctx, &storagegateway.ListFileSharesInput{GatewayARN: gw})
	wantGatewayError(t, "ListFileShares", err, "UnsupportedOperationForGatewayType", notValidForGateway)
	_, err = c.sgw.DescribeStorediSCSIVolumes(ctx, &storagegateway.DescribeStorediSCSIVolumesInput{VolumeARNs: []string{f.volumeARN}})
	wantGatewayError(t, "DescribeStorediSCSIVolumes", err, "UnsupportedOperationForGatewayType", notValidForGateway)

	// boto3.
	share := "arn:aws:storagegateway:us-east-1:123456789012:share/share-ABCDEF12"
	calls := []boto3Call{
		{Name: "DescribeSMBSettings", Service: "storagegateway", Op: "DescribeSMBSettings", Params: map[string]any{"GatewayARN": f.arn}},
		{Name: "DescribeTapes", Service: "storagegateway", Op: "DescribeTapes", Params: map[string]any{"GatewayARN": f.arn}},
		{Name: "DescribeWorkingStorage", Service: "storagegateway", Op: "DescribeWorkingStorage", Params: map[string]any{"GatewayARN": f.arn}},
		{Name: "CreateTapes", Service: "storagegateway", Op: "CreateTapes", Params: map[string]any{"GatewayARN": f.arn,
			"TapeSizeInBytes": 107374182400, "ClientToken": "tapes-1", "NumTapesToCreate": 1, "TapeBarcodePrefix": "TST"}},
		{Name: "SetLocalConsolePassword", Service: "storagegateway", Op: "SetLocalConsolePassword", Params: map[string]any{"GatewayARN": f.arn, "LocalConsolePassword": "PassWordMustBeAtLeast6Chars."}},
		{Name: "DescribeTapes unknown gateway", Service: "storagegateway", Op: "DescribeTapes", Params: map[string]any{"GatewayARN": unknownGW}},
		{Name: "DescribeNFSFileShares", Service: "storagegateway", Op: "DescribeNFSFileShares", Params: map[string]any{"FileShareARNList": []string{share}}},
	}
	want := map[string][2]string{
		"DescribeSMBSettings":           {"UnsupportedOperationForGatewayType", notValidForGateway},
		"DescribeTapes":                 {"UnsupportedOperationForGatewayType", notValidForGateway},
		"DescribeWorkingStorage":        {"UnsupportedOperationForGatewayType", notValidForGateway},
		"CreateTapes":                   {"UnsupportedOperationForGatewayType", notValidForGateway},
		"SetLocalConsolePassword":       {"NotSupported", notSupported},
		"DescribeTapes unknown gateway": {"GatewayNotFound", gatewayNotFound},
		"DescribeNFSFileShares":         {"NotSupported", notSupported},
	}
	seen := runBoto3(t, s, calls)
	for name, w := range want {
		got := seen[name].seenError
		if got.OK || got.Status != 400 || got.Code != "InvalidGatewayRequestException" || got.ErrorCode != w[0] || got.Message != w[1] {
			t.Errorf("boto3 %s: %+v; want %v", name, got, w)
		}
	}

	// The AWS CLI.
	for name, cli := range awsCLIs(t) {
		out, ok := runCLI(t, s, cli, "storagegateway", "describe-smb-settings", "--gateway-arn", f.arn)
		wantCLIError(t, name+" describe-smb-settings", out, ok, "InvalidGatewayRequestException", notValidForGateway)
		out, ok = runCLI(t, s, cli, "storagegateway", "start-availability-monitor-test", "--gateway-arn", f.arn)
		wantCLIError(t, name+" start-availability-monitor-test", out, ok, "InvalidGatewayRequestException", notSupported)
		out, ok = runCLI(t, s, cli, "storagegateway", "list-file-shares", "--gateway-arn", unknownGW)
		wantCLIError(t, name+" list-file-shares unknown gateway", out, ok, "InvalidGatewayRequestException", gatewayNotFound)
	}
}
