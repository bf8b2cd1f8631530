#!/usr/bin/env bash
# EBS direct APIs benchmarks: ListChangedBlocks' walk on a 16 TiB volume
# (internal/volume/bench_ebs_test.go) and GetSnapshotBlock throughput vs
# plain GETs of the same block objects (internal/ebsapi/bench_test.go).
# Prints the markdown tables of BENCHMARKS.md's "EBS direct APIs" section.
#
#   bench/ebs.sh            run and print the tables
#   bench/ebs.sh -raw       also print go test's raw output
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
load_before=$(cut -d' ' -f1 /proc/loadavg)
go test -run '^$' -bench '^BenchmarkEBSChangedBlocks' -benchtime=3x -timeout 30m ./internal/volume | tee "$out" >&2
go test -run '^$' -bench '^BenchmarkEBSGetSnapshotBlock' -benchtime=1x -timeout 10m ./internal/ebsapi | tee -a "$out" >&2
[ "${1:-}" = "-raw" ] && cat "$out"

echo
echo "EBS direct APIs, $(date -u +%Y-%m-%d), $(nproc) vCPUs, $(uname -sr), Go $(go env GOVERSION | sed 's/^go//'), load average $load_before before, $(cut -d' ' -f1 /proc/loadavg) after"
echo
echo "| ListChangedBlocks, 16 TiB volume (33.5 M block indexes, 3.4 M blocks stored): change | blocks listed | pages loaded (of 16384) | time, whole listing |"
echo "|---|---:|---:|---:|"
awk '
function metric(name,   i) { for (i = 3; i < NF; i++) if ($(i+1) == name) return $i; return "?" }
/^BenchmarkEBSChangedBlocks\// {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkEBSChangedBlocks\//, "", name)
	split(name, a, "_"); pct = a[1]; sub(/pct/, "%", pct)
	how = (name ~ /random/) ? "at random places" : "in one run"
	printf "| %s of blocks, %s | %s | %s | %.3f s |\n", pct, how, metric("blocks_listed"), metric("pages_loaded"), metric("s")
}' "$out"
echo
echo "| GetSnapshotBlock, 128 blocks, 8 at once | API (Go SDK) | plain GETs | plain GETs + SHA-256 check | API / plain | API / plain + check |"
echo "|---|---:|---:|---:|---:|---:|"
awk '
function metric(name,   i) { for (i = 3; i < NF; i++) if ($(i+1) == name) return $i; return "?" }
/^BenchmarkEBSGetSnapshotBlock\// {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkEBSGetSnapshotBlock\//, "", name)
	printf "| %s store | %s MB/s | %s MB/s | %s MB/s | %s | %s |\n", (name == "fs" ? "file" : name), metric("api_MB/s"), metric("plain_MB/s"), metric("plain+sha256_MB/s"), metric("api/plain"), metric("api/plain+sha256")
}' "$out"
