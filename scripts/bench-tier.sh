#!/usr/bin/env bash
# The echo tier of scripts/tier.sh measured: throughput through HAProxy to
# one host and to three, beside one mpecho on loopback with no balancer,
# interleaved round by round, medians reported; then how long HAProxy's
# health check takes to take out a host whose master was SIGKILLed, and
# what a churn running across that kill sees.
#
# Every connection HAProxy opens to a host ends in TIME_WAIT on HAProxy's
# side (it closes first, passing on the client's close), for 60 s. One
# balancer address and one host share ip_local_port_range's 28,232 ports,
# so past about 470 new connections a second to one host, connect() has
# to search for a free port and slows down (docs/DEPLOYMENT.md). For the
# run, net.ipv4.tcp_tw_reuse is set to 1 (reuse a TIME_WAIT port for a
# new outgoing connection: what a balancer host should have), and put
# back at the end; --default-sysctls leaves it alone, to see the limit.
#
# Usage: scripts/bench-tier.sh [--rounds N] [--secs S] [--kills N] [--default-sysctls]
# As root. Needs haproxy, socat (HAProxy's admin socket) and iproute2.
# Traffic goes only to 127.0.0.1 and to the tier's namespaces; every run
# is bounded in time, and the tier is removed at the end, also on failure.
set -euo pipefail

ROUNDS=5
SECS=3
KILLS=5
TW_REUSE=1
while (($#)); do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--secs) SECS=$2; shift 2 ;;
	--kills) KILLS=$2; shift 2 ;;
	--default-sysctls) TW_REUSE=""; shift ;;
	*) echo "usage: $0 [--rounds N] [--secs S] [--kills N] [--default-sysctls]" >&2; exit 2 ;;
	esac
