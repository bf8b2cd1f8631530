package product

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// peer is one S3-backed block device under test.
type peer struct {
	device
	// durable waits until every write acknowledged before end is in the
	// object store and returns when it saw that.
	durable func(ctx context.Context, end time.Time) (time.Time, error)
	// restart stops the device cleanly and starts it again: its cache, if
	// it has one, is cold.
	restart func(ctx context.Context) error
	// randomCount is how many 4 KiB requests its random rows make: a
	// write-through device does two orders of magnitude fewer a second,
	// and its rows must stay seconds long too.
	randomCount int
}

// Where the peers keep their data and how they reach versitygw.
const (
	s3Key, s3Secret = "benchkey", "benchsecret"
	peerSize        = 1 << 30 // volgw's smallest volume; the others match it
	roundData       = 512 << 20
)

// startVersityGW serves dir (one bucket per subdirectory) on a free
// loopback port and returns its endpoint. With --keep-alive, as AWS S3 and
// MinIO keep connections: without it versitygw closed every connection
// after one request, so each PUT of every peer paid a TCP handshake on
// both sides (1 029 connects for 1 024 PUTs).
func (e *benchEnv) startVersityGW(buckets ...string) (string, error) {
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		return "", fmt.Errorf("versitygw not in PATH (scripts/install-bench-deps.sh installs it in $(go env GOPATH)/bin): %w", err)
	}
	dir := filepath.Join(e.dir, "s3")
	for _, b := range buckets {
		if err := os.MkdirAll(filepath.Join(dir, b), 0o755); err != nil {
			return "", err
		}
	}
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		p, err := e.start("versitygw", nil, bin, "--access", s3Key, "--secret", s3Secret, "--region", "us-east-1",
			"--port", addr, "--quiet", "--keep-alive", "posix", dir)
		if err != nil {
			return "", err
		}
		if lastErr = waitListening(addr, p, 20*time.Second); lastErr == nil {
			// Answering HTTP, not just accepting.
			resp, err := http.Get("http://" + addr + "/")
			if err == nil {
				resp.Body.Close()
				return "http://" + addr, nil
			}
			lastErr = err
		}
		p.kill()
	}
	return "", fmt.Errorf("versitygw did not start: %w", lastErr)
}

// volgwPeer is volgw serve (e.bin) on the versitygw bucket name, a 1 GiB
// volume over iSCSI. Durable: ListVolumeRecoveryPoints' recovery point at
// or past the write's end, i.e. the write is in a published recovery point
// — the state a restore or a snapshot from the recovery point would see,
// reached without the client doing anything more.
//
// extra are more `volgw serve` flags (VOLGW_BENCH_FLAGS, for the build
// under test only: a base build may not know them, and two processes
// cannot share a --pprof-listen address).
func (e *benchEnv) volgwPeer(ctx context.Context, endpoint, name string, extra []string) (*peer, error) {
	q := url.Values{"endpoint": {endpoint}, "region": {"us-east-1"}, "path_style": {"true"}}
	flags := append([]string{"--store", "s3://" + name + "/gw?" + q.Encode()}, extra...)
	g, err := e.startGateway(ctx, filepath.Join(e.dir, name+"-data"), flags,
		[]string{"VOLGW_S3_ACCESS_KEY_ID=" + s3Key, "VOLGW_S3_SECRET_ACCESS_KEY=" + s3Secret})
	if err != nil {
		return nil, err
	}
	if err := g.activate(ctx); err != nil {
		return nil, err
	}
	if err := g.createVolume(ctx, peerSize, "peers"); err != nil {
		return nil, err
	}
	p := &peer{device: device{name: name, limit: roundData}, durable: g.waitDurable, randomCount: 20000}
	p.url = g.lun
	p.restart = func(ctx context.Context) error {
		if err := g.restart(ctx); err != nil {
			return err
		}
		p.url = g.lun // a new iSCSI port: the new process listens on a fresh one
		return nil
	}
	return p, nil
}

