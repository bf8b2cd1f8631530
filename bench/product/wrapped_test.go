package product

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procCounters is what /proc says of a process and the disk at a moment.
type procCounters struct {
	cpu        float64 // user+system seconds of the process
	readBytes  int64   // /proc/pid/io read_bytes
	writeBytes int64   // /proc/pid/io write_bytes
	syscw      int64
	disk       []int64 // /proc/diskstats fields of the data dir's disk
}

func readCounters(pid int, disk string) procCounters {
	var c procCounters
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		c.cpu = (ut + st) / 100
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ": ")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "read_bytes":
				c.readBytes = n
			case "write_bytes":
				c.writeBytes = n
			case "syscw":
				c.syscw = n
			}
		}
	}
	if b, err := os.ReadFile("/proc/diskstats"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 3 && f[2] == disk {
				for _, x := range f[3:] {
					n, _ := strconv.ParseInt(x, 10, 64)
					c.disk = append(c.disk, n)
				}
			}
		}
	}
	return c
}

// metric reads one sample off the gateway's /metrics (0 if absent).
func (g *gateway) metric(name string) float64 {
	resp, err := http.Get(g.api + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// fetchTo saves url's body to path (a profile, a trace).
func fetchTo(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// TestWrappedRandomWriteBench measures the product path's 4 KiB "random"
// write row in state (b) — after 6 GiB went through the 5 GiB upload
// buffer — for one or more builds (VOLGW_BENCH_BINS="name=path,…"; else
// the tree's), interleaved: every build gets its own gateway, filled
// first, then the passes take turns. Per pass: IOPS, whether a cut ran
// inside it, the process's CPU and I/O, the disk's (VOLGW_BENCH_DISK,
// default vda: /proc/diskstats is the whole disk's, other processes'
// I/O included). VOLGW_BENCH_PASSES passes (5). With
// VOLGW_BENCH_PROFILES=dir, a CPU profile (or, with VOLGW_BENCH_TRACE=1,
// a runtime trace) of each pass's first 5 s is saved there, and with
// VOLGW_BENCH_MUTEX=1 the mutex and block profiles after it (empty unless
// the build sets their rates). VOLGW_BENCH_PRE=1 runs before each pass
// what TestProductBench runs before the row — a 1 MiB write of 1 GiB and
// the 4 KiB sequential row, each waited for until in the store — then
// sleeps VOLGW_BENCH_GAP seconds (12; tgtd's rows); VOLGW_BENCH_SYNC=1
// syncs right before each pass (no earlier write-back inside it).
// VOLGW_BENCH_FILL_PATTERN=1 fills with non-zero data (every block stored
// whole, not a zero block) and VOLGW_BENCH_PATTERN=1 makes the passes
// write non-zero data (patches over those blocks).
func TestWrappedRandomWriteBench(t *testing.T) {
	e := newBenchEnv(t)
	ctx := context.Background()
	const (
		size = 4 << 30
		k4   = 4 << 10
		hop  = k4 * 7919
	)
	type build struct {
		name, bin string
		g         *gateway
		d         device
		pprof     string
		iops      []float64
		cutIOPS   []float64
		quietIOPS []float64
		m1, seq   []float64
	}
	var builds []*build
	if s := os.Getenv("VOLGW_BENCH_BINS"); s != "" {
		for _, nb := range strings.Split(s, ",") {
			n, b, _ := strings.Cut(nb, "=")
			builds = append(builds, &build{name: n, bin: b})
		}
	} else {
		builds = append(builds, &build{name: "tree", bin: e.bin})
	}
	passes := envInt("VOLGW_BENCH_PASSES", 5)
	var fillData []string
	if os.Getenv("VOLGW_BENCH_FILL_PATTERN") == "1" {
		fillData = []string{"--pattern=170"} // blocks of data, written whole
	}
	profDir := os.Getenv("VOLGW_BENCH_PROFILES")
	disk := envString("VOLGW_BENCH_DISK", "vda")
	for i, b := range builds {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		b.pprof = fmt.Sprintf("127.0.0.1:%d", port)
		e.bin = b.bin
		g, err := e.startGateway(ctx, filepath.Join(e.dir, fmt.Sprintf("wrapped%d", i)), []string{"--pprof-listen", b.pprof}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.activate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := g.createVolume(ctx, size, "bench"); err != nil {
			t.Fatal(err)
		}
		b.g = g
		b.d = device{name: b.name, url: g.lun}
		start := time.Now()
		if _, _, err := qemuBench(ctx, b.d, true, 1<<20, 0, 8, 6144, fillData...); err != nil {
			t.Fatal(err)
		}
		seen, err := g.waitDurable(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: 6 GiB filled and in the store in %.1f s (load %s)", b.name, seen.Sub(start).Seconds(), loadavg())
	}
	t.Logf("start: load %s", loadavg())
	for pass := range passes {
		for k := range builds {
			b := builds[(k+pass)%len(builds)]
			if _, err := b.g.waitDurable(ctx, time.Now()); err != nil {
				t.Fatal(err)
			}
			pid := b.g.proc.cmd.Process.Pid
			patches0 := b.g.metric(`volgw_cut_blocks_total{as="patch"}`)
			cuts0 := b.g.metric("volgw_cut_duration_seconds_count")
			profDone := make(chan error, 1)
			if profDir != "" {
				kind, ext := "profile", "pprof"
				if os.Getenv("VOLGW_BENCH_TRACE") == "1" {
					kind, ext = "trace", "trace"
				}
				path := filepath.Join(profDir, fmt.Sprintf("%s-pass%d.%s", b.name, pass, ext))
				go func() { profDone <- fetchTo(fmt.Sprintf("http://%s/debug/pprof/%s?seconds=5", b.pprof, kind), path) }()
			} else {
				profDone <- nil
			}
			if os.Getenv("VOLGW_BENCH_PRE") == "1" {
				// The rows TestProductBench runs before this one, and
				// the time tgtd's take.
				m1, _, err := qemuBench(ctx, b.d, true, 1<<20, 0, 8, 1024)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := b.g.waitDurable(ctx, time.Now()); err != nil {
					t.Fatal(err)
				}
				seq, _, err := qemuBench(ctx, b.d, true, k4, 0, 32, 50000)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := b.g.waitDurable(ctx, time.Now()); err != nil {
					t.Fatal(err)
				}
				t.Logf("pass %d %-8s before it: 1 MiB write %.0f MB/s, 4 KiB sequential %.0f IOPS", pass, b.name, m1, seq)
				b.m1 = append(b.m1, m1)
				b.seq = append(b.seq, seq)
				time.Sleep(time.Duration(envInt("VOLGW_BENCH_GAP", 12)) * time.Second)
			}
			if os.Getenv("VOLGW_BENCH_SYNC") == "1" {
				syscall.Sync() // no write-back of earlier passes during this one
			}
			dirty, wb := meminfo("Dirty")>>20, meminfo("Writeback")>>20
			c0 := readCounters(pid, disk)
			t0 := time.Now()
			var data []string
			if os.Getenv("VOLGW_BENCH_PATTERN") == "1" {
				data = []string{fmt.Sprintf("--pattern=%d", 1+pass%255)}
			}
			iops, _, err := qemuBench(ctx, b.d, true, k4, hop, 32, 50000, data...)
			el := time.Since(t0)
			c1 := readCounters(pid, disk)
			if err != nil {
				t.Fatal(err)
			}
			<-profDone
			if profDir != "" && os.Getenv("VOLGW_BENCH_MUTEX") == "1" {
				for _, kind := range []string{"mutex", "block"} {
					if err := fetchTo(fmt.Sprintf("http://%s/debug/pprof/%s", b.pprof, kind), filepath.Join(profDir, fmt.Sprintf("%s-%s%d.pprof", b.name, kind, pass))); err != nil {
						t.Log(err)
					}
				}
			}
			patches := b.g.metric(`volgw_cut_blocks_total{as="patch"}`) - patches0
			cuts := b.g.metric("volgw_cut_duration_seconds_count") - cuts0
			var dd []int64
			for i := range min(len(c0.disk), len(c1.disk)) {
				dd = append(dd, c1.disk[i]-c0.disk[i])
			}
			// diskstats: 0 reads, 4 writes completed, 6 sectors written,
			// 7 ms writing, 9 ms doing I/O, 10 weighted ms, 14 flushes,
			// 15 ms flushing.
			field := func(i int) int64 {
				if i < len(dd) {
					return dd[i]
				}
				return -1
			}
			t.Logf("pass %d %-8s %7.0f IOPS %.2fs cuts %.0f patches %.0f | cpu %.2fs | proc wr %d MiB syscw %d | disk wr %d (%d MiB) wms %d busy %d ms flushes %d fms %d | dirty %d wb %d MiB at start | load %s",
				pass, b.name, iops, el.Seconds(), cuts, patches, c1.cpu-c0.cpu, (c1.writeBytes-c0.writeBytes)>>20, c1.syscw-c0.syscw,
				field(4), field(6)*512>>20, field(7), field(9), field(14), field(15), dirty, wb, loadavg())
			b.iops = append(b.iops, iops)
			if patches > 0 {
				b.cutIOPS = append(b.cutIOPS, iops)
			} else {
				b.quietIOPS = append(b.quietIOPS, iops)
			}
		}
	}
	for _, b := range builds {
		med := func(s []float64) string {
			if len(s) == 0 {
				return "–"
			}
			return fmt.Sprintf("%.0f (%.0f–%.0f, n=%d)", median(s), slices.Min(s), slices.Max(s), len(s))
		}
		t.Logf("%-8s random 4 KiB IOPS %s | 1 MiB MB/s %s | 4 KiB sequential IOPS %s", b.name, med(b.iops), med(b.m1), med(b.seq))
	}
	t.Logf("end: load %s", loadavg())
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
