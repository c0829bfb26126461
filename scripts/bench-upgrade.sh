#!/usr/bin/env bash
# How long an in-place upgrade (SIGUSR2) takes with no worker and with N
# workers held, and whether every held connection survives it: from the
# signal to the new image's `upgraded from` line (the log polled every
# 5 ms), RUNS times each, medians reported. The master re-executes the
# binary it was started from, a private copy of this build.
#
# Usage: scripts/bench-upgrade.sh [--held N] [--runs N]   (as root: it
# raises the descriptor limit to what N held connections need)
# Exit status: 0 every upgrade completed and every held connection
# survived; 1 otherwise. Only 127.0.0.1 is ever addressed; every step is
# bounded in time, and every process started is stopped.
set -euo pipefail

HELD=10000
RUNS=3
while (($#)); do
	case $1 in
	--held) HELD=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	*) echo "usage: $0 [--held N] [--runs N]" >&2; exit 2 ;;
	esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(cd "$ROOT" && cargo build --release --workspace --quiet)
BUILT=${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-gnu/release
TMP=$(mktemp -d /tmp/bench-upgrade.XXXXXX)
MASTER=""
HOLD=""
cleanup() {
	[[ -n $HOLD ]] && kill "$HOLD" 2>/dev/null
	[[ -n $MASTER ]] && kill -TERM "$MASTER" 2>/dev/null && wait "$MASTER" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
cp "$BUILT/mpecho" "$TMP/mpecho"
ulimit -n $((HELD + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FAILED=0

children() { wc -w <"/proc/$1/task/$1/children"; }

# one N: prints the milliseconds from SIGUSR2 to `upgraded from`.
one() {
	local n=$1 addr i t0 t1
	: >"$TMP/log"
	"$TMP/mpecho" serve -l 127.0.0.1:0 --max-workers $((HELD + 100)) --monitor-interval 0 \
		--log-file "$TMP/log" >"$TMP/out" 2>/dev/null &
	MASTER=$!
	for ((i = 0; i < 200; i++)); do grep -q listening "$TMP/out" && break; sleep 0.05; done
	addr=$(sed 's/listening on //' "$TMP/out")
	if ((n > 0)); then
		timeout 120 "$BUILT/mpecho-bench" hold --target "$addr" -c "$n" --duration 20 --timeout 30 --json \
			>"$TMP/hold.json" 2>/dev/null &
		HOLD=$!
		for ((i = 0; i < 900; i++)); do (($(children "$MASTER") >= n)) && break; sleep 0.1; done
	fi
	t0=$(date +%s%N)
	kill -USR2 "$MASTER"
	for ((i = 0; i < 2000; i++)); do grep -q "upgraded from" "$TMP/log" && break; sleep 0.005; done
	t1=$(date +%s%N)
	grep -q "upgraded from" "$TMP/log" || { echo "no upgrade within 10 s" >&2; FAILED=1; }
	if ((n > 0)); then
		wait "$HOLD" || true
		HOLD=""
		[[ $(jq -r '.survivors' "$TMP/hold.json") == "$n" && $(jq -r '.errors.total' "$TMP/hold.json") == 0 ]] ||
			{ echo "held connections lost: $(jq -c '{survivors, errors: .errors}' "$TMP/hold.json")" >&2; FAILED=1; }
	fi
	kill -TERM "$MASTER"
	wait "$MASTER" || true
	MASTER=""
	echo $(((t1 - t0) / 1000000))
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

for n in 0 "$HELD"; do
	times=()
	for ((r = 1; r <= RUNS; r++)); do times+=("$(one "$n")"); done
	printf 'upgrade with %5d workers held: %s ms (median of %d: %s)\n' "$n" \
		"$(printf '%s\n' "${times[@]}" | median)" "$RUNS" "${times[*]}"
done
exit "$FAILED"