// s3backerPeer mounts s3backer 1.5.4 on the bucket "s3backer" as
// PEERS.md does (512 KiB blocks, --listBlocks, a 2048-block RAM cache),
// used through its FUSE file with O_DIRECT. Durable: its stats file reads
// block_cache_dirty_ratio 0.0000 (its fsync returns at once).
func (e *benchEnv) s3backerPeer(ctx context.Context, endpoint string) (*peer, error) {
	mnt := filepath.Join(e.dir, "s3backer-mnt")
	access := filepath.Join(e.dir, "s3backer-access")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(access, []byte(s3Key+":"+s3Secret+"\n"), 0o600); err != nil {
		return nil, err
	}
	var proc *proc
	mount := func(ctx context.Context) error {
		p, err := e.start("s3backer", nil, "s3backer", "-f", "--baseURL="+endpoint+"/", "--accessFile="+access,
			"--blockSize=512k", "--size="+strconv.Itoa(peerSize>>30)+"g", "--listBlocks", "--blockCacheSize=2048",
			"s3backer", mnt)
		if err != nil {
			return err
		}
		proc = p
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return waitFor(ctx, 20*time.Millisecond, func() (bool, error) {
			select {
			case <-p.exited:
				return false, fmt.Errorf("s3backer exited (%v): %s", p.err, p.out.String())
			default:
			}
			_, err := os.Stat(filepath.Join(mnt, "stats"))
			return err == nil, nil
		})
	}
	unmount := func(ctx context.Context) error {
		if out, err := run(ctx, time.Minute, "umount", mnt); err != nil {
			return fmt.Errorf("umount: %w: %s", err, out)
		}
		// umount returns before the dirty blocks are written: s3backer
		// exits once they are.
		select {
		case <-proc.exited:
			return nil
		case <-time.After(5 * time.Minute):
			return fmt.Errorf("s3backer still running 5 minutes after umount")
		}
	}
	if err := mount(ctx); err != nil {
		return nil, err
	}
	e.t.Cleanup(func() {
		run(context.Background(), time.Minute, "umount", "-l", mnt)
	})
	p := &peer{device: device{name: "s3backer", url: filepath.Join(mnt, "file"), direct: true, limit: roundData}, randomCount: 20000}
	p.durable = func(ctx context.Context, _ time.Time) (time.Time, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		var seen time.Time
		err := waitFor(ctx, 20*time.Millisecond, func() (bool, error) {
			b, err := os.ReadFile(filepath.Join(mnt, "stats"))
			seen = time.Now()
			if err != nil {
				return false, err
			}
			return s3backerClean.Match(b), nil
		})
		return seen, err
	}
	p.restart = func(ctx context.Context) error {
		if err := unmount(ctx); err != nil {
			return err
		}
		return mount(ctx)
	}
	return p, nil
}

// nbdkitPeer serves nbdkit's S3 plugin on the bucket "nbdkit" with 512 KiB
// objects (behind the blocksize-policy filter, which the Debian plugin
// needs for objects over 64 KiB), reached as nbd://. It writes through:
// durable on return.
func (e *benchEnv) nbdkitPeer(ctx context.Context, endpoint string) (*peer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var proc *proc
	start := func() error {
		p, err := e.start("nbdkit", []string{"AWS_DEFAULT_REGION=us-east-1"}, "nbdkit", "-f", "--exit-with-parent",
			"-p", strconv.Itoa(port), "-i", "127.0.0.1", "--filter=blocksize-policy", "S3",
			"blocksize-minimum=4096", "blocksize-preferred=512k", "blocksize-maximum=32M",
			"endpoint-url="+endpoint, "bucket=nbdkit", "key=disk", "size="+strconv.Itoa(peerSize>>30)+"G",
			"object-size=512k", "access-key="+s3Key, "secret-key="+s3Secret)
		if err != nil {
			return err
		}
		proc = p
		return waitListening(fmt.Sprintf("127.0.0.1:%d", port), p, 30*time.Second)
	}
	if err := start(); err != nil {
		return nil, err
	}
	p := &peer{device: device{name: "nbdkit-S3", url: fmt.Sprintf("nbd://127.0.0.1:%d", port), limit: roundData}, randomCount: 1000}
	p.durable = func(_ context.Context, end time.Time) (time.Time, error) { return end, nil }
	p.restart = func(context.Context) error {
		if err := proc.stop(syscall.SIGTERM, time.Minute); err != nil {
			return err
		}
		return start()
	}
	return p, nil
}

var s3backerClean = regexp.MustCompile(`(?m)^block_cache_dirty_ratio\s+0\.0000$`)

