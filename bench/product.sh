#!/usr/bin/env bash
# The product path as a user runs it, against tgtd: `volgw serve` built
# from this tree on its default flags (own data dir, default file store),
# a gateway activated and a 4 GiB volume created through the API, used over
# iSCSI by qemu-img and iscsi-perf; tgtd serves a preallocated 4 GiB file.
# Write rows twice: on a fresh upload buffer with the page cache full (every
# new page needs reclaim), and after the upload-buffer ring has wrapped;
# then the read rows. Medians of 3 interleaved rounds (VOLGW_BENCH_ROUNDS).
# Prints markdown; with an argument, also writes it to that file. About 8
# minutes. Needs root (drop_caches) and scripts/install-bench-deps.sh.
#
#   bench/product.sh [out.md]
#
# The measuring code is bench/product (TestProductBench).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"
for tool in tgtd tgtadm qemu-img iscsi-perf; do
	command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-bench-deps.sh" >&2; exit 1; }
done
. bench/lib.bash
bench_setup
bench_run TestProductBench "${1:-}" "Product path: volgw vs tgtd"
