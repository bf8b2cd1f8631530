#!/usr/bin/env bash
# Control plane under data-plane load, on the real binary: `volgw serve` with
# its default flags on loopback, a gateway and 32 volumes made through the
# API, 8 of them written over iSCSI (qemu-img convert of random data), and
# ListVolumeRecoveryPoints latency (p50/p99/max, >= 1000 calls a phase) and
# the server's RSS measured idle, under that load, and idle again. Prints a
# markdown table (BENCHMARKS.md's "Control plane under load").
#
#   bench/control.sh                 measure this tree (about 2.5 minutes)
#   bench/control.sh -base REV       also REV, interleaved: REV, this tree, REV, this tree
#   VOLGW_BENCH_FLAGS='--memory-limit 128MiB' bench/control.sh
#   VOLGW_BENCH_LOAD=75              seconds of write load
#   VOLGW_BENCH_INITIATORS=idle      run the qemu-img writers at SCHED_IDLE (or
#                                    "nice": nice -n 19), a model of initiators on
#                                    other hosts; the default is the same
#                                    priority as the gateway (report both)
#   VOLGW_BENCH_CALLS=FILE           also log every call (phase, start and end in
#                                    Unix ns, latency ns) to FILE.1, FILE.2, ... (one a run)
#   VOLGW_BENCH_PROFILE=DIR          profile the load into DIR.1, DIR.2, ...: runtime/trace,
#                                    perf sched, CPU profile; with VOLGW_BENCH_CALLS, the
#                                    slow calls can be found in them (go tool trace, perf sched timehist)
#
# The measuring code is cmd/volgw (TestControlBench); this script builds the
# binaries and runs it with the switch that enables it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v qemu-img >/dev/null || { echo "missing qemu-img: run scripts/install-test-deps.sh" >&2; exit 1; }
base=
if [ "${1:-}" = "-base" ]; then base=${2:?-base needs a revision}; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/volgw" ./cmd/volgw
bins=("this tree=$tmp/volgw")
if [ -n "$base" ]; then
	mkdir "$tmp/base"
	git archive "$base" | tar -x -C "$tmp/base"
	(cd "$tmp/base" && go build -o "$tmp/volgw-base" ./cmd/volgw)
	bins=("$base=$tmp/volgw-base" "this tree=$tmp/volgw" "$base=$tmp/volgw-base" "this tree=$tmp/volgw")
fi
go test -c -o "$tmp/volgw.test" ./cmd/volgw
echo "## Control plane under load ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r), load average $(cut -d' ' -f1 /proc/loadavg) before, initiators at ${VOLGW_BENCH_INITIATORS:-the same} priority)"
run=0
for b in "${bins[@]}"; do
	name=${b%%=*} path=${b#*=} run=$((run + 1))
	calls= prof=
	if [ -n "${VOLGW_BENCH_CALLS:-}" ]; then calls=$(realpath -m "$VOLGW_BENCH_CALLS").$run; fi
	if [ -n "${VOLGW_BENCH_PROFILE:-}" ]; then prof=$(realpath -m "$VOLGW_BENCH_PROFILE").$run; fi
	(cd cmd/volgw && VOLGW_BENCH=1 VOLGW_BENCH_BIN="$path" VOLGW_BENCH_OUT="$tmp/out.md" VOLGW_BENCH_CALLS="$calls" VOLGW_BENCH_PROFILE="$prof" \
		"$tmp/volgw.test" -test.run '^TestControlBench$' -test.count=1 -test.timeout 15m -test.v >&2)
	echo
	echo "### $name (load average $(cut -d' ' -f1 /proc/loadavg) after)"
	echo
	cat "$tmp/out.md"
done
