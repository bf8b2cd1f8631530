package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Credentials every test server accepts.
const (
	e2eKeyID  = "AKIAVOLGWE2ETEST0001"
	e2eSecret = "volgw/e2e/secret/key/0123456789abcdefghij"
)

// testServer is a volgw serve running in-process on 127.0.0.1:0.
type testServer struct {
	*app
	dataDir string
	out     *bytes.Buffer
}

func (s *testServer) endpoint() string { return "http://" + s.APIAddr() }

// startServer starts volgw serve on dataDir (a new temporary one when
// ""), with the e2e credentials, and stops it at the end of the test.
func startServer(t *testing.T, dataDir string) *testServer {
	t.Helper()
	return startServerWith(t, dataDir, nil, nil)
}

// startServerWith is startServer with extra flags and environment.
func startServerWith(t *testing.T, dataDir string, flags []string, extraEnv map[string]string) *testServer {
	t.Helper()
	return startServerParts(t, dataDir, flags, extraEnv, productionParts)
}

// startServerParts is startServerWith running the given parts.
func startServerParts(t *testing.T, dataDir string, flags []string, extraEnv map[string]string, p parts) *testServer {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	var out bytes.Buffer
	args := append([]string{"--listen", "127.0.0.1:0", "--iscsi-listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--cache-disk-size", "2GiB", "--upload-buffer-disk-size", "1GiB", "--log-level", "warn"}, flags...)
	opts, err := parseServeFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VOLGW_ACCESS_KEY_ID": e2eKeyID, "VOLGW_SECRET_ACCESS_KEY": e2eSecret}
	for k, v := range extraEnv {
		env[k] = v
	}
	a, err := start(context.Background(), opts, &out, func(k string) string { return env[k] }, p)
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{app: a, dataDir: dataDir, out: &out}
	t.Cleanup(func() {
		if err := a.close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// runTool runs a client (CLI, python) with env, bounded in time, and
// returns its combined output.
func runTool(t *testing.T, env []string, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// runToolInput is runTool with stdin; it returns stdout only.
func runToolInput(t *testing.T, env []string, timeout time.Duration, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func xmlUnmarshal(b []byte, v any) error { return xml.Unmarshal(b, v) }

// buildTestBinary builds the volgw binary for a test that runs it as a
// separate process: a fault that kills a process must kill that one, not
// the test, and a terminal or systemd sees the real program.
func buildTestBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "volgw")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
