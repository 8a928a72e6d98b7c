#!/usr/bin/env bash
# Vendors the browser libraries of web/vendor.txt from the npm registry into
# web/static/vendor/<package>/, with a VERSIONS file recording what came from where.
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null || { echo "make assets needs npm (apt-get install -y npm)"; exit 1; }
out=static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$tmp/VERSIONS"
grep -v '^\s*#' vendor.txt | grep -v '^\s*$' | while read -r spec files; do
  pkg=${spec%@*}
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  mkdir -p "$tmp/x" && tar -xzf "$tgz" -C "$tmp/x"
  mkdir -p "$out/$pkg"
  for f in $files; do
    cp "$tmp/x/package/$f" "$out/$pkg/$(basename "$f")"
  done
  cp "$tmp/x/package/LICENSE"* "$out/$pkg/" 2>/dev/null || true
  echo "$spec $(sha256sum "$tgz" | cut -d' ' -f1)" >> "$tmp/VERSIONS"
  rm -rf "$tmp/x" "$tgz"
done
cp "$tmp/VERSIONS" "$out/VERSIONS"
echo "vendored into web/$out:"; cat "$out/VERSIONS"
