package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
	"github.com/aws/smithy-go"
)

// authMode is how a bad request is signed.
type authMode int

const (
	signed      authMode = iota
	unsigned             // no Authorization header
	wrongSecret          // right key, wrong secret
	unknownKey           // a key the server does not know
	skewed               // signed 16 minutes in the past
)

// badRequest is one row of the table: a request and the error AWS sends
// for it, as every client must see it.
type badRequest struct {
	name string
	// Storage Gateway: op and input (or rawBody, for bodies no client can
	// send). EC2: op "ec2:Action" and form.
	op      string
	input   map[string]any
	rawBody string
	form    url.Values
	auth    authMode
	// Also sent through boto3 (valid JSON to a known operation).
	boto3 bool
	// Also sent through aws-sdk-go-v2, when set.
	sdk func(ctx context.Context, c sdkClients) error

	status    int
	typ       string // __type / EC2 Code
	errorCode string // Storage Gateway error.errorCode
	message   string // exact, unless messageRE is set
	messageRE *regexp.Regexp
}

// seenError is an error as one client saw it.
type seenError struct {
	Name      string `json:"name"`
	OK        bool   `json:"ok"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Status    int    `json:"status"`
	ErrorCode string `json:"errorCode"`
}

func (b badRequest) check(t *testing.T, client string, got seenError) {
	t.Helper()
	msgOK := got.Message == b.message
	if b.messageRE != nil {
		msgOK = b.messageRE.MatchString(got.Message)
	}
	if got.OK || got.Status != b.status || got.Code != b.typ || got.ErrorCode != b.errorCode || !msgOK {
		t.Errorf("%s via %s:\n got  %d %s %q %q\n want %d %s %q %q %v", b.name, client, got.Status, got.Code, got.ErrorCode, got.Message,
			b.status, b.typ, b.errorCode, b.message, b.messageRE)
	}
}

// sendRaw sends the request over plain HTTP, signed by hand with the
// SDK's signer as the case says, and decodes the error from the wire.
func (b badRequest) sendRaw(t *testing.T, endpoint string) seenError {
	t.Helper()
	var body, service string
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/", nil)
	if action, ok := strings.CutPrefix(b.op, "ec2:"); ok {
		form := url.Values{"Action": {action}, "Version": {"2016-11-15"}}
		for k, v := range b.form {
			form[k] = v
		}
		body, service = form.Encode(), "ec2"
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	} else {
		body, service = b.rawBody, "storagegateway"
		if b.input != nil {
			raw, err := json.Marshal(b.input)
			if err != nil {
				t.Fatal(err)
			}
			body = string(raw)
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "StorageGateway_20130630."+b.op)
	}
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	keyID, secret, at := e2eKeyID, e2eSecret, time.Now()
	switch b.auth {
	case wrongSecret:
		secret = "not-the-secret"
	case unknownKey:
		keyID = "AKIAUNKNOWNKEY000000"
	case skewed:
		at = at.Add(-16 * time.Minute)
	}
	if b.auth != unsigned {
		err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret},
			req, sha256Hex(body), service, "us-east-1", at)
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("X-Amzn-Requestid") == "" {
		t.Errorf("%s: no x-amzn-RequestId", b.name)
	}
	got := seenError{Name: b.name, Status: resp.StatusCode, OK: resp.StatusCode == http.StatusOK}
	if service == "ec2" {
		var x struct {
			Errors []struct{ Code, Message string } `xml:"Errors>Error"`
			ID     string                           `xml:"RequestID"`
		}
		if err := xmlUnmarshal(raw, &x); err != nil || len(x.Errors) != 1 || x.ID == "" {
			t.Fatalf("%s: EC2 error body %q: %v", b.name, raw, err)
		}
		got.Code, got.Message = x.Errors[0].Code, x.Errors[0].Message
		return got
	}
	var j struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
		Error   struct {
			ErrorCode string `json:"errorCode"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		t.Fatalf("%s: error body %q: %v", b.name, raw, err)
	}
	got.Code, got.Message, got.ErrorCode = j.Type, j.Message, j.Error.ErrorCode
	return got
}

