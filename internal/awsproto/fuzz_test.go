package awsproto

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzValidate feeds arbitrary bodies to the validator of the seed
// operation: it must never panic, and must answer nil or an *Error of
// the two types a body can cause. What Decode hands the service is UTF-8
// JSON that decodes to itself (only the model's members, already checked).
func FuzzValidate(f *testing.F) {
	for _, seed := range []string{
		`{"VolumeARN":"` + volARN + `","SnapshotDescription":"d","Tags":[{"Key":"k","Value":"v"}]}`,
		`{}`, `[]`, `null`, `{"Tags":[null,{},{"Key":5}]}`, `{"VolumeARN":1e400}`, `{"Tags":{"a":1}}`, `"x"`, ``, `{`,
		`{"VolumeARN":"` + strings.Repeat("é", 300) + `"}`,
		`{"VolumeARN":"` + volARN + `","SnapshotDescription":"d","snapshotdescription":"` + strings.Repeat("x", 300) + `"}`,
		`{"VolumeARN":"` + volARN + `","SnapshotDescription":"\ud83d\ude00 \ud800"}`, "{\"SnapshotDescription\":\"\xff\"}",
	} {
		f.Add("CreateSnapshotFromVolumeRecoveryPoint", seed)
	}
	f.Add("UpdateSnapshotSchedule", `{"StartAt":-1,"RecurrenceInHours":99999999999,"Tags":[[]]}`)
	f.Add("CreateNFSFileShare", `{"ClientList":["::1/200","10.0.0.1/8"],"NFSFileShareDefaults":{"FileMode":"0777"}}`)
	f.Add("UpdateSMBSecurityStrategy", `{"SMBSecurityStrategy":true}`)
	m := storageGatewayModel(f)
	f.Fuzz(func(t *testing.T, op, body string) {
		if !m.HasOperation(op) {
			op = "CreateSnapshotFromVolumeRecoveryPoint"
		}
		out, err := m.Decode(op, []byte(body))
		if err == nil {
			again, err := m.Decode(op, out)
			if err != nil || string(again) != string(out) || !utf8.Valid(out) {
				t.Fatalf("Decode(%s, %q) = %s, which decodes to %s, %v", op, body, out, again, err)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || (e.Type != TypeValidation && e.Type != TypeSerialization) || e.Status != 400 {
			t.Fatalf("Validate(%s, %q) = %v", op, body, err)
		}
	})
}

// FuzzVerifySigV4 feeds arbitrary Authorization, date and content-hash
// headers to the verifier: no panic, and never a success without the
// secret (the fuzzer cannot forge HMAC-SHA256).
func FuzzVerifySigV4(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/us-east-1/storagegateway/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
		"20261123T100000Z", "", "x-custom")
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2026/us-east-1/storagegateway/aws4_request,SignedHeaders=,Signature=", "garbage", "UNSIGNED-PAYLOAD", "")
	f.Add("AWS4-HMAC-SHA256 Credential=/,,,=,SignedHeaders=;;;,Signature=zz", "", "abc", ";")
	f.Add("AWS4-HMAC-SHA256", "20261123T100000Z", "", "")
	f.Add("", "", "", "")
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, auth, date, contentHash, extra string) {
		r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/", strings.NewReader("{}"))
		r.Header.Set("Authorization", auth)
		r.Header.Set("X-Amz-Date", date)
		if contentHash != "" {
			r.Header.Set("X-Amz-Content-Sha256", contentHash)
		}
		r.Header.Add("X-Custom", extra)
		key, err := VerifySigV4(r, []byte("{}"), testCreds, SigV4Expect{Region: "us-east-1", Service: "storagegateway", Now: now})
		if err == nil {
			t.Fatalf("forged request accepted as %q: %q", key, auth)
		}
		var ae *AuthError
		if !errors.As(err, &ae) {
			t.Fatalf("error %v is not an *AuthError", err)
		}
	})
}

// TestServerConcurrentClients runs signed requests from several clients
// at once (bounded: 8 clients × 25 requests), mixing valid, invalid and
// unsigned ones; each gets its own right answer.
func TestServerConcurrentClients(t *testing.T) {
	ts, _ := startServer(t, time.Now)
	var wg sync.WaitGroup
	errs := make(chan error, 8*25)
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				var want int
				r, _ := http.NewRequest(http.MethodPost, ts.URL+"/", strings.NewReader(`{"Limit":3}`))
				r.Header.Set("Content-Type", "application/x-amz-json-1.1")
				r.Header.Set("X-Amz-Target", "StorageGateway_20130630.ListGateways")
				switch (c + i) % 3 {
				case 0:
					want = http.StatusOK
					signForTest(r, []byte(`{"Limit":3}`), testSecret)
				case 1:
					want = http.StatusForbidden
					signForTest(r, []byte(`{"Limit":3}`), "wrong")
				case 2:
					want = http.StatusForbidden
				}
				resp, err := http.DefaultClient.Do(r)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					errs <- errors.New(resp.Status)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func signForTest(r *http.Request, body []byte, secret string) {
	sum := sha256Hex(body)
	_ = v4Signer().SignHTTP(context.Background(), credsFor(secret), r, sum, "storagegateway", "us-east-1", time.Now())
}
