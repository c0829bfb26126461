#!/usr/bin/env bash
# mpecho side by side with its peers, in one invocation, on loopback:
#   - mpecho serve (exec mode, the default)
#   - ucspi-tcp's tcpserver running cat
#   - openbsd-inetd's built-in echo (a generated configuration)
#   - socat fork + EXEC:cat
#   - the textbook C fork server (scripts/peers/fork-echo.c, built here)
#   - a single-process epoll server (scripts/peers/epoll-echo.c, built here)
# and mpecho's ceiling: a second mpecho master whose workers do nothing
# (`serve --do-nothing-workers`), churned with `churn --expect-close`: the
# same accept, spawn, exec, exit and reap with no echo work.
# The same `mpecho-bench` scenarios run against each (churn -c 16 and -c 1,
# steady -c 10 and -c STEADY, hold, each RUNS times, interleaved, medians
# reported), plus `mpecho-bench spawn-probe` once, the PSS of each server's
# whole process tree while it holds N connections, the latency of one new
# connection with none and with N held, and, for mpecho, how long SIGTERM
# takes with N workers held. One table on standard output, with issue 10's
# targets checked below it; progress on standard error. See
# docs/BENCHMARKS.md.
#
# With --models, the table is mpecho's execution models instead (`serve
# --model exec|fork|prefork|iterative`) against the two references users
# hold them to, the C fork server and the single-process epoll server, with
# issue 11's targets (the iterative model runs the churns only: it serves
# one client at a time by design).
#
# With --super, the table is mpecho as a super-server instead: `serve
# --exec cat` against ucspi-tcp's `tcpserver … cat` (the same program behind
# both), and the built-in echo with 100,000 access rules loaded against
# the same without rules (what the rules cost a connection), churns and
# steady -c 10 only.
#
# Exit status: 0 everything ran (and mpecho counted no error), 1 something
# failed to run (a server did not start or died, a bench produced no report or
# timed out, a sample could not be taken) or mpecho counted errors, 2 bad usage.
# Every step is bounded in time; nothing but 127.0.0.1 is ever addressed.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/bench-peers.sh [--models | --super] [--quick] [--runs N] [--duration SECS]
                              [--steady-connections N] [--hold N] [--hold-secs SECS]
                              [--probe-secs SECS] [--keep DIR]

  --models                 mpecho's execution models against the C fork and epoll servers
  --super                  mpecho --exec cat against tcpserver cat, and 100,000 rules against none
  --quick                  a fast check: 1 run, 1 s scenarios, steady -c 100, hold -c 200
                           (steady -c 10 and churn -c 1 always run; so does the ceiling)
  --runs N                 runs of each scenario per server, medians reported (default 3)
  --duration SECS          churn and steady duration (default 5)
  --steady-connections N   steady's connections (default 1000)
  --hold N                 connections held by hold (default 10000; at most 19000)
  --hold-secs SECS         hold's --duration; must cover the sampling (default 15)
  --probe-secs SECS        spawn-probe's --duration per round (default 5)
  --keep DIR               copy every raw JSON report and server log into DIR

Run as root: it installs missing peers with apt-get, binds 127.0.0.1:7 for
inetd's built-in echo, and reads every server process's smaps_rollup.
EOF
}

RUNS=3
DURATION=5
CHURN_C=16
STEADY_C=1000
SIZE=64
HOLD_N=10000
HOLD_SECS=15
PROBE_SECS=5
ACCEPT_SECS=2
KEEP_DIR=""
MODELS=0
SUPER=0

for arg in "$@"; do
	if [[ $arg == --quick ]]; then
		RUNS=1 DURATION=1 STEADY_C=100 HOLD_N=200 HOLD_SECS=6 PROBE_SECS=1 ACCEPT_SECS=1
	fi
done

is_uint() { [[ $1 =~ ^[0-9]+$ ]] && ((10#$1 > 0)); }
is_secs() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
bad_usage() {
	printf 'bench-peers.sh: %s\n' "$1" >&2
	usage >&2
	exit 2
}

while (($#)); do
	case $1 in
	--quick) shift ;;
	--models) MODELS=1; shift ;;
	--super) SUPER=1; shift ;;
	--runs) is_uint "${2:-}" || bad_usage "--runs needs a positive integer"; RUNS=$((10#$2)); shift 2 ;;
	--duration) is_secs "${2:-}" || bad_usage "--duration needs seconds"; DURATION=$2; shift 2 ;;
	--steady-connections) is_uint "${2:-}" || bad_usage "--steady-connections needs a positive integer"; STEADY_C=$((10#$2)); shift 2 ;;
	--hold) is_uint "${2:-}" || bad_usage "--hold needs a positive integer"; HOLD_N=$((10#$2)); shift 2 ;;
	--hold-secs) is_secs "${2:-}" || bad_usage "--hold-secs needs seconds"; HOLD_SECS=$2; shift 2 ;;
	--probe-secs) is_secs "${2:-}" || bad_usage "--probe-secs needs seconds"; PROBE_SECS=$2; shift 2 ;;
	--keep) [[ -n ${2:-} ]] || bad_usage "--keep needs a directory"; KEEP_DIR=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) bad_usage "unknown argument: $1" ;;
	esac
done
((HOLD_N <= 19000)) || bad_usage "--hold is at most 19000 (every server is limited to 20000 connections)"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The echo servers, in the table's column order; the ceiling is started and
# stopped with them but runs only the churns (it echoes nothing).
SERVERS=(mpecho inetd fork epoll tcpserver socat)
ALL_SERVERS=("${SERVERS[@]}" ceiling)
declare -A PID=() ADDR=() LABEL=([mpecho]="mpecho" [tcpserver]="tcpserver+cat" [inetd]="inetd echo" [socat]="socat+cat"
	[fork]="C fork server" [epoll]="C epoll server" [ceiling]="mpecho do-nothing"
	[exec]="mpecho exec" [mfork]="mpecho fork" [prefork]="mpecho prefork" [iterative]="mpecho iterative"
	[mexec]="mpecho --exec cat" [mrules]="mpecho 100k rules")
