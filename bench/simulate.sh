#!/bin/sh
# bench/simulate.sh: issue 3's goal table. Runs `kadenz simulate --json`
# over seeds x population mixes and prints one markdown row per run, then
# how many runs met each goal. "beats cap" is judged against the
# volume-matched cap (the smallest of the 1-48 h caps that released at
# least as much as Kadenz); the 16-hour cap's numbers are shown as well.
#
#   bench/simulate.sh                          # 300 recipients, 14 days, seeds 1-5, mixes default, tolerant and sensitive
#   RECIPIENTS=500 SEEDS="1 2 3" MIXES=default bench/simulate.sh
#   EXTRA="--strictness 0.5" bench/simulate.sh  # a what-if
#   EXTRA="--config my.yaml" bench/simulate.sh  # an administrator's own governor settings
#   JOBS=2 bench/simulate.sh                    # runs at once (in each run Kadenz and the baselines run side by side)
#   WORLD=structured bench/simulate.sh          # the structured world (issue 18); also heavy
#   KADENZ=/tmp/kadenz-old bench/simulate.sh    # a binary built elsewhere (a before/after comparison)
set -eu
RECIPIENTS=${RECIPIENTS:-300}
DAYS=${DAYS:-14}
SEEDS=${SEEDS:-1 2 3 4 5}
MIXES=${MIXES:-default tolerant sensitive}
JOBS=${JOBS:-1}
EXTRA=${EXTRA:-}
WORLD=${WORLD:-classic}
KADENZ=${KADENZ:-}
cd "$(dirname "$0")/.."
command -v jq >/dev/null || { echo "bench/simulate.sh: needs jq" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "$KADENZ" ]; then cp "$KADENZ" "$tmp/kadenz"; else go build -o "$tmp/kadenz" ./cmd/kadenz; fi
start=$(date +%s)
echo "recipients $RECIPIENTS, days $DAYS, world $WORLD, commit $(git rev-parse --short HEAD)${KADENZ:+, binary $KADENZ}${EXTRA:+, $EXTRA}"
echo
echo "| mix | seed | volume vs send-all | clicks kept | unsub+compl. vs send-all | matched cap | clicks vs matched | volume vs matched | clicks vs cap-16h | volume vs cap-16h | trans. delay | vol -40% | clicks >=98% | stops -50% | beats cap | delay 0 | vol <=55% | clicks >=130% | stops <=20% |"
echo "|---|---:|---:|---:|---:|---|---|---|---|---|---:|---|---|---|---|---|---|---|---|"
# The runs first (JOBS at a time), then the rows in order.
for mix in $MIXES; do
	for seed in $SEEDS; do
		echo "$mix $seed"
	done
done | xargs -P "$JOBS" -L 1 sh -c '
	# shellcheck disable=SC2086 # EXTRA is a list of flags
	"$0/kadenz" simulate --json --recipients "$1" --days "$2" --seed "$6" --mix "$5" --world "$4" $3 >"$0/$5-$6.json"
' "$tmp" "$RECIPIENTS" "$DAYS" "$EXTRA" "$WORLD"
for mix in $MIXES; do
	for seed in $SEEDS; do
		jq -r --arg mix "$mix" '
			def pct: (. * 100 | round | tostring) + "%";
			def ok: if . then "PASS" else "FAIL" end;
			(.policies | map({key: .name, value: .}) | from_entries) as $p
			| ($p["kadenz"]) as $k | ($p["cap-16h"]) as $c
			| (if .matched_cap == "" then null else $p[.matched_cap] end) as $m
			| (.goals | map({key: .name, value: .met}) | from_entries) as $g
			| "| \($mix) | \(.seed) | \($k.released_vs_send_all | pct) | \($k.clicks_vs_send_all | pct) | \($k.stops_vs_send_all | pct) | \(if $m then $m.name else "none" end) | \(if $m then "\($k.clicks) vs \($m.clicks)" else "-" end) | \(if $m then "\($k.released) vs \($m.released)" else "-" end) | \($k.clicks) vs \($c.clicks) | \($k.released) vs \($c.released) | \($k.transactional_max_delay_s)s | \($g["volume -40%"] | ok) | \($g["clicks >=98%"] | ok) | \($g["unsub+complaints -50%"] | ok) | \($g["beats cap"] | ok) | \($g["transactional delay 0"] | ok) | \($g["volume <=55%"] | ok) | \($g["clicks >=130%"] | ok) | \($g["unsub+complaints <=20%"] | ok) |"
		' "$tmp/$mix-$seed.json"
	done
done
echo
echo "| goal | $(echo $MIXES | sed 's/ / | /g') | all |"
echo "|---$(for _ in $MIXES; do printf '|---:'; done)|---:|"
jq -rs --arg mixes "$MIXES" '
	($mixes | split(" ")) as $ms
	| (map(.mix as $m | .goals[] | . + {mix: $m}) | group_by(.name)) as $by
	| $by[] | . as $g
	| "| \($g[0].name) | " + ([$ms[] as $m | $g | map(select(.mix == $m)) | "\(map(select(.met)) | length)/\(length)"] | join(" | ")) + " | \($g | map(select(.met)) | length)/\($g | length) |"
' "$tmp"/*.json
echo
echo "(took $(( $(date +%s) - start )) s)"
