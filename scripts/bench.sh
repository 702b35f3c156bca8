#!/usr/bin/env bash
# bench.sh — end-to-end relay throughput of sqlmta against Postfix on this machine (`make bench`).
#
# For each target — a throwaway Postfix 3.7, then mtad on SQLite, PostgreSQL and MariaDB — it starts a fresh
# smtp-sink, starts the target relaying everything to that sink, runs
#     smtp-source -s $BENCH_SESSIONS -m $BENCH_MESSAGES -l $BENCH_SIZE 127.0.0.1:PORT
# and times from the start of smtp-source until the sink's dump holds BENCH_MESSAGES Message-Id lines.
# lost/dup is the final count minus BENCH_MESSAGES; any loss (or a target that fails) makes the script exit 1.
# A target whose prerequisite is missing (no ./bin/mtad, no database) is skipped with a line in the table.
#
# Environment: BENCH_MESSAGES (10000), BENCH_SESSIONS (20), BENCH_SIZE (2000), BENCH_OUT (/tmp/sqlmta-bench.txt),
# BENCH_TARGETS ("postfix sqlite postgres mariadb"), BENCH_STALL (seconds without progress that count as loss, 60),
# BENCH_SOURCE_TIMEOUT (seconds smtp-source may run, 1800), KEEP_WORK (non-empty: keep the logs in /tmp/sqlmta-bench.*),
# MTAD (./bin/mtad), SQLMTA_TEST_PG_URL / SQLMTA_TEST_MYSQL_URL (server URLs; else scripts/testdb.sh starts them).
# Must run as root (Postfix's master and smtp-sink's privilege drop need it).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"
N="${BENCH_MESSAGES:-10000}"
S="${BENCH_SESSIONS:-20}"
L="${BENCH_SIZE:-2000}"
OUT="${BENCH_OUT:-/tmp/sqlmta-bench.txt}"
TARGETS="${BENCH_TARGETS:-postfix sqlite postgres mariadb}"
STALL="${BENCH_STALL:-60}"
SOURCE_TIMEOUT="${BENCH_SOURCE_TIMEOUT:-1800}"
MTAD="${MTAD:-./bin/mtad}"
export PATH="$PATH:/usr/sbin:/sbin"

