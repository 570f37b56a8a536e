#!/bin/sh
# Installs the pinned @grpc/grpc-js-xds and @grpc/grpc-js (package.json and
# package-lock.json beside this script) into DIR, as `npm ci` does, and only when
# DIR does not hold this very lock's install already.
# usage: test/tools/xds/npm-install.sh [DIR]   (default: $HOME/.cache/outrigger-xds-grpc-js)
# Exit 0: installed or up to date; 77: node or npm missing (a ctest SKIP); else npm's failure.
# crosscheck.py then runs grpc_js_client.js offline with NODE_PATH=DIR/node_modules.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-${HOME:-/root}/.cache/outrigger-xds-grpc-js}
for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "npm-install.sh: '$tool' not found: install Debian's nodejs and npm (docker/install-deps.sh test); skipping" >&2
    exit 77
  fi
done
# One install at a time into DIR (two build trees, or parallel tests, may share the cache).
if [ -z "${OUTRIGGER_XDS_INSTALL_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  mkdir -p "$dir"
  OUTRIGGER_XDS_INSTALL_LOCKED=1 exec flock "$dir.lock" sh "$0" "$dir"
fi
# Up to date: the lock this install was made from is ours, and both packages are there.
if cmp -s "$here/package-lock.json" "$dir/package-lock.json" \
   && [ -f "$dir/node_modules/@grpc/grpc-js-xds/package.json" ] \
   && [ -f "$dir/node_modules/@grpc/grpc-js/package.json" ] \
   && [ -f "$dir/.installed" ]; then
  echo "npm-install.sh: $dir is up to date"
  exit 0
fi
mkdir -p "$dir"
rm -f "$dir/.installed"
cp "$here/package.json" "$here/package-lock.json" "$dir/"
# npm ci: exactly the lock's versions and integrity hashes; a lock that does not
# match package.json is an error, not an update. No install scripts run: neither
# package needs one (grpc-js is pure JavaScript, re2-wasm and xxhash-wasm ship
# their WebAssembly).
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
touch "$dir/.installed"
echo "npm-install.sh: installed @grpc/grpc-js-xds and @grpc/grpc-js into $dir"
