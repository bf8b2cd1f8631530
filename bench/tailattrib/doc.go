// Command tailattrib splits the slow ListVolumeRecoveryPoints calls of a
// control bench run (bench/control.sh, TestControlBench) into where their
// time went, from three records of the same seconds:
//
//   - the client's call log (VOLGW_BENCH_CALLS): each call's start and end;
//   - the server's runtime/trace (VOLGW_BENCH_PROFILE=DIR, DIR/trace.out):
//     when the API connection's goroutine was woken by the network poller,
//     started running, ran, waited and blocked again on the network;
//   - `perf sched record` of the machine (DIR/perf.data, CLOCK_MONOTONIC like
//     the trace): which threads were on the two CPUs and which waited in the
//     kernel's run queue.
//
// Every 20 µs of a slow call is put in one class: the client starved (its
// threads runnable, none on a CPU); the Go run queue (the server's threads
// on every CPU, running other goroutines); the kernel run queue (a server
// thread runnable, not on a CPU); the Go scheduler with a CPU free; the
// handler on a CPU, in a system call, or blocked on a lock; or the client's
// own work and the delivery. It is a separate module (it needs
// golang.org/x/exp/trace), run from this directory:
//
//	VOLGW_BENCH_PROFILE=/tmp/p VOLGW_BENCH_CALLS=/tmp/c bench/control.sh
//	go run . -dir /tmp/p.1 -calls /tmp/c.1 [-slow 10]
package main
