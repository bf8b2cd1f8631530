package conformance

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestISCSIBench measures volgw against tgtd, both serving a preallocated
// file of the same size on the same file system, in the same run, and
// prints a markdown table of ratios (bench/iscsi.sh runs it and writes
// BENCHMARKS.md's table). It runs only with VOLGW_BENCH=1: it takes minutes
// and its numbers are for reading, not asserting.
func TestISCSIBench(t *testing.T) {
	if os.Getenv("VOLGW_BENCH") != "1" {
		t.Skip("set VOLGW_BENCH=1 (or run bench/iscsi.sh) to measure")
	}
	const size = 1 << 30
	dir := t.TempDir()
	files := map[string]string{}
	for _, name := range []string{"tgtd", "volgw"} {
		p := filepath.Join(dir, name+".img")
		if err := preallocate(p, size); err != nil {
			t.Fatal(err)
		}
		files[name] = p
	}
	volgw, err := StartVolgw(t, VolgwOptions{Size: size, BackingFile: files["volgw"]})
	if err != nil {
		t.Fatal(err)
	}
	targets := []Target{StartTGTD(t, TGTDOptions{Size: size, BackingFile: files["tgtd"]}), volgw}
	// Five rounds, medians kept: the machine is shared, and one noisy
	// sample must not decide a row.
	perfTime := 5 * time.Second
	rows := StandardBenchRows(size, perfTime)
	if expr := os.Getenv("VOLGW_BENCH_ROWS"); expr != "" {
		// Measure only the rows whose name matches, e.g. "iscsi-perf".
		re, err := regexp.Compile(expr)
		if err != nil {
			t.Fatalf("VOLGW_BENCH_ROWS: %v", err)
		}
		rows = slices.DeleteFunc(rows, func(r BenchRow) bool { return !re.MatchString(r.Name) })
	}
	results := RunBench(context.Background(), rows, targets, 5)
	for _, r := range results {
		for i, err := range r.Errs {
			if err != nil {
				t.Errorf("%s on %s: %v", r.Row, targets[i].Name, err)
			}
		}
	}
	table := BenchTable(targets, results)
	t.Logf("\n%s", table)
	if path := os.Getenv("VOLGW_BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// preallocate creates a file of size bytes and writes every block (a
// non-zero pattern), so neither target reads holes or unwritten extents, or
// allocates on first write.
func preallocate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		f.Close()
		return err
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), size-off)], off); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
