#!/bin/sh
# Runs a node script of the Kubernetes checks against the packages installed in
# MODULES_DIR (test/tools/kube/npm-install.sh), offline.
# usage: test/kube/run-node.sh MODULES_DIR SCRIPT [ARGS...]
# Exit 77 (a ctest SKIP) when node is missing, or when the packages are missing and
# npm is too (KubeSchema.Install skipped for that); otherwise the script's status.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 MODULES_DIR SCRIPT [ARGS...]" >&2; exit 2; }
dir=$1; script=$2; shift 2
if ! command -v node >/dev/null 2>&1; then
  echo "run-node.sh: node not found (Debian's nodejs; docker/install-deps.sh test): skipping" >&2
  exit 77
fi
if [ ! -f "$dir/node_modules/kubernetes-models/package.json" ] && ! command -v npm >/dev/null 2>&1; then
  echo "run-node.sh: the packages are not in $dir and npm is not there to install them: skipping" >&2
  exit 77
fi
exec node "$script" --modules "$dir" "$@"
