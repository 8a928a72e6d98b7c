#!/usr/bin/env bash
# Builds a local Go vulnerability database for govulncheck from the golang.org/x/vulndb
# module, so that `make vuln` needs only the Go module proxy.
#
# usage: scripts/vulndb.sh <golang.org/x/vulndb@version> <output directory>
#
# The module carries every report as an OSV file (data/osv/GO-*.json); its own
# cmd/indexdb turns that folder into the v1 layout that `govulncheck -db file://DIR`
# reads (index/db.json, index/modules.json, index/vulns.json, ID/GO-*.json). The
# OSV files in the repository leave "modified" at the zero time (the published
# database sets it from git history), so index/db.json is given the snapshot's time,
# taken from the module's pseudo-version; govulncheck reports it as the database's date.
#
# A database already built for this version is kept and reused; it is built in a
# scratch directory and moved in whole, so an interrupted run leaves nothing half-made.
set -euo pipefail
GO=${GO:-go}
mod=${1:?usage: vulndb.sh golang.org/x/vulndb@VERSION OUTDIR}
out=${2:?usage: vulndb.sh golang.org/x/vulndb@VERSION OUTDIR}
version=${mod##*@}
if [[ ${mod%@*} != golang.org/x/vulndb || ! $version =~ ^v0\.0\.0-([0-9]{14})-[0-9a-f]{12}$ ]]; then
  echo "vulndb.sh: $mod must be golang.org/x/vulndb@<pseudo-version>"; exit 1
fi
if [[ -f $out/index/db.json ]]; then exit 0; fi

ts=${BASH_REMATCH[1]}
modified="${ts:0:4}-${ts:4:2}-${ts:6:2}T${ts:8:2}:${ts:10:2}:${ts:12:2}Z"
src=$("$GO" mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [[ ! -d $src/data/osv ]]; then echo "vulndb.sh: $mod has no data/osv"; exit 1; fi

mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "$out.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Run outside the project module, so that cmd/indexdb resolves with its own go.mod.
(cd "$tmp" && "$GO" run "golang.org/x/vulndb/cmd/indexdb@$version" -vulns "$src/data/osv" -out "$tmp/db")
printf '{"modified":"%s"}' "$modified" > "$tmp/db/index/db.json"
gzip -9 -n -c "$tmp/db/index/db.json" > "$tmp/db/index/db.json.gz"
n=$(find "$tmp/db/ID" -name 'GO-*.json' | wc -l)
if (( n < 1000 )); then echo "vulndb.sh: only $n entries in $mod"; exit 1; fi
rm -rf "$out"
mv "$tmp/db" "$out"
echo "vulndb: $n entries from $mod, modified $modified, in $out"
