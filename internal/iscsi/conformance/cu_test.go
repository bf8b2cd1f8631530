package conformance

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// The fixture is the verbatim output of `iscsi-test-cu --dataloss
// --test=ALL` (libiscsi 1.19.0) against tgtd 1.0.85 serving a 64 MiB file.
func TestParseCUTGTDRun(t *testing.T) {
	f, err := os.Open("testdata/tgtd-1.0.85-dataloss.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := ParseCU(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tests) != 230 || res.Summary.Ran != 230 || res.Summary.Passed != 222 || res.Summary.Failed != 8 {
		t.Errorf("parsed %d tests, summary %+v; want 230 run, 222 CUnit-passed, 8 failed", len(res.Tests), res.Summary)
	}
	if res.Failed != 8 || res.Passed+res.Skipped != 222 {
		t.Errorf("real counts passed=%d skipped=%d failed=%d; want failed=8, passed+skipped=222", res.Passed, res.Skipped, res.Failed)
	}
	// Every test that printed [SKIPPED] and then passed is a skip: the
	// fixture has 62 of them, counted independently of this parser with
	//   awk '/^  Test: /{if(n)c+=s;n=1;s=0} /^Suite: |^Run Summary/{if(n)c+=s;n=0;s=0}
	//        /\[SKIPPED\]/{s=1} END{print c}'
	if res.Skipped != 62 {
		t.Errorf("skipped = %d, want 62", res.Skipped)
	}
	var failed []string
	for _, ft := range res.FailedTests() {
		failed = append(failed, ft.FullName())
		if ft.Reason == "" {
			t.Errorf("%s failed without a reason", ft.FullName())
		}
	}
	want := []string{
		"GetLBAStatus.BeyondEol", "PrinServiceactionRange.Range",
		"ProutReserve.OwnershipEA", "ProutReserve.OwnershipWE",
		"ProutReserve.OwnershipEARO", "ProutReserve.OwnershipWERO",
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(failed, " "), w) {
			t.Errorf("failures %q do not include %s", failed, w)
		}
	}
	if got := res.Outcomes()["iSCSIdatasn.iSCSIDataSnInvalid"]; got != Failed {
		t.Errorf("iSCSIDataSnInvalid (verdict glued to the test line) = %v, want FAILED", got)
	}
	if got := res.Outcomes()["CompareAndWrite.Simple"]; got != Skipped {
		t.Errorf("CompareAndWrite.Simple = %v, want skipped", got)
	}
	if got := res.Outcomes()["Inquiry.Standard"]; got != Passed {
		t.Errorf("Inquiry.Standard = %v, want passed", got)
	}
	t.Logf("tgtd fixture: %d passed, %d skipped, %d failed: %q", res.Passed, res.Skipped, res.Failed, failed)
}

func TestParseCUTruncated(t *testing.T) {
	data, err := os.ReadFile("testdata/tgtd-1.0.85-dataloss.txt")
	if err != nil {
		t.Fatal(err)
	}
	// Cut inside a test: the run died there.
	cut := strings.Index(string(data), "  Test: Standard ...")
	res, err := ParseCU(strings.NewReader(string(data[:cut+len("  Test: Standard ...")])))
	if !errors.Is(err, ErrCUOutput) {
		t.Errorf("truncated output: err = %v, want ErrCUOutput", err)
	}
	if n := len(res.Tests); n == 0 || res.Tests[n-1].Outcome != Failed {
		t.Errorf("the test the run died in must count as failed; got %+v", res.Tests[len(res.Tests)-1])
	}
}

func TestParseCUSummaryMismatch(t *testing.T) {
	out := `Suite: S
  Test: A ...passed
  Test: B ...    [SKIPPED] not implemented
passed
  Test: C ...    message without newline...FAILED
    1. x.c:1  - CU_ASSERT(0)

Run Summary:    Type  Total    Ran Passed Failed Inactive
              suites      1      1    n/a      0        0
               tests      3      3      2      1        0
             asserts      3      3      2      1      n/a
`
	res, err := ParseCU(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed != 1 || res.Skipped != 1 || res.Failed != 1 {
		t.Errorf("passed/skipped/failed = %d/%d/%d, want 1/1/1", res.Passed, res.Skipped, res.Failed)
	}
	if r := res.FailedTests()[0].Reason; r != "x.c:1  - CU_ASSERT(0)" {
		t.Errorf("failure reason = %q", r)
	}
	// CUnit saying two failures while the body shows one: refuse.
	bad := strings.Replace(out, "3      3      2      1        0", "3      3      1      2        0", 1)
	if _, err := ParseCU(strings.NewReader(bad)); !errors.Is(err, ErrCUOutput) {
		t.Errorf("summary disagreeing with the body: err = %v, want ErrCUOutput", err)
	}
}

// The second fixture is volgw's own run (2026-11-23): no failures, and a
// CUnit verdict followed on the same line by a suite cleanup's message
// ("passed    [FAILED] PRIN command: ..."), which is a pass.
func TestParseCUVolgwRun(t *testing.T) {
	f, err := os.Open("testdata/volgw-2026-11-23-dataloss.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := ParseCU(f)
	if err != nil {
		t.Fatal(err)
	}
	// 36 skips, counted with the awk line in TestParseCUTGTDRun.
	if len(res.Tests) != 230 || res.Failed != 0 || res.Skipped != 36 || res.Passed != 194 {
		t.Errorf("tests=%d passed=%d skipped=%d failed=%d; want 230, 194, 36, 0", len(res.Tests), res.Passed, res.Skipped, res.Failed)
	}
	if got := res.Outcomes()["Reserve6.LUNReset"]; got != Passed {
		t.Errorf("Reserve6.LUNReset = %v, want passed (CUnit's verdict)", got)
	}
}
