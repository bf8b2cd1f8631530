package awsproto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
	sgwtypes "github.com/aws/aws-sdk-go-v2/service/storagegateway/types"
	"github.com/aws/smithy-go"
)

// recordingService is a JSONService that answers from a table, so the
// protocol layer can be exercised alone; the real service (sgwapi) is
// driven by the end-to-end tests.
type recordingService struct {
	mu    sync.Mutex // guards calls
	calls []string   // operations invoked, in order
}

func (s *recordingService) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *recordingService) Invoke(ctx context.Context, op string, input []byte) (any, error) {
	s.mu.Lock()
	s.calls = append(s.calls, op)
	s.mu.Unlock()
	switch op {
	case "ListGateways":
		var in struct{ Limit int }
		if err := json.Unmarshal(input, &in); err != nil {
			return nil, err
		}
		return map[string]any{"Gateways": []map[string]string{{"GatewayId": "sgw-12A3456B", "GatewayName": fmt.Sprint(in.Limit)}}}, nil
	case "DescribeGatewayInformation":
		return nil, NewGatewayError("GatewayNotFound", "")
	case "DeleteGateway":
		panic("handler bug")
	case "ShutdownGateway":
		return nil, errors.New("disk on fire")
	case "CreateTapes":
		return nil, ErrNotSupported()
	}
	return struct{}{}, nil
}

type snapshotService struct{}

func (snapshotService) Actions() []string { return []string{"DescribeSnapshots", "DeleteSnapshot"} }

type xmlSnapshot struct {
	SnapshotID string `xml:"snapshotId"`
	VolumeID   string `xml:"volumeId"`
	Status     string `xml:"status"`
	StartTime  string `xml:"startTime"`
	VolumeSize int    `xml:"volumeSize"`
	Tags       []struct {
		Key   string `xml:"key"`
		Value string `xml:"value"`
	} `xml:"tagSet>item"`
}

func (snapshotService) Invoke(ctx context.Context, action string, p QueryParams) (any, error) {
	switch action {
	case "DescribeSnapshots":
		var out struct {
			Snapshots []xmlSnapshot `xml:"snapshotSet>item"`
		}
		for _, id := range p.List("SnapshotId") {
			out.Snapshots = append(out.Snapshots, xmlSnapshot{SnapshotID: id, VolumeID: "vol-1122aabb", Status: "completed",
				StartTime: "2026-11-23T10:00:00.000Z", VolumeSize: 500})
		}
		for _, f := range p.Filters() {
			out.Snapshots = append(out.Snapshots, xmlSnapshot{SnapshotID: "snap-" + f.Name, VolumeID: strings.Join(f.Values, ",")})
		}
		return out, nil
	case "DeleteSnapshot":
		return nil, NewEC2Error(400, "InvalidSnapshot.NotFound", "The snapshot '"+p.Get("SnapshotId")+"' does not exist.")
	}
	return nil, nil
}

type fixedKeys struct{}

func (fixedKeys) IssueActivationKey(ctx context.Context, region, gatewayType string) (string, error) {
	if gatewayType != "CACHED" {
		return "", &ActivationRefusedError{Reason: "only CACHED gateways"}
	}
	return "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", nil
}