done
[[ $(id -u) == 0 ]] || { echo "bench-tier.sh: needs root (network namespaces)" >&2; exit 1; }
command -v socat >/dev/null || { echo "bench-tier.sh: needs socat (apt-get install socat)" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(cd "$ROOT" && cargo build --release --workspace --quiet)
BUILT=${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-gnu/release
export MPECHO=$BUILT/mpecho
BENCH=$BUILT/mpecho-bench
DIR=$(mktemp -d /tmp/bench-tier.XXXXXX)
export TIER_FRONT=127.0.0.1:9290
DIRECT=127.0.0.1:9291
LOCAL=""
WAS_TW_REUSE=$(sysctl -n net.ipv4.tcp_tw_reuse)
cleanup() {
	[[ -n $LOCAL ]] && kill -TERM "$LOCAL" 2>/dev/null && wait "$LOCAL" 2>/dev/null
	"$ROOT/scripts/tier.sh" down "$DIR"
	rm -rf "$DIR"
	sysctl -qw "net.ipv4.tcp_tw_reuse=$WAS_TW_REUSE"
}
trap cleanup EXIT
[[ -n $TW_REUSE ]] && sysctl -qw "net.ipv4.tcp_tw_reuse=$TW_REUSE"
echo "net.ipv4.tcp_tw_reuse=$(sysctl -n net.ipv4.tcp_tw_reuse) for the run (it was $WAS_TW_REUSE)"

SERVE=(--monitor-interval 0 --user nobody)
"$ROOT/scripts/tier.sh" up "$DIR" "${SERVE[@]}" >/dev/null
"$MPECHO" serve -l "$DIRECT" "${SERVE[@]}" --log-file "$DIR/direct.log" >"$DIR/direct.out" &
LOCAL=$!
for ((i = 0; i < 200; i++)); do grep -q '^listening on' "$DIR/direct.out" && break; sleep 0.05; done

admin() { echo "$1" | socat - "UNIX-CONNECT:$DIR/haproxy.sock"; }
status() { admin "show stat" | awk -F, -v s="$1" '$2 == s { print $18 }'; }
wait_status() {
	local i
	for ((i = 0; i < 2000; i++)); do [[ $(status "$1") == "$2" ]] && return 0; sleep 0.005; done
	echo "bench-tier.sh: $1 not $2 within 10 s" >&2
	exit 1
}
for h in h1 h2 h3; do wait_status "$h" UP; done

field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# One bench run: appends its rate to $DIR/NAME.SCENARIO and its error
# count to $DIR/errors.
run() {
	local name=$1 target=$2 scenario=$3 c=$4 out
	out=$(timeout $((SECS + 30)) "$BENCH" "$scenario" --target "$target" -c "$c" --duration "$SECS" --json || true)
	echo "$out" | field throughput_per_sec >>"$DIR/$name.$scenario"
	echo "$name $scenario $(echo "$out" | sed -n 's/.*"errors":{"total":\([0-9]*\).*/\1/p')" >>"$DIR/errors"
}

one_host() { admin "disable server hosts/h2" >/dev/null; admin "disable server hosts/h3" >/dev/null; }
three_hosts() {
	admin "enable server hosts/h2" >/dev/null
	admin "enable server hosts/h3" >/dev/null
	wait_status h2 UP
	wait_status h3 UP
}

for ((r = 1; r <= ROUNDS; r++)); do
	for scenario in churn steady; do
		c=16
		[[ $scenario == steady ]] && c=48
		run direct "$DIRECT" "$scenario" "$c"
		one_host
		run one "$TIER_FRONT" "$scenario" "$c"
		three_hosts
		run three "$TIER_FRONT" "$scenario" "$c"
	done
	echo "round $r done" >&2
done

echo "throughput, median of $ROUNDS interleaved rounds of ${SECS} s (churn -c 16: connections/s; steady -c 48: round trips/s)"
printf '%-34s %12s %12s\n' "" churn steady
for name in direct one three; do
	case $name in
	direct) label="mpecho on loopback, no balancer" ;;
	one) label="HAProxy, one host" ;;
	three) label="HAProxy, three hosts" ;;
	esac
	printf '%-34s %12.0f %12.0f\n' "$label" "$(median <"$DIR/$name.churn")" "$(median <"$DIR/$name.steady")"
done
echo "errors in all runs: $(awk '{ s += $3 } END { print s + 0 }' "$DIR/errors")"

# Taking a dead host out: SIGKILL h1's master, time until HAProxy says
# DOWN; a churn runs across each kill and its errors are counted.
((KILLS > 0)) || exit 0
: >"$DIR/down_ms"
for ((k = 1; k <= KILLS; k++)); do
	timeout 30 "$BENCH" churn --target "$TIER_FRONT" -c 8 --duration 1.5 --json >"$DIR/across.json" 2>/dev/null &
	churn=$!
	sleep 0.5
	t0=$(date +%s%N)
	"$ROOT/scripts/tier.sh" kill-host "$DIR" 1
	wait_status h1 DOWN
	echo $((($(date +%s%N) - t0) / 1000000)) >>"$DIR/down_ms"
	wait "$churn" || true
	echo "kill $k: $(field completed <"$DIR/across.json") connections across the kill, errors $(sed -n 's/.*"errors":{"total":\([0-9]*\).*/\1/p' "$DIR/across.json")" >&2
	sed -n 's/.*"errors":{"total":\([0-9]*\).*/\1/p' "$DIR/across.json" >>"$DIR/across_errors"
	"$ROOT/scripts/tier.sh" start-host "$DIR" 1
	wait_status h1 UP
done
echo "SIGKILLed master to DOWN in HAProxy (inter 250ms fall 2): median $(median <"$DIR/down_ms") ms of $KILLS (min $(sort -n "$DIR/down_ms" | head -1), max $(sort -n "$DIR/down_ms" | tail -1))"
echo "errors seen by a churn -c 8 running across each kill: $(paste -sd' ' "$DIR/across_errors")"
