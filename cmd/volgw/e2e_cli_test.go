package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// repoRoot is the module root, where scripts/ lives.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// scriptEnv is the environment for the client scripts: the caller's own
// (PATH, pyenv) minus any AWS settings, plus this server's endpoint and
// credentials.
func scriptEnv(s *testServer) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	none := filepath.Join(s.dataDir, "no-aws-config")
	return append(env,
		"AWS_ACCESS_KEY_ID="+e2eKeyID, "AWS_SECRET_ACCESS_KEY="+e2eSecret,
		"AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE="+none, "AWS_SHARED_CREDENTIALS_FILE="+none,
		"AWS_PAGER=", "AWS_MAX_ATTEMPTS=1", "AWS_RETRY_MODE=standard", "AWS_EC2_METADATA_DISABLED=true",
		"VOLGW_ENDPOINT="+s.endpoint())
}

// awsCLIs are the AWS CLIs on this machine: the Debian CLI v2 and, when
// `aws` on PATH is another one (pip's v1), that too. They sign requests
// with different header sets.
func awsCLIs(t *testing.T) map[string]string {
	clis := map[string]string{}
	if _, err := os.Stat("/usr/bin/aws"); err == nil {
		clis["v2"] = "/usr/bin/aws"
	}
	if p, err := exec.LookPath("aws"); err == nil && p != "/usr/bin/aws" && p != "/bin/aws" {
		if out, err := exec.Command(p, "--version").CombinedOutput(); err == nil && strings.HasPrefix(string(out), "aws-cli/1.") {
			clis["v1"] = p
		}
	}
	if len(clis) == 0 {
		t.Fatal("no AWS CLI: run scripts/install-test-deps.sh")
	}
	return clis
}

// TestAWSCLI runs scripts/e2e-awscli.sh (the seed examples) with each AWS
// CLI against its own volgw serve.
func TestAWSCLI(t *testing.T) {
	for name, cli := range awsCLIs(t) {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, "")
			env := append(scriptEnv(s), "AWS_CLI="+cli)
			out, err := runTool(t, env, 5*time.Minute, "bash", filepath.Join(repoRoot(t), "scripts", "e2e-awscli.sh"))
			t.Logf("%s output:\n%s", cli, out)
			if err != nil || !strings.HasSuffix(out, "PASS") {
				t.Fatalf("e2e-awscli.sh with %s: %v", cli, err)
			}
		})
	}
}

// TestBoto3 runs scripts/e2e-boto3.py (the seed examples through boto3)
// against volgw serve.
func TestBoto3(t *testing.T) {
	s := startServer(t, "")
	out, err := runTool(t, scriptEnv(s), 3*time.Minute, "/usr/bin/python3", filepath.Join(repoRoot(t), "scripts", "e2e-boto3.py"))
	t.Logf("output:\n%s", out)
	if err != nil || !strings.HasSuffix(out, "PASS") {
		t.Fatalf("e2e-boto3.py: %v", err)
	}
}

// TestJSSDK runs test/jssdk/e2e.mjs (the seed examples through the AWS SDK
// for JavaScript v3, which signs yet another header set) against volgw
// serve. scripts/install-test-deps.sh installs node and the SDK.
func TestJSSDK(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "test", "jssdk")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@aws-sdk", "client-storage-gateway")); err != nil {
		t.Fatalf("AWS SDK for JavaScript not installed in %s: run scripts/install-test-deps.sh", dir)
	}
	s := startServer(t, "")
	out, err := runTool(t, scriptEnv(s), 3*time.Minute, "node", filepath.Join(dir, "e2e.mjs"))
	t.Logf("output:\n%s", out)
	if err != nil || !strings.HasSuffix(out, "PASS") {
		t.Fatalf("e2e.mjs: %v", err)
	}
}
