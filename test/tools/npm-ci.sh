#!/bin/sh
# Installs the packages pinned by SRC's package.json and package-lock.json into
# DIR, as `npm ci` does (exactly the lock's versions and integrity hashes; a lock
# that does not match package.json is an error, not an update; no install
# scripts run), and only when DIR does not hold this very lock's install already.
# One install at a time into DIR: build trees and parallel tests may share it.
# The tests then run offline, loading the packages from DIR/node_modules.
# usage: test/tools/npm-ci.sh SRC DIR PACKAGE...   (each PACKAGE must end up in DIR/node_modules)
# Exit 0: installed or up to date; 77: node or npm missing (a ctest SKIP); else npm's failure.
set -eu
src=$(cd "$1" && pwd)
dir=$2
shift 2
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "npm-ci.sh: '$tool' not found: install Debian's nodejs and npm (docker/install-deps.sh test); skipping" >&2
    exit 77
  fi
done
if [ -z "${OUTRIGGER_NPM_CI_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  mkdir -p "$dir"
  OUTRIGGER_NPM_CI_LOCKED=1 exec flock "$dir.lock" sh "$0" "$src" "$dir" "$@"
fi
current=yes
cmp -s "$src/package-lock.json" "$dir/package-lock.json" || current=no
[ -f "$dir/.installed" ] || current=no
for p in "$@"; do
  [ -f "$dir/node_modules/$p/package.json" ] || current=no
done
if [ "$current" = yes ]; then
  echo "npm-ci.sh: $dir is up to date"
  exit 0
fi
mkdir -p "$dir"
rm -f "$dir/.installed"
cp "$src/package.json" "$src/package-lock.json" "$dir/"
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
touch "$dir/.installed"
echo "npm-ci.sh: installed $* into $dir"
