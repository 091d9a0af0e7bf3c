#!/usr/bin/env bash
# Memory under large messages (issue 15, "bounded memory"): C clients submit
# one SIZE-MB message each, all at once, to a kadenz built from this tree
# (outbox delivery, no upstream), and the relay's peak resident set (VmHWM)
# is reported, with its anonymous (heap) and file-backed (bbolt's memory map)
# parts sampled every 0.1 s, and the per-message figure (peak minus the idle
# relay's RSS, over C) against the message size. It then checks that every
# message reached the outbox whole.
#
# Usage: bench/memory.sh [C] [SIZE_MB]     (defaults: 20 clients, 24 MB)
#   KADENZ=path     use this binary instead of building ./cmd/kadenz
#   BEFORE=path     first measure this binary (an older build) the same way,
#                   so "before" and "after" come from one run
#   GOMEMLIMIT=...  passed to kadenz (Go's soft memory limit), to compare
#   CLASS=marketing add List-Unsubscribe, so the messages are held and scored
# Loopback only; every wait is bounded.
set -euo pipefail

C="${1:-20}"
SIZE_MB="${2:-24}"
CLASS="${CLASS:-transactional}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=bench/ports.sh
. "$here/ports.sh"
work="$(mktemp -d)"
pid=""
sampler=""
cleanup() {
	[ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

bin="${KADENZ:-}"
if [ -z "$bin" ]; then
	bin="$work/kadenz"
	(cd "$root" && go build -o "$bin" ./cmd/kadenz)
fi

# measure LABEL BINARY: one relay, C concurrent messages, the figures.
measure() {
	local label="$1" exe="$2" data="$work/data-$1" port idle_kb start elapsed hwm_kb
	port="$(free_port)"
	"$exe" serve --listen "127.0.0.1:$port" --data "$data" >"$work/kadenz-$label.log" 2>&1 &
	pid=$!
	wait_port "$port" 30
	idle_kb="$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"
	# The peak of each part, sampled (VmHWM has no anonymous-only twin).
	(
		a=0 f=0
		while [ -r "/proc/$pid/status" ]; do
			read -r na nf < <(awk '/^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print a+0, f+0}' "/proc/$pid/status" 2>/dev/null || echo "0 0")
			[ "$na" -gt "$a" ] && a=$na
			[ "$nf" -gt "$f" ] && f=$nf
			echo "$a $f" >"$work/peaks-$label.tmp" && mv "$work/peaks-$label.tmp" "$work/peaks-$label"
			sleep 0.1
		done
	) &
	sampler=$!

	start=$SECONDS
	python3 - "$port" "$C" "$SIZE_MB" "$CLASS" <<'EOF'
import smtplib, sys, threading
port, clients, size_mb, klass = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
line = b"x" * 76 + b"\r\n"
def message(i):
    head = b"From: <crm@shop.test>\r\nTo: <r%d@example.test>\r\nSubject: big %d\r\n" % (i, i)
    if klass == "marketing":
        head += b"List-Unsubscribe: <mailto:u@shop.test>\r\n"
    body = line * (size_mb * 1024 * 1024 // len(line))
    return head + b"\r\n" + body
errors = []
def send(i):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=300) as s:
            s.sendmail("crm@shop.test", ["r%d@example.test" % i], message(i))
    except Exception as e:
        errors.append("%d: %r" % (i, e))
threads = [threading.Thread(target=send, args=(i,)) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join(600)
if errors:
    print("errors:", *errors, sep="\n  ")
    sys.exit(1)
EOF
	# Transactional mail is delivered at once: wait (bounded) for the
	# outbox to hold every message, so delivery's memory is in the peak.
	if [ "$CLASS" = transactional ]; then
		for _ in $(seq 1 600); do
			[ "$(find "$data/outbox" -name '*.eml' 2>/dev/null | wc -l)" -ge "$C" ] && break
			sleep 0.1
		done
	fi
	sleep 0.5
	elapsed=$((SECONDS - start))
	hwm_kb="$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")"
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	sampler=""
	local anon_kb=0 file_kb=0
	read -r anon_kb file_kb <"$work/peaks-$label" || true
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=""

	local delivered=-
	if [ "$CLASS" = transactional ]; then
		delivered="$(python3 - "$data/outbox" "$SIZE_MB" <<'EOF'
import glob, sys
line = b"x" * 76 + b"\r\n"
body = line * (int(sys.argv[2]) * 1024 * 1024 // len(line))
ok = 0
for f in glob.glob(sys.argv[1] + "/*.eml"):
    d = open(f, "rb").read()
    ok += d[d.index(b"\r\n\r\n") + 4:] == body
print(ok)
EOF
)"
	fi
	local size_kb=$((SIZE_MB * 1024))
	local per_kb=$(((hwm_kb - idle_kb) / C))
	echo "[$label] $exe"
	echo "  clients=$C size=${SIZE_MB}MB class=$CLASS GOMEMLIMIT=${GOMEMLIMIT:-unset} elapsed=${elapsed}s delivered whole: $delivered"
	echo "  idle RSS $((idle_kb / 1024)) MB; peak RSS (VmHWM) $((hwm_kb / 1024)) MB; sampled peaks: RssAnon $((anon_kb / 1024)) MB, RssFile $((file_kb / 1024)) MB"
	awk -v p="$per_kb" -v s="$size_kb" -v h="$hwm_kb" 'BEGIN {
		printf "  per message: %.1f MB, %.2fx its size (goal: <= 1.5x plus a constant); peak %s 1 GB\n",
			p / 1024, p / s, (h < 1024 * 1024 ? "under" : "OVER")
	}'
}

if [ -n "${BEFORE:-}" ]; then
	measure before "$BEFORE"
fi
measure after "$bin"
