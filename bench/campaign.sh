#!/usr/bin/env bash
# Campaign-scale benchmark (issue 16): one newsletter to N recipients, held
# and then decided at once, as a marketing team's big send is.
#
#   1. kadenz serve starts on a virtual clock (Monday 09:00 UTC), delivering
#      to smtp-sink; bench/campaign submits N copies (one per recipient,
#      SIZE bytes, 20 sessions). Accept rate = N / submit time.
#   2. The clock steps past the hold window (10 minutes). Decide time = from
#      the step until no envelope is held; decide rate = N / that.
#   3. While it decides, the admin reads an operator would make are timed:
#      GET /v1/queue?state=held, /v1/stats, /ui/ (overview), /metrics; and,
#      with READS=all, also a recipient's profile (/v1/profiles/ADDR and
#      /ui/recipients/ADDR), the campaign's report (/v1/campaigns/NAME/report),
#      the campaigns page (/ui/campaigns) and the campaign's page
#      (/ui/campaigns/NAME).
#   4. Throughout, the relay's RSS (VmRSS and RssAnon) is sampled every
#      second; the peaks and the database size are reported.
#
# The ratio to look at is decide rate / accept rate (same run, same machine):
# the issue's goal is >= 5x, so a campaign is decided much faster than it can
# be submitted. Loopback only; every wait is bounded.
#
# Usage: bench/campaign.sh [N] [SIZE]      (defaults: 100000 recipients, 5000 bytes)
#   KADENZ=path  use this binary instead of building ./cmd/kadenz
#   KEEP=1       keep the work directory (logs, database) for inspection
#   STORE=postgres  run on a private PostgreSQL (bench/pg.sh) instead of bbolt
#   READS=0      do not time the admin reads (a pure decide measurement);
#   READS=all    time the profile, campaign report and campaigns page too
#   PROFILE=S    also take an S-second CPU profile of the decide phase
#                (bench/out/campaign.decide.pprof; go tool pprof BIN FILE)
#   TRACE=S      also take an S-second execution trace of the decide phase
#                (bench/out/campaign.decide.trace; go tool trace FILE, or
#                go tool trace -pprof=sync FILE for where goroutines waited)
#   SPACE=1      say what each bucket of the database takes once the
#                campaign is held and at the end (kadenz db backup, then
#                kadenz db check on the copy; bbolt only)
#   BODY=newsletter  send a realistic newsletter (multipart HTML and text,
#                quoted-printable, links and tokens unique per recipient;
#                bench/campaign/newsletter.go) of about SIZE bytes instead of
#                the default filler (one plain line repeated, which
#                compresses to nearly nothing: useless for measuring space)
#   RETENTION=1  after the decide, wait for the deliveries, move the clock
#                past retention.bodies (168h) so the sweep purges the bodies,
#                report the database (and SPACE), then stop the relay and
#                run kadenz db compact (bbolt only)
set -euo pipefail

N="${1:-100000}"
SIZE="${2:-5000}"
BODY="${BODY:-filler}"
SESSIONS="${SESSIONS:-20}"
WAIT_LIMIT="${WAIT_LIMIT:-3600}" # seconds, for the submit and for the decide phase
case "$N$SIZE" in '' | *[!0-9]*) echo "usage: bench/campaign.sh [N] [SIZE]" >&2; exit 2 ;; esac
[ -x /usr/sbin/smtp-sink ] || { echo "campaign.sh: /usr/sbin/smtp-sink missing; run make deps" >&2; exit 1; }

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=bench/ports.sh
. "$here/ports.sh"
# shellcheck source=bench/pg.sh
. "$here/pg.sh"
STORE="${STORE:-bbolt}"
case "$STORE" in bbolt | postgres) ;; *) echo "campaign.sh: STORE is bbolt or postgres" >&2; exit 2 ;; esac
mkdir -p "$root/bench/out"
work="$(mktemp -d "$root/bench/out/campaign.XXXXXX")"
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
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

bin="${KADENZ:-}"
if [ -z "$bin" ]; then
	bin="$work/kadenz"
	(cd "$root" && go build -o "$bin" ./cmd/kadenz)
fi
loader="$work/campaign"
(cd "$root" && go build -o "$loader" ./bench/campaign)

sink_port="$(free_port)"
/usr/sbin/smtp-sink -u nobody "127.0.0.1:$sink_port" 1000 >"$work/sink.log" 2>&1 &
pids+=($!)
wait_port "$sink_port" 10

smtp_port="$(free_port)"
admin_port="$(free_port)"
cat >"$work/kadenz.yaml" <<EOF
listen: 127.0.0.1:$smtp_port
data_dir: $work/data
admin:
  listen: 127.0.0.1:$admin_port
