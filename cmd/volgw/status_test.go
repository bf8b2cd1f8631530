package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// TestStatusCommand: `volgw status` against a running server, through its
// API: nothing activated; then a gateway with its cache, upload buffer
// and a volume with its recovery point; with the key pair from the
// environment or from a credentials file, and refused with a wrong one.
func TestStatusCommand(t *testing.T) {
	s := startServer(t, "")
	ctx := context.Background()
	env := map[string]string{"VOLGW_ACCESS_KEY_ID": e2eKeyID, "VOLGW_SECRET_ACCESS_KEY": e2eSecret}
	status := func(env map[string]string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, append([]string{"status", "--endpoint", s.endpoint()}, args...), &out, &errOut, func(k string) string { return env[k] })
		return out.String() + errOut.String(), err
	}
	out, err := status(env)
	if err != nil || out != "no gateway activated\n" {
		t.Fatalf("before activation: %q, %v", out, err)
	}

	c := newSDKClients(s.endpoint(), e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, s.endpoint())
	vol, err := c.sgw.CreateCachediSCSIVolume(ctx, &storagegateway.CreateCachediSCSIVolumeInput{GatewayARN: aws.String(g.arn),
		VolumeSizeInBytes: 1 << 30, TargetName: aws.String("status-e2e"), NetworkInterfaceId: aws.String(g.ip), ClientToken: aws.String("status-1")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(vol.VolumeARN)[strings.LastIndex(aws.ToString(vol.VolumeARN), "/")+1:]
	gwID := g.arn[strings.LastIndex(g.arn, "/")+1:]

	// The key pair from a credentials file, as `volgw serve` writes it.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "credentials"), []byte("[default]\naws_access_key_id = "+e2eKeyID+"\naws_secret_access_key = "+e2eSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = status(nil, "--data-dir", dir)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^gateway ` + gwID + ` "e2e-gateway": STATE_RUNNING, time zone GMT, software \S+$`),
		regexp.MustCompile(`(?m)^cache \S+ \S+, [0-9.]+% used, [0-9.]+% dirty; upload buffer .* not yet uploaded$`),
		regexp.MustCompile(`(?m)^VOLUME +STATUS +SIZE +USED +RECOVERY POINT +BEHIND +TARGET$`),
		regexp.MustCompile(`(?m)^` + id + ` +AVAILABLE +1\.0 GiB +0 B +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z +\S+ +iqn\.1997-05\.com\.amazon:status-e2e$`),
		// The store: no GC round yet, unless the test ran past the first.
		regexp.MustCompile(`(?m)^store(: no GC round yet| \S+ \S+ in \d+ objects, .* awaiting reclaim \(GC \S+ ago\))$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("status output lacks %s:\n%s", want, out)
		}
	}

	// A wrong key pair: the API's refusal, exit status 1.
	out, err = status(map[string]string{"VOLGW_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG0", "VOLGW_SECRET_ACCESS_KEY": "wrong"})
	if err == nil || !strings.Contains(err.Error(), "UnrecognizedClientException (HTTP 403)") {
		t.Fatalf("wrong credentials: %v\n%s", err, out)
	}
	// No credentials at all.
	if _, err := status(nil, "--data-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no API credentials") {
		t.Fatalf("no credentials: %v", err)
	}
}

// TestStoreFiguresLine: the store line sums the store's metrics over their
// kinds, as /metrics exports them.
func TestStoreFiguresLine(t *testing.T) {
	const metrics = `# HELP volgw_store_objects …
# TYPE volgw_store_objects gauge
volgw_store_objects{kind="block"} 2030
volgw_store_objects{kind="page"} 2
volgw_store_objects{kind="root"} 3
volgw_store_bytes{kind="block"} 1.06430464e+09
volgw_store_bytes{kind="page"} 70000
volgw_store_bytes{kind="root"} 1500
volgw_store_awaiting_reclaim_objects{kind="block"} 24
volgw_store_awaiting_reclaim_bytes{kind="block"} 1.2582912e+07
volgw_gc_last_round_timestamp_seconds 1.7651e+09
volgw_store_uploaded_bytes_total{form="written"} 1.073741824e+09
volgw_store_uploaded_bytes_total{form="stored"} 4.08e+08
`
	f, err := parseStoreFigures(strings.NewReader(metrics))
	if err != nil {
		t.Fatal(err)
	}
	got := f.line(time.Unix(1765100042, 0))
	want := "store 1015.1 MiB in 2035 objects, 12.0 MiB of them awaiting reclaim (GC 42s ago); uploaded 1.0 GiB as 389.1 MiB (0.38)"
	if got != want {
		t.Fatalf("line:\n got %q\nwant %q", got, want)
	}
}
