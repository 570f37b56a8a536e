#!/bin/sh
# KubeConfig.DashboardUpToDate: config/kubernetes/grafana-dashboard.yaml is what
# gen-dashboard.sh makes of docs/grafana-dashboard.json now.
# usage: test/kube/dashboard-up-to-date.sh
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$root/config/kubernetes/gen-dashboard.sh" "$tmp" || exit 1
if ! diff -u "$root/config/kubernetes/grafana-dashboard.yaml" "$tmp"; then
  echo "FAIL: config/kubernetes/grafana-dashboard.yaml is stale: run config/kubernetes/gen-dashboard.sh" >&2
  exit 1
fi
echo "config/kubernetes/grafana-dashboard.yaml is up to date with docs/grafana-dashboard.json"
