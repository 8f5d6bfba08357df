#!/usr/bin/env bash
# bench/ab.sh: two or more Switchboard builds under the same load, interleaved (A, B, A, B, ...),
# so drift on a shared machine falls on all of them alike.
#
#   bench/ab.sh base=/tmp/sb-base now=/tmp/sb-now
#
# Each argument is label=binary (a build of bench/sbserver, or of the repository's main package),
# optionally with flags: the two Engine.IO servers of one build are compared with
#   bench/ab.sh library="/tmp/sb -engine library" switchboard="/tmp/sb -engine switchboard"
# For each of ROUNDS rounds and each build: a flushed Redis of its own, two instances, one
# bench/loadgen run with LOADGEN_ARGS (default: 100 concurrent calls, closed loop, 15 s after
# 3 s warm-up); the load generator's summary is printed, and its JSON line appended to
# OUT/results.jsonl (bench/report reads it). Settings (environment): ROUNDS LOADGEN_ARGS SB_ENV OUT.
#   the latency phase of bench/run.sh:
#   LOADGEN_ARGS="-concurrency 1500 -rate 50 -hold 20s -duration 45s -warmup 20s" bench/ab.sh ...
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-2}
LOADGEN_ARGS=${LOADGEN_ARGS:--concurrency 100 -duration 15s -warmup 3s}
SB_ENV=${SB_ENV:-} # e.g. "GOGC=400"
OUT=${OUT:-$(mktemp -d /tmp/sb-ab.XXXXXX)}
SOURCES=${SOURCES:-127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5}
[ $# -ge 1 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
mkdir -p "$OUT"

. "$ROOT/bench/lib.sh" # PIDS, cleanup on exit, free_port, wait_http

(cd "$ROOT" && go build -o "$OUT/loadgen" ./bench/loadgen)
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
	>"$OUT/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

for round in $(seq 1 "$ROUNDS"); do
	for arg in "$@"; do
		label=${arg%%=*}
		read -ra cmd <<<"${arg#*=}" # the binary and its flags
		redis-cli -p "$REDIS_PORT" flushall >/dev/null
		addrs="" spids=""
		for i in 1 2; do
			port=$(free_port)
			# Lifted limits, as in bench/run.sh: slots set up call after call on one connection.
			env $SB_ENV REDIS_URL="redis://127.0.0.1:$REDIS_PORT" SWITCHBOARD_LOG_LEVEL=warn \
				SWITCHBOARD_EVENT_RATE=1000000 SWITCHBOARD_EVENT_BURST=1000000 \
				SWITCHBOARD_CONN_RATE=1000000 SWITCHBOARD_CONN_BURST=1000000 \
				"${cmd[@]}" -addr "127.0.0.1:$port" -instance-id "$label$i-$$" >>"$OUT/$label-$i.log" 2>&1 &
			PIDS+=("$!")
			wait_http "http://127.0.0.1:$port/healthz"
			addrs+="${addrs:+,}127.0.0.1:$port" spids+="${spids:+,}$!"
		done
		echo "== round $round: $label"
		# shellcheck disable=SC2086 # LOADGEN_ARGS is a list of flags
		"$OUT/loadgen" -label "$label" -phase "ab$round" -addrs "$addrs" -server-pids "$spids" \
			-redis-pid "$REDIS_PID" -sources "$SOURCES" -json-out "$OUT/results.jsonl" $LOADGEN_ARGS \
			2>&1 >/dev/null | grep -E '^(call set-ups/s|  hand-off|  relay|CPU|calls per|messages)' || true
		for p in ${spids//,/ }; do kill "$p"; wait "$p" 2>/dev/null || true; done
	done
done
echo "results: $OUT/results.jsonl"
