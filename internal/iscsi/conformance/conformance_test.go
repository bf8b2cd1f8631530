package conformance

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// lunSize is the size of the LUN both targets serve in the conformance
// run: the same file size, on the same file system.
const lunSize = 64 << 20

func startVolgw(t *testing.T, opts VolgwOptions) Target {
	t.Helper()
	tgt, err := StartVolgw(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

// TestVolgwTools: discovery, INQUIRY, CHAP and a qemu-img round trip
// against volgw's target.
func TestVolgwTools(t *testing.T) {
	chap := &CHAP{User: "volgwtest", Secret: "s3cret-s3cret-1"}
	RunToolChecks(t, startVolgw(t, VolgwOptions{Size: 32 << 20, CHAP: chap}))
}

// TestConformance runs the whole libiscsi suite with --dataloss against
// volgw and against tgtd serving a file of the same size, in the same run,
// and fails if volgw fails any test, or does not pass a test tgtd passes. Set
// VOLGW_CONFORMANCE_OUT to a file to get the tables in markdown (for the
// README's conformance section) and each raw run in <file>.<target>.txt.
func TestConformance(t *testing.T) {
	volgw := startVolgw(t, VolgwOptions{Size: lunSize})
	tgtd := StartTGTD(t, TGTDOptions{Size: lunSize})
	ctx := context.Background()
	targets := []Target{tgtd, volgw}
	results := make([]*CUResult, len(targets))
	for i, tgt := range targets {
		start := time.Now()
		res, out, err := RunCU(ctx, tgt.URL(), CUOptions{DataLoss: true, Timeout: 10 * time.Minute})
		if path := os.Getenv("VOLGW_CONFORMANCE_OUT"); path != "" {
			// The raw run, next to the report, for reading a failure in full.
			if werr := os.WriteFile(path+"."+tgt.Name+".txt", []byte(out), 0o644); werr != nil {
				t.Error(werr)
			}
		}
		if res == nil || len(res.Tests) == 0 {
			t.Fatalf("%s: %v\n%s", tgt.Name, err, out)
		}
		if err != nil {
			// A crashed or hung run still counts, with the test it died in
			// as a failure; the comparison below decides.
			t.Errorf("%s: %v (output tail: %s)", tgt.Name, err, tail(out, 2000))
		}
		results[i] = res
		t.Logf("%s: iscsi-test-cu took %v", tgt.Name, time.Since(start).Round(time.Second))
	}
	report := conformanceReport(targets, results)
	t.Logf("\n%s", report)
	if path := os.Getenv("VOLGW_CONFORMANCE_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
	// volgw must run the whole suite tgtd runs, fail nothing, and pass
	// every test tgtd passes; counts alone could hide a trade.
	if len(results[1].Tests) != len(results[0].Tests) {
		t.Errorf("volgw ran %d tests, tgtd %d", len(results[1].Tests), len(results[0].Tests))
	}
	for _, f := range results[1].FailedTests() {
		t.Errorf("volgw fails %s: %s", f.FullName(), f.Reason)
	}
	if worse := passedByFirstOnly(results[0], results[1]); len(worse) > 0 {
		t.Errorf("tgtd passes tests volgw does not: %s", strings.Join(worse, ", "))
	}
}

// passedByFirstOnly lists the tests ref passes and r does not, with r's
// outcome.
func passedByFirstOnly(ref, r *CUResult) []string {
	refOut := ref.Outcomes()
	var worse []string
	for _, tc := range r.Tests {
		if refOut[tc.FullName()] == Passed && tc.Outcome != Passed {
			worse = append(worse, tc.FullName()+" ("+tc.Outcome.String()+")")
		}
	}
	return worse
}

// conformanceReport is the counts table, then every test volgw fails with
// its reason, then the tests tgtd passes and volgw does not.
func conformanceReport(targets []Target, results []*CUResult) string {
	var b strings.Builder
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.Name
	}
	b.WriteString(Table(names, results))
	for i, r := range results {
		b.WriteString("\n" + targets[i].Name + " failures:\n")
		for _, f := range r.FailedTests() {
			b.WriteString("- " + f.FullName() + ": " + f.Reason + "\n")
		}
	}
	worse := passedByFirstOnly(results[0], results[len(results)-1])
	b.WriteString("\npassed by " + targets[0].Name + " but not by " + targets[len(targets)-1].Name + ": " + strings.Join(worse, ", ") + "\n")
	return b.String()
}
