#!/usr/bin/env bash
# The TLS benchmark: Outrigger and HAProxy, in one run, each terminating TLS
# with client-certificate verification (mTLS) in front of the same nginx, one
# thread each. Two figures, medians over RUNS runs, as ratios:
#   1. full mTLS handshakes per CPU-second of the proxy: `openssl s_time -new`
#      (a new connection, a full handshake with a client certificate and one
#      HTTP/1.0 GET each; no resumption);
#   2. proxy CPU per request over keep-alive mTLS connections (tls_load.py:
#      pipelined GETs on a few long-lived connections).
# Certificates (EC P-256: a CA, the server's, a client's with a SPIFFE ID) are
# made with `openssl` in the run's temporary directory. Loopback only; every
# step is bounded in time.
#
#   OUTRIGGER_BIN=build/release/outrigger RUNS=3 DURATION=8 test/bench/tls.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
RUNS=${RUNS:-3}
DURATION=${DURATION:-8}
: "${OUTRIGGER_BIN:?set OUTRIGGER_BIN (run.sh tls does)}"
OUTRIGGER_BIN=$(realpath "$OUTRIGGER_BIN")

work=$(mktemp -d /tmp/outrigger-tls-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=lib.sh
. "$here/lib.sh"


# --- certificates -----------------------------------------------------------
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 2 \
  -subj "/CN=bench CA" 2>/dev/null
leaf() {  # name spiffe-id
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=URI:%s,DNS:%s.local\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" "$1" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 1 -extfile "$1.ext" 2>/dev/null
}
leaf server spiffe://cluster.local/ns/bench/sa/server
leaf client spiffe://cluster.local/ns/bench/sa/client
cat server.crt server.key >server.pem

# --- upstream, HAProxy, Outrigger -------------------------------------------
up_port=$(free_port)
mkdir -p up/logs
cat >up/nginx.conf <<CONF
worker_processes 1;
daemon off;
pid $work/up/nginx.pid;
error_log $work/up/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$up_port; location / { return 200 "ok\n"; } }
}
CONF
nginx -c "$work/up/nginx.conf" -p "$work/up" &
pids+=($!)

hap_port=$(free_port)
cat >haproxy.cfg <<CONF
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 1s
  timeout client 1m
  timeout server 30s
  timeout http-keep-alive 1m
  http-reuse always
frontend bench
  bind 127.0.0.1:$hap_port ssl crt $work/server.pem ca-file $work/ca.crt verify required alpn http/1.1
  default_backend upstream
backend upstream
  server up 127.0.0.1:$up_port
CONF
haproxy -f haproxy.cfg -db >/dev/null 2>&1 &
hap_pid=$!
pids+=($hap_pid)

out_port=$(free_port)
cat >outrigger.yaml <<CONF
admin: { address: 127.0.0.1:$(free_port) }
workers: 1
log_level: warn
listeners:
  - name: bench
    address: 127.0.0.1:$out_port
    tls: { cert: $work/server.crt, key: $work/server.key, ca: $work/ca.crt }
    routes: [{ cluster: upstream }]
clusters:
  - { name: upstream, endpoints: [127.0.0.1:$up_port] }
CONF
"$OUTRIGGER_BIN" run -c outrigger.yaml 2>outrigger.log &
out_pid=$!
pids+=($out_pid)
for p in "$up_port" "$hap_port" "$out_port"; do wait_port "$p"; done

declare -A port_of=([haproxy]=$hap_port [outrigger]=$out_port) pid_of=([haproxy]=$hap_pid [outrigger]=$out_pid)
ticks=$(getconf CLK_TCK)
declare -A hs ka

handshakes() {  # target -> handshakes per proxy CPU-second
  local t=$1 c0 c1 out n
  c0=$(cpu_ticks "${pid_of[$t]}")
  out=$(timeout $((DURATION + 30)) openssl s_time -connect "127.0.0.1:${port_of[$t]}" -new -www / \
    -cert client.crt -key client.key -CAfile ca.crt -time "$DURATION" 2>/dev/null)
  c1=$(cpu_ticks "${pid_of[$t]}")
  n=$(awk '/connections in .* real seconds/ {print $1; exit}' <<<"$out")
  awk -v n="$n" -v d=$((c1 - c0)) -v hz="$ticks" 'BEGIN {printf "%.0f", n / (d / hz)}'
}

keepalive() {  # target -> proxy CPU microseconds per request
  local t=$1 c0 c1 n
  c0=$(cpu_ticks "${pid_of[$t]}")
  n=$(timeout $((DURATION + 60)) python3 "$here/tls_load.py" "${port_of[$t]}" ca.crt client.crt client.key "$DURATION" \
    "${LOAD_PROCS:-2}" "${LOAD_CONNS:-8}" "${LOAD_BATCH:-1}")
  c1=$(cpu_ticks "${pid_of[$t]}")
  awk -v n="$n" -v d=$((c1 - c0)) -v hz="$ticks" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}'
}

echo "tls: $RUNS runs of ${DURATION}s per target and test, medians" >&2
for t in haproxy outrigger; do handshakes "$t" >/dev/null; done  # warm-up
for run in $(seq "$RUNS"); do
  for t in haproxy outrigger; do
    h=$(handshakes "$t")
    k=$(keepalive "$t")
    hs[$t]+="$h "
    ka[$t]+="$k "
    echo "  run $run $t: $h handshakes per CPU-second, $k CPU us per keep-alive request" >&2
  done
done
declare -A m
printf '\n| proxy | full mTLS handshakes per CPU-second | CPU per keep-alive mTLS request (us) |\n|---|---|---|\n'
for t in haproxy outrigger; do
  m[$t.hs]=$(tr ' ' '\n' <<<"${hs[$t]}" | grep -v '^$' | median)
  m[$t.ka]=$(tr ' ' '\n' <<<"${ka[$t]}" | grep -v '^$' | median)
  printf '| %s | %.0f | %.2f |\n' "$t" "${m[$t.hs]}" "${m[$t.ka]}"
done
printf '\nOutrigger / HAProxy: handshakes per CPU-second %.2f (target >= 1), CPU per keep-alive request %.2f (target <= 1.1)\n' \
  "$(awk -v a="${m[outrigger.hs]}" -v b="${m[haproxy.hs]}" 'BEGIN {print a / b}')" \
  "$(awk -v a="${m[outrigger.ka]}" -v b="${m[haproxy.ka]}" 'BEGIN {print a / b}')"
