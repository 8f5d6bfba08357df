#!/usr/bin/env bash
# bench/run.sh: Switchboard against the Node socket.io reference, same load, same machine.
#
# Starts its own Redis on a free port, two Switchboard instances (non-race build of
# bench/sbserver: the server as main.go wires it, plus /debug/pprof), drives them with
# bench/loadgen; then two instances of bench/reference-node with the same load; then prints one
# table (bench/report). Everything listens on 127.0.0.1 and is stopped on exit.
#
# Phases, per server:
#   throughput  CONC concurrent calls, closed loop (each slot starts its next call when the last
#               ended), for DURATION after WARMUP
#   latency     LAT_RATE calls/s, each held LAT_HOLD: about LAT_RATE × LAT_HOLD concurrent calls
#   stress      STRESS_CONC concurrent calls, closed loop, for STRESS_DURATION (0 to skip)
#   sweep       optional: latency at each rate of SWEEP_RATES (for bench/plot.gp)
#   idle        IDLE connections, each joined to a room, on one fresh instance
#
# Settings (environment): CONC DURATION WARMUP LAT_RATE LAT_HOLD LAT_DURATION STRESS_CONC
# STRESS_DURATION STRESS_WARMUP IDLE IDLE_STEPS SWEEP_RATES SWEEP_DURATION SWEEP_WARMUP SOURCES
# SERVERS OUT SB_REDIS_QUERY SB_ENV
# SB_BIN (a prebuilt server binary to measure instead of bench/sbserver, e.g. with a patch).
# The defaults take about 6 minutes; the run in docs/benchmarks.md used
#   IDLE=19000 IDLE_STEPS=2000,5000,10000,15000,19000 SWEEP_RATES="10 25 50 75 100 150" bench/run.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONC=${CONC:-100}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-5s}
LAT_RATE=${LAT_RATE:-50}
LAT_HOLD=${LAT_HOLD:-20s}
LAT_DURATION=${LAT_DURATION:-45s}
LAT_WARMUP=${LAT_WARMUP:-$LAT_HOLD}
STRESS_CONC=${STRESS_CONC:-1000}
STRESS_DURATION=${STRESS_DURATION:-20s}
STRESS_WARMUP=${STRESS_WARMUP:-5s}
IDLE=${IDLE:-10000}
IDLE_STEPS=${IDLE_STEPS:-}
SWEEP_RATES=${SWEEP_RATES:-}
SWEEP_DURATION=${SWEEP_DURATION:-20s}
SWEEP_WARMUP=${SWEEP_WARMUP:-5s}
SOURCES=${SOURCES:-127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5}
SERVERS=${SERVERS:-"switchboard node"}
SB_REDIS_QUERY=${SB_REDIS_QUERY:-} # e.g. "?pool_size=200": appended to Switchboard's REDIS_URL
SB_BIN=${SB_BIN:-}
SB_ENV=${SB_ENV:-} # e.g. "GOGC=400": environment of the Switchboard instances (Go runtime settings)
OUT=${OUT:-$(mktemp -d /tmp/sb-bench.XXXXXX)}
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
BIN=$OUT/bin
mkdir -p "$BIN"

. "$ROOT/bench/lib.sh" # PIDS, cleanup on exit, free_port, wait_http

log() { printf '%s run.sh: %s\n' "$(date +%T)" "$*" >&2; }

stop_pid() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
	PIDS=("${keep[@]}")
}

log "building into $BIN"
(cd "$ROOT" && go build -o "$BIN/sbserver" ./bench/sbserver && go build -o "$BIN/loadgen" ./bench/loadgen &&
	go build -o "$BIN/report" ./bench/report)
[ -n "$SB_BIN" ] && cp "$SB_BIN" "$BIN/sbserver"
if [[ " $SERVERS " == *" node "* ]]; then
	if [ ! -d "$ROOT/bench/reference-node/node_modules" ]; then
		log "npm ci in bench/reference-node"
		(cd "$ROOT/bench/reference-node" && npm ci --no-audit --no-fund >&2)
	fi
fi

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
	--maxclients 1000 >"$OUT/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
log "redis on $REDIS_PORT (pid $REDIS_PID); results in $RESULTS"

