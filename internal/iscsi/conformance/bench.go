package conformance

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BenchRow is one workload run against every target.
type BenchRow struct {
	Name string
	// Run measures the workload against t and returns a rate where more
	// is better (IOPS or MB/s) and its unit.
	Run func(ctx context.Context, t Target) (rate float64, unit string, err error)
}

// QemuBenchRow measures `qemu-img bench` over the target's LUN: count
// requests of size bytes, depth in flight. A step that is a large odd
// multiple of size makes the offsets hop around the LUN (qemu-img bench
// wraps at the end of the image), which is as random as the tool allows;
// step 0 is sequential.
func QemuBenchRow(name string, write bool, size, step int64, depth, count int) BenchRow {
	return BenchRow{Name: name, Run: func(ctx context.Context, t Target) (float64, string, error) {
		args := []string{"bench", "-f", "raw", "-c", strconv.Itoa(count), "-d", strconv.Itoa(depth),
			"-s", strconv.FormatInt(size, 10)}
		if step > 0 {
			args = append(args, "-S", strconv.FormatInt(step, 10))
		}
		if write {
			args = append(args, "-w")
		}
		args = append(args, t.URL())
		out, err := runBounded(ctx, 5*time.Minute, "qemu-img", args...)
		if err != nil {
			return 0, "", fmt.Errorf("%w: %s", err, out)
		}
		secs, err := parseQemuBench(out)
		if err != nil {
			return 0, "", err
		}
		if size >= 1<<20 {
			return float64(count) * float64(size) / secs / 1e6, "MB/s", nil
		}
		return float64(count) / secs, "IOPS", nil
	}}
}

var qemuBenchDone = regexp.MustCompile(`Run completed in ([0-9.]+) seconds`)

func parseQemuBench(out string) (float64, error) {
	m := qemuBenchDone.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no completion line in qemu-img bench output: %s", out)
	}
	secs, err := strconv.ParseFloat(m[1], 64)
	if err != nil || secs <= 0 {
		return 0, fmt.Errorf("bad run time %q in qemu-img bench output", m[1])
	}
	return secs, nil
}

// ISCSIPerfRow measures iscsi-perf for d: blocks logical blocks per
// request, depth in flight, random or sequential reads (iscsi-perf only
// reads). iscsi-perf runs until interrupted; its average over the run is
// the rate.
func ISCSIPerfRow(name string, blocks, depth int, random bool, d time.Duration) BenchRow {
	return BenchRow{Name: name, Run: func(ctx context.Context, t Target) (float64, string, error) {
		args := []string{"-m", strconv.Itoa(depth), "-b", strconv.Itoa(blocks)}
		if random {
			args = append(args, "-r")
		}
		args = append(args, t.URL())
		out, err := runInterrupted(ctx, d, "iscsi-perf", args...)
		if err != nil {
			return 0, "", fmt.Errorf("%w: %s", err, out)
		}
		iops, mbs, err := parseISCSIPerf(out)
		if err != nil {
			return 0, "", err
		}
		if blocks*512 >= 1<<20 {
			return mbs, "MB/s", nil
		}
		return iops, "IOPS", nil
	}}
}

var perfAverage = regexp.MustCompile(`iops average (\d+) \((\d+) MB/s\)`)

func parseISCSIPerf(out string) (iops, mbs float64, err error) {
	all := perfAverage.FindAllStringSubmatch(out, -1)
	if len(all) == 0 {
		return 0, 0, fmt.Errorf("no 'iops average' in iscsi-perf output: %s", out)
	}
	last := all[len(all)-1]
	iops, _ = strconv.ParseFloat(last[1], 64)
	mbs, _ = strconv.ParseFloat(last[2], 64)
	return iops, mbs, nil
}

