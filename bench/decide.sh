#!/usr/bin/env bash
# Decision throughput: how long the engine takes to decide a campaign.
#
# smtp-source submits N newsletters (List-Unsubscribe, ~5 KB), each to a
# recipient of its own, to Kadenz running on a virtual clock, so all of them
# are held. Then the clock is moved past the hold window in one step and the
# script times how long it takes until no envelope is held any more: every
# recipient decided and each decision committed. With several binaries (for
# example the tree and an older build) they run one after the other in the
# same run, twice each, interleaved, so they are compared on the same
# machine state.
#
# Usage: bench/decide.sh [N] [BINARY...]   (N defaults to 10000; without a
#        binary, ./cmd/kadenz is built)
#   KEEP=1   keep the work directory
# Everything listens on 127.0.0.1 only; every wait is bounded.
set -euo pipefail

N="${1:-10000}"
shift || true
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
[ -x /usr/sbin/smtp-source ] || { echo "decide.sh: /usr/sbin/smtp-source missing; run make deps" >&2; exit 1; }
command -v curl >/dev/null || { echo "decide.sh: needs curl" >&2; exit 1; }
case "$N" in '' | *[!0-9]*) echo "usage: bench/decide.sh [N] [BINARY...]" >&2; exit 2 ;; esac

mkdir -p "$root/bench/out"
work="$(mktemp -d "$root/bench/out/decide.XXXXXX")"
pid=""
cleanup() {
	set +e
	[ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
	if [ "${KEEP:-}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
	(cd "$root" && go build -o "$work/kadenz" ./cmd/kadenz)
	bins=("$work/kadenz")
fi

# shellcheck source=bench/ports.sh
. "$here/ports.sh"
held() { # admin -> envelopes held now
	local n
	n="$(curl -sf "http://$1/v1/queue/summary" | grep -o '"held":[0-9]*' | cut -d: -f2)"
	echo "${n:-0}"
}

{
	printf 'From: <news@shop.test>\nSubject: Winter sale\n'
	printf 'List-Unsubscribe: <mailto:unsubscribe@shop.test>\nX-Kadenz-Campaign: bench\n\n'
	for i in $(seq 0 70); do
		printf 'Lorem ipsum dolor sit amet, line %04d of the benchmark newsletter.\n' "$i"
	done
} >"$work/newsletter.txt"
# No upstream: released mail goes to the outbox. Quiet hours are off so that
# every release is due at once.
cat >"$work/kadenz.yaml" <<EOF
governor:
  quiet_hours:
    start: "00:00"
    end: "00:00"
EOF

run() { # binary -> prints one line
	local bin=$1 port admin t0 t1 deadline
	port="$(free_port)" admin="127.0.0.1:$(free_port)"
	rm -rf "$work/data"
	"$bin" serve --config "$work/kadenz.yaml" --listen "127.0.0.1:$port" --data "$work/data" \
		--admin "$admin" --clock virtual:2026-12-07T10:00:00Z 2>"$work/kadenz.log" &
	pid=$!
	wait_port "$port" 30
	# -N: a recipient address of its own for every message.
	timeout 600 /usr/sbin/smtp-source -s 20 -F "$work/newsletter.txt" -m "$N" -N \
		-f news@shop.test -t r@example.test "127.0.0.1:$port" >/dev/null
	[ "$(held "$admin")" -eq "$N" ] || { echo "decide.sh: $(held "$admin") of $N held" >&2; return 1; }
	t0="$(date +%s.%N)"
	curl -sf -X POST -H 'Content-Type: application/json' "http://$admin/v1/clock" -d '{"advance": "6m"}' >/dev/null
	deadline=$((SECONDS + 600))
	while [ "$(held "$admin")" -gt 0 ]; do
		[ $SECONDS -lt $deadline ] || { echo "decide.sh: still $(held "$admin") held after 600 s" >&2; return 1; }
		sleep 0.05
	done
	t1="$(date +%s.%N)"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=""
	awk -v a="$t0" -v b="$t1" -v n="$N" -v bin="$bin" -v c="$(grep -o 'commits=[0-9]*' "$work/kadenz.log" | tail -n 1)" \
		'BEGIN { printf "| %s | %d | %.2f | %.0f | %s |\n", bin, n, b - a, n / (b - a), c }'
}

echo "# decision throughput: $N newsletters to $N recipients, decided after one step of the virtual clock"
echo "| binary | recipients | seconds to decide all | decisions/s | commits over the whole run |"
echo "|---|---:|---:|---:|---|"
for round in 1 2; do
	for b in "${bins[@]}"; do
		run "$b"
	done
done
