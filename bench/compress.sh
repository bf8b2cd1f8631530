#!/usr/bin/env bash
# Compression on real content, through the product path: `volgw serve`
# built from this tree on a versitygw bucket, with and without --compress;
# for each image — a Debian root file system in ext4 (made with mkfs.ext4
# -d from this machine's /usr, /etc and dpkg database), an SQLite database
# of orders, and random bytes — a gateway and volume created through the
# API, the image copied over iSCSI by qemu-img, then read back cold after a
# restart. Reports bytes uploaded and stored, the rate until durable and
# the cold-read rate, medians of 3 interleaved rounds
# (VOLGW_BENCH_ROUNDS). Prints markdown; with an argument, also writes it
# to that file. About 10 minutes. Needs root and
# scripts/install-bench-deps.sh.
#
#   bench/compress.sh [out.md]
#
# The measuring code is bench/product (TestCompressionBench).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"
for tool in qemu-img versitygw mkfs.ext4 python3; do
	command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-bench-deps.sh" >&2; exit 1; }
done
. bench/lib.bash
bench_setup
bench_run TestCompressionBench "${1:-}" "Compression on real content"
