package awsproto

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// echoREST answers every request with what it was given.
type echoREST struct{}

func (echoREST) SigningName() string { return "ebs" }
func (echoREST) PathPrefix() string  { return "/snapshots" }
func (echoREST) MaxBodyBytes() int64 { return 1 << 20 }
func (echoREST) ServeREST(ctx context.Context, w http.ResponseWriter, r *http.Request, body []byte) (string, string) {
	w.Header().Set("X-Key", AccessKeyID(ctx))
	w.Header().Set("X-Body", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	return "Echo", ""
}

// TestRESTRouting: requests under the REST service's path are verified
// with its signing name — including a body signed UNSIGNED-PAYLOAD, as
// the SDKs sign EBS's blocks — and handed to it; one scoped to another
// service is refused in the REST-JSON error shape; the JSON API's
// requests are untouched.
func TestRESTRouting(t *testing.T) {
	var records []RequestRecord
	srv, err := NewServer(ServerConfig{Region: "us-east-1", Credentials: testCreds, Storage: &recordingService{},
		StorageModel: storageGatewayModel(t), REST: echoREST{}, Observe: func(r RequestRecord) { records = append(records, r) }})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	do := func(method, path, service string, body []byte, unsigned bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
		if service != "" {
			sum := sha256Hex(body)
			if unsigned {
				sum = "UNSIGNED-PAYLOAD"
				req.Header.Set("X-Amz-Content-Sha256", sum)
			}
			if err := v4Signer().SignHTTP(context.Background(), credsFor(testSecret), req, sum, service, "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := do("GET", "/snapshots/snap-0123/blocks?maxResults=100", "ebs", nil, false)
	if resp.StatusCode != 200 || resp.Header.Get("X-Key") != testKeyID || len(records) != 1 || records[0].Operation != "Echo" || records[0].Protocol != "rest-json" {
		t.Errorf("ebs-signed GET: %d, key %q, records %+v", resp.StatusCode, resp.Header.Get("X-Key"), records)
	}
	resp = do("PUT", "/snapshots/snap-0123/blocks/7", "ebs", bytes.Repeat([]byte{1}, 524288), true)
	if resp.StatusCode != 200 || resp.Header.Get("X-Body") != "524288" {
		t.Errorf("ebs-signed PUT with UNSIGNED-PAYLOAD: %d, body %s", resp.StatusCode, resp.Header.Get("X-Body"))
	}
	for _, c := range []struct {
		service, typ, message string
	}{
		{"storagegateway", TypeInvalidSignature, "Credential should be scoped to correct service: 'ebs'. "},
		{"", TypeMissingAuthToken, "Missing Authentication Token"},
	} {
		resp = do("GET", "/snapshots/snap-0123/blocks", c.service, nil, false)
		b, _ := io.ReadAll(resp.Body)
		var body map[string]string
		if err := json.Unmarshal(b, &body); err != nil || resp.StatusCode != 403 || resp.Header.Get("X-Amzn-Errortype") != c.typ ||
			body["message"] != c.message || body["__type"] != "" {
			t.Errorf("GET /snapshots signed for %q: %d %s %s", c.service, resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), b)
		}
	}
	// The JSON API still wants its own scope.
	resp = do("POST", "/", "ebs", []byte("{}"), false)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || !bytes.Contains(b, []byte("'storagegateway'")) {
		t.Errorf("an ebs-signed POST / : %d %s", resp.StatusCode, b)
	}
}