// runInterrupted runs a tool that runs until interrupted: after d it gets
// SIGINT (its way to finish and print), and SIGKILL if it lingers.
func runInterrupted(ctx context.Context, d time.Duration, name string, args ...string) (string, error) {
	var out syncBuffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	pgid := -cmd.Process.Pid
	select {
	case err := <-done:
		return out.String(), fmt.Errorf("%s exited before its run time: %v", name, err)
	case <-ctx.Done():
		syscall.Kill(pgid, syscall.SIGKILL)
		<-done
		return out.String(), ctx.Err()
	case <-time.After(d):
	}
	syscall.Kill(pgid, syscall.SIGINT)
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			return out.String(), err
		}
		return out.String(), nil
	case <-time.After(10 * time.Second):
		syscall.Kill(pgid, syscall.SIGKILL)
		<-done
		return out.String(), fmt.Errorf("%s ignored SIGINT: %w", name, ErrTimeout)
	}
}

// BenchResult is one row measured on every target.
type BenchResult struct {
	Row   string
	Unit  string
	Rates []float64 // per target, in the order given to RunBench: the median of the rounds
	Errs  []error   // per target: the first error of any round
}

// RunBench runs every row rounds times on every target and keeps each
// target's median rate. Within a row the targets take turns, and which goes
// first alternates from round to round, so neither always runs right after
// the other has warmed (or dirtied) the page cache.
func RunBench(ctx context.Context, rows []BenchRow, targets []Target, rounds int) []BenchResult {
	rounds = max(rounds, 1)
	var results []BenchResult
	for _, row := range rows {
		r := BenchResult{Row: row.Name, Rates: make([]float64, len(targets)), Errs: make([]error, len(targets))}
		samples := make([][]float64, len(targets))
		for round := range rounds {
			for k := range targets {
				j := k
				if round%2 == 1 {
					j = len(targets) - 1 - k
				}
				rate, unit, err := row.Run(ctx, targets[j])
				if err != nil {
					if r.Errs[j] == nil {
						r.Errs[j] = err
					}
					continue
				}
				samples[j] = append(samples[j], rate)
				r.Unit = unit
			}
		}
		for j, s := range samples {
			if len(s) > 0 {
				slices.Sort(s)
				r.Rates[j] = s[len(s)/2]
			}
		}
		results = append(results, r)
	}
	return results
}

// BenchTable renders results as markdown, with the ratio of each target
// to the first (the reference) as the last columns.
func BenchTable(targets []Target, results []BenchResult) string {
	var b strings.Builder
	b.WriteString("| workload | unit |")
	for _, t := range targets {
		b.WriteString(" " + t.Name + " |")
	}
	for _, t := range targets[1:] {
		fmt.Fprintf(&b, " %s / %s |", t.Name, targets[0].Name)
	}
	b.WriteString("\n|---|---|")
	for range len(targets)*2 - 1 {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s |", r.Row, r.Unit)
		for i := range targets {
			if r.Errs[i] != nil {
				b.WriteString(" error |")
			} else {
				fmt.Fprintf(&b, " %.0f |", r.Rates[i])
			}
		}
		for i := 1; i < len(targets); i++ {
			if r.Errs[i] != nil || r.Errs[0] != nil || r.Rates[0] == 0 {
				b.WriteString(" n/a |")
			} else {
				fmt.Fprintf(&b, " %.2f |", r.Rates[i]/r.Rates[0])
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// StandardBenchRows are the rows BENCHMARKS.md reports.
func StandardBenchRows(lunSize int64, perfTime time.Duration) []BenchRow {
	const k4, m1 = 4 << 10, 1 << 20
	// 7919 is prime, so the 4 KiB hops visit offsets spread over the LUN.
	hop := int64(k4 * 7919)
	// Four passes over the LUN: long enough (seconds) that one scheduling
	// hiccup on a shared machine does not decide the row.
	seqCount := int(4 * lunSize / m1)
	return []BenchRow{
		QemuBenchRow("qemu-img bench 4 KiB random read, QD32", false, k4, hop, 32, 100000),
		QemuBenchRow("qemu-img bench 4 KiB random write, QD32", true, k4, hop, 32, 100000),
		QemuBenchRow("qemu-img bench 1 MiB sequential read, QD8", false, m1, 0, 8, seqCount),
		QemuBenchRow("qemu-img bench 1 MiB sequential write, QD8", true, m1, 0, 8, seqCount),
		ISCSIPerfRow("iscsi-perf 4 KiB random read, QD32", 8, 32, true, perfTime),
		ISCSIPerfRow("iscsi-perf 1 MiB sequential read, QD8", 2048, 8, false, perfTime),
	}
}