((MODELS && SUPER)) && bad_usage "--models and --super are two different tables: choose one"
if ((MODELS)); then
	SERVERS=(exec mfork prefork iterative fork epoll)
	ALL_SERVERS=("${SERVERS[@]}")
fi
# mpecho's masters, whose counted errors fail the run.
MPECHOS=(mpecho ceiling)
((MODELS)) && MPECHOS=(exec mfork prefork iterative)
if ((SUPER)); then
	SERVERS=(mpecho mrules mexec tcpserver)
	ALL_SERVERS=("${SERVERS[@]}")
	MPECHOS=(mpecho mrules mexec)
fi
BG=()
FAILURES=0
TMP=""
MPECHO=""
MPECHO_BENCH=""

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
fail() {
	log "FAILED: $*"
	FAILURES=$((FAILURES + 1))
	printf '%s\n' "$*" >>"$TMP/failures"
}

# ---------------------------------------------------------------- processes

# The state letter of process $1 (R, S, Z, ...), or nothing when it is gone.
proc_state() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	printf '%s' "${s%% *}"
}
gone() {
	local st
	st=$(proc_state "$1")
	[[ -z $st || $st == Z ]]
}

# The start time (clock ticks after boot, field 22 of /proc/PID/stat) of
# process $1, or nothing: with the pid, the identity of a process that
# survives pid reuse (this run wraps kernel.pid_max many times).
start_time() {
	local stat rest
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	rest=${stat##*) }
	# shellcheck disable=SC2086 # split the fields on purpose
	set -- $rest
	printf '%s' "${20}"
}

# Whether process $1, started at $2, is still alive (not a zombie): a pid
# reused by a newer process does not count.
still_alive() {
	! gone "$1" && [[ $(start_time "$1") == "$2" ]]
}

# "pid ppid" of every process, from /proc/*/stat (no procps needed).
all_ppids() {
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk '{ pid = $1; sub(/^.*\) /, ""); print pid, $2 }'
}

# ROOT and all its descendants, one pid a line (nothing when ROOT is gone).
tree_pids() {
	all_ppids | awk -v root="$1" '
		{ kids[$2] = kids[$2] " " $1; seen[$1] = 1 }
		END {
			if (!(root in seen)) exit
			n = 1; q[1] = root
			for (i = 1; i <= n; i++) {
				print q[i]
				m = split(kids[q[i]], k, " ")
				for (j = 1; j <= m; j++) q[++n] = k[j]
			}
		}'
}

# "DIRECT TOTAL": ROOT's direct children, and the processes in its tree.
tree_counts() {
	all_ppids | awk -v root="$1" '
		{ kids[$2] = kids[$2] " " $1; seen[$1] = 1 }
		END {
			if (!(root in seen)) { print 0, 0; exit }
			n = 1; q[1] = root
			for (i = 1; i <= n; i++) {
				m = split(kids[q[i]], k, " ")
				for (j = 1; j <= m; j++) q[++n] = k[j]
			}
			print split(kids[root], d, " "), n
		}'
}

# Pids on standard input; prints "PSS_KB PROCESSES" summed over their
# /proc/PID/smaps_rollup (a process that exits meanwhile is left out).
pss_sum() {
	{ sed 's|.*|/proc/&/smaps_rollup|' | xargs cat 2>/dev/null || true; } |
		awk '/^Pss:/ { s += $2; n++ } END { printf "%d %d\n", s, n }'
}

# Stop the background job $1 (a bench) if it still runs, and reap it.
stop_job() {
	local pid=$1 i
	if ! gone "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			gone "$pid" && break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# Stop server $1 and every process of its tree: SIGTERM, then SIGKILL what is
# left after 10 s (the server) or 2 s (its former children).
stop_server() {
	local name=$1 pid=${PID[$1]:-} pids=() p i left
	[[ -n $pid ]] || return 0
	PID[$name]=""
	mapfile -t pids < <(tree_pids "$pid")
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		gone "$pid" && break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for p in "${pids[@]:1}"; do kill -TERM "$p" 2>/dev/null || true; done
	for ((i = 0; i < 20; i++)); do
		left=0
		for p in "${pids[@]:1}"; do gone "$p" || left=1; done
		((left)) || break
		sleep 0.1
	done
	for p in "${pids[@]:1}"; do gone "$p" || kill -KILL "$p" 2>/dev/null || true; done
}

cleanup() {
	local rc=$? p s
	trap - EXIT INT TERM HUP
	set +e
	for p in "${BG[@]}"; do stop_job "$p"; done
	for s in "${ALL_SERVERS[@]}"; do stop_server "$s"; done
	if [[ -n $KEEP_DIR && -n $TMP && -d $TMP ]]; then
		mkdir -p "$KEEP_DIR" && cp -r "$TMP"/. "$KEEP_DIR"/ && log "raw reports and logs kept in $KEEP_DIR"
	fi
	[[ -n $TMP ]] && rm -rf "$TMP"
	log "done: exit status $rc"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# -------------------------------------------------------------- preparation

[[ $EUID -eq 0 ]] || die "run as root: it installs missing peers with apt-get, binds 127.0.0.1:7 for inetd's built-in echo and reads every server's smaps_rollup"
TMP=$(mktemp -d /tmp/bench-peers.XXXXXX)
RAW=$TMP/raw
mkdir -p "$RAW"
: >"$TMP/failures"
: >"$TMP/results"

have() { command -v "$1" >/dev/null 2>&1; }
missing=()
if ((!MODELS)); then
	have tcpserver || missing+=(ucspi-tcp)
fi
if ((!MODELS && !SUPER)); then
	have socat || missing+=(socat)
	have inetd || [[ -x /usr/sbin/inetd ]] || missing+=(openbsd-inetd)
fi
have jq || missing+=(jq)
have timeout || missing+=(coreutils)
have cc || missing+=(gcc libc6-dev)
if ((${#missing[@]})); then
	log "installing ${missing[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	timeout 600 apt-get update -qq >"$TMP/apt.log" 2>&1 || die "apt-get update failed (see below)$(printf '\n'; tail -n 20 "$TMP/apt.log")"
	timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$TMP/apt.log" 2>&1 ||
		die "apt-get install ${missing[*]} failed$(printf '\n'; tail -n 20 "$TMP/apt.log")"
fi
INETD=$(command -v inetd || printf '/usr/sbin/inetd')

log "building mpecho and mpecho-bench (cargo build --release --workspace)"
(cd "$ROOT" && timeout 1800 cargo build --release --workspace --quiet) || die "cargo build --release --workspace failed"
built=${CARGO_TARGET_DIR:-$ROOT/target}/x86_64-unknown-linux-gnu/release
[[ -x $built/mpecho ]] || die "no binary at $built/mpecho after the build"
[[ -x $built/mpecho-bench ]] || die "no binary at $built/mpecho-bench after the build"
# Private copies: a rebuild while this runs must not change what is measured
# (mpecho carries its own worker).
MPECHO=$TMP/mpecho
MPECHO_BENCH=$TMP/mpecho-bench
cp "$built/mpecho" "$MPECHO"
cp "$built/mpecho-bench" "$MPECHO_BENCH"
MPECHO_VERSION=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')
for peer in fork-echo epoll-echo; do
	cc -O2 -Wall -o "$TMP/$peer" "$ROOT/scripts/peers/$peer.c" 2>"$TMP/$peer.cc.log" ||
		die "cc -O2 scripts/peers/$peer.c failed$(printf '\n'; tail -n 20 "$TMP/$peer.cc.log")"
done

# Descriptors: the hold client needs N + a few. Raising the hard limit needs
# CAP_SYS_RESOURCE; without it the soft limit goes to the hard one.
ulimit -Hn $((2 * HOLD_N + 1024)) 2>/dev/null || true
ulimit -Sn "$(ulimit -Hn)"
ulimit -Su "$(ulimit -Hu)" 2>/dev/null || true
(($(ulimit -Sn) >= HOLD_N + 256)) || die "ulimit -n is $(ulimit -Sn) and cannot be raised: --hold $HOLD_N needs $((HOLD_N + 256))"
PID_MAX=$(cat /proc/sys/kernel/pid_max)
((PID_MAX > 2 * HOLD_N + 2000)) || log "warning: kernel.pid_max is $PID_MAX; socat needs two processes per held connection ($((2 * HOLD_N)))"

# ------------------------------------------------------------------ servers

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

NEXT_PORT=$((20000 + RANDOM % 8000))
FREE_PORT=""
pick_port() {
	local p
	for ((p = NEXT_PORT; p < NEXT_PORT + 500; p++)); do
		if ! port_open "$p"; then
			FREE_PORT=$p
			NEXT_PORT=$((p + 1))
			return 0
		fi
	done
	return 1
}

# Waits until server $1 (just started) accepts TCP connections on port $2,
# at most 10 s, failing at once if it exits.
wait_port() {
	local name=$1 port=$2 i
	for ((i = 0; i < 200; i++)); do
		gone "${PID[$name]}" && return 1
		if port_open "$port"; then
			sleep 0.1
			gone "${PID[$name]}" && return 1
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# start_mpecho NAME [SERVE OPTIONS...]: an mpecho master on a port the
# kernel picks, ready once it printed its `listening on ADDR` line. Every
# model but the iterative one may serve 20,000 at once.
start_mpecho() {
	local name=$1 i line=""
	shift
	: >"$TMP/$name.out"
	local limit=(--max-workers 20000)
	[[ $name == iterative ]] && limit=()
	"$MPECHO" serve -l 127.0.0.1:0 --log-level warn --monitor-interval 0 "${limit[@]}" "$@" \
		</dev/null >"$TMP/$name.out" 2>>"$TMP/$name.log" &
	PID[$name]=$!
	for ((i = 0; i < 200; i++)); do
		line=$(head -n 1 "$TMP/$name.out")
		[[ -n $line ]] && break
		gone "${PID[$name]}" && break
		sleep 0.05
	done
	[[ $line == "listening on "* ]] || return 1
	ADDR[$name]=${line#listening on }
}

start_server() {
	local name=$1
	case $name in
	mpecho | exec) start_mpecho "$name" || return 1 ;;
	mfork) start_mpecho mfork --model fork || return 1 ;;
	prefork) start_mpecho prefork --model prefork || return 1 ;;
	iterative) start_mpecho iterative --model iterative || return 1 ;;
	mexec) start_mpecho mexec --exec cat || return 1 ;;
	mrules)
		# 100,000 rules that never match loopback (80,000 IPv4 /24s, 20,000
		# IPv6 /48s), so every connection is looked up and allowed.
		awk 'BEGIN {
			for (i = 0; i < 80000; i++) printf "deny %d.%d.%d.0/24\n", 11 + int(i / 65536), int(i / 256) % 256, i % 256
			for (i = 0; i < 20000; i++) printf "deny 2001:db8:%x::/48\n", i
		}' >"$TMP/100k.rules"
		start_mpecho mrules --rules "$TMP/100k.rules" || return 1
		;;
	ceiling)
		start_mpecho ceiling --do-nothing-workers || return 1
		# Ready means it closes: one connection, closed with nothing sent.
		timeout -k 2 30 "$MPECHO_BENCH" churn --target "${ADDR[ceiling]}" -c 1 --duration 0.1 --expect-close --json \
			>"$RAW/ready.ceiling.json" 2>"$RAW/ready.ceiling.err" || return 1
		[[ $(jq -r '.completed > 0 and .errors.total == 0' "$RAW/ready.ceiling.json" 2>/dev/null) == true ]]
		return
		;;
	fork | epoll)
		pick_port || return 1
		"$TMP/$name-echo" "$FREE_PORT" </dev/null >>"$TMP/$name.log" 2>&1 &
		PID[$name]=$!
		ADDR[$name]=127.0.0.1:$FREE_PORT
		wait_port "$name" "$FREE_PORT" || return 1
		;;
	tcpserver)
		pick_port || return 1
		tcpserver -R -H -l0 -c 20000 -b 1024 127.0.0.1 "$FREE_PORT" cat \
			</dev/null >>"$TMP/tcpserver.log" 2>&1 &
		PID[tcpserver]=$!
		ADDR[tcpserver]=127.0.0.1:$FREE_PORT
		wait_port tcpserver "$FREE_PORT" || return 1
		;;
	inetd)
		# A built-in service must be named by its official name, so inetd's
		# echo listens on port 7 (a port number there is "unknown"). The
		# per-minute spawn limit (nowait.N, -R; 256 by default) would stop the
		# service for ten minutes at churn rates: set far above any rate here.
		if port_open 7; then
			log "127.0.0.1:7 is already in use (a system inetd?): inetd's built-in echo needs it"
			return 1
		fi
		printf '127.0.0.1:echo stream tcp nowait.1000000000 root internal\n' >"$TMP/inetd.conf"
		"$INETD" -i -q 1024 -R 1000000000 "$TMP/inetd.conf" </dev/null >>"$TMP/inetd.log" 2>&1 &
		PID[inetd]=$!
		ADDR[inetd]=127.0.0.1:7
		wait_port inetd 7 || return 1
		;;
	socat)
		pick_port || return 1
		socat "TCP-LISTEN:$FREE_PORT,bind=127.0.0.1,reuseaddr,fork,backlog=1024" EXEC:cat \
			</dev/null >>"$TMP/socat.log" 2>&1 &
		PID[socat]=$!
		ADDR[socat]=127.0.0.1:$FREE_PORT
		wait_port socat "$FREE_PORT" || return 1
		;;
	esac
	# Ready means it echoes: one connection, verified.
	timeout -k 2 30 "$MPECHO_BENCH" hold --target "${ADDR[$name]}" -c 1 --duration 0.1 --json \
		>"$RAW/ready.$name.json" 2>"$RAW/ready.$name.err" || return 1
	[[ $(jq -r '.survivors' "$RAW/ready.$name.json" 2>/dev/null) == 1 ]]
}

