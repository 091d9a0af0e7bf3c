#!/usr/bin/env bash
# Cluster throughput benchmark (issue 17): end-to-end messages/s through
# Kadenz on bbolt, then on PostgreSQL with 1, 2 and 3 nodes sharing one
# database, in one run on this machine.
#
# For each setup, Postfix's smtp-source pushes N transactional messages
# (SIZE bytes, SESSIONS sessions split evenly over the nodes, one
# smtp-source per node, all at once) and smtp-sink receives what the nodes
# deliver. The clock runs from the first connection until the sink has N
# messages. CPU seconds are read from /proc before and after: each Kadenz
# node, PostgreSQL (all its processes), the smtp-source processes and the
# sink. Everything shares this machine's cores, so 3 nodes on 2 cores
# measure the cost of sharing the state, not a scale-out.
#
# PostgreSQL is a private cluster in the work directory (initdb and pg_ctl
# from Debian's postgresql package, on a free loopback port, fsync on as in
# production), run as the postgres user when this script runs as root.
#
# Usage: bench/cluster.sh [N] [SIZE]    (defaults: 10000 messages, 5000 bytes)
#   KADENZ=path  use this binary instead of building ./cmd/kadenz
#   KEEP=1       keep the work directory (logs, data) for inspection
set -euo pipefail

N="${1:-10000}"
SIZE="${2:-5000}"
SESSIONS="${SESSIONS:-24}"
WAIT_LIMIT="${WAIT_LIMIT:-600}" # seconds, for each drain
case "$N$SIZE" in '' | *[!0-9]*) echo "usage: bench/cluster.sh [N] [SIZE]" >&2; exit 2 ;; esac
for p in smtp-source smtp-sink; do
	[ -x "/usr/sbin/$p" ] || { echo "cluster.sh: /usr/sbin/$p missing; run make deps" >&2; exit 1; }
done

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=bench/ports.sh
. "$here/ports.sh"
# shellcheck source=bench/pg.sh
. "$here/pg.sh"
[ -x "$pgbin/initdb" ] || { echo "cluster.sh: PostgreSQL's initdb not found; install postgresql" >&2; exit 1; }
mkdir -p "$root/bench/out"
work="$(mktemp -d "$root/bench/out/cluster.XXXXXX")"
chmod 755 "$root/bench/out" "$work"

