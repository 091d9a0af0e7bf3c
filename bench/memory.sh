#!/usr/bin/env bash
# Memory under large messages (issue 15, "bounded memory"): C clients submit
# one SIZE-MB message each, all at once, to a kadenz built from this tree
# (outbox delivery, no upstream), and the relay's peak resident set (VmHWM)
# and its anonymous part at the end are reported, with the per-message
# figure (peak minus the idle relay's RSS, over C) against the message size.
#
# Usage: bench/memory.sh [C] [SIZE_MB]     (defaults: 20 clients, 24 MB)
#   KADENZ=path     use this binary instead of building ./cmd/kadenz
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
cleanup() {
	[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

bin="${KADENZ:-}"
if [ -z "$bin" ]; then
	bin="$work/kadenz"
	(cd "$root" && go build -o "$bin" ./cmd/kadenz)
fi
port="$(free_port)"
"$bin" serve --listen "127.0.0.1:$port" --data "$work/data" >"$work/kadenz.log" 2>&1 &
pid=$!
wait_port "$port" 30
idle_kb="$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")"

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
elapsed=$((SECONDS - start))
read -r hwm_kb anon_kb < <(awk '/^VmHWM/ {h=$2} /^RssAnon/ {a=$2} END {print h, a}' "/proc/$pid/status")
size_kb=$((SIZE_MB * 1024))
per_kb=$(((hwm_kb - idle_kb) / C))
echo "clients=$C size=${SIZE_MB}MB class=$CLASS GOMEMLIMIT=${GOMEMLIMIT:-unset} elapsed=${elapsed}s"
echo "idle RSS $((idle_kb / 1024)) MB; peak RSS (VmHWM) $((hwm_kb / 1024)) MB; RssAnon at the end $((anon_kb / 1024)) MB"
awk -v p="$per_kb" -v s="$size_kb" 'BEGIN { printf "per message: %.0f MB, %.2fx its size (goal: <= 1.5x plus a constant)\n", p / 1024, p / s }'
