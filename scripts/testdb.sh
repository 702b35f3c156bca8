#!/usr/bin/env bash
# testdb.sh start|stop|env — throwaway PostgreSQL 15 and MariaDB servers for sqlmta's tests.
#
# start: installs the Debian packages when missing, creates data dirs under $SQLMTA_TESTDB_DIR
#        (default /tmp/sqlmta-testdb), starts PostgreSQL on 127.0.0.1:55432 and MariaDB on 127.0.0.1:53306
#        (ports: $SQLMTA_TESTDB_PG_PORT, $SQLMTA_TESTDB_MYSQL_PORT),
#        waits until both accept connections, creates user sqlmta (may create databases) and writes
#        $SQLMTA_TESTDB_DIR/env. Starting when already running is fine.
# env:   prints the export lines (source them: eval "$(scripts/testdb.sh env)").
# stop:  stops both servers and removes the directory.
#
# A database whose URL is already given (SQLMTA_TEST_PG_URL / SQLMTA_TEST_MYSQL_URL) is left alone.
set -euo pipefail

DIR="${SQLMTA_TESTDB_DIR:-/tmp/sqlmta-testdb}"
PG_PORT="${SQLMTA_TESTDB_PG_PORT:-55432}"
MY_PORT="${SQLMTA_TESTDB_MYSQL_PORT:-53306}"
USER_NAME=sqlmta
USER_PASS=sqlmta
PG_BIN=/usr/lib/postgresql/15/bin
PG_URL="postgres://${USER_NAME}:${USER_PASS}@127.0.0.1:${PG_PORT}/postgres?sslmode=disable"
MY_URL="mysql://${USER_NAME}:${USER_PASS}@tcp(127.0.0.1:${MY_PORT})/"

die() { echo "testdb.sh: $*" >&2; exit 1; }

# as_user runs a command as a system user; root is required to start the servers as postgres/mysql.
as_user() {
	local u="$1"; shift
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$u" -- "$@"
	else
		"$@"
	fi
}