# ---------------------------------------------------------------- recording

# rec SERVER METRIC VALUE
rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$TMP/results"; }
values() { awk -F'\t' -v s="$1" -v m="$2" '$1 == s && $2 == m { print $3 }' "$TMP/results"; }
median() {
	values "$1" "$2" | sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
total() { values "$1" "$2" | awk '{ s += $1 } END { print (NR ? s : "-") }'; }

# run_bench OUT LIMIT ARGS...: `mpecho-bench ARGS --json` bounded by LIMIT
# seconds; succeeds when a report came out (errors it counted are in it).
run_bench() {
	local out=$1 limit=$2 rc=0
	shift 2
	timeout -k 5 "$limit" "$MPECHO_BENCH" "$@" --json >"$out" 2>"$out.err" || rc=$?
	report_ok "$out" "$rc"
}
report_ok() {
	local out=$1 rc=$2
	if ((rc != 0 && rc != 1)); then
		log "$(basename "$out"): bench exited $rc$( ((rc == 124)) && printf ' (timed out)'): $(tail -n 3 "$out.err" | tr '\n' ' ')"
		return 1
	fi
	if ! jq -e 'type == "object" and .unreachable == null' "$out" >/dev/null 2>&1; then
		log "$(basename "$out"): no usable report: $(tail -n 3 "$out.err" | tr '\n' ' ')"
		return 1
	fi
}
jqn() { jq -r "$1" "$2"; }

ensure_up() {
	local s=$1
	[[ -n ${PID[$s]:-} ]] || return 1
	if gone "${PID[$s]}"; then
		fail "$s died (see its log)"
		PID[$s]=""
		return 1
	fi
}

# Waits (at most 60 s) until server $1's tree is the server alone again
# (for the prefork model: with no more than its default --max-spare idle
# processes, which it keeps).
wait_drained() {
	local s=$1 i d t keep=0
	[[ $s == prefork ]] && keep=10
	for ((i = 0; i < 600; i++)); do
		read -r d t < <(tree_counts "${PID[$s]}")
		((t <= 1 + keep)) && return 0
		sleep 0.1
	done
	log "warning: $s still has $((t - 1)) processes 60 s after the clients left"
}

# The sockets process $1 has open, listener included.
open_sockets() {
	find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null | wc -l
}

# Waits until server $1 holds at least $2 connections (direct children; for
# the single-process epoll server, its open sockets besides the listener)
# and that stopped growing; gives up after $3 seconds or when background
# job $4 has ended.
wait_held() {
	local root=${PID[$1]} n=$2 limit=$3 job=$4 start=$SECONDS d t prev=-1
	while :; do
		if [[ $1 == epoll ]]; then
			d=$(($(open_sockets "$root") - 1))
			t=$d
		else
			read -r d t < <(tree_counts "$root")
		fi
		if ((d >= n)); then
			((t == prev)) && return 0
			prev=$t
		fi
		((SECONDS - start < limit)) || return 1
		gone "$job" && return 1
		sleep 0.5
	done
}

# ------------------------------------------------------------------- phases

# METRIC names the figures recorded (churn, churn1, steady10, ...); the
# ceiling's churns send nothing and wait for the close (--expect-close).
run_simple() { # SCENARIO METRIC SERVER REP CONNECTIONS
	local sc=$1 metric=$2 s=$3 rep=$4 c=$5 out limit extra=()
	# One client at a time: persistent connections would wait for ever.
	[[ $s == iterative && $sc != churn ]] && return 0
	ensure_up "$s" || return 0
	[[ $s == ceiling ]] && extra=(--expect-close)
	out=$RAW/$metric.$s.$rep.json
	limit=$(awk -v d="$DURATION" -v c="$c" 'BEGIN { printf "%d", d + 0.01 * c + 60 }')
	log "$sc -c $c against ${LABEL[$s]} (run $rep of $RUNS)"
	if run_bench "$out" "$limit" "$sc" --target "${ADDR[$s]}" -c "$c" --size "$SIZE" --duration "$DURATION" --timeout 10 "${extra[@]}"; then
		rec "$s" "$metric" "$(jqn '.throughput_per_sec' "$out")"
		rec "$s" "$metric.p50_ms" "$(jqn '.latency_us.p50 / 1000' "$out")"
		rec "$s" errors "$(jqn '.errors.total' "$out")"
		rec "$s" "$metric.cpu_us" "$(jqn '.cpu.per_op_us' "$out")"
	else
		fail "$sc -c $c against $s, run $rep"
	fi
	wait_drained "$s"
}

accept_probe() { # SERVER REP KIND
	local s=$1 rep=$2 kind=$3 out
	out=$RAW/accept-$kind.$s.$rep.json
	if run_bench "$out" $((ACCEPT_SECS + 40)) churn --target "${ADDR[$s]}" -c 1 --size "$SIZE" --duration "$ACCEPT_SECS"; then
		rec "$s" "accept_$kind" "$(jqn '.latency_us.p50 / 1000' "$out")"
		rec "$s" errors "$(jqn '.errors.total' "$out")"
	else
		fail "one-connection churn ($kind) against $s, run $rep"
	fi
}

hold_limit() { awk -v n="$HOLD_N" -v d="$HOLD_SECS" 'BEGIN { printf "%d", 10 + 0.005 * n + d + 90 }'; }

run_hold() { # SERVER REP
	local s=$1 rep=$2 out job rc=0 t0 pss n
	[[ $s == iterative ]] && return 0
	ensure_up "$s" || return 0
	accept_probe "$s" "$rep" idle
	wait_drained "$s"
	out=$RAW/hold.$s.$rep.json
	log "hold -c $HOLD_N against ${LABEL[$s]} (run $rep of $RUNS)"
	timeout -k 5 "$(hold_limit)" "$MPECHO_BENCH" hold --target "${ADDR[$s]}" -c "$HOLD_N" --size "$SIZE" \
		--duration "$HOLD_SECS" --timeout 30 --json >"$out" 2>"$out.err" &
	job=$!
	BG+=("$job")
	if wait_held "$s" "$HOLD_N" "$(awk -v n="$HOLD_N" 'BEGIN { printf "%d", 15 + 0.005 * n + 30 }')" "$job"; then
		sleep 1
		t0=$SECONDS
		read -r pss n < <(tree_pids "${PID[$s]}" | pss_sum)
		rec "$s" hold_pss_kb "$(awk -v p="$pss" -v n="$HOLD_N" 'BEGIN { printf "%.1f", p / n }')"
		rec "$s" hold_procs "$n"
		log "  ${LABEL[$s]} holds $HOLD_N: $n processes, PSS $pss kB in all (sampled in $((SECONDS - t0)) s)"
		accept_probe "$s" "$rep" held
		gone "$job" && fail "hold against $s, run $rep: the hold ended before the samples were taken (raise --hold-secs)"
	else
		fail "hold against $s, run $rep: the server never had $HOLD_N connections at once"
	fi
	wait "$job" || rc=$?
	if report_ok "$out" "$rc"; then
		rec "$s" hold_survivors "$(jqn '.survivors' "$out")"
		rec "$s" hold_open_rate "$(jqn '.opened / .open_secs' "$out")"
		rec "$s" errors "$(jqn '.errors.total' "$out")"
	else
		fail "hold against $s, run $rep"
	fi
	wait_drained "$s"
}

# SIGTERM to mpecho's master while it holds N workers: time to its exit.
sigterm_test() {
	local out job root workers=() t0 t1 st=0 left=0 p watchdog
	ensure_up mpecho || return 0
	root=${PID[mpecho]}
	out=$RAW/hold.sigterm.json
	log "SIGTERM to mpecho holding $HOLD_N workers"
	timeout -k 5 "$(hold_limit)" "$MPECHO_BENCH" hold --target "${ADDR[mpecho]}" -c "$HOLD_N" --size "$SIZE" \
		--duration "$HOLD_SECS" --timeout 30 --json >"$out" 2>"$out.err" &
	job=$!
	BG+=("$job")
	if ! wait_held mpecho "$HOLD_N" "$(awk -v n="$HOLD_N" 'BEGIN { printf "%d", 15 + 0.005 * n + 30 }')" "$job"; then
		fail "SIGTERM test: mpecho never had $HOLD_N workers at once"
		stop_job "$job"
		return 0
	fi
	sleep 1
	mapfile -t workers < <(tree_pids "$root")
	local -A started=()
	for p in "${workers[@]:1}"; do started[$p]=$(start_time "$p"); done
	(sleep 30 && kill -KILL "$root" 2>/dev/null) &
	watchdog=$!
	t0=$(date +%s%N)
	kill -TERM "$root"
	wait "$root" || st=$?
	t1=$(date +%s%N)
	kill -TERM "$watchdog" 2>/dev/null || true
	wait "$watchdog" 2>/dev/null || true
	PID[mpecho]=""
	for p in "${workers[@]:1}"; do
		if [[ -n ${started[$p]} ]] && still_alive "$p" "${started[$p]}"; then
			left=$((left + 1))
		fi
	done
	rec mpecho sigterm_secs "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
	rec mpecho sigterm_workers "$((${#workers[@]} - 1))"
	rec mpecho sigterm_left "$left"
	rec mpecho sigterm_status "$st"
	((st == 0)) || fail "SIGTERM test: mpecho exited with status $st"
	((left == 0)) || fail "SIGTERM test: $left workers still alive after mpecho exited"
	stop_job "$job"
}

# ------------------------------------------------------------------ the run

for s in "${ALL_SERVERS[@]}"; do
	log "starting ${LABEL[$s]}"
	if start_server "$s"; then
		log "  ${LABEL[$s]} is serving on ${ADDR[$s]} (pid ${PID[$s]})"
	else
		fail "${LABEL[$s]} did not start or does not serve (log: $(tail -n 3 "$TMP/$s.log" 2>/dev/null | tr '\n' ' '))"
		stop_server "$s"
	fi
done

if ((!MODELS && !SUPER)); then
	log "spawn-probe (${PROBE_SECS} s per round)"
	if run_bench "$RAW/spawn-probe.json" "$(awk -v d="$PROBE_SECS" 'BEGIN { printf "%d", 2 * d + 30 }')" spawn-probe --duration "$PROBE_SECS"; then
		rec probe one "$(jqn '.in_flight_1.spawns_per_sec' "$RAW/spawn-probe.json")"
		rec probe two "$(jqn '.in_flight_2.spawns_per_sec' "$RAW/spawn-probe.json")"
	else
		fail "spawn-probe"
	fi
fi

CHURNED=("${SERVERS[@]}")
((MODELS || SUPER)) || CHURNED+=(ceiling)
for ((rep = 1; rep <= RUNS; rep++)); do
	for s in "${CHURNED[@]}"; do run_simple churn churn "$s" "$rep" "$CHURN_C"; done
done
for ((rep = 1; rep <= RUNS; rep++)); do
	for s in "${CHURNED[@]}"; do run_simple churn churn1 "$s" "$rep" 1; done
done
# The ceiling's master is not needed past the churns: stopped, so that it
# holds no memory or CPU while the others are measured.
((MODELS || SUPER)) || stop_server ceiling
for ((rep = 1; rep <= RUNS; rep++)); do
	for s in "${SERVERS[@]}"; do run_simple steady steady10 "$s" "$rep" 10; done
done
if ((!MODELS && !SUPER)); then
	for ((rep = 1; rep <= RUNS; rep++)); do
		for s in "${SERVERS[@]}"; do run_simple steady steady "$s" "$rep" "$STEADY_C"; done
	done
fi
if ((!SUPER)); then
	for ((rep = 1; rep <= RUNS; rep++)); do
		for s in "${SERVERS[@]}"; do run_hold "$s" "$rep"; done
	done
fi
((MODELS || SUPER)) || sigterm_test

# -------------------------------------------------------------------- table

fmt() { # VALUE DECIMALS
	[[ $1 == - ]] && { printf -- '-'; return; }
	awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'
}
ratio() {
	[[ $1 == - || $2 == - ]] && { printf -- '-'; return; }
	awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) printf "-"; else printf "%.2f", a / b }'
}
runs_of() { values "$1" "$2" | awk -v d="$3" '{ printf "%s%.*f", (NR > 1 ? " / " : ""), d, $1 }'; }

