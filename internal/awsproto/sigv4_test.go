package awsproto

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	testKeyID  = "AKIDEXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

var testCreds = StaticCredentials{testKeyID: testSecret}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// sdkSign signs r as aws-sdk-go-v2 does for the given service and time.
func sdkSign(t *testing.T, r *http.Request, body []byte, secret, service string, at time.Time) {
	t.Helper()
	err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: secret},
		r, sha256Hex(body), service, "us-east-1", at)
	if err != nil {
		t.Fatal(err)
	}
}

func newJSONRequest(t *testing.T, body string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:8080/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	r.Header.Set("X-Amz-Target", "StorageGateway_20130630.ListGateways")
	return r
}

func wantFailure(t *testing.T, err error, f AuthFailure) *AuthError {
	t.Helper()
	var ae *AuthError
	if !errors.As(err, &ae) || ae.Failure != f {
		t.Fatalf("got %v, want auth failure %d", err, f)
	}
	return ae
}

// TestSigV4AWSTestSuiteVanilla checks the verifier against the published
// get-vanilla case of AWS's SigV4 test suite: a signature computed by AWS,
// not by this package or the SDK.
func TestSigV4AWSTestSuiteVanilla(t *testing.T) {
	r, _ := http.NewRequest(http.MethodGet, "http://example.amazonaws.com/", nil)
	r.Header.Set("X-Amz-Date", "20150830T123600Z")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "+
		"SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
	now, _ := time.Parse(amzDateFormat, "20150830T123600Z")
	key, err := VerifySigV4(r, nil, testCreds, SigV4Expect{Region: "us-east-1", Service: "service", Now: now})
	if err != nil || key != testKeyID {
		t.Fatalf("VerifySigV4 = %q, %v", key, err)
	}
}

func TestSigV4AcceptsSDKSignatures(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	body := `{"Limit":10}`
	r := newJSONRequest(t, body)
	// Headers the SDK signs as they are: repeated values, inner runs of
	// spaces, leading/trailing blanks.
	r.Header.Add("X-Custom", "  a   b  ")
	r.Header.Add("X-Custom", "c")
	r.Header.Set("X-Amz-Content-Sha256", sha256Hex([]byte(body)))
	sdkSign(t, r, []byte(body), testSecret, "storagegateway", now)
	if !strings.Contains(r.Header.Get("Authorization"), "x-custom") {
		t.Fatalf("SDK did not sign x-custom: %s", r.Header.Get("Authorization"))
	}
	key, err := VerifySigV4(r, []byte(body), testCreds, SigV4Expect{Region: "us-east-1", Service: "storagegateway", Now: now.Add(14 * time.Minute)})
	if err != nil || key != testKeyID {
		t.Fatalf("VerifySigV4 = %q, %v", key, err)
	}
	if got := r.Header.Values("X-Custom"); got[0] != "  a   b  " {
		t.Fatalf("verifier changed the request's header: %q", got)
	}
}

// TestSigV4HandSignedMinimalHeaders signs by hand, following the SigV4
// steps, with the smallest header set a client may choose (host only) and
// the Date header instead of X-Amz-Date.
func TestSigV4HandSignedMinimalHeaders(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	body := []byte(`{}`)
	r := newJSONRequest(t, string(body))
	r.Header.Set("Date", now.Format(http.TimeFormat))
	creq := "POST\n/\n\nhost:127.0.0.1:8080\n\nhost\n" + sha256Hex(body)
	scope := "20261123/us-east-1/storagegateway/aws4_request"
	sts := "AWS4-HMAC-SHA256\n20261123T100000Z\n" + scope + "\n" + sha256Hex([]byte(creq))
	sig := hex.EncodeToString(hmacSHA256(signingKey(testSecret, "20261123", "us-east-1", "storagegateway"), []byte(sts)))
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testKeyID+"/"+scope+",SignedHeaders=host,Signature="+sig)
	if _, err := VerifySigV4(r, body, testCreds, SigV4Expect{Region: "us-east-1", Service: "storagegateway", Now: now}); err != nil {
		t.Fatal(err)
	}
}

