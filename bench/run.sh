#!/usr/bin/env bash
# `make bench`: every benchmark script in bench/, one after the other (they
# would distort each other if run at once), each printing its markdown
# table for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")"
for script in ./*.sh; do
	[ "$script" = ./run.sh ] && continue
	echo "== $script" >&2
	"$script"
	echo
done