# Columns: the six servers (in SERVERS' order), then mpecho's figure divided
# by each peer's.
COLS="%-44s %-15s %8s %8s %8s %8s %9s %8s | %7s %7s %7s %7s %7s\n"
row() { # LABEL UNIT METRIC DECIMALS [no-ratio]
	local v=() r=() s m
	for s in "${SERVERS[@]}"; do v+=("$(fmt "$(median "$s" "$3")" "$4")"); done
	m=$(median mpecho "$3")
	for s in "${SERVERS[@]:1}"; do
		if [[ -n ${5:-} ]]; then r+=(""); else r+=("$(ratio "$m" "$(median "$s" "$3")")"); fi
	done
	# shellcheck disable=SC2059
	printf "$COLS" "$1" "$2" "${v[@]}" "${r[@]}"
}

# target LABEL VALUE UNIT GOAL(ge|le) THRESHOLD: one line of issue 10's targets.
target() {
	local verdict
	if [[ $2 == - ]]; then
		verdict="not measured"
	else
		verdict=$(awk -v v="$2" -v t="$5" -v op="$4" 'BEGIN {
			ok = (op == "ge") ? (v >= t) : (v <= t); print (ok ? "met" : "MISSED") }')
	fi
	printf '  %-52s %9s %-4s %-12s %s\n' "$1" "$2" "$3" "$([[ $4 == ge ]] && printf '>= %s' "$5" || printf '<= %s' "$5")" "$verdict"
}

