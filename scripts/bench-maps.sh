#!/usr/bin/env bash
# bench-maps.sh [LINES] — import a LINES-line (default 1,000,000) virtual map with Postfix's
# `postmap hash:FILE` and with ours (`mtactl map import`) on SQLite and, when their URLs are set,
# PostgreSQL (BENCH_PG_URL) and MariaDB (BENCH_MYSQL_URL), in the same run; print times and ratios.
# The URLs name databases the script may fill (database_url form), e.g.
#   BENCH_PG_URL='postgres://sqlmta:sqlmta@127.0.0.1:55432/bench?sslmode=disable'
#   BENCH_MYSQL_URL='mysql://sqlmta:sqlmta@tcp(127.0.0.1:53306)/bench'
set -euo pipefail
LINES="${1:-1000000}"
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

go build -o "$work/mtactl" ./cmd/mtactl
awk -v n="$LINES" 'BEGIN { for (i = 0; i < n; i++) printf "user%d@domain%d.example.com\tmailbox%d@hosting.example.net\n", i, i % 1000, i }' >"$work/virtual"
mkdir -p "$work/pf"
echo "compatibility_level = 3.6" >"$work/pf/main.cf"
# Postfix waits for a main.cf younger than a few seconds to settle (0.3 s pauses, 2.4 s in all); age it.
touch -d "-1 min" "$work/pf/main.cf"

secs() { # secs CMD… — run CMD, print its wall-clock seconds
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

pm=$(secs postmap -c "$work/pf" "hash:$work/virtual")
printf '%-28s %8.2f s\n' "postmap hash: ($LINES lines)" "$pm"

ours() { # ours NAME DATABASE_URL
	mkdir -p "$work/$1"
	echo "database_url = $2" >"$work/$1/main.cf"
	# The first import creates the tables; the timed one replaces a full table, as a re-run of postmap does.
	"$work/mtactl" -c "$work/$1" map import "hash:$work/virtual"
	local s
	s=$(secs "$work/mtactl" -c "$work/$1" map import "hash:$work/virtual")
	printf '%-28s %8.2f s  %5.2f× postmap\n' "ours on $1 (re-import)" "$s" "$(echo "$s / $pm" | bc -l)"
}

ours sqlite "sqlite:$work/sqlmta.db"
[ -n "${BENCH_PG_URL:-}" ] && ours postgres "$BENCH_PG_URL"
[ -n "${BENCH_MYSQL_URL:-}" ] && ours mysql "$BENCH_MYSQL_URL"
exit 0
