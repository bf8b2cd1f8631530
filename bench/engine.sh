#!/usr/bin/env bash
# Volume engine benchmarks (internal/volume/bench_test.go), each measured
# side by side with its peer in the same run. Prints the markdown table of
# BENCHMARKS.md's "Volume engine" section.
#
#   bench/engine.sh            run and print the table
#   bench/engine.sh -raw       also print go test's raw output
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# The machine's load goes in the header: on a shared machine it is what
# says how far to trust a run.
load_before=$(cut -d' ' -f1 /proc/loadavg)
go test -run '^$' -bench '^BenchmarkEngine' -benchtime=1x -timeout 40m ./internal/volume | tee "$out" >&2
[ "${1:-}" = "-raw" ] && cat "$out"

echo
echo "Volume engine, $(date -u +%Y-%m-%d), $(nproc) vCPUs, $(uname -sr), Go $(go env GOVERSION | sed 's/^go//'), load average $load_before before, $(cut -d' ' -f1 /proc/loadavg) after"
echo
echo "| measurement | unit | engine | peer | peer is | engine/peer |"
echo "|---|---|---:|---:|---|---:|"
awk '
function metric(name,   i) { for (i = 3; i < NF; i++) if ($(i+1) == name) return $i; return "?" }
/^BenchmarkEngine/ {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkEngine/, "", name)
	e = metric("engine"); p = metric("peer"); r = metric("engine/peer")
	if (name ~ /^LocalIO\/write_/) { split(name, a, "_"); what = "sequential write " a[2] " + Flush"; unit = "MB/s"; peer = "pwrite + fsync, plain file, same fs" }
	else if (name ~ /^FlushEach\/write_/) { split(name, a, "_"); what = "write " a[2] " + Flush, one at a time, new gateway's ring " (a[3] == "initialised" ? "once initialised" : "written at once"); unit = "MB/s"; peer = "pwrite + fdatasync, written plain file, op by op" }
	else if (name ~ /^FirstLap\/write_/) { split(name, a, "_"); what = "sequential write " a[2] " + Flush on a new ring at once, initialiser " (a[3] == "idle" ? "yielding" : "zeroing throughout"); unit = "MB/s"; peer = "pwrite + fsync, plain file, same fs" }
	else if (name ~ /^LocalIO\/read_/) { split(name, a, "_"); what = "sequential read " a[2] " (cached)"; unit = "MB/s"; peer = "pread, plain file, same fs" }
	else if (name == "Upload") { what = "upload of a 64 MiB cut to versitygw"; unit = "MB/s"; peer = "plain PUTs of as many fresh blocks, same server, 8 at once" }
	else if (name == "UploadFS") { what = "upload of a 64 MiB cut to the file store"; unit = "MB/s"; peer = "plain file-store Puts of as many fresh blocks, 8 at once" }
	else if (name == "ColdRead") { what = "sequential read of 128 MiB after a restart (every block from versitygw), 8 readers of 1 MiB"; unit = "MB/s"; peer = "plain GETs of the same block objects, 8 at once" }
	else if (name == "Sustained") { what = "512 MiB written through a 128 MiB upload buffer until published (versitygw)"; unit = "MB/s"; peer = "the store: plain PUTs of fresh blocks, 8 at once" }
	else if (name == "RecoveryLag") { what = "recovery-point lag p99 under 64 MiB/s of fresh data, 5 s cut interval (versitygw; p50 " metric("p50_s") ", max " metric("max_s") ")"; unit = "s"; peer = "target bound: interval + 1 s (not a measurement)" }
	else if (name == "SnapshotPin") { what = "snapshot from recovery point, 16 TiB volume"; unit = "ms"; peer = "the same on a 1 GiB volume" }
	else if (name == "Incremental") { what = "bytes stored by a 2nd snapshot after 1% of blocks change"; unit = "% of data"; peer = "the changed blocks themselves" }
	else { what = name; unit = "?"; peer = "?" }
	printf "| %s | %s | %s | %s | %s | %s |\n", what, unit, e, p, peer, r
}' "$out"