func TestSigV4Rejections(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	want := SigV4Expect{Region: "us-east-1", Service: "storagegateway", Now: now}
	body := []byte(`{}`)

	r := newJSONRequest(t, string(body))
	_, err := VerifySigV4(r, body, testCreds, want)
	wantFailure(t, err, AuthMissing)

	r = newJSONRequest(t, string(body))
	sdkSign(t, r, body, "wrong-secret", "storagegateway", now)
	ae := wantFailure(t, func() error { _, err := VerifySigV4(r, body, testCreds, want); return err }(), AuthBadSignature)
	if !strings.HasPrefix(ae.Message, "The request signature we calculated does not match") {
		t.Fatalf("message %q", ae.Message)
	}

	r = newJSONRequest(t, string(body))
	sdkSign(t, r, body, testSecret, "storagegateway", now)
	_, err = VerifySigV4(r, []byte(`{"tampered":1}`), testCreds, want)
	wantFailure(t, err, AuthBadSignature)

	_, err = VerifySigV4(r, body, StaticCredentials{"OTHER": "x"}, want)
	wantFailure(t, err, AuthUnknownKey)

	withToken := newJSONRequest(t, string(body))
	withToken.Header.Set("X-Amz-Security-Token", "FwoGZXIvYXdzEXAMPLE")
	sdkSign(t, withToken, body, testSecret, "storagegateway", now)
	_, err = VerifySigV4(withToken, body, testCreds, want)
	wantFailure(t, err, AuthUnknownKey)

	_, err = VerifySigV4(r, body, testCreds, SigV4Expect{Region: "us-east-1", Service: "ec2", Now: now})
	wantFailure(t, err, AuthBadSignature)

	_, err = VerifySigV4(r, body, testCreds, SigV4Expect{Region: "eu-west-1", Service: "storagegateway", Now: now})
	wantFailure(t, err, AuthBadSignature)

	r = newJSONRequest(t, string(body))
	sdkSign(t, r, body, testSecret, "storagegateway", now.Add(-16*time.Minute))
	_, err = VerifySigV4(r, body, testCreds, want)
	ae = wantFailure(t, err, AuthExpired)
	if ae.Message != "Signature expired: 20261123T094400Z is now earlier than 20261123T094500Z (20261123T100000Z - 15 min.)" {
		t.Fatalf("message %q", ae.Message)
	}

	r = newJSONRequest(t, string(body))
	sdkSign(t, r, body, testSecret, "storagegateway", now.Add(16*time.Minute))
	_, err = VerifySigV4(r, body, testCreds, want)
	ae = wantFailure(t, err, AuthExpired)
	if ae.Message != "Signature not yet current: 20261123T101600Z is still later than 20261123T101500Z (20261123T100000Z + 15 min.)" {
		t.Fatalf("message %q", ae.Message)
	}

	r = newJSONRequest(t, string(body))
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testKeyID+"/20261123/us-east-1/storagegateway/aws4_request")
	r.Header.Set("X-Amz-Date", "20261123T100000Z")
	_, err = VerifySigV4(r, body, testCreds, want)
	ae = wantFailure(t, err, AuthIncomplete)
	if !strings.HasPrefix(ae.Message, "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter.") {
		t.Fatalf("message %q", ae.Message)
	}

	// A header the client signed must be the one it sent.
	r = newJSONRequest(t, string(body))
	sdkSign(t, r, body, testSecret, "storagegateway", now)
	r.Header.Set("X-Amz-Target", "StorageGateway_20130630.DeleteGateway")
	_, err = VerifySigV4(r, body, testCreds, want)
	wantFailure(t, err, AuthBadSignature)

	// A claimed payload hash must be the body's.
	r = newJSONRequest(t, string(body))
	r.Header.Set("X-Amz-Content-Sha256", sha256Hex([]byte("other")))
	sdkSign(t, r, body, testSecret, "storagegateway", now)
	_, err = VerifySigV4(r, body, testCreds, want)
	wantFailure(t, err, AuthBadSignature)
}

