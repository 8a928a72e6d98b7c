#!/usr/bin/env bash
# Vendors the browser libraries of web/vendor.txt from the npm registry.
#
# A plain line goes to web/static/vendor/<package>/ (embedded and served by
# the server); a line starting with "test:" goes to web/testdata/vendor/<package>/
# (read by the browser tests only, never embedded, never served). Each
# destination gets a VERSIONS file recording every package's exact version and
# the sha256 of its tarball, and each package directory its LICENSE file(s).
#
# The destinations are rebuilt from scratch in a scratch directory and swapped
# in only when every package came through, so a run is idempotent: running it
# twice changes nothing, and a file dropped from vendor.txt disappears.
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null || { echo "make assets needs npm (apt-get install -y npm)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A dests=([static/vendor]=1 [testdata/vendor]=1)
for d in "${!dests[@]}"; do mkdir -p "$tmp/out/$d" && : > "$tmp/out/$d/VERSIONS"; done

while read -r spec files; do
  case $spec in ''|'#'*) continue ;; esac
  out=static/vendor
  if [[ $spec == test:* ]]; then out=testdata/vendor; spec=${spec#test:}; fi
  pkg=${spec%@*}
  version=${spec##*@}
  if [[ -z $files || $pkg == "$spec" || ! $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "vendor.txt: \"$spec $files\" must be <package>@<exact version x.y.z> <file>…"; exit 1
  fi
  mkdir -p "$tmp/pack" "$tmp/x"
  (cd "$tmp/pack" && npm pack --silent "$spec" >/dev/null </dev/null) # stdin is vendor.txt
  tgz=$(ls "$tmp"/pack/*.tgz)
  tar -xzf "$tgz" -C "$tmp/x"
  dir="$tmp/out/$out/$pkg"
  mkdir -p "$dir"
  for f in $files; do
    cp "$tmp/x/package/$f" "$dir/$(basename "$f")"
  done
  licenses=$(ls "$tmp"/x/package/LICENSE* 2>/dev/null || true)
  [[ -n $licenses ]] || { echo "$spec has no LICENSE file: check its license by hand before vendoring it"; exit 1; }
  cp $licenses "$dir/"
  echo "$spec $(sha256sum "$tgz" | cut -d' ' -f1)" >> "$tmp/out/$out/VERSIONS"
  rm -rf "$tmp/x" "$tmp/pack"
done < vendor.txt

for d in "${!dests[@]}"; do
  rm -rf "$d"
  if [[ -s $tmp/out/$d/VERSIONS ]]; then
    mkdir -p "$(dirname "$d")" && cp -r "$tmp/out/$d" "$d"
    echo "vendored into web/$d:"; cat "$d/VERSIONS"
  fi
done