func startServer(t *testing.T, now func() time.Time) (*httptest.Server, *recordingService) {
	t.Helper()
	svc := &recordingService{}
	srv, err := NewServer(ServerConfig{
		Region: "us-east-1", Credentials: testCreds, Storage: svc, StorageModel: storageGatewayModel(t),
		EC2: snapshotService{}, Activation: fixedKeys{}, Now: now, MaxBodyBytes: 64 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv) // 127.0.0.1
	t.Cleanup(ts.Close)
	return ts, svc
}

func sdkConfig(secret string) aws.Config {
	return aws.Config{Region: "us-east-1", RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(testKeyID, secret, "")}
}

func TestServerWithGoSDK(t *testing.T) {
	ts, svc := startServer(t, time.Now)
	ctx := context.Background()
	sgw := storagegateway.NewFromConfig(sdkConfig(testSecret), func(o *storagegateway.Options) { o.BaseEndpoint = aws.String(ts.URL) })

	out, err := sgw.ListGateways(ctx, &storagegateway.ListGatewaysInput{Limit: aws.Int32(7)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Gateways) != 1 || *out.Gateways[0].GatewayId != "sgw-12A3456B" || *out.Gateways[0].GatewayName != "7" {
		t.Fatalf("ListGateways = %+v", out.Gateways)
	}

	_, err = sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{
		GatewayARN: aws.String("arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-00000000")})
	var igre *sgwtypes.InvalidGatewayRequestException
	if !errors.As(err, &igre) || *igre.Message != "The specified gateway was not found." || igre.Error_.ErrorCode != sgwtypes.ErrorCodeGatewayNotFound {
		t.Fatalf("DescribeGatewayInformation: %v", err)
	}

	_, err = sgw.CreateTapes(ctx, &storagegateway.CreateTapesInput{GatewayARN: aws.String("arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-00000000"),
		TapeSizeInBytes: aws.Int64(1 << 30), ClientToken: aws.String("token-1"), NumTapesToCreate: aws.Int32(1), TapeBarcodePrefix: aws.String("ABC")})
	if !errors.As(err, &igre) || igre.Error_.ErrorCode != sgwtypes.ErrorCodeNotSupported || *igre.Message != "The specified operation is not supported." {
		t.Fatalf("CreateTapes: %v", err)
	}

	for _, op := range []func() error{
		func() error {
			_, err := sgw.DeleteGateway(ctx, &storagegateway.DeleteGatewayInput{GatewayARN: aws.String("arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-00000000")})
			return err
		},
		func() error {
			_, err := sgw.ShutdownGateway(ctx, &storagegateway.ShutdownGatewayInput{GatewayARN: aws.String("arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-00000000")})
			return err
		},
	} {
		var ise *sgwtypes.InternalServerError
		if err := op(); !errors.As(err, &ise) || ise.Error_.ErrorCode != sgwtypes.ErrorCodeInternalError {
			t.Fatalf("internal failure: %v", err)
		}
	}

	// Validation happens before the service is called.
	before := len(svc.Calls())
	_, err = sgw.ListGateways(ctx, &storagegateway.ListGatewaysInput{Limit: aws.Int32(0)})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "ValidationException" ||
		api.ErrorMessage() != "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1" {
		t.Fatalf("ListGateways Limit 0: %v", err)
	}
	if len(svc.Calls()) != before {
		t.Fatalf("service called for an invalid request: %v", svc.Calls())
	}

	bad := storagegateway.NewFromConfig(sdkConfig("wrong"), func(o *storagegateway.Options) { o.BaseEndpoint = aws.String(ts.URL) })
	_, err = bad.ListGateways(ctx, &storagegateway.ListGatewaysInput{})
	if !errors.As(err, &api) || api.ErrorCode() != "InvalidSignatureException" {
		t.Fatalf("wrong secret: %v", err)
	}

	e := ec2.NewFromConfig(sdkConfig(testSecret), func(o *ec2.Options) { o.BaseEndpoint = aws.String(ts.URL) })
	ds, err := e.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{"snap-0123456789abcdef0", "snap-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Snapshots) != 2 || *ds.Snapshots[0].SnapshotId != "snap-0123456789abcdef0" || *ds.Snapshots[1].SnapshotId != "snap-1" ||
		*ds.Snapshots[0].VolumeSize != 500 || ds.Snapshots[0].State != "completed" || ds.Snapshots[0].StartTime.Year() != 2026 {
		t.Fatalf("DescribeSnapshots = %+v", ds.Snapshots)
	}
	_, err = e.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String("snap-0123456789abcdef0")})
	if !errors.As(err, &api) || api.ErrorCode() != "InvalidSnapshot.NotFound" || api.ErrorMessage() != "The snapshot 'snap-0123456789abcdef0' does not exist." {
		t.Fatalf("DeleteSnapshot: %v", err)
	}
	badEC2 := ec2.NewFromConfig(sdkConfig("wrong"), func(o *ec2.Options) { o.BaseEndpoint = aws.String(ts.URL) })
	_, err = badEC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
	if !errors.As(err, &api) || api.ErrorCode() != "SignatureDoesNotMatch" {
		t.Fatalf("EC2 wrong secret: %v", err)
	}
}

type rawAnswer struct {
	status int
	header http.Header
	body   map[string]any
}

func postRaw(t *testing.T, ts *httptest.Server, target, body string, sign bool, at time.Time) rawAnswer {
	t.Helper()
	r, _ := http.NewRequest(http.MethodPost, ts.URL+"/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if target != "" {
		r.Header.Set("X-Amz-Target", target)
	}
	if sign {
		sdkSign(t, r, []byte(body), testSecret, "storagegateway", at)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer %q is not JSON: %v", b, err)
	}
	return rawAnswer{resp.StatusCode, resp.Header, m}
}