pids=()
cleanup() {
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	pg_stop
	if [ "${KEEP:-}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
hz="$(getconf CLK_TCK)"
cpu_of() { # pids... -> CPU seconds (user+system) of those processes now
	local s=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		s=$(awk -v s="$s" -v hz="$hz" '{ match($0, /\) [^)]*$/); split(substr($0, RSTART + 2), f, " "); printf "%.2f", s + (f[12] + f[13]) / hz }' "/proc/$p/stat")
	done
	echo "$s"
}
pg_cpu() { # CPU of the cluster's processes, live ones plus what the postmaster reaped
	local pm
	pm="$(head -n 1 "$pgdata/postmaster.pid")"
	awk -v hz="$hz" '{ match($0, /\) [^)]*$/); split(substr($0, RSTART + 2), f, " "); printf "%.2f", (f[12] + f[13] + f[14] + f[15]) / hz }' "/proc/$pm/stat" |
		awk -v kids="$(cpu_of $(pgrep -P "$pm" | tr '\n' ' '))" '{ printf "%.2f", $1 + kids }'
}
sink_count() {
	local n
	n="$(tail -c 300 "$1" 2>/dev/null | tr '\r' '\n' | grep -o 'mesg=[0-9]*' | tail -n 1 | cut -d= -f2)"
	echo "${n:-0}"
}

bin="${KADENZ:-}"
if [ -z "$bin" ]; then
	bin="$work/kadenz"
	(cd "$root" && go build -o "$bin" ./cmd/kadenz)
fi

# The private PostgreSQL.
pg_start "$work/pg"

echo "# bench/cluster.sh: $N messages of $SIZE bytes, $SESSIONS sessions split over the nodes; $(nproc) cores; $(date -u +%FT%TZ)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg); PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}')"
echo
echo "| setup | end-to-end s | msgs/s | vs bbolt | CPU s: kadenz nodes | CPU s: PostgreSQL | CPU s: smtp-source + sink |"
echo "|---|---|---|---|---|---|---|"

base_rate=""
run_setup() { # name nodes backend
	local name="$1" nodes="$2" backend="$3" i
	local sink_port sink_out sink_pid
	sink_port="$(free_port)"
	sink_out="$work/$name.sink"
	/usr/sbin/smtp-sink -u nobody -c "127.0.0.1:$sink_port" 1000 >"$sink_out" 2>&1 &
	sink_pid=$!
	pids+=("$sink_pid")
	wait_port "$sink_port" 10
	local url=""
	if [ "$backend" = postgres ]; then
		url="$(pg_createdb "$name")"
	fi
	local node_pids=() ports=()
	for i in $(seq 1 "$nodes"); do
		local port dir cfg
		port="$(free_port)"
		dir="$work/$name-n$i"
		cfg="$dir.yaml"
		mkdir -p "$dir"
		{
			echo "delivery:"
			echo "  tls: none"
			echo "intake:"
			echo "  max_connections: 200"
			if [ "$backend" = postgres ]; then
				echo "store:"
				echo "  backend: postgres"
				echo "  postgres:"
				echo "    url: $url"
				echo "    node: n$i"
			fi
		} >"$cfg"
		"$bin" serve --config "$cfg" --listen "127.0.0.1:$port" --data "$dir" --upstream "127.0.0.1:$sink_port" \
			>"$dir.log" 2>&1 &
		node_pids+=($!)
		pids+=($!)
		ports+=("$port")
		wait_port "$port" 60
	done
	local per=$((N / nodes)) sess=$((SESSIONS / nodes)) total=$((N / nodes * nodes))
	local k0 p0 s0 t0 src_pids=()
	k0="$(cpu_of "${node_pids[@]}")"
	p0="$(pg_cpu)"
	t0="$(now)"
	for port in "${ports[@]}"; do
		# times, in the subshell, reports its children's CPU once smtp-source ended.
		(
			timeout "$WAIT_LIMIT" /usr/sbin/smtp-source -s "$sess" -l "$SIZE" -m "$per" -f a@x.test -t b@y.test "127.0.0.1:$port" \
				>"$work/$name-source-$port.log" 2>&1
			times >"$work/$name-source-$port.times"
		) &
		src_pids+=($!)
	done
	local deadline=$((SECONDS + WAIT_LIMIT)) src_cpu=0 p
	while [ "$(sink_count "$sink_out")" -lt "$total" ] && [ $SECONDS -lt $deadline ]; do
		sleep 0.05
	done
	local t1 got
	t1="$(now)"
	got="$(sink_count "$sink_out")"
	for p in "${src_pids[@]}"; do wait "$p" || true; done
	for port in "${ports[@]}"; do
		# The second line of times: children's user and system time, e.g. 0m1.23s 0m0.45s.
		src_cpu="$(tail -n 1 "$work/$name-source-$port.times" |
			awk -v a="$src_cpu" '{ split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.2f", a + u[1] * 60 + u[2] + s[1] * 60 + s[2] }')"
	done
	local k1 p1 sk
	k1="$(cpu_of "${node_pids[@]}")"
	p1="$(pg_cpu)"
	sk="$(cpu_of "$sink_pid")"
	local per_node=""
	for p in "${node_pids[@]}"; do per_node="$per_node $(cpu_of "$p")"; done
	for p in "${node_pids[@]}" "$sink_pid"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	if [ "$got" -lt "$total" ]; then
		echo "| $name | did not drain: $got of $total after ${WAIT_LIMIT}s | | | | | |"
		return
	fi
	local secs rate ratio
	secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
	rate="$(awk -v n="$total" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')"
	[ -n "$base_rate" ] || base_rate="$rate"
	ratio="$(awk -v a="$rate" -v b="$base_rate" 'BEGIN { printf "%.2f", a / b }')"
	local pgc="-"
	[ "$backend" = postgres ] && pgc="$(awk -v a="$p0" -v b="$p1" 'BEGIN { printf "%.1f", b - a }')"
	echo "| $name | $secs | $rate | $ratio | $(awk -v a="$k0" -v b="$k1" 'BEGIN { printf "%.1f", b - a }') (each since start:$per_node) | $pgc | $src_cpu + $sk |"
}

run_setup bbolt 1 bbolt
run_setup pg1 1 postgres
run_setup pg2 2 postgres
run_setup pg3 3 postgres
echo
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
