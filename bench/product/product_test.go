package product

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchRow is one workload, measured on one device per call.
type benchRow struct {
	name string
	run  func(ctx context.Context, d device) (rate float64, unit string, err error)
}

func benchRowOf(name string, write bool, size, step int64, depth, count int) benchRow {
	return benchRow{name: name, run: func(ctx context.Context, d device) (float64, string, error) {
		return qemuBench(ctx, d, write, size, step, depth, count)
	}}
}

// patternRow is a write row whose data is not zeros: qemu-img bench
// writes zeros unless given --pattern, and zeros are what volgw never
// stores (a block of them, or a patch of them over one), so a zero row says
// nothing of what a cut of real data costs. Each call writes another byte
// (1–255), so no call rewrites what the one before stored, which a
// content-addressed store would find already there.
func patternRow(name string, size, step int64, depth, count int) benchRow {
	calls := 0
	return benchRow{name: name, run: func(ctx context.Context, d device) (float64, string, error) {
		calls++
		return qemuBench(ctx, d, true, size, step, depth, count, "--pattern="+strconv.Itoa(1+calls%255))
	}}
}

// convertRow copies n bytes of fresh random data (a new file per call,
// made before the clock starts) onto the device with qemu-img convert; the
// rate is until qemu-img returns, i.e. acknowledged and flushed.
func convertRow(name, dir string, n int64) benchRow {
	return benchRow{name: name, run: func(ctx context.Context, d device) (float64, string, error) {
		src, err := randomFile(filepath.Join(dir, "random.img"), n)
		if err != nil {
			return 0, "", err
		}
		defer os.Remove(src)
		start, end, err := qemuConvert(ctx, d, src)
		if err != nil {
			return 0, "", err
		}
		return float64(n) / end.Sub(start).Seconds() / 1e6, "MB/s", nil
	}}
}