die() { echo "bench.sh: $*" >&2; exit 1; }
log() { echo "bench.sh: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "run as root (Postfix and smtp-sink need it)"
for b in smtp-sink smtp-source postfix; do
	command -v "$b" >/dev/null 2>&1 || die "$b missing: apt-get install -y postfix"
done
case "$MTAD" in /*) ;; *) MTAD="$ROOT/${MTAD#./}" ;; esac

for target in $TARGETS; do
	case "$target" in postfix | sqlite | postgres | mariadb) ;; *) die "unknown target $target (want postfix sqlite postgres mariadb)" ;; esac
done

WORK="$(mktemp -d /tmp/sqlmta-bench.XXXXXX)"
chmod 755 "$WORK" # smtp-sink (nobody) and Postfix (postfix) must reach their directories

# Everything started is recorded here and undone by cleanup, whatever way the script ends.
SINK_PIDS=()
MTAD_PIDS=()
PF_DIRS=()
DROPS=()
STOP_TESTDB=""

cleanup() {
	set +e
	local pid d
	for pid in "${MTAD_PIDS[@]}"; do stop_pid "$pid" TERM 30; done
	for d in "${PF_DIRS[@]}"; do scripts/postfix-peer.sh stop "$d" >/dev/null; done
	for pid in "${SINK_PIDS[@]}"; do stop_pid "$pid" TERM 5; done
	for d in "${DROPS[@]}"; do eval "$d" >/dev/null 2>&1 || log "could not clean up: $d"; done
	[ -n "$STOP_TESTDB" ] && scripts/testdb.sh stop
	if [ -n "${KEEP_WORK:-}" ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_pid PID SIGNAL SECONDS: signal a process we started, wait for it to exit, kill it if it does not.
stop_pid() {
	local pid="$1" sig="$2" secs="$3" i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -"$sig" "$pid" 2>/dev/null || true
	for i in $(seq 1 $((secs * 10))); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	log "pid $pid did not exit on SIG$sig within ${secs}s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT SECONDS [PID]: until 127.0.0.1:PORT accepts connections; fails early if PID exits.
wait_port() {
	local port="$1" secs="$2" pid="${3:-}" i
	for i in $(seq 1 $((secs * 10))); do
		port_open "$port" && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
		sleep 0.1
	done
	return 1
}

# free_port prints a port on 127.0.0.1 that nothing listens on and that this run has not handed out yet.
# It stays below the kernel's ephemeral range (32768+), where an outgoing connection could take the port
# between this check and the daemon's bind.
USED_PORTS=" "
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		case "$USED_PORTS" in *" $p "*) continue ;; esac
		port_open "$p" && continue
		USED_PORTS="$USED_PORTS$p "
		echo "$p"
		return
	done
}

# start_sink DIR: starts a fresh smtp-sink dumping into DIR/dump; sets SINK_PORT.
start_sink() {
	local dir="$1"
	mkdir -p "$dir"
	chown nobody "$dir" # smtp-sink writes a scratch file beside the dump
	SINK_PORT="$(free_port)"
	smtp-sink -u nobody -D "$dir/dump" "127.0.0.1:$SINK_PORT" 1024 </dev/null >"$dir/sink.log" 2>&1 &
	SINK_PIDS+=($!)
	wait_port "$SINK_PORT" 10 $! || die "smtp-sink did not start: $(cat "$dir/sink.log")"
}

# count prints the number of messages in a sink dump (smtp-source gives each a unique Message-Id).
count() {
	if [ -f "$1" ]; then LC_ALL=C grep -ci '^message-id:' "$1" || true; else echo 0; fi
}

# calc prints an arithmetic expression's value with FORMAT, e.g. calc %.2f "10000 / 9.8".
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

now() { date +%s.%N; }

# Table rows, filled by the targets and printed at the end.
ROWS=()
POSTFIX_RATE=""
FAILED=0

# Columns: target, messages, seconds until all are in the sink, messages/s, ratio to Postfix's messages/s,
# lost/dup (sink count - messages), seconds until smtp-source had handed over all messages, note.
row() { ROWS+=("$(printf '%-10s %8s %8s %10s %6s %8s %8s  %s' "$@")"); }

# run_load NAME DIR PORT: sends the load to 127.0.0.1:PORT and waits for the sink in DIR; adds the row.
run_load() {
	local name="$1" dir="$2" port="$3"
	local dump="$dir/sink/dump" start accepted end got last changed rc secs rate ratio note=""
	log "$name: smtp-source -s $S -m $N -l $L 127.0.0.1:$port"
	start="$(now)"
	rc=0
	# timeout: a target that stops answering must not hang the benchmark (smtp-source has no timeout).
	timeout "$SOURCE_TIMEOUT" smtp-source -s "$S" -m "$N" -l "$L" "127.0.0.1:$port" >"$dir/source.log" 2>&1 || rc=$?
	accepted="$(now)"
	# Poll the dump until every message is there, or until it has not grown for $STALL seconds.
	last=-1
	changed="$(date +%s)"
	while :; do
		got="$(count "$dump")"
		[ "$got" -ge "$N" ] && break
		if [ "$got" -ne "$last" ]; then
			last="$got"
			changed="$(date +%s)"
		elif [ $(($(date +%s) - changed)) -ge "$STALL" ]; then
			break
		fi
		sleep 0.1
	done
	end="$(now)"
	# A short settle so that duplicates delivered just after the last original show up in lost/dup.
	sleep 1
	got="$(count "$dump")"
	secs="$(calc %.3f "$end - $start")"
	rate="$(calc %.3f "$(( got < N ? got : N )) / $secs")"
	# Ratios only against a complete Postfix run.
	if [ "$name" = postfix ] && [ "$got" -ge "$N" ]; then POSTFIX_RATE="$rate"; fi
	ratio="-"
	[ -n "$POSTFIX_RATE" ] && ratio="$(calc %.2f "$rate / $POSTFIX_RATE")"
	if [ "$rc" -ne 0 ]; then
		note="smtp-source exit $rc: $(tail -n 1 "$dir/source.log")"
		FAILED=1
	fi
	if [ "$got" -lt "$N" ]; then
		note="${note:+$note; }LOST $((N - got)) (no progress for ${STALL}s)"
		FAILED=1
	elif [ "$got" -gt "$N" ]; then
		note="${note:+$note; }$((got - N)) duplicates"
	fi
	row "$name" "$N" "$(printf '%.2f' "$secs")" "$(calc %.0f "$rate")" "$ratio" "$((got - N))" \
		"$(calc %.2f "$accepted - $start")" "$note"
	log "$name: $got/$N messages in $(printf '%.2f' "$secs") s"
}

skip() { row "$1" "-" "-" "-" "-" "-" "-" "skipped: $2"; log "$1: skipped: $2"; }
fail() { row "$1" "-" "-" "-" "-" "-" "-" "FAILED: $2"; log "$1: FAILED: $2"; FAILED=1; }

bench_postfix() {
	local dir="$WORK/postfix" port
	mkdir -p "$dir"
	start_sink "$dir/sink"
	port="$(free_port)"
	PF_DIRS+=("$dir/pf")
	if ! scripts/postfix-peer.sh start "$dir/pf" "$port" "[127.0.0.1]:$SINK_PORT" >"$dir/start.log" 2>&1; then
		fail postfix "$(tail -n 3 "$dir/start.log")"
		return
	fi
	run_load postfix "$dir" "$port"
	scripts/postfix-peer.sh stop "$dir/pf" >/dev/null || true
}

# bench_mtad NAME DATABASE_URL: one sqlmta node on that database.
bench_mtad() {
	local name="$1" url="$2" dir="$WORK/$1" conf port pid
	conf="$dir/conf"
	mkdir -p "$conf/data"
	start_sink "$dir/sink"
	port="$(free_port)"
	[ -n "$url" ] || url="sqlite:$conf/data/q.db"
	cat >"$conf/main.cf" <<-EOF
		compatibility_level = 3.6
		myhostname = bench.localdomain
		mynetworks = 127.0.0.0/8
		mydestination =
		relayhost = [127.0.0.1]:$SINK_PORT
		database_url = $url
		data_directory = $conf/data
		maillog_file = $conf/maillog
	EOF
	echo "127.0.0.1:$port inet n - n - - smtpd" >"$conf/master.cf"
	"$MTAD" -c "$conf" </dev/null >"$dir/mtad.out" 2>&1 &
	pid=$!
	MTAD_PIDS+=("$pid")
	# Migrations run at start: allow some time before the port opens.
	if ! wait_port "$port" 60 "$pid"; then
		fail "$name" "mtad did not listen on 127.0.0.1:$port: $(tail -n 3 "$dir/mtad.out" | tr '\n' ' ')"
		stop_pid "$pid" KILL 5
		return
	fi
	run_load "$name" "$dir" "$port"
	stop_pid "$pid" TERM 30
}

# need_testdb makes SQLMTA_TEST_PG_URL and SQLMTA_TEST_MYSQL_URL available, starting scripts/testdb.sh's
# servers (and stopping them at exit) only when nobody else has.
TESTDB_TRIED=""
need_testdb() {
	[ -n "${SQLMTA_TEST_PG_URL:-}" ] && [ -n "${SQLMTA_TEST_MYSQL_URL:-}" ] && return 0
	[ -n "$TESTDB_TRIED" ] && return 0
	TESTDB_TRIED=1
	[ -x scripts/testdb.sh ] || [ -f scripts/testdb.sh ] || return 0
	local env
	if ! env="$(bash scripts/testdb.sh env 2>/dev/null)"; then
		log "starting test databases with scripts/testdb.sh"
		bash scripts/testdb.sh start >"$WORK/testdb.log" 2>&1 || { log "testdb.sh start failed: $(tail -n 3 "$WORK/testdb.log")"; return 0; }
		STOP_TESTDB=1
		env="$(bash scripts/testdb.sh env)" || return 0
	fi
	eval "$env"
}

DB="bench_$$"

bench_postgres() {
	need_testdb
	local url="${SQLMTA_TEST_PG_URL:-}"
	[ -n "$url" ] || { skip postgres "no SQLMTA_TEST_PG_URL and scripts/testdb.sh could not start PostgreSQL"; return; }
	command -v psql >/dev/null 2>&1 || { skip postgres "psql missing"; return; }
	# Swap the database in the URL's path for a fresh one: scheme://auth@host:port/DB?params.
	local base="${url%%\?*}" params="" dburl
	[ "$base" != "$url" ] && params="?${url#*\?}"
	dburl="${base%/*}/$DB$params"
	if ! psql "$url" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $DB" >"$WORK/pg.log" 2>&1; then
		fail postgres "CREATE DATABASE: $(tail -n 1 "$WORK/pg.log")"
		return
	fi
	DROPS+=("psql '$url' -qc 'DROP DATABASE IF EXISTS $DB WITH (FORCE)'")
	bench_mtad postgres "$dburl"
}

bench_mariadb() {
	need_testdb
	local url="${SQLMTA_TEST_MYSQL_URL:-}"
	[ -n "$url" ] || { skip mariadb "no SQLMTA_TEST_MYSQL_URL and scripts/testdb.sh could not start MariaDB"; return; }
	command -v mariadb >/dev/null 2>&1 || { skip mariadb "mariadb client missing"; return; }
	local re='^mysql://([^:@]*)(:([^@]*))?@tcp\(([^:)]+):([0-9]+)\)/([^?]*)(\?.*)?$'
	[[ "$url" =~ $re ]] || { fail mariadb "cannot parse SQLMTA_TEST_MYSQL_URL=$url"; return; }
	local user="${BASH_REMATCH[1]}" pass="${BASH_REMATCH[3]}" host="${BASH_REMATCH[4]}" port="${BASH_REMATCH[5]}"
	local params="${BASH_REMATCH[7]}"
	local cli=(mariadb --protocol=tcp -h "$host" -P "$port" -u "$user")
	[ -n "$pass" ] && cli+=("-p$pass")
	if ! "${cli[@]}" -e "CREATE DATABASE $DB" >"$WORK/my.log" 2>&1; then
		fail mariadb "CREATE DATABASE: $(tail -n 1 "$WORK/my.log")"
		return
	fi
	DROPS+=("$(printf '%q ' "${cli[@]}") -e 'DROP DATABASE IF EXISTS $DB'")
	bench_mtad mariadb "mysql://$user${pass:+:$pass}@tcp($host:$port)/$DB$params"
}

for target in $TARGETS; do
	case "$target" in
	postfix) bench_postfix ;;
	sqlite | postgres | mariadb)
		if [ ! -x "$MTAD" ]; then
			skip "$target" "$MTAD not built (make build)"
			continue
		fi
		case "$target" in
		sqlite) bench_mtad sqlite "" ;;
		postgres) bench_postgres ;;
		mariadb) bench_mariadb ;;
		esac
		;;
	esac
done

{
	echo "# sqlmta bench $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) ($(nproc) cores), Postfix $(postconf -h mail_version 2>/dev/null)"
	echo "# smtp-source -s $S -m $N -l $L -> target -> smtp-sink -D"
	echo "# seconds: from smtp-source's start until the sink has every message; accept_s: until smtp-source exits"
	printf '%-10s %8s %8s %10s %6s %8s %8s  %s\n' target messages seconds messages/s ratio lost/dup accept_s note
	printf '%s\n' "${ROWS[@]}"
} | tee "$OUT"
exit "$FAILED"
