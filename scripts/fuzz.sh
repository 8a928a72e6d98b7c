#!/usr/bin/env bash
# Runs every fuzzer of the module for FUZZTIME each (default 5s): each
# package's test binary is built once with the fuzzing instrumentation, then
# run once per fuzzer from the package's folder, so its testdata/fuzz seeds
# are read. What the fuzzers find is kept between runs in FUZZ_CACHE; with
# FUZZ_SAVE=1 up to 32 of the smallest inputs of each fuzzer are added to
# its package's testdata/fuzz, where every `go test` replays them. A crash
# fails the run, its input written to testdata/fuzz by Go.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
time=${FUZZTIME:-5s}
cache=${FUZZ_CACHE:-$($GO env GOCACHE)/fabgate-fuzz}
bins=$(mktemp -d)
trap 'rm -rf "$bins"' EXIT
n=0
while IFS='=' read -r pkg dir; do
  fuzzers=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u || true)
  [ -n "$fuzzers" ] || continue
  bin="$bins/$(echo "$pkg" | tr / _).test"
  $GO test -c -fuzz=. -o "$bin" "$pkg"
  for f in $fuzzers; do
    n=$((n + 1))
    echo "== $pkg $f"
    (cd "$dir" && "$bin" -test.run='^$' -test.fuzz="^$f\$" -test.fuzztime="$time" -test.fuzzcachedir="$cache/$pkg")
    if [ -n "${FUZZ_SAVE:-}" ] && [ -d "$cache/$pkg/$f" ]; then
      mkdir -p "$dir/testdata/fuzz/$f"
      # shellcheck disable=SC2012 # the names are hashes
      ls -S -r "$cache/$pkg/$f" | head -n 32 | while read -r c; do
        cp -n "$cache/$pkg/$f/$c" "$dir/testdata/fuzz/$f/"
      done
    fi
  done
done < <($GO list -f '{{.ImportPath}}={{.Dir}}' ./...)
echo "$n fuzzers ran for $time each"
