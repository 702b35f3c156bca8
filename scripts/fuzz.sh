#!/bin/sh
# fuzz.sh runs every Go fuzz target in the repository for $FUZZTIME each
# (default 10s). A failing input lands in the package's testdata/fuzz/ and
# the script exits non-zero, so CI shows it; commit the input with the fix.
set -eu
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
status=0
for pkg in $(go list ./...); do
	# -list prints matching names and then "ok <pkg>"; keep the names.
	targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for t in $targets; do
		echo "== $pkg $t ($fuzztime)"
		# -run ^$ skips the unit tests; -fuzz needs a pattern matching one target.
		if ! go test -run '^$' -fuzz "^$t\$" -fuzztime "$fuzztime" "$pkg"; then
			echo "FAIL: $pkg $t" >&2
			status=1
		fi
	done
done
exit $status
