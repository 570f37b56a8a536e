#!/bin/sh
# KubeSchema.Negative: the validator must reject data/broken.yaml (exit 1) with
# exactly the problems, by field path, that data/broken.expected lists.
# usage: test/kube/negative.sh MODULES_DIR
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$here/run-node.sh" "$1" "$here/../tools/kube/validate.mjs" - <"$here/data/broken.yaml" >"$out"
rc=$?
[ "$rc" -eq 77 ] && exit 77
cat "$out"
if [ "$rc" -ne 1 ]; then
  echo "FAIL: validate.mjs exited $rc on data/broken.yaml; expected 1 (problems found)" >&2
  exit 1
fi
if ! diff -u "$here/data/broken.expected" "$out" >&2; then
  echo "FAIL: the problems found differ from data/broken.expected (above: - expected, + found)" >&2
  exit 1
fi
echo "data/broken.yaml: rejected with the expected $(wc -l <"$out") problems"
