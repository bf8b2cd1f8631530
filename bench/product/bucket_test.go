package product

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/storagegateway"
)

// requestCounter is a reverse proxy in front of the S3 server that counts
// the requests volgw makes, by what the store's owner is billed for.
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int64
}

func (c *requestCounter) kind(r *http.Request) string {
	switch {
	case r.Method == http.MethodGet && r.URL.Query().Has("list-type"):
		return "LIST"
	case r.Method == http.MethodGet && strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0:
		return "LIST" // ListObjects v1 on the bucket
	default:
		return r.Method
	}
}

func (c *requestCounter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

func diffCounts(a, b map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range b {
		out[k] = v - a[k]
	}
	return out
}

// startCounter proxies a loopback port to endpoint. The Host header is kept,
// so SigV4 signatures made for the proxy's address verify at the server.
func (e *benchEnv) startCounter(t *testing.T, endpoint string) (string, *requestCounter) {
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c := &requestCounter{n: map[string]int64{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := c.kind(r)
		c.mu.Lock()
		c.n[k]++
		c.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), c
}

// TestBucketBench: what the bucket holds and how many requests it takes,
// after the workload issue 11 names — 512 MiB of random data copied onto a
// volume, a snapshot of it, then 4 KiB random writes over it — once it
// settles under the default GC settings. Bytes stored are compared with
// live data plus snapshot-unique data, computed from the writes made.
func TestBucketBench(t *testing.T) {
	e := newBenchEnv(t)
	ctx := context.Background()
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: %v", tool, err)
		}
	}
	const data = 512 << 20
	writes := envInt("VOLGW_BENCH_RANDOM_WRITES", 4096)
	src, err := randomFile(filepath.Join(e.dir, "random.img"), data)
	if err != nil {
		t.Fatal(err)
	}
	s3, err := e.startVersityGW("volgw")
	if err != nil {
		t.Fatal(err)
	}
	endpoint, counter := e.startCounter(t, s3)
	bucketDir := filepath.Join(e.dir, "s3", "volgw", "gw")
	q := url.Values{"endpoint": {endpoint}, "region": {"us-east-1"}, "path_style": {"true"}}
	flags := append([]string{"--store", "s3://volgw/gw?" + q.Encode()}, strings.Fields(os.Getenv("VOLGW_BENCH_FLAGS"))...)
	g, err := e.startGateway(ctx, filepath.Join(e.dir, "data"), flags,
		[]string{"VOLGW_S3_ACCESS_KEY_ID=" + s3Key, "VOLGW_S3_SECRET_ACCESS_KEY=" + s3Secret})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.activate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.createVolume(ctx, 2<<30, "bucket"); err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	type phase struct {
		name          string
		written, read int64
		counts        map[string]int64
	}
	var phases []phase
	c0 := counter.snapshot()

	// 1. The copy.
	_, end, err := qemuConvert(ctx, device{name: "volgw", url: g.lun}, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.waitDurable(ctx, end); err != nil {
		t.Fatal(err)
	}
	c1 := counter.snapshot()
	phases = append(phases, phase{"512 MiB random, `qemu-img convert`", data, 0, diffCounts(c0, c1)})
	afterCopy := dirBytes(bucketDir)

	// 2. A snapshot of it, so superseded blocks it names must stay.
	snap, err := g.sgw.CreateSnapshotFromVolumeRecoveryPoint(ctx, &storagegateway.CreateSnapshotFromVolumeRecoveryPointInput{
		VolumeARN: aws.String(g.volARN), SnapshotDescription: aws.String("before the random writes")})
	if err != nil {
		t.Fatal(err)
	}

	// 3. 4 KiB random writes over the copied 512 MiB, in batches of qemu-io
	// commands over one iSCSI session each.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	touched := map[int64]bool{}
	for done := 0; done < writes; {
		n := min(512, writes-done)
		args := []string{"-f", "raw"}
		for range n {
			off := rng.Int64N(data/4096) * 4096
			touched[off/(512<<10)] = true
			args = append(args, "-c", fmt.Sprintf("write -P %d %d 4k", 1+rng.IntN(250), off))
		}
		args = append(args, "-c", "flush", g.lun)
		if out, err := run(ctx, 10*time.Minute, "qemu-io", args...); err != nil {
			t.Fatalf("qemu-io: %v\n%s", err, out)
		}
		done += n
	}
	if _, err := g.waitDurable(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	c2 := counter.snapshot()
	phases = append(phases, phase{fmt.Sprintf("%d random 4 KiB writes (%d blocks touched)", writes, len(touched)), int64(writes) * 4096, 0, diffCounts(c1, c2)})
	afterWrites := dirBytes(bucketDir)

	// 4. Settle: the GC rounds of the default settings reclaim what no
	// head, recovery point or snapshot names.
	live := int64(data)                             // every block of the copy is still the volume's
	snapUnique := int64(len(touched)) * (512 << 10) // the snapshot's versions of the touched blocks
	bound := float64(live+snapUnique) * 1.1
	settleStart := time.Now()
	var settled time.Duration
	var stored int64
	for time.Since(settleStart) < 20*time.Minute {
		stored = dirBytes(bucketDir)
		if float64(stored) <= bound {
			settled = time.Since(settleStart)
			break
		}
		time.Sleep(5 * time.Second)
	}
	c3 := counter.snapshot()
	idle := time.Since(settleStart)
	phases = append(phases, phase{fmt.Sprintf("settling, idle (%.0f s)", idle.Seconds()), 0, 0, diffCounts(c2, c3)})

	// What GC left must be whole: the snapshot restores to the copy,
	// byte for byte (qemu-img compare; the volume's rest reads as zeros).
	volARN, lun := g.volARN, g.lun
	if err := g.createVolumeFrom(ctx, 2<<30, "restored", aws.ToString(snap.SnapshotId)); err != nil {
		t.Fatal(err)
	}
	if out, err := run(ctx, 10*time.Minute, "qemu-img", "compare", "-f", "raw", "-F", "raw", src, g.lun); err != nil {
		t.Fatalf("the snapshot does not restore to the copy after GC: %v\n%s", err, out)
	}
	g.volARN, g.lun = volARN, lun
	c3r := counter.snapshot()
	phases = append(phases, phase{"restore of the snapshot, read whole by `qemu-img compare`", 0, data, diffCounts(c3, c3r)})
	c3 = c3r

	// 5. Cold read of the copy after a restart.
	if err := g.restart(ctx); err != nil {
		t.Fatal(err)
	}
	d := device{name: "volgw", url: g.lun, limit: data}
	rate, _, err := qemuBench(ctx, d, false, 1<<20, 0, 8, data>>20)
	if err != nil {
		t.Fatal(err)
	}
	c4 := counter.snapshot()
	phases = append(phases, phase{"cold read of the 512 MiB after a restart (`qemu-img bench` 1 MiB QD8)", 0, data, diffCounts(c3, c4)})
	if err := g.proc.stop(syscall.SIGTERM, time.Minute); err != nil {
		t.Fatal(err)
	}

	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	fmt.Fprintf(&report, "`volgw serve` (flags: `%s`) on one versitygw behind a counting proxy, a 2 GiB volume created through the API and written over iSCSI; load average %s at the end.\n\n",
		strings.Join(flags[2:], " "), loadavg())
	fmt.Fprintf(&report, "| after | bytes in the bucket | live + snapshot-unique | ratio |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(&report, "| the copy | %.0f MiB | %.0f MiB | %.2f |\n", mib(afterCopy), mib(live), float64(afterCopy)/float64(live))
	fmt.Fprintf(&report, "| the random writes (durable) | %.0f MiB | %.0f MiB | %.2f |\n", mib(afterWrites), mib(live+snapUnique), float64(afterWrites)/float64(live+snapUnique))
	if settled > 0 {
		fmt.Fprintf(&report, "| settled, %.0f s later | %.0f MiB | %.0f MiB | **%.2f** |\n\n", settled.Seconds(), mib(stored), mib(live+snapUnique), float64(stored)/float64(live+snapUnique))
	} else {
		fmt.Fprintf(&report, "| not settled after %.0f s | %.0f MiB | %.0f MiB | **%.2f** |\n\n", idle.Seconds(), mib(stored), mib(live+snapUnique), float64(stored)/float64(live+snapUnique))
	}
	report.WriteString("Requests (what S3 bills per request), per phase and per GiB moved:\n\n| phase | PUT | GET | HEAD | LIST | DELETE | PUTs per GiB written | GETs per GiB read |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range phases {
		perW, perR := "", ""
		if p.written > 0 {
			perW = fmt.Sprintf("%.0f", float64(p.counts["PUT"])/(float64(p.written)/(1<<30)))
		}
		if p.read > 0 {
			perR = fmt.Sprintf("%.0f", float64(p.counts["GET"])/(float64(p.read)/(1<<30)))
		}
		fmt.Fprintf(&report, "| %s | %d | %d | %d | %d | %d | %s | %s |\n", p.name, p.counts["PUT"], p.counts["GET"], p.counts["HEAD"], p.counts["LIST"], p.counts["DELETE"], perW, perR)
	}
	fmt.Fprintf(&report, "\nAfter settling, the snapshot restored to a new volume matched the copy byte for byte (`qemu-img compare`). Cold read after the restart: %.0f MB/s.\n", rate)
	t.Logf("\n%s", report.String())
	if path := os.Getenv("VOLGW_BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	if settled == 0 {
		t.Errorf("the bucket did not settle to 1.1 × (live + snapshot-unique) within %v", idle)
	}
}
