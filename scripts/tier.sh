#!/usr/bin/env bash
# An echo tier on one machine: three "hosts", each a network namespace
# running `mpecho serve --proxy-protocol`, behind HAProxy (the checked-in
# deploy/haproxy/haproxy.cfg) on this machine's loopback. The hosts sit on
# a bridge in 198.18.0.0/15, the range set aside for benchmarking network
# devices (RFC 2544), which exists only inside this machine: the balancer
# is 198.18.K.1, host N is 198.18.K.1N:9190, and K (1-254) is the first
# index no other tier on this machine uses. docs/DEPLOYMENT.md describes
# the topology. Needs root (ip netns, veth, a bridge).
#
# Usage:
#   scripts/tier.sh up DIR [SERVE_ARGS...]   the whole tier, in the background;
#                                            prints `listening on FRONT`
#   scripts/tier.sh down DIR                 stop everything and remove the network
#   scripts/tier.sh kill-host DIR N          SIGKILL host N's master (up only)
#   scripts/tier.sh start-host DIR N         start host N again (up only)
#   scripts/tier.sh net DIR                  the network alone (bridge, namespaces)
#   scripts/tier.sh host DIR N [SERVE_ARGS...]  exec host N's master (foreground)
#   scripts/tier.sh haproxy DIR              exec HAProxy (foreground)
# DIR holds the tier's state: tier.env (its addresses), hN.log (host N's
# log), haproxy.sock (HAProxy's admin socket), and with `up` the pids.
# The front end is $TIER_FRONT (default 127.0.0.1:9200); the binaries are
# $MPECHO (default: this checkout's release build) and $HAPROXY (haproxy).
# `net` and `up` undo what they did when a step fails; `down` removes
# whatever is left, and can be run again.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$ROOT/scripts/tier.sh
MPECHO=${MPECHO:-${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-gnu/release/mpecho}
HAPROXY=${HAPROXY:-haproxy}
HOSTS=(1 2 3)
PORT=9190

die() {
	echo "tier.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '/^# Usage:/,/^# DIR holds/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

need_root() {
	[[ $(id -u) == 0 ]] || die "needs root, to create network namespaces, veth pairs and a bridge"
	command -v ip >/dev/null || die "ip not found: install iproute2"
}

load_env() {
	[[ -f $DIR/tier.env ]] || die "$DIR/tier.env not found: run \`$0 net $DIR\` or \`$0 up $DIR\` first"
	# shellcheck source=/dev/null
	source "$DIR/tier.env"
}

ns_name() { echo "mpecho-t${TIER_INDEX}-h$1"; }

# Picks the first free index and creates the bridge under a lock, so that
# two tiers started at once never take the same addresses.
create_bridge() {
	local k
	mkdir -p /run/lock
	exec 9>/run/lock/mpecho-tier.lock
	flock -w 10 9 || die "another tier.sh holds /run/lock/mpecho-tier.lock"
	for ((k = 1; k <= 254; k++)); do
		ip link show "mpt$k" >/dev/null 2>&1 && continue
		ip link add "mpt$k" type bridge || die "cannot create bridge mpt$k"
		TIER_INDEX=$k
		break
	done
	exec 9>&-
	[[ -n ${TIER_INDEX:-} ]] || die "every index 1-254 is in use: run \`$0 down DIR\` for stale tiers"
	cat >"$DIR/tier.env" <<-EOF
		TIER_INDEX=$TIER_INDEX
		TIER_BALANCER=198.18.$TIER_INDEX.1
		TIER_FRONT=${TIER_FRONT:-127.0.0.1:9200}
		TIER_H1=198.18.$TIER_INDEX.11:$PORT
		TIER_H2=198.18.$TIER_INDEX.12:$PORT
		TIER_H3=198.18.$TIER_INDEX.13:$PORT
	EOF
	ip addr add "198.18.$TIER_INDEX.1/24" dev "mpt$TIER_INDEX"
	ip link set "mpt$TIER_INDEX" up
}

# Host N: a namespace whose eth0 is one end of a veth pair, the other end
# on the bridge.
create_host() {
	local n=$1 ns veth
	ns=$(ns_name "$n")
	veth="mpt${TIER_INDEX}h$n"
	ip netns add "$ns"
	ip link add "$veth" type veth peer name eth0 netns "$ns"
	ip link set "$veth" master "mpt$TIER_INDEX" up
	ip -n "$ns" addr add "198.18.$TIER_INDEX.1$n/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" link set lo up
}

cmd_net() {
	need_root
	mkdir -p "$DIR"
	trap 'cmd_down' EXIT
	create_bridge
	for n in "${HOSTS[@]}"; do create_host "$n"; done
	trap - EXIT
}

cmd_host() {
	local n=$1 ns addr
	shift
	load_env
	ns=$(ns_name "$n")
	addr=TIER_H$n
	[[ -n ${!addr:-} ]] || die "no host $n: hosts are ${HOSTS[*]}"
	exec ip netns exec "$ns" "$MPECHO" serve --listen "${!addr}" \
		--proxy-protocol --trusted-proxy "$TIER_BALANCER" \
		--log-file "$DIR/h$n.log" "$@"
}

cmd_haproxy() {
	load_env
	export TIER_DIR=$DIR TIER_FRONT TIER_H1 TIER_H2 TIER_H3
	exec "$HAPROXY" -db -f "$ROOT/deploy/haproxy/haproxy.cfg"
}

# Waits up to 10 s for `what`, checking `test` every 50 ms.
wait_until() {
	local what=$1 i
	shift
	for ((i = 0; i < 200; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	die "no $what within 10 s"
}

listening() { grep -q '^listening on ' "$DIR/h$1.out" 2>/dev/null; }

answering() {
	local host=${TIER_FRONT%:*} port=${TIER_FRONT##*:}
	(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

start_host_background() {
	local n=$1
	shift
	: >"$DIR/h$n.out"
	"$SELF" host "$DIR" "$n" "$@" >"$DIR/h$n.out" 2>>"$DIR/h$n.err" </dev/null &
	echo $! >"$DIR/h$n.pid"
	wait_until "listening line from host $n (see $DIR/h$n.err)" listening "$n"
	: >"$DIR/serve-args"
	(($# == 0)) || printf '%s\n' "$@" >"$DIR/serve-args"
}

cmd_up() {
	cmd_net
	trap 'cmd_down' EXIT
	load_env
	for n in "${HOSTS[@]}"; do start_host_background "$n" "$@"; done
	"$SELF" haproxy "$DIR" >"$DIR/haproxy.out" 2>&1 </dev/null &
	echo $! >"$DIR/haproxy.pid"
	wait_until "answer from HAProxy on $TIER_FRONT (see $DIR/haproxy.out)" answering
	trap - EXIT
	echo "listening on $TIER_FRONT"
}

cmd_kill_host() {
	local n=$1
	[[ -f $DIR/h$n.pid ]] || die "no $DIR/h$n.pid: was the tier started with \`up\`?"
	kill -KILL "$(cat "$DIR/h$n.pid")"
	rm -f "$DIR/h$n.pid"
}

cmd_start_host() {
	local n=$1 args=()
	load_env
	[[ -f $DIR/serve-args ]] && mapfile -t args <"$DIR/serve-args"
	start_host_background "$n" "${args[@]}"
}

# Everything in a namespace dies with SIGKILL (the masters and any orphaned
# workers), then the namespaces and the bridge go; deleting a namespace
# deletes its veth pair too.
cmd_down() {
	local n ns pids
	[[ -f $DIR/haproxy.pid ]] && kill -KILL "$(cat "$DIR/haproxy.pid")" 2>/dev/null
	rm -f "$DIR/haproxy.pid" "$DIR"/h?.pid
	[[ -f $DIR/tier.env ]] || return 0
	load_env
	for n in "${HOSTS[@]}"; do
		ns=$(ns_name "$n")
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		[[ -n $pids ]] && kill -KILL $pids 2>/dev/null
		ip netns del "$ns" 2>/dev/null || true
		ip link del "mpt${TIER_INDEX}h$n" 2>/dev/null || true
	done
	ip link del "mpt$TIER_INDEX" 2>/dev/null || true
	rm -f "$DIR/tier.env"
}

(($# >= 2)) || usage
COMMAND=$1
DIR=$2
shift 2
case $COMMAND in
up) cmd_up "$@" ;;
down) cmd_down ;;
net) cmd_net ;;
host) (($# >= 1)) || usage; cmd_host "$@" ;;
haproxy) cmd_haproxy ;;
kill-host) (($# == 1)) || usage; cmd_kill_host "$1" ;;
start-host) (($# == 1)) || usage; cmd_start_host "$1" ;;
*) usage ;;
esac