func TestCanonicalQueryAndURI(t *testing.T) {
	if got := canonicalQuery("b=2&a=x%20y&a=1&c&X-Amz-Signature=ff", "X-Amz-Signature"); got != "a=1&a=x%20y&b=2&c=" {
		t.Fatalf("canonicalQuery = %q", got)
	}
	r, _ := http.NewRequest(http.MethodGet, "http://h/a%20b/c", nil)
	if got := canonicalURI(r.URL); got != "/a%2520b/c" {
		t.Fatalf("canonicalURI = %q", got)
	}
}

func v4Signer() *v4.Signer { return v4.NewSigner() }

func credsFor(secret string) aws.Credentials {
	return aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: secret}
}

// TestSigV4Presigned: a request presigned by the SDK (signature in the
// query) is accepted until it expires, and refused when tampered with.
func TestSigV4Presigned(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	want := SigV4Expect{Region: "us-east-1", Service: "ec2", Now: now}
	presign := func(secret string, expires string) *http.Request {
		t.Helper()
		r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:8080/?Action=DescribeSnapshots&Version=2016-11-15&X-Amz-Expires="+expires, nil)
		u, _, err := v4.NewSigner().PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: secret},
			r, sha256Hex(nil), "ec2", "us-east-1", now)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := http.NewRequest(http.MethodGet, u, nil)
		return p
	}
	r := presign(testSecret, "300")
	if key, err := VerifySigV4(r, nil, testCreds, want); err != nil || key != testKeyID {
		t.Fatalf("presigned: %q %v", key, err)
	}
	late := want
	late.Now = now.Add(301 * time.Second)
	_, err := VerifySigV4(r, nil, testCreds, late)
	wantFailure(t, err, AuthExpired)
	_, err = VerifySigV4(presign("wrong", "300"), nil, testCreds, want)
	wantFailure(t, err, AuthBadSignature)
	tampered := presign(testSecret, "300")
	tampered.URL.RawQuery = strings.Replace(tampered.URL.RawQuery, "DescribeSnapshots", "DeleteSnapshot", 1)
	_, err = VerifySigV4(tampered, nil, testCreds, want)
	wantFailure(t, err, AuthBadSignature)
	_, err = VerifySigV4(presign(testSecret, "999999"), nil, testCreds, want)
	wantFailure(t, err, AuthIncomplete)
}

// TestSigV4PathForms: for a path other than "/", the signature a client
// computed over the normalised, twice-encoded path (the SDKs), the raw
// twice-encoded path, or the once-encoded path (S3-style signers) is
// accepted; a signature over another path is not.
func TestSigV4PathForms(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	want := SigV4Expect{Region: "us-east-1", Service: "storagegateway", Now: now}
	sign := func(r *http.Request, uri string) {
		creq := "POST\n" + uri + "\n\nhost:" + r.Host + "\nx-amz-date:20261123T100000Z\n\nhost;x-amz-date\n" + sha256Hex(nil)
		scope := "20261123/us-east-1/storagegateway/aws4_request"
		sts := "AWS4-HMAC-SHA256\n20261123T100000Z\n" + scope + "\n" + sha256Hex([]byte(creq))
		sig := hex.EncodeToString(hmacSHA256(signingKey(testSecret, "20261123", "us-east-1", "storagegateway"), []byte(sts)))
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testKeyID+"/"+scope+", SignedHeaders=host;x-amz-date, Signature="+sig)
	}
	for _, uri := range []string{"/a/c%2520d/", "/a//b/../c%2520d/", "/a//b/../c%20d/"} {
		r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:8080/a//b/../c%20d/", nil)
		r.Header.Set("X-Amz-Date", "20261123T100000Z")
		sign(r, uri)
		if _, err := VerifySigV4(r, nil, testCreds, want); err != nil {
			t.Errorf("signed over %s: %v", uri, err)
		}
	}
	r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:8080/a//b/../c%20d/", nil)
	r.Header.Set("X-Amz-Date", "20261123T100000Z")
	sign(r, "/other/")
	_, err := VerifySigV4(r, nil, testCreds, want)
	wantFailure(t, err, AuthBadSignature)
}
