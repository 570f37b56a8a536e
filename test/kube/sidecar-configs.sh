#!/bin/sh
# KubeConfig.SidecarConfigs: every sidecar config that config/kubernetes/outrigger-config.yaml
# embeds (ConfigMaps with the key outrigger.yaml) passes `outrigger validate`.
# The configs read their certificates from /etc/outrigger/certs (the Secret the pod
# mounts), which is not here: this makes a CA and, per ConfigMap outrigger-config-NAME,
# a certificate for spiffe://cluster.local/ns/outrigger-demo/sa/NAME, and validates a
# copy of the config that points at them. Everything else is validated as written.
# usage: test/kube/sidecar-configs.sh OUTRIGGER MODULES_DIR
# Exit 77 (a ctest SKIP) without node or openssl.
set -u
[ $# -eq 2 ] || { echo "usage: $0 OUTRIGGER MODULES_DIR" >&2; exit 2; }
outrigger=$1; modules=$2
here=$(cd "$(dirname "$0")" && pwd)
manifest="$here/../../config/kubernetes/outrigger-config.yaml"
command -v openssl >/dev/null 2>&1 || { echo "sidecar-configs.sh: openssl not found: skipping" >&2; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
get() { "$here/run-node.sh" "$modules" "$here/../tools/kube/configmap-data.mjs" "$@"; }
names=$(get --list "$manifest" outrigger.yaml)
rc=$?
[ "$rc" -eq 0 ] || exit "$rc"   # 77 without node
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=outrigger-demo test CA" \
  -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null || { echo "FAIL: openssl could not make the CA" >&2; exit 1; }
failed=0
for cm in $names; do
  svc=${cm#outrigger-config-}
  certs="$tmp/$svc"
  mkdir -p "$certs"
  cp "$tmp/ca.crt" "$certs/ca.crt"
  printf 'subjectAltName=URI:spiffe://cluster.local/ns/outrigger-demo/sa/%s,DNS:%s.outrigger-demo.svc\n' "$svc" "$svc" >"$tmp/$svc.ext"
  if ! openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$svc" \
         -keyout "$certs/tls.key" -out "$tmp/$svc.csr" 2>/dev/null \
     || ! openssl x509 -req -in "$tmp/$svc.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial -days 1 \
         -extfile "$tmp/$svc.ext" -out "$certs/tls.crt" 2>/dev/null; then
    echo "FAIL: openssl could not make $svc's certificate" >&2; exit 1
  fi
  get "$manifest" "$cm" outrigger.yaml | sed "s|/etc/outrigger/certs/|$certs/|g" >"$tmp/$cm.yaml"
  if grep -q /etc/outrigger/ "$tmp/$cm.yaml"; then
    echo "FAIL: $cm: a path under /etc/outrigger/ other than the certificates:" >&2
    grep -n /etc/outrigger/ "$tmp/$cm.yaml" >&2
    failed=1
  fi
  if "$outrigger" validate -c "$tmp/$cm.yaml"; then
    echo "$cm: outrigger validate ok (certificates: test ones)"
  else
    echo "FAIL: $cm: outrigger validate (the config as validated: above, with its line numbers)" >&2
    cat -n "$tmp/$cm.yaml" >&2
    failed=1
  fi
done
exit "$failed"
