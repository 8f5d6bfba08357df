#!/usr/bin/env bash
# Runs the official Engine.IO v4 and Socket.IO v5 protocol test suites against the fixture
# (test/protocol/fixture) on one engine, and prints each suite's counts.
#   test/protocol/run.sh <socket.io-checkout> [library|switchboard] [runs]
# The suites come from the checkout's docs/ and are copied to a temporary directory with their
# npm dependencies, and pointed at a free port; nothing of them is kept.
set -euo pipefail
checkout=${1:?usage: run.sh <path-to-socket.io-checkout> [library|switchboard] [runs]}
engine=${2:-switchboard}
runs=${3:-1}
docs=$checkout/docs
[ -d "$docs" ] || docs=$checkout
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
fixture_pid=
cleanup() {
	[ -n "$fixture_pid" ] && kill "$fixture_pid" 2>/dev/null && wait "$fixture_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$root" && go build -o "$tmp/fixture" ./test/protocol/fixture)

for suite in engine.io-protocol/v4-test-suite socket.io-protocol/v5-test-suite; do
	mkdir -p "$tmp/$suite"
	cp "$docs/$suite"/{package.json,package-lock.json,test-suite.js,node-imports.js} "$tmp/$suite/"
	# The suites assume localhost:3000; point them at the fixture's port.
	sed -i "s#http://localhost:3000#http://127.0.0.1:$port#" "$tmp/$suite/test-suite.js"
	(cd "$tmp/$suite" && npm ci --no-audit --no-fund --silent >/dev/null)
done

"$tmp/fixture" -engine "$engine" -addr "127.0.0.1:$port" >"$tmp/fixture.log" 2>&1 &
fixture_pid=$!
for _ in $(seq 50); do
	grep -q listening "$tmp/fixture.log" && break
	sleep 0.1
done

status=0
for i in $(seq "$runs"); do
	for suite in engine.io-protocol/v4-test-suite socket.io-protocol/v5-test-suite; do
		out=$(cd "$tmp/$suite" && npx mocha --reporter dot test-suite.js 2>&1) || status=1
		pass=$(grep -oE '[0-9]+ passing' <<<"$out" | grep -oE '[0-9]+' || echo 0)
		fail=$(grep -oE '[0-9]+ failing' <<<"$out" | grep -oE '[0-9]+' || echo 0)
		echo "run $i $engine ${suite%%/*}: $pass passing, $fail failing"
		# Each failure's title (its last line ends with ":") and its error.
		if [ "$fail" != 0 ]; then awk '/ failing/{p=1} p && (/:$/ || /Error/)' <<<"$out" | sed 's/^ */    /'; fi
	done
done
exit $status
