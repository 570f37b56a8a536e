#!/bin/sh
# Prints Secrets for the demo mesh: a CA (made here, kept in DIR) and, per
# service, a certificate for spiffe://cluster.local/ns/NAMESPACE/sa/SERVICE
# with its key, as outrigger-certs-SERVICE (tls.crt, tls.key, ca.crt).
#   config/kubernetes/make-certs.sh [DIR] | kubectl apply -f -
# A real mesh takes these from its own CA (cert-manager, SPIRE, a control plane);
# the proxy picks up a renewed Secret without a restart.
set -eu
dir=${1:-./outrigger-demo-ca}
namespace=${NAMESPACE:-outrigger-demo}
services=${SERVICES:-web api}
days=${DAYS:-30}
mkdir -p "$dir"
if [ ! -f "$dir/ca.crt" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=$namespace mesh CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
fi
b64() { base64 -w0 "$1"; }
for svc in $services; do
  id="spiffe://cluster.local/ns/$namespace/sa/$svc"
  printf 'subjectAltName=URI:%s,DNS:%s.%s.svc.cluster.local\n' "$id" "$svc" "$namespace" >"$dir/$svc.ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$svc" \
    -keyout "$dir/$svc.key" -out "$dir/$svc.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$svc.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days "$days" -extfile "$dir/$svc.ext" -out "$dir/$svc.crt" 2>/dev/null
  cat <<YAML
---
apiVersion: v1
kind: Secret
metadata:
  name: outrigger-certs-$svc
  namespace: $namespace
  labels: { app: $svc, outrigger.io/identity: $svc }
type: Opaque
data:
  tls.crt: $(b64 "$dir/$svc.crt")
  tls.key: $(b64 "$dir/$svc.key")
  ca.crt: $(b64 "$dir/ca.crt")
YAML
done