delivery:
  upstream: 127.0.0.1:$sink_port
  tls: none
EOF
if [ "$STORE" = postgres ]; then
	pg_start "$work/pg"
	printf 'store:\n  backend: postgres\n  postgres:\n    url: %s\n' "$(pg_createdb campaign)" >>"$work/kadenz.yaml"
fi
"$bin" serve --config "$work/kadenz.yaml" --clock virtual:2026-11-23T09:00:00Z >"$work/kadenz.log" 2>&1 &
pid=$!
pids+=("$pid")
wait_port "$smtp_port" 30
api="http://127.0.0.1:$admin_port"

# RSS sampler: the peak of VmRSS and RssAnon (kB), once a second.
(
	peak=0 peak_anon=0
	while kill -0 "$pid" 2>/dev/null; do
		read -r rss anon < <(awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} END {print r+0, a+0}' "/proc/$pid/status" 2>/dev/null || echo "0 0")
		[ "$rss" -gt "$peak" ] && peak=$rss
		[ "$anon" -gt "$peak_anon" ] && peak_anon=$anon
		echo "$peak $peak_anon" >"$work/rss.peak"
		sleep 1
	done
) &
pids+=($!)

db_mb() { # the database's size: the data directory, or PostgreSQL's files
	if [ "$STORE" = postgres ]; then du -sm "$work/pg" | cut -f1; else du -sm "$work/data" | cut -f1; fi
}
held() { curl -sf "$api/v1/queue/summary" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("held", 0))'; }

echo "# campaign benchmark: $N recipients, one message each, ~$SIZE bytes ($BODY), $SESSIONS sessions; store $STORE"
echo "# machine: nproc=$(nproc), memory=$(free -h | awk '/^Mem:/ { print $2 }'), fs=$(df -T "$work" | awk 'NR == 2 { print $2 }'), $(go env GOVERSION 2>/dev/null)"

# The relay's CPU time (user + system, clock ticks): per accepted message
# and per decision it is the load-independent side of the ratio, where
# the rates depend on what else the machine runs.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz="$(getconf CLK_TCK)"
per_msg_us() { # ticks-before ticks-after -> microseconds per recipient
	awk -v a="$1" -v b="$2" -v hz="$hz" -v n="$N" 'BEGIN { printf "%.0f", (b - a) / hz * 1e6 / n }'
}
cpu0="$(cpu_ticks)"
t0="$(now)"
timeout "$WAIT_LIMIT" "$loader" -addr "127.0.0.1:$smtp_port" -n "$N" -sessions "$SESSIONS" -size "$SIZE" -body "$BODY" >"$work/loader.out"
# The size the ratios divide by: what the loader sent per message, on
# average (headers included; the relay adds its Received field).
msg_bytes="$(sed -n 's/.*mean_bytes=\([0-9]*\).*/\1/p' "$work/loader.out")"
msg_bytes="${msg_bytes:-$SIZE}"
accept_s="$(elapsed "$t0" "$(now)")"
accept_rate="$(awk -v n="$N" -v s="$accept_s" 'BEGIN { printf "%.0f", n / s }')"
cpu1="$(cpu_ticks)"
db_accept="$(db_mb)"
held_now="$(held)"
ratio() { awk -v m="$1" -v n="$N" -v s="$msg_bytes" 'BEGIN { printf "%.2f", m * 1048576 / n / s }'; }
echo "accept: $N in ${accept_s}s = ${accept_rate}/s; held $held_now; database ${db_accept} MB = $(ratio "$db_accept")x the message size ($msg_bytes bytes sent per message)"

# What each bucket takes: a consistent copy through the daemon, checked.
space() { # label
	[ "${SPACE:-}" = 1 ] && [ "$STORE" = bbolt ] || return 0
	"$bin" db backup --admin "127.0.0.1:$admin_port" "$work/space.db" >/dev/null
	echo "space $1 (bucket: keys; bytes of pages, of keys and values):"
	"$bin" db check "$work/space.db" | awk '/^  bucket / && $3 != 0 { print "  " $0 }'
	rm -f "$work/space.db"
}
space "with the campaign held"