// TestPeersBench measures volgw against s3backer and nbdkit's S3 plugin,
// all three on one versitygw (bench/peers.sh runs it and prints BENCHMARKS.md's
// "S3-backed peers" table). With VOLGW_BENCH_BASE_BIN (bench/peers.sh
// builds it from VOLGW_BENCH_BASE), a volgw built from another commit is
// a fourth device, "volgw-base", interleaved with the others: a change's
// before and after in one run.
func TestPeersBench(t *testing.T) {
	e := newBenchEnv(t)
	ctx := context.Background()
	rounds := envInt("VOLGW_BENCH_ROUNDS", 3)
	for _, tool := range []string{"s3backer", "nbdkit", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (scripts/install-bench-deps.sh): %v", tool, err)
		}
	}
	baseBin := os.Getenv("VOLGW_BENCH_BASE_BIN")
	endpoint, err := e.startVersityGW("volgw", "volgw-base", "s3backer", "nbdkit")
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.volgwPeer(ctx, endpoint, "volgw", strings.Fields(os.Getenv("VOLGW_BENCH_FLAGS")))
	if err != nil {
		t.Fatal(err)
	}
	peers := []*peer{v}
	if baseBin != "" {
		be := *e
		be.bin = baseBin
		b, err := be.volgwPeer(ctx, endpoint, "volgw-base", nil)
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, b)
	}
	var unavailable []string
	for _, startPeer := range []func(context.Context, string) (*peer, error){e.s3backerPeer, e.nbdkitPeer} {
		p, err := startPeer(ctx, endpoint)
		if err != nil {
			// Say why and measure the others.
			t.Errorf("peer not measured: %v", err)
			unavailable = append(unavailable, err.Error())
			continue
		}
		peers = append(peers, p)
	}
	for _, p := range peers {
		p.settle = func(ctx context.Context) error { _, err := p.durable(ctx, time.Now()); return err }
	}
	const (
		k4, m1 = 4 << 10, 1 << 20
		hop    = k4 * 7919 // prime: the 4 KiB hops spread over the round's 512 MiB
	)
	rows := struct{ ack, durable, cold, warm, rw, rr string }{
		ack:     "sequential write, acknowledged (qemu-img convert -W -m 8 returned)",
		durable: "sequential write, durable in the object store",
		cold:    "sequential read, cold: after a restart (qemu-img bench 1 MiB, QD8)",
		warm:    "sequential read, warm: right after the cold read",
		rw:      "4 KiB random write, QD32 (qemu-img bench)",
		rr:      "4 KiB random read, QD32 (qemu-img bench)",
	}
	res := newResults()
	note := func(row string, p *peer, rate float64, unit string, err error) {
		t.Logf("%-70s %-10s %10.1f %s %v (load %s)", row, p.name, rate, unit, errOrEmpty(err), loadavg())
		res.add(row, p.name, rate, unit, err)
	}
	loadBefore := loadavg()
	for round := range rounds {
		order := make([]*peer, len(peers))
		for k := range peers {
			order[k] = peers[(k+round)%len(peers)]
		}
		if round%2 == 1 {
			for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
				order[i], order[j] = order[j], order[i]
			}
		}
		for _, p := range order {
			src, err := randomFile(filepath.Join(e.dir, "random.img"), roundData)
			if err != nil {
				t.Fatal(err)
			}
			start, end, err := qemuConvert(ctx, p.device, src)
			os.Remove(src)
			if err != nil {
				note(rows.ack, p, 0, "", err)
				continue
			}
			note(rows.ack, p, roundData/end.Sub(start).Seconds()/1e6, "MB/s", nil)
			seen, err := p.durable(ctx, end)
			t.Logf("%s: written %s–%s, durable seen %s", p.name, start.Format("15:04:05.000"), end.Format("15:04:05.000"), seen.Format("15:04:05.000"))
			note(rows.durable, p, roundData/seen.Sub(start).Seconds()/1e6, "MB/s", err)
		}
		for _, p := range order {
			if err := p.restart(ctx); err != nil {
				t.Fatalf("restarting %s: %v", p.name, err)
			}
		}
		for _, row := range []string{rows.cold, rows.warm} {
			for _, p := range order {
				rate, unit, err := qemuBench(ctx, p.device, false, m1, 0, 8, roundData/m1)
				note(row, p, rate, unit, err)
			}
		}
		for _, p := range order {
			rate, unit, err := qemuBench(ctx, p.device, true, k4, hop, 32, p.randomCount)
			note(rows.rw, p, rate, unit, err)
			if err := p.settle(ctx); err != nil {
				t.Fatalf("%s settling: %v", p.name, err)
			}
		}
		for _, p := range order {
			rate, unit, err := qemuBench(ctx, p.device, false, k4, hop, 32, p.randomCount)
			note(rows.rr, p, rate, unit, err)
		}
	}
	var names []string
	for _, p := range peers {
		names = append(names, p.name)
	}
	var report strings.Builder
	base := ""
	if baseBin != "" {
		base = fmt.Sprintf(" (volgw-base: volgw built from %s)", cmp.Or(os.Getenv("VOLGW_BENCH_BASE"), baseBin))
	}
	fmt.Fprintf(&report, "volgw (iSCSI) vs s3backer (FUSE file, O_DIRECT) vs nbdkit-S3 (NBD), all on one versitygw on 127.0.0.1%s; %d MiB of fresh random data per device per round; %d rounds, interleaved; load average %s before, %s after.\n\n",
		base, roundData>>20, rounds, loadBefore, loadavg())
	report.WriteString(res.table(names))
	for _, u := range unavailable {
		fmt.Fprintf(&report, "\nNot measured: %s\n", u)
	}
	for _, msg := range res.errors() {
		t.Error(msg)
	}
	t.Logf("\n%s", report.String())
	if path := os.Getenv("VOLGW_BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}
