package product

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// benchEnv is what every benchmark here needs: a private directory (the
// script's, so that its trap finds the process groups) and the built
// volgw binary.
type benchEnv struct {
	t   testing.TB
	dir string
	bin string
}

func newBenchEnv(t *testing.T) *benchEnv {
	t.Helper()
	if os.Getenv("VOLGW_BENCH") != "1" {
		t.Skip("set VOLGW_BENCH=1 (or run bench/product.sh, bench/peers.sh) to measure")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: drop_caches, FUSE (s3backer), tgtd's control socket")
	}
	dir := os.Getenv("VOLGW_BENCH_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	e := &benchEnv{t: t, dir: dir, bin: os.Getenv("VOLGW_BENCH_BIN")}
	if e.bin == "" {
		e.bin = filepath.Join(dir, "volgw")
		build := exec.Command("go", "build", "-o", e.bin, "github.com/volgw/volgw/cmd/volgw")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/volgw: %v\n%s", err, out)
		}
	}
	return e
}

// proc is a server started by a benchmark, in its own process group.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

// start runs a server in its own process group, records the group in
// dir/pgids and kills the group at cleanup (a no-op once it has exited).
func (e *benchEnv) start(name string, env []string, args ...string) (*proc, error) {
	p := &proc{name: name, cmd: exec.Command(args[0], args[1:]...), out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	if f, err := os.OpenFile(filepath.Join(e.dir, "pgids"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintln(f, p.cmd.Process.Pid)
		f.Close()
	}
	e.t.Cleanup(func() { p.kill() })
	return p, nil
}

// stop sends sig to the group and waits up to d for the process to exit,
// then kills the group.
func (p *proc) stop(sig syscall.Signal, d time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.exited:
		return nil
	case <-time.After(d):
		p.kill()
		return fmt.Errorf("%s did not exit within %v of %v", p.name, d, sig)
	}
}

func (p *proc) kill() {
	select {
	case <-p.exited:
		// Reaped: its group id may be someone else's by now.
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// startTool starts a tool in its own process group (killed with the test
// process too), its output gathered in out; done delivers its exit.
func startTool(name string, args ...string) (cmd *exec.Cmd, out *syncBuffer, done <-chan error, err error) {
	out = &syncBuffer{}
	cmd = exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	ch := make(chan error, 1)
	go func() { ch <- cmd.Wait() }()
	return cmd, out, ch, nil
}

// run runs a tool to completion within d, killing its group after that.
func run(ctx context.Context, d time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cmd, out, done, err := startTool(name, args...)
	if err != nil {
		return "", err
	}
	select {
	case err := <-done:
		if err != nil {
			return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out.String())
		}
		return out.String(), nil
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), ctx.Err())
	}
}

// runInterrupted runs a tool that runs until interrupted (iscsi-perf):
// SIGINT after d, its way to print its summary and exit.
func runInterrupted(d time.Duration, name string, args ...string) (string, error) {
	cmd, out, done, err := startTool(name, args...)
	if err != nil {
		return "", err
	}
	select {
	case err := <-done:
		return out.String(), fmt.Errorf("%s exited before its run time: %v: %s", name, err, out.String())
	case <-time.After(d):
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-done:
		return out.String(), nil
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), fmt.Errorf("%s ignored SIGINT", name)
	}
}

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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until addr accepts TCP connections, the process
// exits, or d passes.
func waitListening(addr string, p *proc, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited (%v): %s", p.name, p.err, p.out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: nothing listening on %s after %v: %s", p.name, addr, d, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFor polls cond every interval until it holds, fails, or ctx ends.
func waitFor(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// loadavg is the 1-minute load average: on a shared machine it is what
// says how far to trust a run.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// meminfo reads one /proc/meminfo field, in bytes.
func meminfo(field string) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

var errSkipped = errors.New("skipped")