func TestServerErrorsOnTheWire(t *testing.T) {
	ts, svc := startServer(t, time.Now)
	now := time.Now()
	cases := []struct {
		name, target, body string
		sign               bool
		at                 time.Time
		status             int
		typ, message       string
	}{
		{"unsigned", "StorageGateway_20130630.ListGateways", "{}", false, now, 403, "MissingAuthenticationTokenException", "Missing Authentication Token"},
		{"skewed", "StorageGateway_20130630.ListGateways", "{}", true, now.Add(-16 * time.Minute), 403, "InvalidSignatureException", "Signature expired: "},
		{"unknown op", "StorageGateway_20130630.Frobnicate", "{}", true, now, 400, "UnknownOperationException", ""},
		{"no target", "", "{}", true, now, 400, "UnknownOperationException", ""},
		{"malformed", "StorageGateway_20130630.ListGateways", "{", true, now, 400, "SerializationException", ""},
		{"seed prefix", "StorageGateway_20120630.ListGateways", "{}", true, now, 200, "", ""},
		{"too big", "StorageGateway_20130630.ListGateways", `{"x":"` + strings.Repeat("a", 70<<10) + `"}`, true, now, 413, "RequestEntityTooLargeException", "Request body is larger than 65536 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := postRaw(t, ts, c.target, c.body, c.sign, c.at)
			if a.status != c.status {
				t.Fatalf("status %d, want %d (%v)", a.status, c.status, a.body)
			}
			if id := a.header.Get("X-Amzn-Requestid"); len(id) != 52 {
				t.Fatalf("request id %q", id)
			}
			if c.typ == "" {
				return
			}
			if a.body["__type"] != c.typ || a.header.Get("X-Amzn-Errortype") != c.typ {
				t.Fatalf("__type %v, want %s", a.body["__type"], c.typ)
			}
			msg, _ := a.body["message"].(string)
			if !strings.HasPrefix(msg, c.message) || (c.message == "" && msg != "") {
				t.Fatalf("message %q, want %q", msg, c.message)
			}
		})
	}
	if len(svc.Calls()) != 1 {
		t.Fatalf("service calls %v; only the valid request may reach it", svc.Calls())
	}
}

func TestActivationRedirect(t *testing.T) {
	ts, _ := startServer(t, time.Now)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(ts.URL + "/?activationRegion=us-east-1&gatewayType=CACHED")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("activationKey") != "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE" || loc.Query().Get("activationRegion") != "us-east-1" {
		t.Fatalf("Location %q", resp.Header.Get("Location"))
	}
	resp, err = client.Get(ts.URL + "/?activationRegion=us-east-1&gatewayType=VTL")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("VTL activation: status %d", resp.StatusCode)
	}
}

