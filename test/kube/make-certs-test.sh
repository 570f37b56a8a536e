#!/bin/sh
# KubeConfig.MakeCerts: config/kubernetes/make-certs.sh prints valid Secrets whose
# certificates chain to its CA and carry each service's SPIFFE ID.
# usage: test/kube/make-certs-test.sh MODULES_DIR   (exit 77 without openssl or node)
set -u
modules=$1
here=$(cd "$(dirname "$0")" && pwd)
command -v openssl >/dev/null 2>&1 || { echo "make-certs-test.sh: openssl not found: skipping" >&2; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sh "$here/../../config/kubernetes/make-certs.sh" "$tmp/ca" >"$tmp/secrets.yaml" || { echo "FAIL: make-certs.sh" >&2; exit 1; }
sh "$here/run-node.sh" "$modules" "$here/../tools/kube/validate.mjs" "$tmp/secrets.yaml" || exit $?
for svc in web api; do
  grep -q "name: outrigger-certs-$svc" "$tmp/secrets.yaml" || { echo "FAIL: no Secret outrigger-certs-$svc" >&2; exit 1; }
  openssl verify -CAfile "$tmp/ca/ca.crt" "$tmp/ca/$svc.crt" >/dev/null || { echo "FAIL: $svc.crt does not chain to the CA" >&2; exit 1; }
  openssl x509 -in "$tmp/ca/$svc.crt" -noout -ext subjectAltName | grep -q "URI:spiffe://cluster.local/ns/outrigger-demo/sa/$svc" \
    || { echo "FAIL: $svc.crt lacks its SPIFFE ID" >&2; exit 1; }
done
echo "make-certs.sh: 2 Secrets, certificates chain to the CA with their SPIFFE IDs"
