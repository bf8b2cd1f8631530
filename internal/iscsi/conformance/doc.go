// Package conformance measures volgw's iSCSI target against the reference
// target, tgtd, with the initiator tools real users run: libiscsi's
// iscsi-test-cu conformance suite, iscsi-ls, iscsi-inq, qemu-img.
//
// It owns only test harness code: StartTGTD (tgtd on a private portal and
// control socket), ParseCU/RunCU (iscsi-test-cu runs counted honestly:
// CUnit calls a skipped test "passed", this package does not),
// RunToolChecks (discovery, INQUIRY, CHAP, qemu-img round trip) and the
// tests that put volgw and tgtd side by side in one run. It never touches
// the target's code; it starts volgw's target through internal/iscsi's
// exported API like any other user.
//
// Every external process runs in its own process group and is killed at
// test cleanup or when its time bound passes.
package conformance
