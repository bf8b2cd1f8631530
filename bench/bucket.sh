#!/usr/bin/env bash
# What the bucket costs: bytes stored and requests made, through the
# product path. `volgw serve` built from this tree on a versitygw bucket
# behind a request-counting proxy: 512 MiB of random data copied onto a
# volume over iSCSI, a snapshot, 4 KiB random writes over it; then the
# bucket is watched until GC (default settings) brings it to 1.1 × (live
# data + snapshot-unique data), and the data is read back cold. Prints
# markdown; with an argument, also writes it to that file. About 10
# minutes. Extra serve flags: VOLGW_BENCH_FLAGS (e.g. "--compress").
#
#   bench/bucket.sh [out.md]
#
# The measuring code is bench/product (TestBucketBench).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"
for tool in qemu-img qemu-io versitygw; do
	command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-bench-deps.sh" >&2; exit 1; }
done
. bench/lib.bash
bench_setup
bench_run TestBucketBench "${1:-}" "What the bucket costs"