# Time the admin reads while the decision rounds run.
time_get() { # path -> seconds, or "err"
	# A read over the time limit is reported (err(000)), not fatal.
	{ curl -s -o /dev/null -w '%{time_total} %{http_code}' --max-time 60 "$api$1" || true; } | awk '{ print ($2 == 200 ? $1 : "err(" $2 ")") }'
}
cpu1d="$(cpu_ticks)" # after the copy above: the decide's CPU starts here
t1="$(now)"
curl -sf -X POST -H 'Content-Type: application/json' -d '{"advance":"10m"}' "$api/v1/clock" >/dev/null
if [ -n "${PROFILE:-}" ]; then
	curl -s -o "$root/bench/out/campaign.decide.pprof" "$api/debug/pprof/profile?seconds=$PROFILE" &
	pids+=($!)
fi
if [ -n "${TRACE:-}" ]; then
	curl -s -o "$root/bench/out/campaign.decide.trace" "$api/debug/pprof/trace?seconds=$TRACE" &
	pids+=($!)
fi
reads=()
deadline=$((SECONDS + WAIT_LIMIT))
while :; do
	h="$(held)"
	[ "$h" -eq 0 ] && break
	[ $SECONDS -ge $deadline ] && { echo "campaign.sh: $h still held after ${WAIT_LIMIT}s" >&2; exit 1; }
	if [ "${READS:-1}" != 0 ] && [ ${#reads[@]} -lt 12 ]; then
		r="queue=$(time_get '/v1/queue?state=held') stats=$(time_get /v1/stats) ui=$(time_get /ui/) metrics=$(time_get /metrics)"
		if [ "${READS:-1}" = all ]; then
			r="$r profile=$(time_get /v1/profiles/r0000007@example.test) ui-recipient=$(time_get /ui/recipients/r0000007@example.test)"
			r="$r report=$(time_get /v1/campaigns/winter-sale/report) ui-campaigns=$(time_get /ui/campaigns)"
			r="$r ui-campaign=$(time_get /ui/campaigns/winter-sale)"
		fi
		reads+=("$r")
	else
		sleep 0.5
	fi
done
decide_s="$(elapsed "$t1" "$(now)")"
cpu2="$(cpu_ticks)"
decide_rate="$(awk -v n="$N" -v s="$decide_s" 'BEGIN { printf "%.0f", n / s }')"
echo "decide: $N in ${decide_s}s = ${decide_rate}/s; decide rate / accept rate = $(awk -v d="$decide_rate" -v a="$accept_rate" 'BEGIN { printf "%.2f", d / a }')x (goal >= 5x)"
accept_cpu="$(per_msg_us "$cpu0" "$cpu1")"
decide_cpu="$(per_msg_us "$cpu1d" "$cpu2")"
echo "relay CPU: ${accept_cpu} µs per accepted message, ${decide_cpu} µs per decision (with the delivery of what it released meanwhile); accept / decide = $(awk -v a="$accept_cpu" -v d="$decide_cpu" 'BEGIN { printf "%.2f", a / d }')x"
echo "admin reads while deciding (seconds; goal < 1 each):"
for r in "${reads[@]}"; do echo "  $r"; done
curl -sf "$api/v1/queue/summary"
echo
read -r peak peak_anon <"$work/rss.peak"
echo "peak RSS $((peak / 1024)) MB, peak RssAnon $((peak_anon / 1024)) MB; database $(db_mb) MB at the end"
space "at the end"

[ "${RETENTION:-}" = 1 ] && [ "$STORE" = bbolt ] || exit 0
# Retention: once every envelope is final, bodies go after 168h.
deadline=$((SECONDS + WAIT_LIMIT))
pending() { curl -sf "$api/v1/queue/summary" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(sum(s.get(k, 0) for k in ("queued", "delivering", "deferred", "held", "review")))'; }
while [ "$(pending)" -gt 0 ]; do
	[ $SECONDS -ge $deadline ] && { echo "campaign.sh: deliveries not done after ${WAIT_LIMIT}s" >&2; exit 1; }
	sleep 1
done
purged0="$(grep -c 'retention sweep purged' "$work/kadenz.log" || true)"
curl -sf -X POST -H 'Content-Type: application/json' -d '{"advance":"169h"}' "$api/v1/clock" >/dev/null
while [ "$(grep -c 'retention sweep purged' "$work/kadenz.log" || true)" -le "$purged0" ]; do
	[ $SECONDS -ge $deadline ] && { echo "campaign.sh: no retention sweep after ${WAIT_LIMIT}s" >&2; exit 1; }
	sleep 1
done
sleep 5 # the sweep's batches after its first log line, if any
echo "after retention: $(grep 'retention sweep purged' "$work/kadenz.log" | tail -1 | grep -o 'bodies=[0-9]*'); database $(db_mb) MB"
space "after retention"
kill "$pid"
wait "$pid" 2>/dev/null || true
"$bin" db compact --data "$work/data" | tail -3
echo "after kadenz db compact: database $(db_mb) MB"
