package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// statusBrowser is a browser's side of the status page in Go: a cookie
// jar, and the form's hidden token read off the page as a browser has it.
type statusBrowser struct {
	t        *testing.T
	endpoint string
	client   *http.Client
}

func newStatusBrowser(t *testing.T, endpoint string) *statusBrowser {
	jar, _ := cookiejar.New(nil)
	return &statusBrowser{t: t, endpoint: endpoint, client: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get returns the answer's status, headers and body.
func (b *statusBrowser) get(path string) (int, http.Header, string) {
	b.t.Helper()
	resp, err := b.client.Get(b.endpoint + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

func (b *statusBrowser) post(path string, form url.Values) (int, http.Header, string) {
	b.t.Helper()
	resp, err := b.client.PostForm(b.endpoint+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// signIn fills the form shown at /status and returns the POST's status.
func (b *statusBrowser) signIn(keyID, secret string) int {
	b.t.Helper()
	_, _, page := b.get("/status")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no sign-in form at /status:\n%s", page)
	}
	status, _, _ := b.post("/status/signin", url.Values{"csrf": {m[1]}, "access_key_id": {keyID}, "secret_access_key": {secret}})
	return status
}

// TestStatusPageInBrowser: the status page in Debian's chromium, as a
// person uses it (test/browser/statuspage.mjs): nothing without signing
// in, a wrong secret refused, then the volumes, the snapshot, the upload
// backlog and each volume's lag chart; sign-out leaves nothing. The
// screenshot is kept in the test's log directory.
func TestStatusPageInBrowser(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "test", "browser")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("playwright-core not installed in %s: run scripts/install-test-deps.sh", dir)
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not installed (Debian package chromium): run scripts/install-test-deps.sh")
	}
	s := startServerWith(t, "", []string{"--status-sample-interval", "1s"}, nil)
	ctx := context.Background()
	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	arns := createVolumes(t, ctx, c, g, "page-a", "page-b")
	writeRandomOverISCSI(t, volumeLUNURL(t, ctx, c, arns[0]), 8<<20)
	snap, err := c.sgw.CreateSnapshot(ctx, &storagegateway.CreateSnapshotInput{VolumeARN: aws.String(arns[0]), SnapshotDescription: aws.String("seen in a browser")})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshotCompleted(t, ctx, c, aws.ToString(snap.SnapshotId))
	var ids []string
	for _, arn := range arns {
		ids = append(ids, arn[strings.LastIndex(arn, "/")+1:])
	}

	// Wait until the sampler has a line's worth of each volume's lag.
	b := newStatusBrowser(t, s.endpoint())
	if st := b.signIn(e2eKeyID, e2eSecret); st != http.StatusSeeOther {
		t.Fatalf("sign-in answered %d", st)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		_, _, body := b.get("/status/status.json")
		var v struct {
			Gateways []struct{ Volumes []struct{ Lags []any } }
		}
		json.Unmarshal([]byte(body), &v)
		n := 0
		for _, g := range v.Gateways {
			for _, vol := range g.Volumes {
				if len(vol.Lags) >= 3 {
					n++
				}
			}
		}
		if n == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lag history has not 3 samples of each volume after a minute:\n%s", body)
		}
	}

	shot := filepath.Join(t.TempDir(), "statuspage.png")
	env := append(scriptEnv(s), "VOLUME_IDS="+strings.Join(ids, ","), "SNAPSHOT_ID="+aws.ToString(snap.SnapshotId),
		"SCREENSHOT="+shot, "CHROMIUM="+chromium)
	out, err := runTool(t, env, 3*time.Minute, "node", filepath.Join(dir, "statuspage.mjs"))
	t.Logf("output:\n%s", out)
	if err != nil || !strings.HasSuffix(strings.TrimSpace(out), "PASS") {
		t.Fatalf("statuspage.mjs: %v", err)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 10<<10 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	if keep := os.Getenv("VOLGW_STATUSPAGE_SCREENSHOT"); keep != "" {
		data, _ := os.ReadFile(shot)
		os.WriteFile(keep, data, 0o644)
	}
}

// TestStatusPageGuards: what keeps the page to those with the key pair,
// over plain HTTP: a sign-in posted without the form's token (another
// site's form) is refused, wrong secrets are limited per address, the
// sign-out needs the session's token, nothing is cacheable, and the API
// beside it answers as before.
func TestStatusPageGuards(t *testing.T) {
	s := startServer(t, "")
	b := newStatusBrowser(t, s.endpoint())

	st, h, body := b.get("/status")
	if st != http.StatusOK || h.Get("Cache-Control") != "no-store" || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") ||
		h.Get("X-Frame-Options") != "DENY" || !strings.Contains(body, `id="signin"`) {
		t.Fatalf("GET /status: %d %v\n%s", st, h, body)
	}
	if st, _, body := b.get("/status/status.json"); st != http.StatusUnauthorized || !strings.Contains(body, "Sign in") {
		t.Fatalf("status.json without a session: %d %s", st, body)
	}
	// Another site's form: no token cookie of ours, or a token not ours.
	other := newStatusBrowser(t, s.endpoint())
	if st, _, _ := other.post("/status/signin", url.Values{"access_key_id": {e2eKeyID}, "secret_access_key": {e2eSecret}}); st != http.StatusForbidden {
		t.Fatalf("sign-in without the form's token answered %d", st)
	}
	other.get("/status")
	if st, _, _ := other.post("/status/signin", url.Values{"csrf": {"forged"}, "access_key_id": {e2eKeyID}, "secret_access_key": {e2eSecret}}); st != http.StatusForbidden {
		t.Fatalf("sign-in with a forged token answered %d", st)
	}

	// Five wrong secrets a minute from one address; the sixth try is
	// refused even with the right one.
	for i := range 5 {
		if st := b.signIn(e2eKeyID, "wrong"); st != http.StatusUnauthorized {
			t.Fatalf("wrong secret %d answered %d", i, st)
		}
	}
	if st := b.signIn(e2eKeyID, e2eSecret); st != http.StatusTooManyRequests {
		t.Fatalf("sign-in after 5 failures answered %d", st)
	}
	if st, _, _ := b.get("/status/status.json"); st != http.StatusUnauthorized {
		t.Fatalf("status.json after refused sign-ins: %d", st)
	}

	// Signed in (another address would be; a fresh server here).
	s2 := startServer(t, "")
	b2 := newStatusBrowser(t, s2.endpoint())
	if st := b2.signIn(e2eKeyID, e2eSecret); st != http.StatusSeeOther {
		t.Fatalf("sign-in answered %d", st)
	}
	st, h, body = b2.get("/status")
	if st != http.StatusOK || h.Get("Cache-Control") != "no-store" || !strings.Contains(body, "No gateway is activated") {
		t.Fatalf("signed-in page: %d %v\n%s", st, h, body)
	}
	if st, _, _ := b2.post("/status/signout", url.Values{"csrf": {"forged"}}); st != http.StatusForbidden {
		t.Fatalf("sign-out with a forged token answered %d", st)
	}
	if st, _, _ := b2.get("/status/status.json"); st != http.StatusOK {
		t.Fatalf("a forged sign-out ended the session: %d", st)
	}
	token := csrfField.FindStringSubmatch(body)[1]
	if st, _, _ := b2.post("/status/signout", url.Values{"csrf": {token}}); st != http.StatusSeeOther {
		t.Fatalf("sign-out answered %d", st)
	}
	if st, _, _ := b2.get("/status/status.json"); st != http.StatusUnauthorized {
		t.Fatalf("status.json after sign-out: %d", st)
	}

	// The rest of the endpoint is the API's, unchanged.
	if st, _, body := b.get("/status/other"); st != http.StatusNotFound {
		t.Fatalf("/status/other: %d %s", st, body)
	}
	resp, err := http.Post(s.endpoint()+"/statusx", "application/x-amz-json-1.1", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body2, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body2), "MissingAuthenticationTokenException") {
		t.Fatalf("an unsigned API request beside the page: %d %s", resp.StatusCode, body2)
	}
}
