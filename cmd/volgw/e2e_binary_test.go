package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// TestBinaryServeAndSIGTERM builds the volgw binary, runs `volgw version`
// and `volgw serve`, uses the API, and stops it with SIGTERM: it must shut
// down cleanly (exit 0) and leave no process behind.
func TestBinaryServeAndSIGTERM(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "volgw")
	// As `make build` links it: the version is what `volgw version` and
	// DescribeGatewayInformation's SoftwareVersion say.
	const release = "v9.8.7-e2e"
	build := exec.Command("go", "build", "-ldflags", "-X main.version="+release, "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "volgw "+release+" (") {
		t.Fatalf("volgw version: %v %q", err, out)
	}
	if err := exec.Command(bin, "serve", "--account-id", "12").Run(); err == nil {
		t.Fatal("volgw serve accepted a bad --account-id")
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("bad flag: %v, want exit status 2", err)
	}

	dataDir := t.TempDir()
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--iscsi-listen", "127.0.0.1:0", "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), "VOLGW_ACCESS_KEY_ID="+e2eKeyID, "VOLGW_SECRET_ACCESS_KEY="+e2eSecret)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var waitOnce sync.Once
	var waitErr error
	wait := func() error {
		waitOnce.Do(func() { waitErr = <-exited })
		return waitErr
	}
	// Whatever happens, no volgw is left running: killing an exited
	// process is a no-op.
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = wait()
	})
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	apiRe := regexp.MustCompile(`msg="volgw serving" api=(http://127\.0\.0\.1:\d+)`)
	var endpoint string
	var log []string
	for endpoint == "" {
		line, ok := <-lines
		if !ok {
			t.Fatalf("volgw serve exited before serving:\n%s", strings.Join(log, "\n"))
		}
		log = append(log, line)
		if m := apiRe.FindStringSubmatch(line); m != nil {
			endpoint = m[1]
		}
	}
	c := newSDKClients(endpoint, e2eKeyID, e2eSecret)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.sgw.ListGateways(ctx, &storagegateway.ListGatewaysInput{}); err != nil {
		t.Fatalf("ListGateways against the binary: %v", err)
	}
	g := activateGateway(t, ctx, c, endpoint)
	info, err := c.sgw.DescribeGatewayInformation(ctx, &storagegateway.DescribeGatewayInformationInput{GatewayARN: &g.arn})
	if err != nil || info.SoftwareVersion == nil || *info.SoftwareVersion != release {
		t.Fatalf("SoftwareVersion of the binary: %+v %v", info, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for line := range lines {
		log = append(log, line)
	}
	if err := wait(); err != nil {
		t.Fatalf("volgw serve after SIGTERM: %v\n%s", err, strings.Join(log, "\n"))
	}
	if !strings.Contains(strings.Join(log, "\n"), `msg="volgw stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", strings.Join(log, "\n"))
	}
}
