#!/usr/bin/env bash
# Relay throughput benchmark: Postfix's smtp-source pushes N messages (20
# sessions, ~5 KB each) through five paths, one after the other, in one run:
#   (a) smtp-source -> smtp-sink                     (the machine's ceiling)
#   (b) smtp-source -> kadenz  -> smtp-sink          (built from this tree)
#   (m) smtp-source -> kadenz, marketing mail        (held for the governor,
#       so nothing is delivered during the run: intake alone)
#   (f) smtp-source -> floor   -> smtp-sink          (bench/floor: go-smtp in
#       and out with nothing stored, the floor under any go-smtp relay)
#   (d) smtp-source -> floor -durable -> smtp-sink (the same, but each
#       message written to a journal and fdatasynced before its 250: the least
#       disk work a relay that never loses accepted mail must do)
#   (c) smtp-source -> Postfix -> smtp-sink          (a private, stock Postfix)
# For each it prints the accept rate (smtp-source's wall time), the time until
# the sink has every message, the end-to-end rate, the ratios, Kadenz's peak
# RSS, the CPU each program spent per message (source, relay and sink share
# the machine's cores), and how much CPU other processes on the machine took
# meanwhile (a busy machine skews every row). Everything listens on 127.0.0.1 only; every wait
# is bounded.
#
# Usage: bench/relay.sh [N]        (N defaults to 20000)
#   KADENZ=path   use this binary instead of building ./cmd/kadenz
#   KEEP=1        keep the work directory (logs, data dirs) for inspection
#
# Needs /usr/sbin/smtp-source, smtp-sink and postfix (`make deps`), and root
# for (c) and for smtp-sink's -u. Kadenz and Postfix keep their queues under
# bench/out/, on the repository's disk, so fsync costs what it really costs.
set -euo pipefail

N="${1:-20000}"
SESSIONS=20
SIZE=5000
WAIT_LIMIT=600 # seconds, for each smtp-source run and each drain

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
for p in smtp-source smtp-sink postfix; do
	[ -x "/usr/sbin/$p" ] || { echo "relay.sh: /usr/sbin/$p missing; run make deps" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "relay.sh: run as root (a private Postfix master must start as root)" >&2; exit 1; }
case "$N" in '' | *[!0-9]*) echo "usage: bench/relay.sh [N]" >&2; exit 2 ;; esac

mkdir -p "$root/bench/out"
work="$(mktemp -d "$root/bench/out/run.XXXXXX")"
# The sink runs as nobody and Postfix's daemons as postfix: both must be able
# to reach their directories under this one.
chmod 755 "$root/bench/out" "$work"

