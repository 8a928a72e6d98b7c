#!/usr/bin/env bash
# Writes the data file of a previous FabGate release for the upgrade test
# (cmd/fabgate/upgrade_test.go): builds fabgate at COMMIT in a temporary
# worktree, runs its demo lab, taps badges and makes a calendar feed through
# its API so that every kind of record is in the file, stops it and keeps
# the gzipped file as cmd/fabgate/testdata/upgrade/schema-vN.db.gz.
#
#   scripts/upgrade-fixture.sh COMMIT N
#
# Run it when a release changes the schema: COMMIT is the last commit of
# the release before (schema N), and the test is pointed at the new file.
# Needs curl; ports 18080 and 18883 free.
set -euo pipefail
commit=${1:?usage: upgrade-fixture.sh COMMIT SCHEMA-VERSION}
version=${2:?usage: upgrade-fixture.sh COMMIT SCHEMA-VERSION}
root=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; git -C "$root" worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git -C "$root" worktree add -q --detach "$work/src" "$commit"
(cd "$work/src" && go build -o "$work/fabgate" ./cmd/fabgate)
mkdir "$work/data"
"$work/fabgate" serve --demo --data "$work/data" --http 127.0.0.1:18080 --mqtt-listen 127.0.0.1:18883 >"$work/serve.log" 2>&1 &
pid=$!
api=http://127.0.0.1:18080/api/v1
for _ in $(seq 1 100); do
	curl -sf http://127.0.0.1:18080/healthz >/dev/null && break
	sleep 0.2
done
token() {
	curl -sf -X POST "$api/auth/login" -H 'Content-Type: application/json' \
		-d "{\"email\":\"$1\",\"password\":\"$2\"}" | sed -E 's/.*"token":"([^"]+)".*/\1/'
}
staff=$(token staff@fabgate.demo demo-staff)
maker=$(token maker@fabgate.demo demo-maker)
tap() {
	curl -sf -X POST "$api/devices/fdm-1/tap" -H "Authorization: Bearer $staff" \
		-H 'Content-Type: application/json' -d "{\"uid\":\"$1\"}"
	echo
	sleep 3 # the simulated reader's re-read window
}
tap 04A2B3C4D5E6F7 # the demo maker: a walk-in session
tap 04A2B3C4D5E6F7 # tap-out
tap 0BADBADBAD01   # an unknown badge, kept for enrolment
tap 04A2B3C4D5E6F7 # a session left open, ended by the shutdown
curl -sf -X POST "$api/me/calendar-feed" -H "Authorization: Bearer $maker" >/dev/null
kill -TERM "$pid"
wait "$pid" || true
pid=
mkdir -p "$root/cmd/fabgate/testdata/upgrade"
gzip -9 -n -c "$work/data/fabgate.db" >"$root/cmd/fabgate/testdata/upgrade/schema-v$version.db.gz"
echo "wrote cmd/fabgate/testdata/upgrade/schema-v$version.db.gz from $commit"
