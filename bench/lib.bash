# Shared by bench/product.sh and bench/peers.sh (sourced, not run): a
# private work directory, the volgw binary built from this tree, and a trap
# that leaves nothing behind — every process group the Go harness started
# (it records them in $work/pgids), anything still holding a file in $work,
# and FUSE mounts under $work.

bench_setup() {
	work=$(mktemp -d "${TMPDIR:-/tmp}/volgw-bench.XXXXXX")
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	go build -o "$work/volgw" ./cmd/volgw
}

bench_cleanup() {
	local pg pid m
	# Best effort from here on: one failing step must not skip the others.
	set +e
	if [ -f "$work/pgids" ]; then
		# Only a group whose leader still carries this run's VOLGW_BENCH_DIR
		# (the harness passes its environment on): a number left by a
		# process that has exited may name someone else's by now.
		while read -r pg; do
			if { tr '\0' '\n' <"/proc/$pg/environ"; } 2>/dev/null | grep -qxF "VOLGW_BENCH_DIR=$work"; then
				kill -KILL -- "-$pg" 2>/dev/null
			fi
		done <"$work/pgids"
	fi
	for m in $(grep -F " $work/" /proc/mounts | cut -d' ' -f2); do umount -l "$m"; done
	for pid in /proc/[0-9]*; do
		pid=${pid#/proc/}
		[ "$pid" = $$ ] && continue
		if ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF " $work/"; then kill -KILL "$pid" 2>/dev/null || true; fi
	done
	rm -rf "$work"
}

# bench_run TEST OUT: runs the Go harness's TEST with the switch that
# enables it, its log on stderr, and prints the report it writes, headed
# by the commit, the machine and its load.
bench_run() {
	local test=$1 out=$2 title=$3 load_before load_after started
	load_before=$(cut -d' ' -f1 /proc/loadavg)
	started=$(date -u +%H:%M)
	VOLGW_BENCH=1 VOLGW_BENCH_DIR="$work" VOLGW_BENCH_BIN="$work/volgw" VOLGW_BENCH_OUT="$work/report.md" \
		go test -count=1 -timeout 40m -run "^$test\$" -v ./bench/product/ >&2
	load_after=$(cut -d' ' -f1 /proc/loadavg)
	{
		echo "## $title"
		echo
		echo "$(date -u +%Y-%m-%d) $started–$(date -u +%H:%M) UTC, volgw at $(git log -1 --format=%h -- cmd internal go.mod go.sum)$(git diff --quiet HEAD -- cmd internal go.mod go.sum || echo ' with uncommitted changes') (tree at $(git rev-parse --short HEAD)), $(nproc) vCPUs, $(uname -r), $(qemu-img --version | head -1), load average $load_before before, $load_after after."
		echo
		cat "$work/report.md"
	} >"$work/table.md"
	cat "$work/table.md"
	if [ -n "$out" ]; then cp "$work/table.md" "$out"; fi
}
