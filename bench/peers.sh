#!/usr/bin/env bash
# volgw against what a user would pick instead to put a block device on S3:
# s3backer (FUSE) and nbdkit's S3 plugin, all three on one versitygw on
# 127.0.0.1. volgw is `volgw serve --store s3://…` built from this tree, a
# gateway activated and a 1 GiB volume created through the API, used over
# iSCSI; s3backer through its FUSE file with O_DIRECT; nbdkit over NBD; the
# client is qemu-img for all three. 512 MiB of fresh random data per device
# per round, medians of 3 interleaved rounds (VOLGW_BENCH_ROUNDS). Prints
# markdown with volgw ÷ peer ratios; with an argument, also writes it to
# that file. About 4 minutes. Needs root (FUSE) and
# scripts/install-bench-deps.sh.
#
#   bench/peers.sh [out.md]
#   VOLGW_BENCH_BASE=<commit> bench/peers.sh [out.md]
#
# With VOLGW_BENCH_BASE, volgw built from that commit (git archive, not a
# worktree) is a fourth device, "volgw-base", in the same interleaved
# rounds: before and after a change in one run (about a third longer).
#
# Extra `volgw serve` flags for the build under test (not volgw-base):
# VOLGW_BENCH_FLAGS, e.g. "--pprof-listen 127.0.0.1:6061" to profile it.
#
# The measuring code is bench/product (TestPeersBench); the command lines
# of the peers are those of ../shared/PEERS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"
for tool in s3backer nbdkit qemu-img versitygw; do
	command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-bench-deps.sh" >&2; exit 1; }
done
. bench/lib.bash
bench_setup
if [ -n "${VOLGW_BENCH_BASE:-}" ]; then
	mkdir "$work/base-src"
	git archive "$VOLGW_BENCH_BASE" | tar -x -C "$work/base-src"
	(cd "$work/base-src" && go build -o "$work/volgw-base" ./cmd/volgw)
	export VOLGW_BENCH_BASE_BIN="$work/volgw-base"
fi
bench_run TestPeersBench "${1:-}" "S3-backed peers: volgw vs s3backer vs nbdkit-S3"