SOFT_N=$(ulimit -Sn)
HARD_N=$(ulimit -Hn)

# The machine and versions, under either table.
machine_lines() {
	printf 'machine: nproc %s, kernel %s, %s, %s MiB memory, load average at the end %s\n' "$(nproc)" "$(uname -sr)" \
		"$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(awk '/^MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)" \
		"$(cut -d' ' -f1-3 /proc/loadavg)"
	printf 'limits: ulimit -n %s (hard %s), ulimit -u %s, kernel.pid_max %s, net.core.somaxconn %s\n' \
		"$SOFT_N" "$HARD_N" "$(ulimit -u)" "$PID_MAX" "$(cat /proc/sys/net/core/somaxconn)"
}

# Issue 11's table: the models side by side, then the references.
MCOLS="%-44s %-15s %8s %8s %8s %9s %8s %8s | %9s %9s %9s\n"
models_row() { # LABEL UNIT METRIC DECIMALS
	local v=() s
	for s in "${SERVERS[@]}"; do v+=("$(fmt "$(median "$s" "$3")" "$4")"); done
	# shellcheck disable=SC2059
	printf "$MCOLS" "$1" "$2" "${v[@]}" \
		"$(ratio "$(median prefork "$3")" "$(median epoll "$3")")" \
		"$(ratio "$(median prefork "$3")" "$(median fork "$3")")" \
		"$(ratio "$(median mfork "$3")" "$(median fork "$3")")"
}
models_table() {
	local s r
	echo
	printf "mpecho's execution models and the references, medians of %d runs (%s)\n" "$RUNS" "$(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	# shellcheck disable=SC2059
	printf "$MCOLS" "scenario" "unit" "exec" "fork" "prefork" "iterative" "C fork" "C epoll" "pre/epoll" "pre/Cfork" "fork/Cfork"
	models_row "churn -c $CHURN_C --size $SIZE" "conn/s" churn 0
	models_row "churn -c 1 --size $SIZE" "conn/s" churn1 0
	models_row "  churn -c 1 p50 (a new connection's round trip)" "ms (lower wins)" churn1.p50_ms 3
	models_row "steady -c 10 --size $SIZE" "round trips/s" steady10 0
	models_row "hold -c $HOLD_N: survivors" "connections" hold_survivors 0
	models_row "hold -c $HOLD_N: PSS per held connection" "kB (lower wins)" hold_pss_kb 1
	models_row "hold -c $HOLD_N: processes in the tree" "processes" hold_procs 0
	models_row "new connection (churn -c 1) p50, none held" "ms (lower wins)" accept_idle 3
	models_row "new connection (churn -c 1) p50, $HOLD_N held" "ms (lower wins)" accept_held 3
	for s in "${SERVERS[@]}"; do
		r=$(ratio "$(median "$s" accept_held)" "$(median "$s" accept_idle)")
		[[ $r == - ]] || rec "$s" accept_ratio "$r"
	done
	models_row "  held / none held" "ratio" accept_ratio 2
	for s in "${SERVERS[@]}"; do rec "$s" errors_total "$(total "$s" errors)"; done
	models_row "errors counted, all runs" "count" errors_total 0
	echo "(medians of the runs; the iterative model serves one client at a time, so it runs the churns only;"
	echo " C fork: scripts/peers/fork-echo.c, C epoll: scripts/peers/epoll-echo.c; prefork at its defaults,"
	echo " --min-spare 5 --max-spare 10)"
	echo
	echo "issue 11's targets (medians of this run):"
	target "fork, churn -c $CHURN_C / C fork server" "$(ratio "$(median mfork churn)" "$(median fork churn)")" x ge 1.0
	target "prefork, churn -c $CHURN_C / C epoll server" "$(ratio "$(median prefork churn)" "$(median epoll churn)")" x ge 0.8
	target "prefork, steady -c 10 / C fork server" "$(ratio "$(median prefork steady10)" "$(median fork steady10)")" x ge 1.0
	target "fork, PSS per held connection, whole tree" "$(median mfork hold_pss_kb)" kB le 40
	for s in exec mfork prefork; do
		target "${LABEL[$s]}, new connection $HOLD_N held / none" "$(median "$s" accept_ratio)" x le 1.2
	done
	echo
	echo "per run:"
	for s in "${SERVERS[@]}"; do
		printf '  %-17s churn %s | churn -c 1 %s | steady -c 10 %s | hold PSS kB/conn %s | new conn held/none ms %s / %s\n' "${LABEL[$s]}" \
			"$(runs_of "$s" churn 0)" "$(runs_of "$s" churn1 0)" "$(runs_of "$s" steady10 0)" \
			"$(runs_of "$s" hold_pss_kb 1)" "$(runs_of "$s" accept_held 3)" "$(runs_of "$s" accept_idle 3)"
	done
	echo
	machine_lines
	printf 'versions: mpecho %s, cc %s\n' "$MPECHO_VERSION" "$(cc -dumpfullversion 2>/dev/null || cc -dumpversion 2>/dev/null || echo '?')"
}