// runRounds measures every row on every device, rounds times; within a row
// the devices take turns, and which goes first alternates from round to
// round (a rotation for three). After each write the device settles,
// untimed. each, when set, runs before every round (a fresh gateway).
func runRounds(ctx context.Context, t *testing.T, res *results, rows []benchRow, devs func() []device, rounds int, write bool, each func(round int) (undo func(), err error)) {
	for round := range rounds {
		undo := func() {}
		if each != nil {
			var err error
			if undo, err = each(round); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		ds := devs()
		order := make([]device, len(ds))
		for k := range ds {
			order[k] = ds[(k+round)%len(ds)]
		}
		if round%2 == 1 {
			for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
				order[i], order[j] = order[j], order[i]
			}
		}
		for _, row := range rows {
			for _, d := range order {
				rate, unit, err := row.run(ctx, d)
				t.Logf("round %d %-50s %-8s %10.1f %s %v (load %s)", round, row.name, d.name, rate, unit, errOrEmpty(err), loadavg())
				res.add(row.name, d.name, rate, unit, err)
				if write && d.settle != nil {
					if err := d.settle(ctx); err != nil {
						t.Fatalf("%s settling after %s: %v", d.name, row.name, err)
					}
				}
			}
		}
		undo()
	}
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestProductBench measures the product path against tgtd serving a plain,
// preallocated 4 GiB file (bench/product.sh runs it and prints the tables
// of BENCHMARKS.md's "Product path" section).
func TestProductBench(t *testing.T) {
	e := newBenchEnv(t)
	ctx := context.Background()
	rounds := envInt("VOLGW_BENCH_ROUNDS", 3)
	const (
		size   = 4 << 30
		k4, m1 = 4 << 10, 1 << 20
		// 7919 is prime: the 4 KiB hops visit offsets spread over the LUN.
		hop = k4 * 7919
	)
	writeRows := []benchRow{
		benchRowOf("qemu-img bench 1 MiB sequential write, QD8", true, m1, 0, 8, 1024),
		benchRowOf("qemu-img bench 4 KiB sequential write, QD32", true, k4, 0, 32, 50000),
		benchRowOf("qemu-img bench 4 KiB random write, QD32", true, k4, hop, 32, 50000),
		patternRow("qemu-img bench 4 KiB random write, QD32, non-zero data", k4, hop, 32, 50000),
		convertRow("qemu-img convert -W -m 8, 768 MiB of fresh random data", e.dir, 768<<20),
	}
	readRows := []benchRow{
		benchRowOf("qemu-img bench 1 MiB sequential read, QD8", false, m1, 0, 8, 4096),
		benchRowOf("qemu-img bench 4 KiB random read, QD32", false, k4, hop, 32, 100000),
		{name: "iscsi-perf 4 KiB random read, QD32", run: func(_ context.Context, d device) (float64, string, error) {
			return iscsiPerf(d, 8, 32, true, 5*time.Second)
		}},
		{name: "iscsi-perf 1 MiB sequential read, QD8", run: func(_ context.Context, d device) (float64, string, error) {
			return iscsiPerf(d, 2048, 8, false, 5*time.Second)
		}},
	}

	tgtdFile := filepath.Join(e.dir, "tgtd.img")
	if err := preallocate(tgtdFile, size); err != nil {
		t.Fatal(err)
	}
	tgt, err := e.startTGTD(ctx, tgtdFile)
	if err != nil {
		t.Fatal(err)
	}
	// tgtd's writes are at rest once in its file: fsync it, as volgw's
	// are once the recovery point passes them.
	tgt.settle = func(context.Context) error {
		f, err := os.OpenFile(tgtdFile, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	}
	newVolgw := func(dataDir string) (*gateway, device, error) {
		g, err := e.startGateway(ctx, dataDir, nil, nil)
		if err != nil {
			return nil, device{}, err
		}
		if err := g.activate(ctx); err != nil {
			return nil, device{}, err
		}
		if err := g.createVolume(ctx, size, "bench"); err != nil {
			return nil, device{}, err
		}
		d := device{name: "volgw", url: g.lun, settle: func(ctx context.Context) error {
			_, err := g.waitDurable(ctx, time.Now())
			return err
		}}
		return g, d, nil
	}
	var report strings.Builder
	fmt.Fprintf(&report, "Product path: volgw serve (default flags, own data dir, file store) vs tgtd (rdwr, preallocated %d GiB file), %d rounds, %d vCPUs.\n\n",
		size>>30, rounds, runtime.NumCPU())

	// (a) A fresh upload buffer (a new data dir each round) on a machine
	// whose memory is all page cache: every journal append touches a page
	// that has to be reclaimed first.
	resA := newResults()
	var vol device
	var gw *gateway
	loadA := loadavg()
	var filledA []string
	runRounds(ctx, t, resA, writeRows, func() []device { return []device{vol, tgt} }, rounds, true, func(round int) (func(), error) {
		dataDir := filepath.Join(e.dir, fmt.Sprintf("fresh%d", round))
		g, d, err := newVolgw(dataDir)
		if err != nil {
			return nil, err
		}
		gw, vol = g, d
		filled, undoFill, err := fillPageCache(e.dir, 2<<30)
		if err != nil {
			return nil, err
		}
		filledA = append(filledA, fmt.Sprintf("%.1f", float64(filled)/(1<<30)))
		t.Logf("round %d: page cache filled with %d MiB; MemFree %d MiB", round, filled>>20, meminfo("MemFree")>>20)
		return func() {
			undoFill()
			gw.proc.stop(syscall.SIGTERM, time.Minute)
			os.RemoveAll(dataDir)
		}, nil
	})
	fmt.Fprintf(&report, "### (a) fresh upload buffer, page cache full (load average %s before, %s after)\n\n", loadA, loadavg())
	fmt.Fprintf(&report, "Each round: a new data dir and gateway; then `sync`, `echo 3 > /proc/sys/vm/drop_caches`, and a sparse file of all but 2 GiB of MemAvailable read into the page cache (GiB cached per round: %s), so every page a writer touches first needs reclaim.\n\n", strings.Join(filledA, ", "))
	report.WriteString(resA.table([]string{"volgw", "tgtd"}))

	// (b) The same rows after the upload-buffer ring has wrapped: 6 GiB
	// (more than the default 5 GiB buffer) written and uploaded first.
	loadB := loadavg()
	g, d, err := newVolgw(filepath.Join(e.dir, "wrapped"))
	if err != nil {
		t.Fatal(err)
	}
	gw, vol = g, d
	start := time.Now()
	if _, _, err := qemuBench(ctx, vol, true, m1, 0, 8, 6144); err != nil {
		t.Fatal(err)
	}
	acked := time.Now()
	seen, err := gw.waitDurable(ctx, acked)
	if err != nil {
		t.Fatal(err)
	}
	wrapNote := fmt.Sprintf("6 GiB written (qemu-img bench 1 MiB QD8) through the 5 GiB upload buffer in %.1f s (%.0f MB/s acknowledged), in the store %.1f s after the start (%.0f MB/s).",
		acked.Sub(start).Seconds(), 6*(1<<30)/acked.Sub(start).Seconds()/1e6, seen.Sub(start).Seconds(), 6*(1<<30)/seen.Sub(start).Seconds()/1e6)
	t.Log(wrapNote)
	resB := newResults()
	runRounds(ctx, t, resB, writeRows, func() []device { return []device{vol, tgt} }, rounds, true, nil)
	fmt.Fprintf(&report, "\n### (b) after the upload-buffer ring has wrapped (load average %s before, %s after)\n\n%s\n\n", loadB, loadavg(), wrapNote)
	report.WriteString(resB.table([]string{"volgw", "tgtd"}))

	loadR := loadavg()
	resR := newResults()
	runRounds(ctx, t, resR, readRows, func() []device { return []device{vol, tgt} }, rounds, false, nil)
	fmt.Fprintf(&report, "\n### reads: the whole LUN written, volgw's from its cache (load average %s before, %s after)\n\n", loadR, loadavg())
	report.WriteString(resR.table([]string{"volgw", "tgtd"}))

	for _, res := range []*results{resA, resB, resR} {
		for _, msg := range res.errors() {
			t.Error(msg)
		}
	}
	t.Logf("\n%s", report.String())
	if path := os.Getenv("VOLGW_BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}
