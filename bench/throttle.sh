#!/usr/bin/env bash
# Bandwidth limits as a user sets them, measured at the store: `volgw
# serve` built from this tree on a versitygw bucket, a gateway and a 4 GiB
# volume created through the API, fresh random data written over iSCSI by
# qemu-img; the bucket's bytes sampled every second. An upload limit of
# 100 Mbit/s (and none, for scale), a schedule switching 50 → 200 Mbit/s at
# a minute boundary, a download limit of 200 Mbit/s on a cold read; and,
# while throttled, what ListVolumeRecoveryPoints and DescribeUploadBuffer
# say against what the bucket holds. Medians of 3 rounds
# (VOLGW_BENCH_ROUNDS). Prints markdown; with an argument, also writes it
# to that file. About 8 minutes. Needs root and
# scripts/install-bench-deps.sh.
#
#   bench/throttle.sh [out.md]
#
# The measuring code is bench/product (TestThrottleBench).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"
for tool in qemu-img versitygw; do
	command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-bench-deps.sh" >&2; exit 1; }
done
. bench/lib.bash
bench_setup
bench_run TestThrottleBench "${1:-}" "Bandwidth limits: rates measured at the store"
