package conformance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Outcome is what one iscsi-test-cu test really did.
type Outcome int

const (
	// Passed: the test ran and its assertions held.
	Passed Outcome = iota
	// Skipped: the test printed [SKIPPED] (the target lacks the command or
	// feature, or the run lacked --dataloss) and CUnit counted it as
	// passed; it proves nothing.
	Skipped
	// Failed: CUnit reported an assertion failure.
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Passed:
		return "passed"
	case Skipped:
		return "skipped"
	case Failed:
		return "FAILED"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// CUTest is one test of an iscsi-test-cu run.
type CUTest struct {
	Suite, Name string
	Outcome     Outcome
	// Reason is the first [FAILED] or [SKIPPED] message, or the first
	// failed assertion: why the test did not simply pass.
	Reason string
}

// FullName is "Suite.Test", the name the README's conformance section
// lists failures by.
func (t CUTest) FullName() string { return t.Suite + "." + t.Name }

// CUSummary is CUnit's own "Run Summary" tests row. CUnit counts a skipped
// test as passed, so Passed here is real passes plus skips.
type CUSummary struct {
	Total, Ran, Passed, Failed, Inactive int
}

// CUResult is a parsed iscsi-test-cu run.
type CUResult struct {
	Tests   []CUTest
	Summary CUSummary
	// Real counts: Passed excludes skips, unlike Summary.Passed.
	Passed, Skipped, Failed int
}

// FailedTests returns the tests that failed, in run order.
func (r *CUResult) FailedTests() []CUTest { return r.with(Failed) }

// SkippedTests returns the tests that skipped, in run order.
func (r *CUResult) SkippedTests() []CUTest { return r.with(Skipped) }

func (r *CUResult) with(o Outcome) []CUTest {
	var out []CUTest
	for _, t := range r.Tests {
		if t.Outcome == o {
			out = append(out, t)
		}
	}
	return out
}

// Outcomes maps each test's full name to its outcome.
func (r *CUResult) Outcomes() map[string]Outcome {
	m := make(map[string]Outcome, len(r.Tests))
	for _, t := range r.Tests {
		m[t.FullName()] = t.Outcome
	}
	return m
}

// ErrCUOutput is returned when iscsi-test-cu's output cannot be parsed or
// does not add up: a truncated run (crash, hang killed by timeout) must
// never read as a clean one.
var ErrCUOutput = errors.New("conformance: unparsable iscsi-test-cu output")

var (
	suiteLine   = regexp.MustCompile(`^Suite: (.+)$`)
	testLine    = regexp.MustCompile(`^  Test: (\S+) \.\.\.(.*)$`)
	summaryLine = regexp.MustCompile(`^\s+tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$`)
	assertLine  = regexp.MustCompile(`^\s+\d+\. (\S+:\d+\s+- .*)$`)
)

// ParseCU parses the verbose output of iscsi-test-cu (libiscsi 1.19, CUnit
// 2.1 basic interface).
//
// The format: "Suite: S" opens a suite; "  Test: T ..." opens a test, and
// the test's own messages follow, on the same line and the next ones. The
// test ends with CUnit's verdict, "passed" or "FAILED", at the end of a
// line (alone, or glued to the "..." or to a message that lacked a
// newline), followed for a failure by numbered assertion lines. A test
// that printed "[SKIPPED]" and then "passed" is a skip.
//
// The parse is checked against CUnit's Run Summary: if the number of tests
// seen or failed disagrees with it, or there is no summary, the result is
// returned together with an error wrapping ErrCUOutput.
func ParseCU(r io.Reader) (*CUResult, error) {
	res := &CUResult{}
	var (
		suite   string
		cur     *CUTest // the open test, nil between tests
		skipped bool    // cur printed [SKIPPED]
		verdict bool    // cur's verdict has been seen
		summary bool
	)
	closeTest := func() {
		if cur == nil {
			return
		}
		if !verdict {
			// A test cut off before its verdict (the run died): count it
			// as failed so a crash never improves the score.
			cur.Outcome = Failed
			if cur.Reason == "" {
				cur.Reason = "no verdict: the run ended inside this test"
			}
		} else if cur.Outcome == Passed && skipped {
			cur.Outcome = Skipped
		}
		res.Tests = append(res.Tests, *cur)
		cur, skipped, verdict = nil, false, false
	}
	// note handles a message line (or the text after "...") of cur.
	note := func(text string) {
		if cur == nil {
			return
		}
		t := strings.TrimSpace(text)
		if i := strings.Index(t, "[SKIPPED]"); i >= 0 {
			skipped = true
			if cur.Reason == "" {
				cur.Reason = strings.TrimSpace(t[i:])
			}
		}
		if i := strings.Index(t, "[FAILED]"); i >= 0 && cur.Reason == "" && !verdict {
			cur.Reason = strings.TrimSpace(t[i:])
		}
		if verdict {
			if m := assertLine.FindStringSubmatch(text); m != nil && cur.Outcome == Failed && !strings.HasPrefix(cur.Reason, "[FAILED]") {
				if cur.Reason == "" {
					cur.Reason = m[1]
				}
			}
			return
		}
		// CUnit prints its verdict at the start of a line when the test's
		// output ended in a newline (test messages are indented), possibly
		// followed by a suite cleanup's message ("passed    [FAILED] PRIN
		// command: ..."); else glued to the end of the test's last message.
		switch {
		case strings.HasPrefix(text, "FAILED"):
			cur.Outcome, verdict = Failed, true
		case strings.HasPrefix(text, "passed"):
			cur.Outcome, verdict = Passed, true
		case strings.HasSuffix(t, "FAILED") && !strings.HasSuffix(t, "[FAILED]"):
			cur.Outcome, verdict = Failed, true
		case strings.HasSuffix(t, "passed"):
			cur.Outcome, verdict = Passed, true
		}
	}

	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := suiteLine.FindStringSubmatch(line); m != nil {
			closeTest()
			suite = m[1]
			continue
		}
		if m := testLine.FindStringSubmatch(line); m != nil {
			closeTest()
			cur = &CUTest{Suite: suite, Name: m[1]}
			rest := m[2]
			// A verdict right after "..." is the verdict even if more text
			// follows it: a suite's cleanup can print on the same line
			// ("...passed    [FAILED] PRIN command: ..." in tgtd's run),
			// and CUnit does not count that against the test.
			for _, v := range []struct {
				word    string
				outcome Outcome
			}{{"passed", Passed}, {"FAILED", Failed}} {
				if after, ok := strings.CutPrefix(rest, v.word); ok {
					cur.Outcome, verdict = v.outcome, true
					rest = after
				}
			}
			note(rest)
			continue
		}
		if strings.HasPrefix(line, "Run Summary:") {
			closeTest()
			continue
		}
		if m := summaryLine.FindStringSubmatch(line); m != nil && cur == nil {
			n := make([]int, 5)
			for i := range n {
				n[i], _ = strconv.Atoi(m[i+1])
			}
			res.Summary = CUSummary{Total: n[0], Ran: n[1], Passed: n[2], Failed: n[3], Inactive: n[4]}
			summary = true
			continue
		}
		note(line)
	}
	closeTest()
	for _, t := range res.Tests {
		switch t.Outcome {
		case Passed:
			res.Passed++
		case Skipped:
			res.Skipped++
		case Failed:
			res.Failed++
		}
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("%w: %w", ErrCUOutput, err)
	}
	switch {
	case !summary:
		return res, fmt.Errorf("%w: no CUnit Run Summary (the run did not finish); %d tests parsed", ErrCUOutput, len(res.Tests))
	case res.Summary.Ran != len(res.Tests):
		return res, fmt.Errorf("%w: CUnit ran %d tests, parsed %d", ErrCUOutput, res.Summary.Ran, len(res.Tests))
	case res.Summary.Failed != res.Failed:
		return res, fmt.Errorf("%w: CUnit counted %d failures, parsed %d", ErrCUOutput, res.Summary.Failed, res.Failed)
	}
	return res, nil
}