install_packages() {
	local need=()
	[ -x "$PG_BIN/initdb" ] || need+=(postgresql)
	command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
	[ ${#need[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing ${need[*]}; run as root to install them"
	echo "testdb.sh: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2 && apt-get install -y -qq "${need[@]}" >&2 || die "apt-get install ${need[*]} failed"
}

# wait_for runs "$@" until it succeeds, for at most ~30 s.
wait_for() {
	local i
	for i in $(seq 1 150); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	return 1
}

pg_running() { [ -d "$DIR/pg/data" ] && as_user postgres "$PG_BIN/pg_ctl" -D "$DIR/pg/data" status >/dev/null 2>&1; }
pg_ready() { as_user postgres "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atqc 'SELECT 1'; }

start_pg() {
	if [ -n "${SQLMTA_TEST_PG_URL:-}" ]; then return 0; fi
	mkdir -p "$DIR/pg"
	chown postgres: "$DIR/pg" 2>/dev/null || true
	if [ ! -f "$DIR/pg/data/PG_VERSION" ]; then
		as_user postgres "$PG_BIN/initdb" -D "$DIR/pg/data" -A trust -U postgres -E UTF8 --no-sync >"$DIR/pg/initdb.log" 2>&1 ||
			die "PostgreSQL initdb failed, see $DIR/pg/initdb.log"
	fi
	if ! pg_running; then
		# fsync stays on: tests measure real commit costs. The socket goes into our own directory.
		as_user postgres "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/log" -w -t 30 \
			-o "-p $PG_PORT -k $DIR/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null 9>&- ||
			die "PostgreSQL did not start on 127.0.0.1:$PG_PORT, see $DIR/pg/log"
	fi
	wait_for pg_ready || die "PostgreSQL does not accept connections on 127.0.0.1:$PG_PORT, see $DIR/pg/log"
	as_user postgres "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -Atq >/dev/null <<-SQL ||
		SELECT 'CREATE ROLE ${USER_NAME} LOGIN CREATEDB PASSWORD ''${USER_PASS}'''
		WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${USER_NAME}') \gexec
		-- DROP DATABASE … WITH (FORCE) must end any backend on the test database, autovacuum's included.
		GRANT pg_signal_backend TO ${USER_NAME};
	SQL
		die "could not create PostgreSQL user ${USER_NAME}"
}

my_sock() { echo "$DIR/mysql/run/sock"; }
my_ready() { mariadb-admin --socket="$(my_sock)" -uroot ping; }

start_mysql() {
	if [ -n "${SQLMTA_TEST_MYSQL_URL:-}" ]; then return 0; fi
	mkdir -p "$DIR/mysql/run"
	chown -R mysql: "$DIR/mysql" 2>/dev/null || true
	if [ ! -d "$DIR/mysql/data/mysql" ]; then
		mariadb-install-db --datadir="$DIR/mysql/data" --user=mysql --skip-test-db \
			--auth-root-authentication-method=socket >"$DIR/mysql/install.log" 2>&1 ||
			die "mariadb-install-db failed, see $DIR/mysql/install.log"
	fi
	if ! my_ready >/dev/null 2>&1; then
		# setsid + nohup: the server must outlive this script.
		setsid nohup /usr/sbin/mariadbd --no-defaults --datadir="$DIR/mysql/data" --user=mysql \
			--port="$MY_PORT" --bind-address=127.0.0.1 --socket="$(my_sock)" \
			--pid-file="$DIR/mysql/run/pid" --log-error="$DIR/mysql/log" \
			--max-connections=300 --innodb-buffer-pool-size=128M </dev/null >/dev/null 2>&1 9>&- &
		wait_for my_ready || die "MariaDB did not start on 127.0.0.1:$MY_PORT, see $DIR/mysql/log"
	fi
	# Anonymous users (''@'localhost') would shadow ours on 127.0.0.1; create ours for every host form.
	mariadb --socket="$(my_sock)" -uroot <<-SQL >/dev/null || die "could not create MariaDB user ${USER_NAME}"
		DELETE FROM mysql.global_priv WHERE User = '';
		FLUSH PRIVILEGES;
		CREATE USER IF NOT EXISTS '${USER_NAME}'@'localhost' IDENTIFIED BY '${USER_PASS}';
		CREATE USER IF NOT EXISTS '${USER_NAME}'@'127.0.0.1' IDENTIFIED BY '${USER_PASS}';
		CREATE USER IF NOT EXISTS '${USER_NAME}'@'%' IDENTIFIED BY '${USER_PASS}';
		GRANT ALL PRIVILEGES ON *.* TO '${USER_NAME}'@'localhost', '${USER_NAME}'@'127.0.0.1', '${USER_NAME}'@'%';
	SQL
}

write_env() {
	{
		echo "export SQLMTA_TEST_PG_URL='${SQLMTA_TEST_PG_URL:-$PG_URL}'"
		echo "export SQLMTA_TEST_MYSQL_URL='${SQLMTA_TEST_MYSQL_URL:-$MY_URL}'"
	} >"$DIR/env.tmp"
	mv "$DIR/env.tmp" "$DIR/env"
}

cmd_start() {
	install_packages
	mkdir -p "$DIR"
	chmod 755 "$DIR"
	# Several test runs may start the servers at once: serialise on a lock.
	exec 9>"$DIR/.lock"
	flock 9
	start_pg
	start_mysql
	write_env
	echo "testdb.sh: databases ready; eval \"\$($0 env)\"" >&2
}

cmd_env() {
	if [ -f "$DIR/env" ]; then
		cat "$DIR/env"
	else
		die "not started: run $0 start"
	fi
}

cmd_stop() {
	if [ -z "${SQLMTA_TEST_PG_URL:-}" ] && pg_running; then
		as_user postgres "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -m fast -w stop >/dev/null || echo "testdb.sh: PostgreSQL stop failed" >&2
	fi
	if [ -z "${SQLMTA_TEST_MYSQL_URL:-}" ] && [ -f "$DIR/mysql/run/pid" ]; then
		local pid
		pid="$(cat "$DIR/mysql/run/pid")"
		mariadb-admin --socket="$(my_sock)" -uroot shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
		wait_for sh -c "! kill -0 $pid 2>/dev/null" || echo "testdb.sh: MariaDB (pid $pid) did not stop" >&2
	fi
	rm -rf "$DIR"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
*) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
