#!/usr/bin/env bash
# The pure model's speed, before and after, in one run.
#
# Builds the scoring package's test binary at an older commit (default
# f9bfe76, the release before the incremental comfort) and from the working
# tree, then runs the named benchmarks of each in turn, ROUNDS times,
# interleaved, on one core, so that both see the same machine. Prints every
# run and the median ns/op of each side. A benchmark the old commit lacks
# is skipped there.
#
# On a shared machine wall-clock ns/op moves with the load; the CPU time
# the process spent per operation moves much less. So each run is a fixed
# number of iterations (ITER), timed by the kernel's count of user+system
# CPU, minus a run of one iteration (setup); that is the "cpu ns/op" column.
#
# Neither is free of the load, so, when valgrind is installed, each side's
# instructions per operation are also counted (cachegrind, runs of 1001
# and 3001 iterations, difference over 2000): a count that does not depend
# on the machine's state at all, the fairest before/after ratio.
#
# Usage: bench/model.sh [OLD_COMMIT] [BENCH_REGEXP]
#   ROUNDS=5      interleaved rounds
#   ITER=100000   iterations per run
# Example: bench/model.sh f9bfe76 'Decide$'
set -euo pipefail

old="${1:-f9bfe76}"
pattern="${2:-Decide\$}"
rounds="${ROUNDS:-5}"
iter="${ITER:-100000}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

work="$(mktemp -d)"
cleanup() {
	git -C "$root" worktree remove --force "$work/old" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

git -C "$root" worktree add --detach "$work/old" "$old" >/dev/null 2>&1
(cd "$work/old" && go test -c -o "$work/old.test" ./scoring)
(cd "$root" && go test -c -o "$work/new.test" ./scoring)

# cpu SIDE N: user+system CPU seconds of one run of N iterations
cpu() {
	local out
	out="$( { cd "$root/scoring" && /usr/bin/time -f 'CPU %U %S' "$work/$1.test" -test.run '^$' -test.bench "$pattern" \
		-test.benchmem -test.cpu 1 -test.benchtime "$2x"; } 2>&1)"
	printf '%s\n' "$out" | awk -v side="$1" '/^Benchmark/ {print side, $0}' >&2
	printf '%s\n' "$out" | awk '/^CPU/ {print $2 + $3}'
}

for i in $(seq 1 "$rounds"); do
	for side in old new; do
		base="$(cpu "$side" 1 2>/dev/null)"
		total="$(cpu "$side" "$iter")"
		awk -v s="$side" -v b="$base" -v t="$total" -v n="$iter" 'BEGIN {printf "%s cpu %.0f ns/op\n", s, (t - b) / (n - 1) * 1e9}' >&2
		echo "$side cpu $(awk -v b="$base" -v t="$total" -v n="$iter" 'BEGIN {printf "%.0f", (t - b) / (n - 1) * 1e9}')" >>"$work/cpu"
	done
done 2>&1 | tee "$work/runs"

echo
echo "median wall ns/op (per benchmark) and cpu ns/op (all matched benchmarks of a run together):"
grep '^[a-z]* Benchmark' "$work/runs" | awk '{print $1, $2, $4}' | sort -k1,1 -k2,2 -k3,3n | awk '
	{k = $1 " " $2; v[k, ++n[k]] = $3; keys[k] = 1}
	END {for (k in keys) print k, v[k, int((n[k] + 1) / 2)]}' | sort
sort -k1,1 -k3,3n "$work/cpu" | awk '
	{k = $1; v[k, ++n[k]] = $3; keys[k] = 1}
	END {for (k in keys) print k, "cpu", v[k, int((n[k] + 1) / 2)]}' | sort
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

if command -v valgrind >/dev/null; then
	ir() { # SIDE N -> instructions of a run of N iterations
		(cd "$root/scoring" && valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
			"$work/$1.test" -test.run '^$' -test.bench "$pattern" -test.cpu 1 -test.benchtime "$2x" 2>&1) |
			awk '/I +refs/ {gsub(",", "", $4); print $4}'
	}
	echo
	echo "instructions/op (valgrind, all matched benchmarks of a run together):"
	for side in old new; do
		a="$(ir "$side" 1001)" b="$(ir "$side" 3001)"
		echo "$side $(((b - a) / 2000))"
	done
fi
