package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	iofs "io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/volgw/volgw/internal/blob"
	"github.com/volgw/volgw/internal/blob/fs"
	"github.com/volgw/volgw/internal/blob/s3"
)

// NewFS returns an fs store in a fresh temporary directory, removed when
// the test ends.
func NewFS(t testing.TB) blob.Store {
	t.Helper()
	s, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatalf("blobtest: %v", err)
	}
	return s
}

// S3Server is a running versitygw serving one bucket on 127.0.0.1.
type S3Server struct {
	Endpoint        string // http://127.0.0.1:PORT
	Bucket          string
	AccessKeyID     string
	SecretAccessKey string
	Region          string
	Dir             string // the posix directory versitygw serves

	stores atomic.Int64 // numbers the prefixes Store hands out

	t    testing.TB
	bin  string
	mu   sync.Mutex // guards stop and pid
	stop func()     // kills the running versitygw; nil while stopped
	pid  int        // the running versitygw's process ID
}

// CPUTime is the CPU time (user and system) the running versitygw has
// used since it started, for benchmarks that weigh what a client costs the
// server. ok is false where the platform does not say (only Linux does)
// or while the server is stopped.
func (srv *S3Server) CPUTime() (d time.Duration, ok bool) {
	srv.mu.Lock()
	pid := srv.pid
	srv.mu.Unlock()
	if pid == 0 {
		return 0, false
	}
	return processCPUTime(pid)
}

// Stop kills versitygw (an outage of the store: connections are refused
// until Restart). The bucket's objects stay in Dir.
func (srv *S3Server) Stop() {
	srv.mu.Lock()
	stop := srv.stop
	srv.stop, srv.pid = nil, 0
	srv.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Restart starts versitygw again on the same address and directory, so
// that clients configured with Endpoint reach the same bucket.
func (srv *S3Server) Restart() {
	srv.t.Helper()
	srv.Stop()
	addr := strings.TrimPrefix(srv.Endpoint, "http://")
	var err error
	// The port was just released; binding it again can race with the
	// kernel's teardown of the old listener for a moment.
	for range 20 {
		if err = startVersity(srv.t, srv.bin, srv, addr); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	srv.t.Fatalf("blobtest: versitygw did not restart on %s: %v", addr, err)
}

// Config returns an s3.Config for the server's bucket under prefix.
func (srv *S3Server) Config(prefix string) s3.Config {
	return s3.Config{
		Endpoint:        srv.Endpoint,
		Bucket:          srv.Bucket,
		Prefix:          prefix,
		Region:          srv.Region,
		PathStyle:       true,
		AccessKeyID:     srv.AccessKeyID,
		SecretAccessKey: srv.SecretAccessKey,
		MaxAttempts:     3,
		MaxBackoff:      200 * time.Millisecond,
	}
}

// Store returns an s3 store on the server's bucket under a prefix no other
// Store call returns, so each is empty and isolated.
func (srv *S3Server) Store(t testing.TB) blob.Store {
	t.Helper()
	return srv.StoreWith(t, func(*s3.Config) {})
}

// StoreWith is Store with a chance to adjust the configuration first.
func (srv *S3Server) StoreWith(t testing.TB, adjust func(*s3.Config)) *s3.Store {
	t.Helper()
	cfg := srv.Config(fmt.Sprintf("%s-%d", safeName(t.Name()), srv.stores.Add(1)))
	adjust(&cfg)
	s, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("blobtest: %v", err)
	}
	return s
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func safeName(name string) string {
	n := unsafeChars.ReplaceAllString(name, "_")
	if len(n) > 60 {
		n = n[len(n)-60:]
	}
	return n
}

// NewS3 starts a versitygw for this test alone and returns a store on it.
func NewS3(t testing.TB) blob.Store {
	t.Helper()
	return StartVersityGW(t).Store(t)
}

// VersityGWPath finds the versitygw binary: in PATH, else in
// $(go env GOPATH)/bin, where scripts/install-test-deps.sh installs it.
func VersityGWPath() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		out, err := exec.Command("go", "env", "GOPATH").Output()
		if err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	for dir := range strings.SplitSeq(gopath, string(os.PathListSeparator)) {
		p := filepath.Join(dir, "bin", "versitygw")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("versitygw not found in PATH or $(go env GOPATH)/bin; run scripts/install-test-deps.sh")
}

// StartVersityGW runs a real S3 server (versitygw, posix backend) on a free
// 127.0.0.1 port with fresh root credentials, waits until it answers,
// creates a bucket, and stops it (killing its process group) when the test
// ends. It fails the test if versitygw is missing or does not come up.
func StartVersityGW(t testing.TB) *S3Server {
	t.Helper()
	bin, err := VersityGWPath()
	if err != nil {
		t.Fatalf("blobtest: %v", err)
	}
	dir := t.TempDir()
	srv := &S3Server{
		Bucket:          "volgw-test",
		AccessKeyID:     "AK" + randomHex(t, 9),
		SecretAccessKey: randomHex(t, 20),
		Region:          "us-east-1",
		Dir:             dir,
		t:               t,
		bin:             bin,
	}
	// A free port can be taken between our probe and versitygw's bind;
	// try a few.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("blobtest: %v", err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if lastErr = startVersity(t, bin, srv, addr); lastErr == nil {
			srv.Endpoint = "http://" + addr
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("blobtest: versitygw did not start: %v", lastErr)
	}
	client := awss3.NewFromConfig(aws.Config{
		Region:      srv.Region,
		Credentials: aws.CredentialsProviderFunc(srv.credentials),
	}, func(o *awss3.Options) {
		o.BaseEndpoint = aws.String(srv.Endpoint)
		o.UsePathStyle = true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(srv.Bucket)}); err != nil {
		t.Fatalf("blobtest: create bucket on versitygw: %v", err)
	}
	return srv
}

func (srv *S3Server) credentials(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey, Source: "blobtest"}, nil
}

// startVersity starts versitygw on addr and waits for it to answer HTTP.
// On success the process is stopped at t.Cleanup.
func startVersity(t testing.TB, bin string, srv *S3Server, addr string) error {
	var logBuf syncBuffer
	cmd := exec.Command(bin,
		"--access", srv.AccessKeyID, "--secret", srv.SecretAccessKey,
		"--region", srv.Region, "--port", addr, "--quiet",
		"posix", srv.Dir)
	cmd.Stdout = &logBuf
	cmd.Stderr = &logBuf
	// Its own process group, so cleanup reaches anything it spawns.
	cmd.SysProcAttr = serverProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}

	deadline := time.Now().Add(20 * time.Second)
	httpClient := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-exited:
			exited <- err // stop must not block
			return fmt.Errorf("versitygw exited (%v): %s", err, logBuf.String())
		default:
		}
		resp, err := httpClient.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			srv.mu.Lock()
			srv.stop, srv.pid = stop, cmd.Process.Pid
			srv.mu.Unlock()
			t.Cleanup(srv.Stop)
			return nil
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("no answer on %s within 20s: %v; output: %s", addr, err, logBuf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return strings.ToUpper(hex.EncodeToString(b))
}

// syncBuffer collects a child's output; the child's stdout and stderr
// copiers write to it concurrently with the test reading it.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Files reads every file under dir, by its slash-separated path relative
// to dir: a file store's bucket (or a versitygw posix directory), byte by
// byte, for tests that check what a store holds.
func Files(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
