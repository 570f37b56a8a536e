#!/bin/sh
# Installs the pinned @grpc/grpc-js-xds and @grpc/grpc-js (package.json and
# package-lock.json beside this script) into DIR, through test/tools/npm-ci.sh
# (npm ci, once per lock; exit 77 without node or npm). No install script is
# needed: grpc-js is pure JavaScript, re2-wasm and xxhash-wasm ship their
# WebAssembly. crosscheck.py then runs grpc_js_client.js with NODE_PATH=DIR/node_modules.
# usage: test/tools/xds/npm-install.sh [DIR]   (default: $HOME/.cache/outrigger-xds-grpc-js)
here=$(cd "$(dirname "$0")" && pwd)
exec sh "$here/../npm-ci.sh" "$here" "${1:-${HOME:-/root}/.cache/outrigger-xds-grpc-js}" @grpc/grpc-js-xds @grpc/grpc-js
