#!/bin/sh
# Installs the pinned schema validator of validate.mjs (kubernetes-models, yaml:
# package.json and package-lock.json beside this script) into DIR, through
# test/tools/npm-ci.sh (npm ci, once per lock; exit 77 without node or npm).
# The packages declare node >= 22; they run on Debian 12's node 18 and on 20
# (checked), so the engine warning is only a warning.
# usage: test/tools/kube/npm-install.sh [DIR]   (default: $HOME/.cache/outrigger-kube-validate)
here=$(cd "$(dirname "$0")" && pwd)
exec sh "$here/../npm-ci.sh" "$here" "${1:-${HOME:-/root}/.cache/outrigger-kube-validate}" kubernetes-models yaml