# The super-server table: --exec cat against tcpserver's cat, and the
# rules' cost.
super_table() {
	local scols="%-44s %-15s %10s %10s %10s %10s | %12s %12s\n" label unit metric d v s
	echo
	printf 'mpecho as a super-server, medians of %d runs (%s)\n' "$RUNS" "$(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	# shellcheck disable=SC2059
	printf "$scols" "scenario" "unit" "echo" "100k rules" "--exec cat" "tcpserver" "rules/echo" "exec/tcpsrv"
	while IFS='|' read -r label unit metric d; do
		v=()
		for s in "${SERVERS[@]}"; do v+=("$(fmt "$(median "$s" "$metric")" "$d")"); done
		# shellcheck disable=SC2059
		printf "$scols" "$label" "$unit" "${v[@]}" \
			"$(ratio "$(median mrules "$metric")" "$(median mpecho "$metric")")" \
			"$(ratio "$(median mexec "$metric")" "$(median tcpserver "$metric")")"
	done <<EOF_ROWS
churn -c $CHURN_C --size $SIZE|conn/s|churn|0
churn -c 1 --size $SIZE|conn/s|churn1|0
  churn -c 1 p50 (a new connection's round trip)|ms (lower wins)|churn1.p50_ms|3
steady -c 10 --size $SIZE|round trips/s|steady10|0
EOF_ROWS
	for s in "${SERVERS[@]}"; do rec "$s" errors_total "$(total "$s" errors)"; done
	echo "(errors counted, all runs: $(for s in "${SERVERS[@]}"; do printf '%s %s; ' "${LABEL[$s]}" "$(median "$s" errors_total)"; done))"
	echo "(100k rules: 80,000 IPv4 /24s and 20,000 IPv6 /48s that never match loopback, so every connection is looked up;"
	echo " tcpserver -R -H -l0 -c 20000 -b 1024 … cat; mpecho --exec cat: the same cat)"
	echo
	echo "per run:"
	for s in "${SERVERS[@]}"; do
		printf '  %-19s churn %s | churn -c 1 %s | steady -c 10 %s\n' "${LABEL[$s]}" \
			"$(runs_of "$s" churn 0)" "$(runs_of "$s" churn1 0)" "$(runs_of "$s" steady10 0)"
	done
	echo
	machine_lines
	printf 'versions: mpecho %s, ucspi-tcp %s\n' "$MPECHO_VERSION" "$(dpkg-query -W -f '${Version}' ucspi-tcp 2>/dev/null || echo '?')"
}

if ((SUPER)); then
	super_table
elif ((MODELS)); then
	models_table
else
{
	echo
	printf 'mpecho vs peers, medians of %d runs (%s)\n' "$RUNS" "$(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	# shellcheck disable=SC2059
	printf "$COLS" "scenario" "unit" "mpecho" "inetd" "C fork" "C epoll" "tcpserver" "socat" "m/inetd" "m/fork" "m/epoll" "m/tcpsv" "m/socat"
	row "churn -c $CHURN_C --size $SIZE" "conn/s" churn 0
	row "churn -c 1 --size $SIZE" "conn/s" churn1 0
	row "  churn -c 1 p50 (a fresh worker's round trip)" "ms (lower wins)" churn1.p50_ms 3
	row "steady -c 10 --size $SIZE" "round trips/s" steady10 0
	row "steady -c $STEADY_C --size $SIZE" "round trips/s" steady 0
	row "hold -c $HOLD_N: survivors" "connections" hold_survivors 0
	row "hold -c $HOLD_N: opened per second" "conn/s" hold_open_rate 0
	row "hold -c $HOLD_N: PSS per held connection" "kB (lower wins)" hold_pss_kb 1
	row "hold -c $HOLD_N: processes in the tree" "processes" hold_procs 0 no-ratio
	row "new connection (churn -c 1) p50, none held" "ms (lower wins)" accept_idle 3
	row "new connection (churn -c 1) p50, $HOLD_N held" "ms (lower wins)" accept_held 3
	for s in "${SERVERS[@]}"; do
		r=$(ratio "$(median "$s" accept_held)" "$(median "$s" accept_idle)")
		[[ $r == - ]] || rec "$s" accept_ratio "$r"
	done
	row "  held / none held" "ratio" accept_ratio 2
	for s in "${SERVERS[@]}"; do rec "$s" errors_total "$(total "$s" errors)"; done
	row "errors counted, all runs" "count" errors_total 0 no-ratio
	echo "(m/X: mpecho's figure divided by X's; medians of the runs. C fork: scripts/peers/fork-echo.c,"
	echo " C epoll: scripts/peers/epoll-echo.c, tcpserver and socat run cat, inetd its built-in echo)"
	echo
	printf 'ceiling: mpecho serve --do-nothing-workers (workers close descriptor 3 and exit), churn --expect-close:\n'
	printf '  -c %s: %s conn/s (runs %s), -c 1: %s conn/s (runs %s); errors %s\n' \
		"$CHURN_C" "$(fmt "$(median ceiling churn)" 0)" "$(runs_of ceiling churn 0)" \
		"$(fmt "$(median ceiling churn1)" 0)" "$(runs_of ceiling churn1 0)" "$(total ceiling errors)"
	echo
	echo "issue 10's targets (medians of this run):"
	target "PSS per held connection, whole tree, $HOLD_N held" "$(median mpecho hold_pss_kb)" kB le 20
	target "churn -c $CHURN_C, mpecho / inetd echo" "$(ratio "$(median mpecho churn)" "$(median inetd churn)")" x ge 2.0
	target "churn -c $CHURN_C, mpecho / C fork server" "$(ratio "$(median mpecho churn)" "$(median fork churn)")" x ge 0.8
	target "churn -c 1, mpecho / inetd echo" "$(ratio "$(median mpecho churn1)" "$(median inetd churn1)")" x ge 2.0
	target "steady -c 10, mpecho / inetd echo" "$(ratio "$(median mpecho steady10)" "$(median inetd steady10)")" x ge 1.0
	target "steady -c $STEADY_C, mpecho / inetd echo" "$(ratio "$(median mpecho steady)" "$(median inetd steady)")" x ge 1.0
	printf '  %-52s %9s\n' "churn -c $CHURN_C as a fraction of the ceiling" "$(ratio "$(median mpecho churn)" "$(median ceiling churn)")"
	printf '  %-52s %9s\n' "churn -c 1 as a fraction of the ceiling" "$(ratio "$(median mpecho churn1)" "$(median ceiling churn1)")"
	echo
	p1=$(median probe one)
	p2=$(median probe two)
	printf 'spawn-probe (a static glibc `return 0` started by mpecho'"'"'s spawn, no server; a reference, not a ceiling):\n'
	printf '  %s spawns/s with 1 in flight, %s with 2 in flight\n' "$(fmt "$p1" 0)" "$(fmt "$p2" 0)"
	printf 'SIGTERM to mpecho holding %s workers: exited (status %s) %s s later, %s workers left alive\n' \
		"$(median mpecho sigterm_workers)" "$(median mpecho sigterm_status)" "$(median mpecho sigterm_secs)" "$(median mpecho sigterm_left)"
	echo
	echo "per run:"
	for s in "${SERVERS[@]}"; do
		printf '  %-14s churn %s | churn -c 1 %s | steady -c 10 %s | steady %s | hold PSS kB/conn %s | survivors %s\n' "${LABEL[$s]}" \
			"$(runs_of "$s" churn 0)" "$(runs_of "$s" churn1 0)" "$(runs_of "$s" steady10 0)" "$(runs_of "$s" steady 0)" \
			"$(runs_of "$s" hold_pss_kb 1)" "$(runs_of "$s" hold_survivors 0)"
	done
	printf '  generator CPU per connection (churn), mpecho: %s µs; against the ceiling: %s µs\n' \
		"$(fmt "$(median mpecho churn.cpu_us)" 1)" "$(fmt "$(median ceiling churn.cpu_us)" 1)"
	echo
	machine_lines
	printf 'versions: mpecho %s, ucspi-tcp %s, openbsd-inetd %s, socat %s, cc %s\n' \
		"$MPECHO_VERSION" \
		"$(dpkg-query -W -f '${Version}' ucspi-tcp 2>/dev/null || echo '?')" \
		"$(dpkg-query -W -f '${Version}' openbsd-inetd 2>/dev/null || echo '?')" \
		"$(dpkg-query -W -f '${Version}' socat 2>/dev/null || echo '?')" \
		"$(cc -dumpfullversion 2>/dev/null || cc -dumpversion 2>/dev/null || echo '?')"
}
fi

for s in "${MPECHOS[@]}"; do
	mp_errors=$(total "$s" errors)
	if [[ $mp_errors != - ]] && ((mp_errors > 0)); then
		fail "${LABEL[$s]} counted $mp_errors errors"
	fi
done
if ((FAILURES)); then
	echo
	echo "FAILED ($FAILURES):"
	sed 's/^/  /' "$TMP/failures"
	exit 1
fi