func TestQueryParams(t *testing.T) {
	v, _ := url.ParseQuery("SnapshotId.2=b&SnapshotId.1=a&SnapshotId.x=no&Filter.2.Name=status&Filter.2.Value.1=completed" +
		"&Filter.1.Name=tag:env&Filter.1.Value.2=y&Filter.1.Value.1=x&Owner.1=self")
	p := QueryParams(v)
	if id := newRequestID(true); !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Fatalf("EC2 request ID %q", id)
	}
	if got := p.List("SnapshotId"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("List = %q", got)
	}
	f := p.Filters()
	if len(f) != 2 || f[0].Name != "tag:env" || strings.Join(f[0].Values, ",") != "x,y" || f[1].Name != "status" {
		t.Fatalf("Filters = %+v", f)
	}
	b, err := EncodeQueryResponse("DeleteSnapshot", "req-1", struct {
		Return bool `xml:"return"`
	}{true})
	if err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<DeleteSnapshotResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>req-1</requestId><return>true</return></DeleteSnapshotResponse>`
	if string(b) != want {
		t.Fatalf("got %s", b)
	}
}

func TestServerObservesEveryRequest(t *testing.T) {
	var mu sync.Mutex
	var recs []RequestRecord
	srv, err := NewServer(ServerConfig{Region: "us-east-1", Credentials: testCreds, Storage: &recordingService{},
		StorageModel: storageGatewayModel(t), EC2: snapshotService{}, Activation: fixedKeys{},
		Observe: func(r RequestRecord) { mu.Lock(); recs = append(recs, r); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	now := time.Now()
	postRaw(t, ts, "StorageGateway_20130630.ListGateways", "{}", true, now)
	postRaw(t, ts, "StorageGateway_20130630.DescribeGatewayInformation", `{"GatewayARN":"arn:aws:storagegateway:us-east-1:123456789012:gateway/sgw-00000000"}`, true, now)
	postRaw(t, ts, "StorageGateway_20130630.Nope", "{}", true, now)
	postRaw(t, ts, "StorageGateway_20130630.ListGateways", "{}", false, now)
	ts.Close() // waits for the handlers, so every record is in
	mu.Lock()
	defer mu.Unlock()
	// A record is made after its answer is sent, so the client may see the
	// next answer first: compare in a fixed order.
	key := func(r RequestRecord) string { return fmt.Sprint(r.Status, r.Operation, r.ErrorType) }
	sort.Slice(recs, func(i, j int) bool { return key(recs[i]) < key(recs[j]) })
	want := []RequestRecord{
		{Protocol: "json", Operation: "ListGateways", Status: 200},
		{Protocol: "json", Status: 400, ErrorType: TypeUnknownOperation},
		{Protocol: "json", Operation: "DescribeGatewayInformation", Status: 400, ErrorType: TypeInvalidGatewayRequest},
		{Protocol: "json", Status: 403, ErrorType: TypeMissingAuthToken},
	}
	sort.Slice(want, func(i, j int) bool { return key(want[i]) < key(want[j]) })
	if len(recs) != len(want) {
		t.Fatalf("records %+v", recs)
	}
	for i, w := range want {
		got := recs[i]
		got.Duration = 0
		if got != w {
			t.Errorf("record %d = %+v, want %+v", i, got, w)
		}
	}
}

// TestQueryOverGET: an EC2 action may come as a signed GET with its
// parameters in the URL (signed as the canonical query string).
func TestQueryOverGET(t *testing.T) {
	ts, _ := startServer(t, time.Now)
	q := url.Values{"Action": {"DescribeSnapshots"}, "Version": {"2016-11-15"}, "SnapshotId.1": {"snap-0123456789abcdef0"},
		"Filter.1.Name": {"tag:a b"}, "Filter.1.Value.1": {"x/y=z"}}
	r, _ := http.NewRequest(http.MethodGet, ts.URL+"/?"+q.Encode(), nil)
	if err := v4Signer().SignHTTP(context.Background(), credsFor(testSecret), r, sha256Hex(nil), "ec2", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<snapshotId>snap-0123456789abcdef0</snapshotId>") ||
		!strings.Contains(string(body), "<snapshotId>snap-tag:a b</snapshotId>") || !strings.Contains(string(body), "<volumeId>x/y=z</volumeId>") {
		t.Fatalf("GET query: %d %s", resp.StatusCode, body)
	}
}

// issuerFunc is an ActivationKeyIssuer from a function.
type issuerFunc func(region, gatewayType string) (string, error)

func (f issuerFunc) IssueActivationKey(_ context.Context, region, gatewayType string) (string, error) {
	return f(region, gatewayType)
}

// TestActivationPageAnswers: a refusal is a plain-text 400 with the
// issuer's reason; an activated appliance has no page (the request is
// answered as any unsigned API request); a fault is a 500 whose text
// names nothing internal.
func TestActivationPageAnswers(t *testing.T) {
	for _, c := range []struct {
		name   string
		issuer issuerFunc
		status int
		body   string // the answer contains it
		absent string // and not this
	}{
		{"refused", func(string, string) (string, error) {
			return "", &ActivationRefusedError{Reason: "only us-east-1"}
		}, 400, "only us-east-1\n", "activation refused"},
		{"activated", func(string, string) (string, error) {
			return "", fmt.Errorf("%w: control: the appliance is already activated", ErrApplianceActivated)
		}, 403, `{"__type":"MissingAuthenticationTokenException","message":"Missing Authentication Token"}`, "control"},
		{"fault", func(string, string) (string, error) {
			return "", errors.New("catalog: put activation_keys: disk on fire")
		}, 500, "The activation key could not be issued. Try again later.\n", "catalog"},
	} {
		srv, err := NewServer(ServerConfig{Region: "us-east-1", Credentials: testCreds, Storage: &recordingService{},
			StorageModel: storageGatewayModel(t), Activation: c.issuer})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv)
		resp, err := http.Get(ts.URL + "/?activationRegion=us-east-1&gatewayType=CACHED")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ts.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(b), c.body) || strings.Contains(string(b), c.absent) {
			t.Errorf("%s: %d %q; want %d with %q", c.name, resp.StatusCode, b, c.status, c.body)
		}
	}
}
