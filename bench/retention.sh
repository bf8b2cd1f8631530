#!/usr/bin/env bash
# What recovery-point retention costs in the object store
# (internal/volume/bench_retention_test.go): two steady workloads for 10
# simulated minutes (a cut every 5 s), with a window keeping every point
# and without. Counts, not timings. Prints BENCHMARKS.md's table.
#
#   bench/retention.sh         run and print the table
#   bench/retention.sh -raw    also print go test's raw output
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench '^BenchmarkRetentionCost' -benchtime=1x -timeout 10m ./internal/volume | tee "$out" >&2
[ "${1:-}" = "-raw" ] && cat "$out"

echo
echo "Recovery-point retention, $(date -u +%Y-%m-%d), 10 simulated minutes, 120 points, file store, load average $(cut -d' ' -f1 /proc/loadavg)"
echo
echo "| workload | user data / point | retention off: objects, bytes | on: objects, bytes | extra / retained point | blocks kept (predicted: changed by each cut) | pages kept, bytes (predicted) | root |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
awk '
function metric(name,   i) { for (i = 3; i < NF; i++) if ($(i+1) == name) return $i; return "?" }
function mib(x) { return sprintf("%.1f MiB", x / 1048576) }
function kib(x) { return sprintf("%.1f KiB", x / 1024) }
/^BenchmarkRetentionCost\// {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkRetentionCost\//, "", name)
	if (name == "random4k") what = "4 KiB random writes, 1/s, 256 MiB hot region"
	else if (name == "sequential") what = "sequential 64 KiB/s, 16 MiB log that wraps"
	else what = name
	printf "| %s | %s | %d, %s | %d, %s | %s, %.1f objects | %d (%d) | %d, %s (%d, %s) | %d B |\n", what, kib(metric("user_B/point")),
		metric("off_objects"), mib(metric("off_bytes")), metric("on_objects"), mib(metric("on_bytes")),
		kib(metric("extra_B/point")), metric("extra_objects/point"), metric("on_blocks"), metric("predicted_blocks"),
		metric("on_pages"), kib(metric("on_page_B")), metric("predicted_pages"), kib(metric("predicted_page_B")), metric("root_B")
}' "$out"
