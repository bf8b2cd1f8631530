package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestControlBench measures the control plane under data-plane load, on the
// real binary as a user runs it (bench/control.sh runs it; its table is in
// BENCHMARKS.md): `volgw serve` with its default flags on loopback, a
// gateway and 32 volumes made through the API, 8 of them written over iSCSI
// by qemu-img, and ListVolumeRecoveryPoints timed (p50/p99/max) idle, under
// that load and idle again after it, with the server's RSS sampled
// throughout. It runs only with VOLGW_BENCH=1.
//
//	VOLGW_BENCH_BIN        a volgw binary to measure (default: build this tree)
//	VOLGW_BENCH_FLAGS      extra `volgw serve` flags, space-separated
//	VOLGW_BENCH_LOAD       seconds of write load (default 75)
//	VOLGW_BENCH_OUT        also write the table to this file
//	VOLGW_BENCH_CALLS      also write every call to this file, one line each:
//	                       phase, start and end (Unix ns), latency (ns)
//	VOLGW_BENCH_INITIATORS the writers' CPU priority: "" (the same as
//	                       everything else's), "nice" (nice -n 19) or
//	                       "idle" (SCHED_IDLE, chrt -i 0): initiators on
//	                       other hosts, as in a deployment, take none of the
//	                       gateway's CPU; these model that on one machine
//	VOLGW_BENCH_PROFILE    a directory: serve with --pprof-listen and, 8 s
//	                       into the load, take a 7 s runtime/trace with a
//	                       `perf sched record` alongside (if perf is on
//	                       PATH; CLOCK_MONOTONIC, as the trace's), then a
//	                       10 s CPU profile (go tool trace, perf sched
//	                       timehist and go tool pprof read them)
func TestControlBench(t *testing.T) {
	if os.Getenv("VOLGW_BENCH") != "1" {
		t.Skip("set VOLGW_BENCH=1 (or run bench/control.sh) to measure")
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed")
	}
	const volumes, writers, calls = 32, 8, 1000
	loadFor := 75 * time.Second
	if s := os.Getenv("VOLGW_BENCH_LOAD"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("VOLGW_BENCH_LOAD %q: want seconds", s)
		}
		loadFor = time.Duration(n) * time.Second
	}
	initiator, err := initiatorCommand(os.Getenv("VOLGW_BENCH_INITIATORS"))
	if err != nil {
		t.Fatal(err)
	}
	bin := os.Getenv("VOLGW_BENCH_BIN")
	if bin == "" {
		bin = buildTestBinary(t)
	}
	flags := strings.Fields(os.Getenv("VOLGW_BENCH_FLAGS"))
	profDir := os.Getenv("VOLGW_BENCH_PROFILE")
	var pprofAddr string
	if profDir != "" {
		pprofAddr = freeLoopbackAddr(t)
		flags = append(flags, "--pprof-listen", pprofAddr)
	}
	srv := startBinary(t, bin, flags)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := newSDKClients(srv.endpoint, e2eKeyID, e2eSecret)
	g := activateGateway(t, ctx, c, srv.endpoint)
	names := make([]string, volumes)
	for i := range names {
		names[i] = fmt.Sprintf("bench%02d", i)
	}
	arns := createVolumes(t, ctx, c, g, names...)
	luns := make([]string, writers)
	for i := range luns {
		luns[i] = volumeLUNURL(t, ctx, c, arns[i])
	}
	// Each writer has its own random data, so that no block is the same as
	// another writer's (blocks are stored by content).
	const fileSize = 256 << 20
	srcs := make([]string, writers)
	dir := t.TempDir()
	for i := range srcs {
		srcs[i] = filepath.Join(dir, fmt.Sprintf("src%d.img", i))
		if err := writeRandomFile(srcs[i], fileSize); err != nil {
			t.Fatal(err)
		}
	}

	rss := newRSSSampler(srv.pid)
	stopRSS := rss.run(250 * time.Millisecond)
	defer stopRSS()
	// The timed calls are signed with the SDK's SigV4 signer and sent with
	// net/http: the SDK's own client intermittently fails a response read
	// on a connection its transport closed (aws/aws-sdk-go-v2#2737, fixed
	// there by retrying), and a retry would hide in the latency.
	rpc := &http.Client{}
	signer := v4.NewSigner()
	body := []byte(fmt.Sprintf(`{"GatewayARN":%q}`, g.arn))
	sum := sha256.Sum256(body)
	var callLog bytes.Buffer
	phaseName := "warm-up"
	list := func() (time.Duration, error) {
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.endpoint+"/", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "StorageGateway_20130630.ListVolumeRecoveryPoints")
		creds := aws.Credentials{AccessKeyID: e2eKeyID, SecretAccessKey: e2eSecret}
		if err := signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "storagegateway", "us-east-1", time.Now()); err != nil {
			return 0, err
		}
		resp, err := rpc.Do(req)
		if err != nil {
			return 0, err
		}
		var out struct{ VolumeRecoveryPointInfos []json.RawMessage }
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		d := time.Since(start)
		fmt.Fprintf(&callLog, "%s\t%d\t%d\t%d\n", phaseName, start.UnixNano(), start.Add(d).UnixNano(), int64(d))
		switch {
		case resp.StatusCode != http.StatusOK:
			err = fmt.Errorf("ListVolumeRecoveryPoints: HTTP %d", resp.StatusCode)
		case err == nil && len(out.VolumeRecoveryPointInfos) != volumes:
			err = fmt.Errorf("ListVolumeRecoveryPoints listed %d volumes, want %d", len(out.VolumeRecoveryPointInfos), volumes)
		}
		return d, err
	}
	// sample calls ListVolumeRecoveryPoints n times, 10 ms apart (a
	// dashboard polling, not a flood stealing the writers' CPU), or until
	// stop is closed once at least n calls were made.
	sample := func(n int, stop <-chan struct{}) []time.Duration {
		var ds []time.Duration
		for {
			d, err := list()
			if err != nil {
				t.Fatalf("call %d: %v", len(ds)+1, err)
			}
			ds = append(ds, d)
			if len(ds) >= n {
				select {
				case <-stop:
					return ds
				default:
				}
				if stop == nil {
					return ds
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var rows []controlRow
	phase := func(name string, f func() []time.Duration, load string) {
		phaseName = name
		rss.mark()
		before := serverLatency(t, srv.endpoint)
		ds := f()
		rows = append(rows, controlRow{name: name, lat: ds, rss: rss.since(), load: load, server: serverLatency(t, srv.endpoint).minus(before)})
	}

	sample(50, nil) // warm up: connections, the catalog's pages
	phase("idle", func() []time.Duration { return sample(calls, nil) }, "none")

	var written atomic.Int64
	var wg sync.WaitGroup
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	writeErr := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for loadCtx.Err() == nil {
				args := append(slices.Clone(initiator), "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", "-W", "-m", "8", srcs[i], luns[i])
				cmd := exec.CommandContext(loadCtx, args[0], args[1:]...)
				cmd.WaitDelay = 5 * time.Second
				out, err := cmd.CombinedOutput()
				if loadCtx.Err() != nil {
					return
				}
				if err != nil {
					writeErr <- fmt.Errorf("qemu-img convert to %s: %v\n%s", luns[i], err, out)
					return
				}
				written.Add(fileSize)
			}
		}()
	}
	loadStart := time.Now()
	profiled := make(chan struct{})
	if profDir != "" {
		go func() {
			defer close(profiled)
			if err := profileLoad(loadCtx, profDir, pprofAddr, srv.pid); err != nil {
				t.Errorf("profiling the load: %v", err)
			}
		}()
	} else {
		close(profiled)
	}
	stop := make(chan struct{})
	time.AfterFunc(loadFor, func() { close(stop) })
	var loadDesc string
	phase("8 of 32 volumes written", func() []time.Duration {
		ds := sample(calls, stop)
		<-profiled
		stopLoad()
		wg.Wait()
		el := time.Since(loadStart)
		loadDesc = fmt.Sprintf("%d×`%s` of random data, %.0f MiB/s for %.0f s (whole passes)",
			writers, strings.Join(append(slices.Clone(initiator), "qemu-img convert -W -m 8"), " "), float64(written.Load())/(1<<20)/el.Seconds(), el.Seconds())
		return ds
	}, "")
	rows[len(rows)-1].load = loadDesc
	select {
	case err := <-writeErr:
		t.Fatal(err)
	default:
	}
	phase("idle again", func() []time.Duration { return sample(calls, nil) }, "none (uploads may still run)")

	stopRSS()
	var b strings.Builder
	fmt.Fprintf(&b, "| phase | calls | p50 ms | p99 ms | max ms | server side: ≤ 2 ms / ≤ 8 ms / ≤ 32 ms | VmRSS MiB start → max → end | RssAnon MiB max | write load |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---|---|---:|---|\n")
	for _, r := range rows {
		p50, p99, mx := percentiles(r.lat)
		fmt.Fprintf(&b, "| %s | %d | %.2f | %.2f | %.2f | %s | %.0f → %.0f → %.0f | %.0f | %s |\n", r.name, len(r.lat), ms(p50), ms(p99), ms(mx),
			r.server, mib(r.rss.startRSS), mib(r.rss.maxRSS), mib(r.rss.endRSS), mib(r.rss.maxAnon), r.load)
	}
	fmt.Fprintf(&b, "\nLatency is the client's (request signed, sent, answer read); the server side is the share of calls its "+
		"volgw_api_request_duration_seconds histogram counts within each bound (handler time, without the client's and the "+
		"network's scheduling).\n")
	fmt.Fprintf(&b, "server: `volgw serve %s`; RSS of that process (VmRSS, RssAnon in /proc/<pid>/status), sampled every 250 ms\n",
		strings.Join(append([]string{"--listen 127.0.0.1:0 --iscsi-listen 127.0.0.1:0 --data-dir DIR"}, strings.Fields(os.Getenv("VOLGW_BENCH_FLAGS"))...), " "))
	t.Log("\n" + b.String())
	if path := os.Getenv("VOLGW_BENCH_CALLS"); path != "" {
		if err := os.WriteFile(path, callLog.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if path := os.Getenv("VOLGW_BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// freeLoopbackAddr is a loopback address no one listens on (for the
// moment: the server binds it right after).
func freeLoopbackAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// profileLoad takes, 8 s into the write load, a runtime/trace of the server
// (7 s) with `perf sched record` of the whole machine alongside when perf
// is installed, then a 10 s CPU profile, into dir, with the pids of the
// server and of this process, to tell their threads apart in perf's record.
func profileLoad(ctx context.Context, dir, pprofAddr string, serverPID int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "pids"), fmt.Appendf(nil, "volgw %d\ntest %d\n", serverPID, os.Getpid()), 0o644); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(8 * time.Second):
	}
	get := func(path, file string) error {
		resp, err := http.Get("http://" + pprofAddr + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	var perf *exec.Cmd
	if _, err := exec.LookPath("perf"); err == nil {
		perf = exec.Command("perf", "sched", "record", "-k", "CLOCK_MONOTONIC", "-o", filepath.Join(dir, "perf.data"), "--", "sleep", "8")
		if err := perf.Start(); err != nil {
			return err
		}
	}
	err := get("/debug/pprof/trace?seconds=7", "trace.out")
	if perf != nil {
		if perr := perf.Wait(); err == nil && perr != nil {
			err = fmt.Errorf("perf sched record: %w", perr)
		}
	}
	if err != nil {
		return err
	}
	return get("/debug/pprof/profile?seconds=10", "cpu.pb.gz")
}

// initiatorCommand is the command prefix that runs the writers at the CPU
// priority VOLGW_BENCH_INITIATORS names.
func initiatorCommand(prio string) ([]string, error) {
	switch prio {
	case "":
		return nil, nil
	case "nice":
		return []string{"nice", "-n", "19"}, nil
	case "idle":
		return []string{"chrt", "-i", "0"}, nil
	}
	return nil, fmt.Errorf("VOLGW_BENCH_INITIATORS %q: want nice or idle (or nothing)", prio)
}

type controlRow struct {
	name, load string
	lat        []time.Duration
	rss        rssSummary
	server     latencyBuckets
}

// latencyBuckets are the server's cumulative histogram counts of
// ListVolumeRecoveryPoints by upper bound (seconds, as /metrics writes it).
type latencyBuckets map[string]float64

var bucketRe = regexp.MustCompile(`^volgw_api_request_duration_seconds_bucket\{.*operation="ListVolumeRecoveryPoints".*le="([^"]+)"\} (\S+)$`)

// serverLatency reads the server's latency histogram of
// ListVolumeRecoveryPoints from /metrics.
func serverLatency(t *testing.T, endpoint string) latencyBuckets {
	t.Helper()
	resp, err := http.Get(endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := latencyBuckets{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if m := bucketRe.FindStringSubmatch(sc.Text()); m != nil {
			out[m[1]], _ = strconv.ParseFloat(m[2], 64)
		}
	}
	return out
}

func (l latencyBuckets) minus(o latencyBuckets) latencyBuckets {
	d := latencyBuckets{}
	for k, v := range l {
		d[k] = v - o[k]
	}
	return d
}

func (l latencyBuckets) String() string {
	all := l["+Inf"]
	if all == 0 {
		return "?"
	}
	var parts []string
	for _, le := range []string{"0.002", "0.008", "0.032"} {
		parts = append(parts, fmt.Sprintf("%.1f%%", 100*l[le]/all))
	}
	return strings.Join(parts, " / ")
}

func percentiles(ds []time.Duration) (p50, p99, mx time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.99), s[len(s)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(kib int64) float64      { return float64(kib) / 1024 }

func writeRandomFile(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, int64(n)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// binaryServer is a `volgw serve` child process.
type binaryServer struct {
	endpoint string
	pid      int
}

// startBinary runs bin serve on loopback ports and a temporary data dir,
// with its defaults otherwise, and stops it (SIGTERM, then SIGKILL) at the
// end of the test.
func startBinary(t *testing.T, bin string, flags []string) binaryServer {
	t.Helper()
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--iscsi-listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "VOLGW_ACCESS_KEY_ID="+e2eKeyID, "VOLGW_SECRET_ACCESS_KEY="+e2eSecret)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var mu sync.Mutex
	var log []string
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			log = append(log, sc.Text())
			mu.Unlock()
			select {
			case lines <- sc.Text():
			default:
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("volgw serve log:\n%s", strings.Join(log, "\n"))
			mu.Unlock()
		}
	})
	apiRe := regexp.MustCompile(`msg="volgw serving" api=(http://127\.0\.0\.1:\d+)`)
	timeout := time.After(time.Minute)
	for {
		select {
		case line := <-lines:
			if m := apiRe.FindStringSubmatch(line); m != nil {
				return binaryServer{endpoint: m[1], pid: cmd.Process.Pid}
			}
		case <-exited:
			t.Fatalf("volgw serve exited before serving")
		case <-timeout:
			t.Fatalf("volgw serve did not start within a minute")
		}
	}
}

// rssSampler reads VmRSS and RssAnon of a process periodically.
type rssSampler struct {
	pid int
	mu  sync.Mutex
	cur rssSummary
}

// rssSummary is in KiB, as /proc reports it.
type rssSummary struct {
	startRSS, maxRSS, endRSS, maxAnon int64
	n                                 int
}

func newRSSSampler(pid int) *rssSampler { return &rssSampler{pid: pid} }

func (r *rssSampler) read() (rss, anon int64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.pid))
	if err != nil {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = n
		case "RssAnon:":
			anon = n
		}
	}
	return rss, anon, true
}

func (r *rssSampler) sample() {
	rss, anon, ok := r.read()
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur.n == 0 {
		r.cur.startRSS = rss
	}
	r.cur.n++
	r.cur.endRSS = rss
	r.cur.maxRSS = max(r.cur.maxRSS, rss)
	r.cur.maxAnon = max(r.cur.maxAnon, anon)
}

// mark starts a new phase: the next summary covers samples from now.
func (r *rssSampler) mark() {
	r.mu.Lock()
	r.cur = rssSummary{}
	r.mu.Unlock()
	r.sample()
}

func (r *rssSampler) since() rssSummary {
	r.sample()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

func (r *rssSampler) run(every time.Duration) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				r.sample()
			}
		}
	}()
	return func() { once.Do(func() { close(done) }); wg.Wait() }
}