// CUOptions bound an iscsi-test-cu run.
type CUOptions struct {
	// Test is the --test expression; "ALL" when empty. libiscsi matches
	// FAMILY[.SUITE[.TEST]], e.g. "SCSI.Inquiry".
	Test string
	// DataLoss passes --dataloss, letting write tests run; without it
	// they skip (and CUnit calls them passed). Use a scratch LUN.
	DataLoss bool
	// Timeout kills the run (its whole process group); 10 minutes when 0.
	// A buggy target can make iscsi-test-cu hang.
	Timeout time.Duration
	// InitiatorName, when set, replaces libiscsi's default.
	InitiatorName string
}

// RunCU runs iscsi-test-cu against url and parses its output. The raw
// output is returned with the result, for logs. A run killed by the
// timeout returns the partial result and an error.
func RunCU(ctx context.Context, url string, opts CUOptions) (*CUResult, string, error) {
	test := opts.Test
	if test == "" {
		test = "ALL"
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	args := []string{"--test=" + test}
	if opts.DataLoss {
		args = append(args, "--dataloss")
	}
	if opts.InitiatorName != "" {
		args = append(args, "--initiator-name="+opts.InitiatorName)
	}
	args = append(args, url)
	out, runErr := runBounded(ctx, timeout, "iscsi-test-cu", args...)
	res, parseErr := ParseCU(strings.NewReader(out))
	var exit *exec.ExitError
	switch {
	case runErr == nil:
	case errors.As(runErr, &exit) && exit.Exited() && parseErr == nil:
		// iscsi-test-cu exits non-zero when some tests failed; a run that
		// finished and adds up is a result, not an error.
		return res, out, nil
	default:
		// Timeout, a signal, or an exit without a whole run: a crash.
		return res, out, fmt.Errorf("iscsi-test-cu %s: %w", url, errors.Join(runErr, parseErr))
	}
	return res, out, parseErr
}

// Table renders runs side by side as a markdown table of real passes,
// skips and failures. names and results pair up.
func Table(names []string, results []*CUResult) string {
	var b strings.Builder
	b.WriteString("| iscsi-test-cu --dataloss |")
	for _, n := range names {
		b.WriteString(" " + n + " |")
	}
	b.WriteString("\n|---|")
	for range names {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	row := func(label string, f func(*CUResult) int) {
		b.WriteString("| " + label + " |")
		for _, r := range results {
			fmt.Fprintf(&b, " %d |", f(r))
		}
		b.WriteString("\n")
	}
	row("tests run", func(r *CUResult) int { return len(r.Tests) })
	row("passed (real)", func(r *CUResult) int { return r.Passed })
	row("skipped", func(r *CUResult) int { return r.Skipped })
	row("failed", func(r *CUResult) int { return r.Failed })
	row("CUnit \"passed\" (incl. skips)", func(r *CUResult) int { return r.Summary.Passed })
	return b.String()
}
