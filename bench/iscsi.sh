#!/usr/bin/env bash
# iSCSI benchmark: qemu-img bench and iscsi-perf against volgw's target and
# tgtd, both serving a 1 GiB file on the same file system, in the same run.
# Prints a markdown table with volgw/tgtd ratios (> 1: volgw faster); with an
# argument, also writes the table to that file.
#
#   bench/iscsi.sh [out.md]
#   VOLGW_BENCH_ROWS='iscsi-perf' bench/iscsi.sh    only the rows matching a regexp
#
# The measuring code is internal/iscsi/conformance (TestISCSIBench); this
# script only runs it with the switch that enables it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"
for tool in tgtd tgtadm qemu-img iscsi-perf; do
	command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-test-deps.sh" >&2; exit 1; }
done
out=${1:-}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# The machine's load goes in the header: on a shared machine it is what
# says how far to trust a run.
load_before=$(cut -d' ' -f1 /proc/loadavg)
VOLGW_BENCH=1 VOLGW_BENCH_OUT="$tmp" go test -count=1 -timeout 30m \
	-run '^TestISCSIBench$' -v ./internal/iscsi/conformance/ >&2
load_after=$(cut -d' ' -f1 /proc/loadavg)
echo "## iSCSI: volgw vs tgtd ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r), load average $load_before before, $load_after after)"
echo
cat "$tmp"
if [ -n "$out" ]; then cp "$tmp" "$out"; fi
