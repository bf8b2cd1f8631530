package awsproto

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// BenchmarkSignedRequest measures a signed JSON 1.1 request through the
// Server (SigV4 verification, model validation, dispatch, encoding) over
// loopback HTTP, beside the same request to a bare net/http handler that
// answers "{}" — the peer, measured in the same run. The figure to read
// is overhead-ratio: the Server's time per request over the peer's.
func BenchmarkSignedRequest(b *testing.B) {
	srv, err := NewServer(ServerConfig{Region: "us-east-1", Credentials: testCreds, Storage: &recordingService{},
		StorageModel: storageGatewayModel(b)})
	if err != nil {
		b.Fatal(err)
	}
	volgw := httptest.NewServer(srv)
	defer volgw.Close()
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = io.WriteString(w, "{}")
	}))
	defer peer.Close()
	body := `{"VolumeARN":"` + volARN + `","SnapshotDescription":"bench","Tags":[{"Key":"k","Value":"v"}]}`
	run := func(url string, n int) time.Duration {
		began := time.Now()
		for range n {
			r, _ := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-amz-json-1.1")
			r.Header.Set("X-Amz-Target", "StorageGateway_20130630.CreateSnapshotFromVolumeRecoveryPoint")
			signForTest(r, []byte(body), testSecret)
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		return time.Since(began)
	}
	b.ResetTimer()
	tVolgw := run(volgw.URL, b.N)
	b.StopTimer()
	tPeer := run(peer.URL, b.N)
	b.ReportMetric(float64(tVolgw.Nanoseconds())/float64(b.N), "ns/req")
	b.ReportMetric(float64(tPeer.Nanoseconds())/float64(b.N), "peer-ns/req")
	b.ReportMetric(float64(tVolgw)/float64(tPeer), "overhead-ratio")
}