pids=()         # everything started in the background, for cleanup
postfix_dir=""  # set while a private Postfix may be running
cleanup() {
	set +e
	if [ -n "$postfix_dir" ]; then
		/usr/sbin/postfix -c "$postfix_dir/etc" stop >/dev/null 2>&1
	fi
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null
	done
	cg_leave
	if [ "${KEEP:-}" = 1 ]; then
		echo "kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/ports.sh
. "$here/ports.sh"

# stop_pid pid seconds: SIGTERM, then wait (bounded) and reap; sets stop_status
stop_pid() {
	local deadline=$((SECONDS + $2)) hung=""
	kill -TERM "$1" 2>/dev/null || true
	while kill -0 "$1" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
	if kill -0 "$1" 2>/dev/null; then
		hung=1
		kill -KILL "$1" 2>/dev/null || true
	fi
	stop_status=0
	wait "$1" 2>/dev/null || stop_status=$?
	if [ -n "$hung" ]; then stop_status="hung (SIGKILLed after $2s)"; fi
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# CPU accounting, to tell how much of the machine other programs took during
# a phase. This script moves itself into a cgroup of its own (cgroup v1
# cpuacct; every descendant follows, even daemons that detach), so "ours"
# is known; "other" is the CPU time (own plus reaped children's) of every
# user-space process outside it. Kernel threads are left out: they also do
# our work (loopback, journal commits). Without such a cgroup: n/a.
cg_root=/sys/fs/cgroup/cpuacct
cg_ours=""
if [ -w "$cg_root/tasks" ] && mkdir "$cg_root/kadenz-bench.$$" 2>/dev/null; then
	cg_ours="$cg_root/kadenz-bench.$$"
	echo $$ >"$cg_ours/tasks"
fi
cg_leave() {
	if [ -n "$cg_ours" ]; then
		echo $$ >"$cg_root/tasks" 2>/dev/null
		rmdir "$cg_ours" 2>/dev/null
	fi
}
other_total() { # CPU seconds of user-space processes outside our cgroup
	# A process may exit between the glob and the read: cat then fails,
	# which must not end the run (pipefail).
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v ours=" $(tr '\n' ' ' <"$cg_ours/cgroup.procs") " -v hz="$(getconf CLK_TCK)" '
		{
			# comm, field 2, may hold spaces and parentheses: split after the last ")".
			if (!match($0, /\) [^)]*$/)) next
			split(substr($0, RSTART + 2), f, " ")
			# f[1] state, f[2] ppid, f[7] flags (0x200000: kernel thread),
			# f[12..15] utime stime cutime cstime. Zombies have left their
			# cgroup: ours (Postfix daemons orphaned by its stop, on a machine
			# whose init does not reap) would pass for other programs.
			if ($1 == 2 || f[1] == "Z" || f[2] == 2 || int(f[7] / 2097152) % 2 == 1) next
			if (index(ours, " " $1 " ")) next
			s += f[12] + f[13] + f[14] + f[15]
		}
		END { printf "%.2f", s / hz }'
}
phase_begin() {
	[ -n "$cg_ours" ] || return 0
	other0="$(other_total)"
}
phase_end() { # -> sets other_cpu
	other_cpu="n/a"
	[ -n "$cg_ours" ] || return 0
	other_cpu="$(awk -v a="$other0" -v b="$(other_total)" 'BEGIN { x = b - a; if (x < 0) x = 0; printf "%.1f", x }')"
}

# smtp-sink -c rewrites a "sess=.. quit=.. mesg=N" counter line (ending in CR)
# after every message; the last one written is the count so far. (-M is no
# good for counting: it exits before its last 250.)
sink_count() {
	local n
	n="$(tail -c 300 "$1" 2>/dev/null | tr '\r' '\n' | grep -o 'mesg=[0-9]*' | tail -n 1 | cut -d= -f2)"
	echo "${n:-0}"
}

start_sink() { # name -> sets sink_port, sink_out, sink_pid
	sink_port="$(free_port)"
	sink_out="$work/$1.sink"
	/usr/sbin/smtp-sink -u nobody -c "127.0.0.1:$sink_port" 1000 >"$sink_out" 2>&1 &
	sink_pid=$!
	pids+=("$sink_pid")
	wait_port "$sink_port" 10
}

# run_source port [file] -> sets t_start, accept_s; fails if smtp-source does
# and source_cpu (smtp-source's user+sys seconds). With a file, smtp-source
# sends its header and body instead of a generated SIZE-byte message.
run_source() {
	local TIMEFORMAT='%U %S' ok=1 content=(-l "$SIZE")
	[ -z "${2:-}" ] || content=(-F "$2")
	t_start="$(now)"
	{ time timeout "$WAIT_LIMIT" /usr/sbin/smtp-source -s "$SESSIONS" "${content[@]}" -m "$N" \
		-f a@x.test -t b@y.test "127.0.0.1:$1" >"$work/source.$1.log" 2>&1 || ok=""; } 2>"$work/source.$1.time"
	[ -n "$ok" ] || {
		echo "relay.sh: smtp-source to port $1 failed:" >&2
		tail -n 20 "$work/source.$1.log" >&2
		return 1
	}
	accept_s="$(elapsed "$t_start" "$(now)")"
	source_cpu="$(awk '{ printf "%.1f", $1 + $2 }' "$work/source.$1.time")"
}

# cpu_of pid -> user+sys seconds of a running process
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# per_msg seconds -> microseconds per message
per_msg() { awk -v s="$1" -v n="$N" 'BEGIN { printf "%.0f", s / n * 1e6 }'; }

