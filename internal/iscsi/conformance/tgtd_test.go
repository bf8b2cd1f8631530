package conformance

import (
	"context"
	"testing"
)

// TestTGTDTools checks the harness against the reference target: discovery
// and INQUIRY see it, CHAP admits the right secret and refuses a wrong one
// or none, and qemu-img writes and reads back an image byte-identical.
func TestTGTDTools(t *testing.T) {
	chap := &CHAP{User: "volgwtest", Secret: "s3cret-s3cret-1"}
	tgt := StartTGTD(t, TGTDOptions{Size: 32 << 20, CHAP: chap})
	RunToolChecks(t, tgt)
}

// TestTGTDConformanceSubset runs one iscsi-test-cu suite end to end through
// RunCU against tgtd: the runner, the timeout and the parser together.
func TestTGTDConformanceSubset(t *testing.T) {
	tgt := StartTGTD(t, TGTDOptions{})
	res, out, err := RunCU(context.Background(), tgt.URL(), CUOptions{Test: "ALL.Inquiry", DataLoss: true})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(res.Tests) == 0 || res.Passed == 0 {
		t.Fatalf("Inquiry suite on tgtd: %d tests, %d passed:\n%s", len(res.Tests), res.Passed, out)
	}
	for _, tc := range res.Tests {
		if tc.Suite != "Inquiry" {
			t.Errorf("test %s ran outside the requested suite", tc.FullName())
		}
	}
	t.Logf("Inquiry suite on tgtd: %d passed, %d skipped, %d failed", res.Passed, res.Skipped, res.Failed)
}
