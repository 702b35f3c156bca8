#!/usr/bin/env bash
# Runs every test with real databases: starts throwaway PostgreSQL and MariaDB
# (scripts/testdb.sh) unless given, installs the real peers the tests use,
# and stops the servers afterwards. Arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v smtp-sink >/dev/null || [ -x /usr/sbin/smtp-sink ] || need+=(postfix)
command -v swaks >/dev/null || need+=(swaks)
command -v dovecot >/dev/null || [ -x /usr/sbin/dovecot ] || need+=(dovecot-core)
[ -e /usr/lib/dovecot/lmtp ] || need+=(dovecot-lmtpd)
command -v postgrey >/dev/null || [ -x /usr/sbin/postgrey ] || need+=(postgrey)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test peers: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"

if [ -z "${SQLMTA_TEST_PG_URL:-}" ] || [ -z "${SQLMTA_TEST_MYSQL_URL:-}" ]; then
  bash scripts/testdb.sh start
  # Stop only the servers started here: testdb.sh leaves alone a database whose URL was given, and the
  # eval below sets both URLs in this shell.
  given_pg="${SQLMTA_TEST_PG_URL:-}" given_my="${SQLMTA_TEST_MYSQL_URL:-}"
  trap 'SQLMTA_TEST_PG_URL="$given_pg" SQLMTA_TEST_MYSQL_URL="$given_my" bash scripts/testdb.sh stop' EXIT
fi
eval "$(bash scripts/testdb.sh env)"
go test "$@" ./...
# Each fuzz target for a short while (20,000 executions); a failing input lands in testdata/fuzz/.
bash scripts/fuzz.sh
