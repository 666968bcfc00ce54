#!/bin/bash
# ab.sh - two taprouterd binaries beside each other on the demo topology,
# interleaved, so that a change is judged against the machine's own drift.
#
# Usage (as root, from the repository): bench/ab.sh A B [ROUNDS] [COMPARE FLAGS...]
#
# A and B are taprouterd binaries (build the old one from a worktree:
# git worktree add /tmp/old REV && (cd /tmp/old && go build -o /tmp/taprouterd-old
# ./cmd/taprouterd)). Runs bin/compare ROUNDS times (default 3) for each, in
# the order A B A B ..., each with --duration 3s --reps 1 --pings 300
# --bench-test "" --svg "" and the flags given after ROUNDS, keeps each
# run's table and JSON in a directory of its own, and ends with
# compare --summarize: every row's median and range for A and for B, and
# B's change against A. Env: AB_OUT (default a new /tmp/ab.XXXXXX) for the
# runs; A_ENV / B_ENV, environment assignments for each side's runs (the
# daemons inherit them), e.g. B_ENV="GOGC=400".
set -euo pipefail
if [ $# -lt 2 ]; then
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi
a=$(realpath "$1") b=$(realpath "$2")
shift 2
rounds=3
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
go build -o bin/compare ./bench/compare
out=${AB_OUT:-$(mktemp -d /tmp/ab.XXXXXX)}
mkdir -p "$out"
args=()
for i in $(seq 1 "$rounds"); do
	for side in A B; do
		if [ $side = A ]; then bin=$a env_=${A_ENV:-}; else bin=$b env_=${B_ENV:-}; fi
		echo "round $i/$rounds: $side ($bin)" >&2
		# shellcheck disable=SC2086
		env $env_ ./bin/compare --taprouterd "$bin" --duration 3s --reps 1 --pings 300 \
			--bench-test "" --svg "" "$@" --json "$out/$side-$i.json" > "$out/$side-$i.txt" 2>&1 ||
			echo "round $i $side: compare exited $? (see $out/$side-$i.txt)" >&2
		[ -s "$out/$side-$i.json" ] && args+=("$side=$out/$side-$i.json")
	done
done
echo "A = $a, B = $b; runs in $out" >&2
./bin/compare --summarize "${args[@]}"