# wait_sink -> sets got and drain_s: from smtp-source's start until the sink
# counted N ("n/a" if it never did within WAIT_LIMIT)
wait_sink() {
	local deadline=$((SECONDS + WAIT_LIMIT))
	while got="$(sink_count "$sink_out")"; [ "$got" -lt "$N" ]; do
		if [ $SECONDS -ge $deadline ]; then
			echo "relay.sh: sink has $got of $N after ${WAIT_LIMIT}s" >&2
			drain_s="n/a"
			return 0
		fi
		sleep 0.05
	done
	drain_s="$(elapsed "$t_start" "$(now)")"
}

rate() { awk -v n="$N" -v s="$1" 'BEGIN { if (s == "n/a" || s <= 0) print "n/a"; else printf "%.0f", n / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }

echo "# relay benchmark: $N messages, $SESSIONS sessions, $SIZE bytes each"
echo "#   smtp-source -s $SESSIONS -l $SIZE -m $N -f a@x.test -t b@y.test 127.0.0.1:PORT"
echo "# machine: nproc=$(nproc), memory=$(free -h | awk '/^Mem:/ { print $2 }'), fs=$(df -T "$work" | awk 'NR == 2 { print $2 }'), kernel=$(uname -r)"
echo "# postfix $(/usr/sbin/postconf -d -h mail_version 2>/dev/null), $(go env GOVERSION 2>/dev/null || echo go ?)"

bin="${KADENZ:-}"
if [ -z "$bin" ]; then
	bin="$work/kadenz"
	(cd "$root" && go build -o "$bin" ./cmd/kadenz)
fi

# ---- (a) direct: the ceiling ----
phase_begin
start_sink direct
run_source "$sink_port"
wait_sink
a_accept=$accept_s a_drain=$drain_s a_got=$got a_src=$source_cpu a_sink=$(cpu_of "$sink_pid")
stop_pid "$sink_pid" 10
phase_end
a_other=$other_cpu
echo "(a) direct: accepted in ${a_accept}s, sink complete after ${a_drain}s ($a_got of $N)" >&2

# ---- (b) kadenz, defaults but plain SMTP to the sink ----
phase_begin
start_sink kadenz
k_port="$(free_port)"
cat >"$work/kadenz.yaml" <<EOF
delivery:
  tls: none
EOF
"$bin" serve --config "$work/kadenz.yaml" --listen "127.0.0.1:$k_port" --data "$work/kadenz-data" \
	--upstream "127.0.0.1:$sink_port" 2>"$work/kadenz.log" &
k_pid=$!
pids+=("$k_pid")
wait_port "$k_port" 30
run_source "$k_port"
wait_sink
b_accept=$accept_s b_drain=$drain_s b_got=$got b_src=$source_cpu b_sink=$(cpu_of "$sink_pid")
k_rss_kb="$(awk '/^VmHWM:/ { print $2 }' "/proc/$k_pid/status")"
# VmHWM counts bbolt's mmap'd file pages too; split the current RSS to tell.
k_rss_now="$(awk '/^(RssAnon|RssFile):/ { sub(":", "", $1); printf "%s%s %d MiB", sep, $1, $2 / 1024; sep = ", " }' "/proc/$k_pid/status")"
k_cpu_s="$(cpu_of "$k_pid")"
stop_pid "$k_pid" 30
k_exit=$stop_status
stop_pid "$sink_pid" 10
phase_end
b_other=$other_cpu
echo "(b) kadenz: accepted in ${b_accept}s, sink complete after ${b_drain}s ($b_got of $N)" >&2

# ---- (m) kadenz, marketing mail: held for the governor ----
# The same path with newsletters (List-Unsubscribe, about SIZE bytes):
# Kadenz holds each for governor.hold_window (5 minutes), so nothing is
# delivered during the run. This is intake alone, for the mail Kadenz exists
# to govern; (b) is mail it passes straight through.
{
	printf 'From: <a@x.test>\nTo: <b@y.test>\nSubject: Winter sale\n'
	printf 'List-Unsubscribe: <mailto:unsubscribe@x.test>\nX-Kadenz-Campaign: bench\n\n'
	i=0
	while [ $((i * 68)) -lt $((SIZE - 180)) ]; do
		printf 'Lorem ipsum dolor sit amet, line %04d of the benchmark newsletter.\n' "$i"
		i=$((i + 1))
	done
} >"$work/marketing.txt"
phase_begin
m_port="$(free_port)"
"$bin" serve --config "$work/kadenz.yaml" --listen "127.0.0.1:$m_port" --data "$work/kadenz-m-data" \
	2>"$work/kadenz-m.log" &
m_pid=$!
pids+=("$m_pid")
wait_port "$m_port" 30
run_source "$m_port" "$work/marketing.txt"
m_accept=$accept_s m_src=$source_cpu m_cpu=$(cpu_of "$m_pid")
stop_pid "$m_pid" 30
m_held="$(grep -c 'msg=accepted.* held=1 ' "$work/kadenz-m.log" || true)"
phase_end
m_other=$other_cpu
echo "(m) kadenz, marketing: accepted in ${m_accept}s, $m_held of $N held" >&2

# run_floor name [flag ...]: one path through bench/floor (built below) with
# these flags -> sets fl_accept fl_drain fl_got fl_src fl_sink fl_cpu fl_other
run_floor() {
	local name=$1 port pid
	shift
	phase_begin
	start_sink "$name"
	port="$(free_port)"
	"$work/floor" -listen "127.0.0.1:$port" -upstream "127.0.0.1:$sink_port" "$@" 2>"$work/$name.log" &
	pid=$!
	pids+=("$pid")
	wait_port "$port" 30
	run_source "$port"
	wait_sink
	fl_accept=$accept_s fl_drain=$drain_s fl_got=$got fl_src=$source_cpu fl_sink=$(cpu_of "$sink_pid") fl_cpu=$(cpu_of "$pid")
	stop_pid "$pid" 10
	stop_pid "$sink_pid" 10
	phase_end
	fl_other=$other_cpu
}

# ---- (f) the floor: go-smtp in and out, nothing stored ----
# bench/floor accepts into memory and forwards over 8 reused connections:
# what any relay built on go-smtp's server and client costs before it
# writes a byte to disk. Not a product (a crash loses everything it holds).
(cd "$root" && go build -o "$work/floor" ./bench/floor)
run_floor floor
f_accept=$fl_accept f_drain=$fl_drain f_got=$fl_got f_src=$fl_src f_sink=$fl_sink f_cpu=$fl_cpu f_other=$fl_other
echo "(f) floor: accepted in ${f_accept}s, sink complete after ${f_drain}s ($f_got of $N)" >&2

# ---- (d) the durable floor: the floor plus an fdatasynced log ----
# The same binary with -durable: every message written to Kadenz's own
# group-commit journal (governor/feedback/journal) and fdatasynced before its
# 250, one write and one sync per group of messages waiting together. What
# keeping the promise "accepted means on disk" costs on this machine's disk
# before any index, queue state or lookup; the journal lives beside Kadenz's
# database.
run_floor dfloor -durable "$work/floor-log"
rm -rf "$work/floor-log"
d_accept=$fl_accept d_drain=$fl_drain d_got=$fl_got d_src=$fl_src d_sink=$fl_sink d_cpu=$fl_cpu d_other=$fl_other
echo "(d) durable floor: accepted in ${d_accept}s, sink complete after ${d_drain}s ($d_got of $N)" >&2

# ---- (c) a stock Postfix as a loopback-only relay ----
phase_begin
start_sink postfix
p_port="$(free_port)"
postfix_dir="$work/postfix"
mkdir -p "$postfix_dir/etc" "$postfix_dir/queue" "$postfix_dir/data"
chown postfix "$postfix_dir/data"
# The system's master.cf as shipped, with smtpd on our port instead of :25
# and no chroot (a chroot would need copies of /etc files in the queue).
awk -v listen="127.0.0.1:$p_port" '
	/^[#[:space:]]/ || NF < 8 { print; next }
	$1 == "smtp" && $2 == "inet" { $1 = listen }
	{ $5 = "n"; print }' /etc/postfix/master.cf >"$postfix_dir/etc/master.cf"
# Relay for 127.0.0.0/8 to the sink, nothing local. As root, `postfix -c DIR`
# needs no alternate_config_directories entry in a default main.cf (only
# set-gid commands run by other users check it) and no multi-instance setup;
# queue and data directories of its own keep it apart from any system Postfix.
cat >"$postfix_dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $postfix_dir/queue
data_directory = $postfix_dir/data
maillog_file = $postfix_dir/maillog
maillog_file_prefixes = $postfix_dir
myhostname = postfix-bench.kadenz.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$sink_port
smtp_tls_security_level = none
smtpd_tls_security_level = none
alias_maps =
alias_database =
EOF
# start-fg keeps the master our descendant, so it is reaped (and counted).
/usr/sbin/postfix -c "$postfix_dir/etc" start-fg >"$postfix_dir/start.log" 2>&1 &
pf_pid=$!
pids+=("$pf_pid")
wait_port "$p_port" 30
run_source "$p_port"
wait_sink
c_accept=$accept_s c_drain=$drain_s c_got=$got
/usr/sbin/postfix -c "$postfix_dir/etc" stop >/dev/null 2>&1 || true
deadline=$((SECONDS + 30))
while kill -0 "$pf_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
wait "$pf_pid" 2>/dev/null || true
postfix_dir="" # stopped: cleanup need not stop it again
stop_pid "$sink_pid" 10
phase_end
c_other=$other_cpu
echo "(c) postfix: accepted in ${c_accept}s, sink complete after ${c_drain}s ($c_got of $N)" >&2

# ---- report ----
a_acc=$(rate "$a_accept") a_e2e=$(rate "$a_drain")
b_acc=$(rate "$b_accept") b_e2e=$(rate "$b_drain")
f_acc=$(rate "$f_accept") f_e2e=$(rate "$f_drain")
d_acc=$(rate "$d_accept") d_e2e=$(rate "$d_drain")
c_acc=$(rate "$c_accept") c_e2e=$(rate "$c_drain")
echo
echo "| path | accept time (s) | accepted msgs/s | sink has all after (s) | end-to-end msgs/s | other programs' CPU, approx. (s) |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| (a) smtp-source -> smtp-sink | $a_accept | $a_acc | $a_drain | $a_e2e | $a_other |"
echo "| (b) smtp-source -> kadenz -> smtp-sink | $b_accept | $b_acc | $b_drain | $b_e2e | $b_other |"
echo "| (m) smtp-source -> kadenz, marketing mail (held, not delivered) | $m_accept | $(rate "$m_accept") | - | - | $m_other |"
echo "| (f) smtp-source -> floor (go-smtp, no disk) -> smtp-sink | $f_accept | $f_acc | $f_drain | $f_e2e | $f_other |"
echo "| (d) smtp-source -> floor -durable (fdatasynced log) -> smtp-sink | $d_accept | $d_acc | $d_drain | $d_e2e | $d_other |"
echo "| (c) smtp-source -> postfix -> smtp-sink | $c_accept | $c_acc | $c_drain | $c_e2e | $c_other |"
echo
# The machine's CPU is what the three programs share: where it goes.
echo "| CPU per message (us) | smtp-source | relay | smtp-sink | all three |"
echo "|---|---:|---:|---:|---:|"
echo "| (a) direct | $(per_msg "$a_src") | - | $(per_msg "$a_sink") | $(per_msg "$(awk -v a="$a_src" -v b="$a_sink" 'BEGIN { print a + b }')") |"
echo "| (b) kadenz | $(per_msg "$b_src") | $(per_msg "$k_cpu_s") | $(per_msg "$b_sink") | $(per_msg "$(awk -v a="$b_src" -v b="$k_cpu_s" -v c="$b_sink" 'BEGIN { print a + b + c }')") |"
echo "| (m) kadenz, marketing | $(per_msg "$m_src") | $(per_msg "$m_cpu") | - | $(per_msg "$(awk -v a="$m_src" -v b="$m_cpu" 'BEGIN { print a + b }')") |"
echo "| (f) floor | $(per_msg "$f_src") | $(per_msg "$f_cpu") | $(per_msg "$f_sink") | $(per_msg "$(awk -v a="$f_src" -v b="$f_cpu" -v c="$f_sink" 'BEGIN { print a + b + c }')") |"
echo "| (d) durable floor | $(per_msg "$d_src") | $(per_msg "$d_cpu") | $(per_msg "$d_sink") | $(per_msg "$(awk -v a="$d_src" -v b="$d_cpu" -v c="$d_sink" 'BEGIN { print a + b + c }')") |"
echo
acc_vs_direct=$(ratio "$b_acc" "$a_acc")
e2e_vs_postfix=$(ratio "$b_e2e" "$c_e2e")
echo "kadenz accepted / direct accepted:   $acc_vs_direct   (goal >= 0.50)"
echo "kadenz marketing accepted / direct:  $(ratio "$(rate "$m_accept")" "$a_acc")   (held for the governor: intake alone; $m_held of $N held)"
echo "floor accepted / direct accepted:    $(ratio "$f_acc" "$a_acc")   (go-smtp in and out, no disk)"
echo "kadenz accepted / floor accepted:    $(ratio "$b_acc" "$f_acc")"
# Issue 16: the relay's own CPU per message against the floor's, same run
# (steadier than the rates on a shared machine: it does not count waiting).
cpu_vs_floor=$(ratio "$k_cpu_s" "$f_cpu")
echo "kadenz relay CPU / floor CPU:        $cpu_vs_floor   (goal <= 1.40)"
echo "kadenz marketing CPU / floor CPU:    $(ratio "$m_cpu" "$f_cpu")   (intake alone, against the floor's in and out)"
# What the disk alone costs: the durable floor against the floor. Where this
# is over 1.4, no relay that syncs before its 250 meets the row above here.
echo "durable floor CPU / floor CPU:       $(ratio "$d_cpu" "$f_cpu")   (an fdatasynced log and nothing else)"
echo "kadenz relay CPU / durable floor:    $(ratio "$k_cpu_s" "$d_cpu")"
echo "kadenz end-to-end / direct:          $(ratio "$b_e2e" "$a_e2e")"
echo "kadenz accepted / postfix accepted:  $(ratio "$b_acc" "$c_acc")"
echo "kadenz end-to-end / postfix e2e:     $e2e_vs_postfix   (goal >= 3.00; issue 16: >= 4.00)"
echo "kadenz peak RSS (VmHWM):             $((k_rss_kb / 1024)) MiB"
echo "kadenz RSS once drained:             $k_rss_now"
echo "kadenz CPU (user+sys):               ${k_cpu_s}s"
echo "kadenz exit status after SIGTERM:    $k_exit"
# serve logs its group commit's totals when it stops: writes per commit is
# how well the store's commits were shared (docs/benchmarks.md).
k_commits="$(sed -n 's/.*msg=stopped commits=\([0-9]*\) writes=\([0-9]*\).*/\1 \2/p' "$work/kadenz.log" | tail -n 1)"
echo "kadenz store commits (b):            $(awk -v cw="$k_commits" 'BEGIN { split(cw, a, " "); if (a[1] > 0) printf "%d for %d writes, %.1f writes a commit", a[1], a[2], a[2] / a[1]; else print "n/a" }')"
echo "kadenz log lines at WARN/ERROR:      $(grep -cE 'level=(WARN|ERROR)|"level":"(WARN|ERROR)"' "$work/kadenz.log" || true)"
grep -E 'level=(WARN|ERROR)|"level":"(WARN|ERROR)"' "$work/kadenz.log" | head -n 3 | sed 's/^/    /' || true
awk -v r="$acc_vs_direct" 'BEGIN { if (r == "n/a" || r < 0.5) print "goal missed: kadenz accepts at less than half the direct rate"; else print "goal met: kadenz accepts at half the direct rate or better" }'
awk -v r="$e2e_vs_postfix" 'BEGIN { if (r == "n/a" || r < 3) print "goal missed: kadenz end to end is less than 3x Postfix"; else print "goal met: kadenz end to end is 3x Postfix or better" }'
awk -v r="$e2e_vs_postfix" 'BEGIN { if (r == "n/a" || r < 4) print "goal missed: kadenz end to end is less than 4x Postfix"; else print "goal met: kadenz end to end is 4x Postfix or better" }'
awk -v r="$cpu_vs_floor" 'BEGIN { if (r == "n/a" || r > 1.4) print "goal missed: kadenz spends more than 1.4x the floor'"'"'s CPU per message"; else print "goal met: kadenz spends at most 1.4x the floor'"'"'s CPU per message" }'
