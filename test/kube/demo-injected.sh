#!/bin/sh
# KubeConfig.DemoInjected: config/kubernetes/demo-injected.yaml is what
# `outrigger inject` makes of demo.yaml now (regenerate it with the command below).
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUTRIGGER" >&2; exit 2; }
here=$(cd "$(dirname "$0")/../../config/kubernetes" && pwd)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$1" inject -f "$here/demo.yaml" >"$tmp"
if ! diff -u "$here/demo-injected.yaml" "$tmp"; then
  echo "FAIL: regenerate it: outrigger inject -f config/kubernetes/demo.yaml > config/kubernetes/demo-injected.yaml" >&2
  exit 1
fi
echo "demo-injected.yaml is up to date"