// sdkSeen is an aws-sdk-go-v2 error as a seenError.
func sdkSeen(name string, err error) seenError {
	got := seenError{Name: name, OK: err == nil}
	var api smithy.APIError
	if errors.As(err, &api) {
		got.Code, got.Message = api.ErrorCode(), api.ErrorMessage()
	}
	var igre *sgwtypes.InvalidGatewayRequestException
	if errors.As(err, &igre) && igre.Error_ != nil {
		got.ErrorCode = string(igre.Error_.ErrorCode)
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		got.Status = re.HTTPStatusCode()
	}
	return got
}

func TestBadRequests(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	vol, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String("errors"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("errors-1")})
	if err != nil {
		t.Fatal(err)
	}
	volARN := aws.ToString(vol.VolumeARN)
	snap, err := c.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
		VolumeARN: vol.VolumeARN, SnapshotDescription: aws.String("to be deleted")})
	if err != nil {
		t.Fatal(err)
	}
	goneSnap := aws.ToString(snap.SnapshotId)
	if _, err := c.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: snap.SnapshotId}); err != nil {
		t.Fatal(err)
	}

	const csfvrp = "CreateSnapshotFromVolumeRecoveryPoint"
	snapshotInput := func(arn, desc string, tags []map[string]string) map[string]any {
		in := map[string]any{"VolumeARN": arn, "SnapshotDescription": desc}
		if tags != nil {
			in["Tags"] = tags
		}
		return in
	}
	tags := func(n int, key, value string) []map[string]string {
		out := make([]map[string]string, n)
		for i := range out {
			out[i] = map[string]string{"Key": key, "Value": value}
		}
		return out
	}
	sdkSnapshot := func(arn, desc string, tags []map[string]string) func(context.Context, sdkClients) error {
		return func(ctx context.Context, c sdkClients) error {
			in := &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{VolumeARN: aws.String(arn), SnapshotDescription: aws.String(desc)}
			for _, tg := range tags {
				in.Tags = append(in.Tags, sgwtypes.Tag{Key: aws.String(tg["Key"]), Value: aws.String(tg["Value"])})
			}
			_, err := c.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, in)
			return err
		}
	}
	one := "1 validation error detected: "
	long255 := strings.Repeat("d", 256)
	arn49 := "arn:aws:storagegateway:us-east-1:1:gateway/sgw-1/" // 49 characters
	arn501 := volARN + strings.Repeat("F", 501-len(volARN))
	badPattern := strings.Replace(volARN, "/volume/", "/disk/", 1)
	arnPattern := `arn:(aws(|-cn|-us-gov|-iso[A-Za-z0-9_-]*|-eusc)):storagegateway:[a-z\-0-9]+:[0-9]+:gateway\/(.+)\/volume\/vol-(\S+)`
	tagPattern := `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`
	unknownGateway := "arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-00000000"
	gw501 := g.arn + strings.Repeat("0", 501-len(g.arn))
	badGateway := "arn:aws:storagegateway:us-east-1:123456789012:notagateway/sgw-1234"
	unknownVolume := g.arn + "/volume/vol-0123456789ABCDEF0"
	sigMismatch := "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key " +
		"and signing method. Consult the service documentation for details."
	// row is a case answered by ValidationException with message.
	row := func(b badRequest, message string) badRequest {
		b.status, b.typ, b.message = 400, "ValidationException", message
		return b
	}

	table := []badRequest{
		row(badRequest{name: "description empty", op: csfvrp, input: snapshotInput(volARN, "", nil), boto3: true, sdk: sdkSnapshot(volARN, "", nil)},
			(one + "Value '' at 'snapshotDescription' failed to satisfy constraint: Member must have length greater than or equal to 1")),
		row(badRequest{name: "description 256 chars", op: csfvrp, input: snapshotInput(volARN, long255, nil), boto3: true, sdk: sdkSnapshot(volARN, long255, nil)},
			(one + "Value '" + long255 + "' at 'snapshotDescription' failed to satisfy constraint: Member must have length less than or equal to 255")),
		{name: "51 tags", op: csfvrp, input: snapshotInput(volARN, "d", tags(51, "k", "v")), boto3: true, sdk: sdkSnapshot(volARN, "d", tags(51, "k", "v")),
			status: 400, typ: "ValidationException",
			messageRE: regexp.MustCompile(`^1 validation error detected: Value '\[.*\]' at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50$`)},
		row(badRequest{name: "tag key bad characters", op: csfvrp, input: snapshotInput(volARN, "d", tags(1, "bad#key", "v")), boto3: true,
			sdk: sdkSnapshot(volARN, "d", tags(1, "bad#key", "v"))},
			(one + "Value 'bad#key' at 'tags.1.member.key' failed to satisfy constraint: Member must satisfy regular expression pattern: " + tagPattern)),
		row(badRequest{name: "tag key 129 chars", op: csfvrp, input: snapshotInput(volARN, "d", tags(1, strings.Repeat("k", 129), "v")), boto3: true,
			sdk: sdkSnapshot(volARN, "d", tags(1, strings.Repeat("k", 129), "v"))},
			(one + "Value '" + strings.Repeat("k", 129) + "' at 'tags.1.member.key' failed to satisfy constraint: Member must have length less than or equal to 128")),
		row(badRequest{name: "tag value 257 chars", op: csfvrp, input: snapshotInput(volARN, "d", tags(1, "k", strings.Repeat("v", 257))), boto3: true,
			sdk: sdkSnapshot(volARN, "d", tags(1, "k", strings.Repeat("v", 257)))},
			(one + "Value '" + strings.Repeat("v", 257) + "' at 'tags.1.member.value' failed to satisfy constraint: Member must have length less than or equal to 256")),
		row(badRequest{name: "VolumeARN 49 chars", op: csfvrp, input: snapshotInput(arn49, "d", nil), boto3: true, sdk: sdkSnapshot(arn49, "d", nil)},
			("2 validation errors detected: Value '" + arn49 + "' at 'volumeARN' failed to satisfy constraint: Member must have length greater than or equal to 50; " +
				"Value '" + arn49 + "' at 'volumeARN' failed to satisfy constraint: Member must satisfy regular expression pattern: " + arnPattern)),
		row(badRequest{name: "VolumeARN 501 chars", op: csfvrp, input: snapshotInput(arn501, "d", nil), boto3: true, sdk: sdkSnapshot(arn501, "d", nil)},
			(one + "Value '" + arn501 + "' at 'volumeARN' failed to satisfy constraint: Member must have length less than or equal to 500")),
		row(badRequest{name: "VolumeARN bad pattern", op: csfvrp, input: snapshotInput(badPattern, "d", nil), boto3: true, sdk: sdkSnapshot(badPattern, "d", nil)},
			(one + "Value '" + badPattern + "' at 'volumeARN' failed to satisfy constraint: Member must satisfy regular expression pattern: " + arnPattern)),
		row(badRequest{name: "VolumeARN missing", op: csfvrp, input: map[string]any{"SnapshotDescription": "d"}, boto3: true},
			(one + "Value null at 'volumeARN' failed to satisfy constraint: Member must not be null")),
		row(badRequest{name: "GatewayARN too short", op: "ListVolumeRecoveryPoints", input: map[string]any{"GatewayARN": "arn:aws:storagegateway:gateway/sgw-1"}, boto3: true,
			sdk: func(ctx context.Context, c sdkClients) error {
				_, err := c.sgw.ListVolumeRecoveryPoints(ctx, &storagegateway.ListVolumeRecoveryPointsInput{GatewayARN: aws.String("arn:aws:storagegateway:gateway/sgw-1")})
				return err
			}},
			(one + "Value 'arn:aws:storagegateway:gateway/sgw-1' at 'gatewayARN' failed to satisfy constraint: Member must have length greater than or equal to 50")),
		row(badRequest{name: "GatewayARN 501 chars", op: "ListVolumeRecoveryPoints", input: map[string]any{"GatewayARN": gw501}, boto3: true,
			sdk: func(ctx context.Context, c sdkClients) error {
				_, err := c.sgw.ListVolumeRecoveryPoints(ctx, &storagegateway.ListVolumeRecoveryPointsInput{GatewayARN: aws.String(gw501)})
				return err
			}},
			one+"Value '"+gw501+"' at 'gatewayARN' failed to satisfy constraint: Member must have length less than or equal to 500"),
		row(badRequest{name: "GatewayARN missing", op: "ListVolumeRecoveryPoints", input: map[string]any{}, boto3: true},
			one+"Value null at 'gatewayARN' failed to satisfy constraint: Member must not be null"),
		{name: "gateway ARN malformed", op: "ListVolumeRecoveryPoints", input: map[string]any{"GatewayARN": badGateway}, boto3: true,
			status: 400, typ: "InvalidGatewayRequestException", errorCode: "GatewayNotFound", message: "The specified gateway was not found."},
		{name: "snapshot ID malformed (EC2 delete)", op: "ec2:DeleteSnapshot", form: url.Values{"SnapshotId": {"snap-xyz"}},
			sdk: func(ctx context.Context, c sdkClients) error {
				_, err := c.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String("snap-xyz")})
				return err
			},
			status: 400, typ: "InvalidParameterValue", message: "Value (snap-xyz) for parameter snapshotId is invalid. Expected: 'snap-...'."},
		{name: "snapshot ID malformed (EC2 describe)", op: "ec2:DescribeSnapshots", form: url.Values{"SnapshotId.1": {"vol-12345678"}},
			status: 400, typ: "InvalidSnapshotID.Malformed", message: `Invalid id: "vol-12345678" (expecting "snap-...")`},
		{name: "snapshot ID missing (EC2 delete)", op: "ec2:DeleteSnapshot", status: 400, typ: "MissingParameter",
			message: "The request must contain the parameter snapshotId"},
		{name: "gateway unknown", op: "ListVolumeRecoveryPoints", input: map[string]any{"GatewayARN": unknownGateway}, boto3: true,
			sdk: func(ctx context.Context, c sdkClients) error {
				_, err := c.sgw.ListVolumeRecoveryPoints(ctx, &storagegateway.ListVolumeRecoveryPointsInput{GatewayARN: aws.String(unknownGateway)})
				return err
			},
			status: 400, typ: "InvalidGatewayRequestException", errorCode: "GatewayNotFound", message: "The specified gateway was not found."},
		{name: "volume unknown", op: csfvrp, input: snapshotInput(unknownVolume, "d", nil), boto3: true, sdk: sdkSnapshot(unknownVolume, "d", nil),
			status: 400, typ: "InvalidGatewayRequestException", errorCode: "VolumeNotFound", message: "The specified volume was not found."},
		{name: "snapshot unknown (tags)", op: "ListTagsForResource", input: map[string]any{"ResourceARN": "arn:aws:ec2:us-east-1::snapshot/" + goneSnap}, boto3: true,
			status: 400, typ: "InvalidGatewayRequestException", errorCode: "SnapshotNotFound", message: "The specified snapshot was not found."},
		{name: "snapshot unknown (EC2 delete)", op: "ec2:DeleteSnapshot", form: url.Values{"SnapshotId": {goneSnap}},
			sdk: func(ctx context.Context, c sdkClients) error {
				_, err := c.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(goneSnap)})
				return err
			},
			status: 400, typ: "InvalidSnapshot.NotFound", message: "The snapshot '" + goneSnap + "' does not exist."},
		{name: "snapshot unknown (EC2 describe)", op: "ec2:DescribeSnapshots", form: url.Values{"SnapshotId.1": {goneSnap}},
			status: 400, typ: "InvalidSnapshot.NotFound", message: "The snapshot '" + goneSnap + "' does not exist."},
		{name: "malformed JSON", op: "ListGateways", rawBody: `{"Limit": `, status: 400, typ: "SerializationException"},
		{name: "wrong JSON type", op: "ListGateways", rawBody: `{"Limit": "ten"}`, status: 400, typ: "SerializationException",
			message: "STRING_VALUE can not be converted to an Integer"},
		{name: "unknown operation", op: "FrobnicateGateway", rawBody: `{}`, status: 400, typ: "UnknownOperationException"},
		{name: "tape operation on a cached gateway", op: "CreateTapes", boto3: true, input: map[string]any{"GatewayARN": g.arn, "TapeSizeInBytes": 1 << 30,
			"ClientToken": "tapes-1", "NumTapesToCreate": 1, "TapeBarcodePrefix": "ABC"},
			status: 400, typ: "InvalidGatewayRequestException", errorCode: "UnsupportedOperationForGatewayType",
			message: "This operation is not valid for the specified gateway."},
		{name: "missing signature", op: "ListGateways", input: map[string]any{}, auth: unsigned,
			status: 403, typ: "MissingAuthenticationTokenException", message: "Missing Authentication Token"},
		{name: "wrong secret", op: "ListGateways", input: map[string]any{}, auth: wrongSecret, boto3: true,
			sdk: func(ctx context.Context, _ sdkClients) error {
				_, err := newSDKClients(s.endpoint(), e2eKeyID, "not-the-secret").sgw.ListGateways(ctx, &storagegateway.ListGatewaysInput{})
				return err
			},
			status: 403, typ: "InvalidSignatureException", message: sigMismatch},
		{name: "unknown access key", op: "ListGateways", input: map[string]any{}, auth: unknownKey, boto3: true,
			sdk: func(ctx context.Context, _ sdkClients) error {
				_, err := newSDKClients(s.endpoint(), "AKIAUNKNOWNKEY000000", e2eSecret).sgw.ListGateways(ctx, &storagegateway.ListGatewaysInput{})
				return err
			},
			status: 403, typ: "UnrecognizedClientException", message: "The security token included in the request is invalid."},
		{name: "clock skewed 16 min", op: "ListGateways", input: map[string]any{}, auth: skewed, status: 403, typ: "InvalidSignatureException",
			messageRE: regexp.MustCompile(`^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 15 min\.\)$`)},
		{name: "EC2 missing signature", op: "ec2:DescribeSnapshots", auth: unsigned, status: 401, typ: "MissingAuthenticationToken",
			message: "The request must contain either a valid (registered) AWS access key ID or X.509 certificate."},
		{name: "EC2 wrong secret", op: "ec2:DescribeSnapshots", auth: wrongSecret, status: 403, typ: "SignatureDoesNotMatch", message: sigMismatch},
		{name: "EC2 unknown access key", op: "ec2:DescribeSnapshots", auth: unknownKey, status: 401, typ: "AuthFailure",
			message: "AWS was not able to validate the provided access credentials"},
		{name: "EC2 clock skewed", op: "ec2:DescribeSnapshots", auth: skewed, status: 400, typ: "RequestExpired", message: "Request has expired."},
		{name: "EC2 unknown action", op: "ec2:RunInstances", status: 400, typ: "InvalidAction", message: "The action RunInstances is not valid for this web service."},
	}

	// Raw signed HTTP: what is on the wire.
	for _, b := range table {
		b.check(t, "raw HTTP", b.sendRaw(t, s.endpoint()))
	}
	// aws-sdk-go-v2.
	for _, b := range table {
		if b.sdk != nil {
			b.check(t, "aws-sdk-go-v2", sdkSeen(b.name, b.sdk(ctx, c)))
		}
	}
	// boto3, every case it can express, in one process.
	type boto3Case struct {
		Name    string         `json:"name"`
		Service string         `json:"service"`
		Op      string         `json:"op"`
		Params  map[string]any `json:"params"`
		Key     string         `json:"key,omitempty"`
		Secret  string         `json:"secret,omitempty"`
	}
	var cases []boto3Case
	byName := map[string]badRequest{}
	for _, b := range table {
		if !b.boto3 {
			continue
		}
		bc := boto3Case{Name: b.name, Service: "storagegateway", Op: b.op, Params: b.input}
		switch b.auth {
		case wrongSecret:
			bc.Secret = "not-the-secret"
		case unknownKey:
			bc.Key = "AKIAUNKNOWNKEY000000"
		}
		cases = append(cases, bc)
		byName[b.name] = b
	}
	in, _ := json.Marshal(cases)
	out, err := runToolInput(t, scriptEnv(s), 2*time.Minute, in, "/usr/bin/python3", filepath.Join(repoRoot(t), "scripts", "e2e-boto3-errors.py"))
	if err != nil {
		t.Fatalf("e2e-boto3-errors.py: %v\n%s", err, out)
	}
	var seen []seenError
	if err := json.Unmarshal([]byte(out), &seen); err != nil || len(seen) != len(cases) {
		t.Fatalf("boto3 results %q: %v", out, err)
	}
	for _, got := range seen {
		byName[got.Name].check(t, "boto3", got)
	}
	t.Logf("%d bad requests: %d through raw HTTP, %d through aws-sdk-go-v2, %d through boto3", len(table), len(table), countSDK(table), len(seen))
}

func countSDK(table []badRequest) int {
	n := 0
	for _, b := range table {
		if b.sdk != nil {
			n++
		}
	}
	return n
}
