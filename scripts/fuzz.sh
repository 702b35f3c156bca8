#!/bin/sh
# fuzz.sh runs every Go fuzz target in the repository for $FUZZTIME each
# (default 20000x: a count of executions). A failing input lands in the
# package's testdata/fuzz/ and the script exits non-zero, so CI shows it;
# commit the input with the fix. A count rather than a duration: with a
# duration, Go 1.26's fuzz coordinator can report a bare "context deadline
# exceeded" at the deadline on a loaded machine (golang/go#75804, fixed in
# Go 1.27) — a failure with no input behind it.
set -eu
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-20000x}
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