# The floor: one client's round trip to this Redis, PING after PING.
FLOOR=$(redis-benchmark -p "$REDIS_PORT" -q -t ping -c 1 -n 20000 2>/dev/null | tr '\r' '\n' | grep -a 'PING_MBULK' | tail -1)
RPS=$(sed -E 's/.*: ([0-9.]+) requests per second.*/\1/' <<<"$FLOOR")
P50=$(sed -nE 's/.*p50=([0-9.]+) msec.*/\1/p' <<<"$FLOOR")
MACHINE="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), go $(go env GOVERSION | sed 's/go//'), node $(node --version 2>/dev/null || echo none), $(redis-server --version | awk '{print $3}')"
printf '{"mode":"floor","rtt_us":%s,"p50_us":%s,"machine":"%s","loadavg":"%s","started":"%s"}\n' \
	"$(awk -v r="$RPS" 'BEGIN {printf "%.1f", 1e6 / r}')" "$(awk -v p="${P50:-0}" 'BEGIN {printf "%.0f", p * 1000}')" \
	"$MACHINE" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%FT%TZ)" >>"$RESULTS"
log "redis floor: $FLOOR"

# start_instances KIND N: starts N instances, sets ADDRS and SPIDS.
start_instances() {
	local kind=$1 n=$2 i port pid
	ADDRS="" SPIDS=""
	for i in $(seq 1 "$n"); do
		port=$(free_port)
		case $kind in
		switchboard)
			# The load generator sets up call after call on the same connections: lift the
			# per-connection event rate limit meant for browsers (the reference has none).
			env $SB_ENV REDIS_URL="$REDIS_URL$SB_REDIS_QUERY" SWITCHBOARD_LOG_LEVEL=warn \
				SWITCHBOARD_EVENT_RATE=1000000 SWITCHBOARD_EVENT_BURST=1000000 \
				SWITCHBOARD_CONN_RATE=1000000 SWITCHBOARD_CONN_BURST=1000000 \
				"$BIN/sbserver" -addr "127.0.0.1:$port" -instance-id "sb$i-$$" >>"$OUT/$kind-$i.log" 2>&1 &
			;;
		node)
			(cd "$ROOT/bench/reference-node" && exec node --expose-gc server.js --host 127.0.0.1 --port "$port" \
				--redis "$REDIS_URL" --instance "n$i-$$") >>"$OUT/$kind-$i.log" 2>&1 &
			;;
		esac
		pid=$!
		PIDS+=("$pid")
		wait_http "http://127.0.0.1:$port/healthz"
		ADDRS+="${ADDRS:+,}127.0.0.1:$port"
		SPIDS+="${SPIDS:+,}$pid"
	done
}

stop_instances() {
	local p
	for p in ${SPIDS//,/ }; do stop_pid "$p"; done
}

loadgen() { # label phase args...
	local label=$1 phase=$2
	shift 2
	"$BIN/loadgen" -label "$label" -phase "$phase" -addrs "$ADDRS" -server-pids "$SPIDS" -redis-pid "$REDIS_PID" \
		-sources "$SOURCES" -json-out "$RESULTS" "$@" >/dev/null 2>>"$OUT/loadgen.log" || log "loadgen $label $phase exited with $?"
	tail -n 40 "$OUT/loadgen.log" | awk '/^== /{buf=""} {buf=buf $0 "\n"} END {printf "%s", buf}' >&2
}

for kind in $SERVERS; do
	redis-cli -p "$REDIS_PORT" flushall >/dev/null
	log "$kind: two instances"
	start_instances "$kind" 2
	loadgen "$kind" throughput -concurrency "$CONC" -duration "$DURATION" -warmup "$WARMUP"
	# Slots for every call that may be up at once: rate × (hold + set-up), with room to spare.
	lat_slots=$(awk -v r="$LAT_RATE" -v h="${LAT_HOLD%s}" 'BEGIN {printf "%d", r * (h + 10)}')
	loadgen "$kind" latency -concurrency "$lat_slots" -rate "$LAT_RATE" -hold "$LAT_HOLD" \
		-duration "$LAT_DURATION" -warmup "$LAT_WARMUP"
	if [ "$STRESS_DURATION" != 0 ]; then
		loadgen "$kind" stress -concurrency "$STRESS_CONC" -duration "$STRESS_DURATION" -warmup "$STRESS_WARMUP" -call-timeout 15s
	fi
	for rate in $SWEEP_RATES; do
		loadgen "$kind" sweep -concurrency 1000 -rate "$rate" -duration "$SWEEP_DURATION" -warmup "$SWEEP_WARMUP"
	done
	stop_instances

	redis-cli -p "$REDIS_PORT" flushall >/dev/null
	log "$kind: one fresh instance, $IDLE idle connections"
	start_instances "$kind" 1
	steps=()
	[ -n "$IDLE_STEPS" ] && steps=(-idle-steps "$IDLE_STEPS")
	loadgen "$kind" idle -mode idle -idle "$IDLE" "${steps[@]}"
	stop_instances
done

echo
"$BIN/report" -plotdata "$OUT" "$RESULTS"
log "raw results: $RESULTS; logs in $OUT"
