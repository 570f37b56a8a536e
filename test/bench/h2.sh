#!/usr/bin/env bash
# The HTTP/2 benchmark: Outrigger and HAProxy, in one run, one thread each,
# cleartext HTTP/2 (h2c, prior knowledge) from h2load in front of one nginx
# worker answering "ok". Targets interleaved, RUNS runs each, medians:
#   1. "h2c -> h1": h2load -c10 -m100 to the proxy, HTTP/1.1 keep-alive upstream;
#   2. "h2c -> h2": the same with an h2c upstream (Outrigger: a cluster with
#      `protocol: http2`; a binary without that key is reported and skipped);
#   3. memory per idle h2c client connection (idle_h2_conns.py), fresh proxies.
# Per target: requests/s (h2load), proxy CPU per request (utime+stime from
# /proc/PID/stat over the run / requests succeeded), and Outrigger / HAProxy.
# Loopback only; every step is bounded in time.
#
#   test/bench/h2.sh                                   # RUNS=3 DURATION=10 IDLE_CONNS=2000
#   OUTRIGGER_BIN=build/release/outrigger RUNS=5 DURATION=15 test/bench/h2.sh
#   RUNS=1 DURATION=5 IDLE_CONNS=500 test/bench/h2.sh   # a quick check
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-10}      # h2load -c: client connections
STREAMS=${STREAMS:-100} # h2load -m: concurrent streams per connection
IDLE_CONNS=${IDLE_CONNS:-2000}
OUTRIGGER_BIN=$(realpath "${OUTRIGGER_BIN:-$root/build/release/outrigger}")

for tool in h2load haproxy nginx curl; do
  command -v "$tool" >/dev/null || { echo "h2.sh: $tool is not installed" >&2; exit 1; }
done
if ! dpkg -s python3-h2 >/dev/null 2>&1; then  # the idle-connection client's framing
  timeout 300 apt-get install -y python3-h2 >/dev/null
fi
ulimit -n "$(ulimit -Hn)"  # the idle clients need a few more descriptors than the default

work=$(mktemp -d /tmp/outrigger-h2-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=lib.sh
. "$here/lib.sh"

status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

# --- the upstream: one nginx worker answering "ok", HTTP/1.1 and h2c ---------
up_h1=$(free_port)
up_h2=$(free_port)
mkdir -p "$work/up/logs"
cat >"$work/up/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/up/nginx.pid;
error_log $work/up/logs/error.log;
worker_rlimit_nofile 20000;
events { worker_connections 12000; }
http {
  access_log off;
  keepalive_requests 1000000;  # also the requests per h2 connection (http2_max_requests is obsolete)
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$up_h1;
    listen 127.0.0.1:$up_h2 http2;  # cleartext: h2c with prior knowledge
    location / { return 200 "ok\n"; }
  }
}
CONF
nginx -c "$work/up/nginx.conf" -p "$work/up" &
pids+=($!)
wait_port "$up_h1"
wait_port "$up_h2"

# --- the proxies: one per upstream protocol --------------------------------
declare -A port_of pid_of up_of=([h1]=$up_h1 [h2]=$up_h2)

start_haproxy() {  # name upstream(h1|h2): h2c frontend; sets port_of/pid_of
  local port
  port=$(free_port)
  cat >"$work/$1.cfg" <<CONF
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 1s
  timeout client 5m
  timeout server 30s
  timeout http-keep-alive 5m
  http-reuse always
frontend bench
  bind 127.0.0.1:$port proto h2
  default_backend upstream
backend upstream
  server up 127.0.0.1:${up_of[$2]}$([ "$2" = h2 ] && echo " proto h2")
CONF
  haproxy -f "$work/$1.cfg" -db >"$work/$1.log" 2>&1 &
  pid_of[$1]=$!
  pids+=($!)
  port_of[$1]=$port
  wait_port "$port"
}

# The pool keeps up to 1024 idle upstream connections per endpoint, as HAProxy
# keeps all of them: 10 x 100 streams over HTTP/1.1 are 1,000 requests in flight,
# and the default 64 would close and reopen connections all along.
start_outrigger() {  # name upstream(h1|h2) what: 0 once it listens, 1 if it would not start
  local port admin pid
  port=$(free_port)
  admin=$(free_port)
  cat >"$work/$1.yaml" <<CONF
admin: { address: 127.0.0.1:$admin }
workers: 1
log_level: warn
listeners:
  - name: bench
    address: 127.0.0.1:$port
    protocol: http2
    idle_timeout: 5m
    routes:
      - cluster: upstream
        timeout: 15s
clusters:
  - name: upstream
    endpoints: [127.0.0.1:${up_of[$2]}]
    connection_pool: { max_idle_per_endpoint: 1024 }
CONF
  [ "$2" = h2 ] && echo "    protocol: http2" >>"$work/$1.yaml"
  "$OUTRIGGER_BIN" run -c "$work/$1.yaml" 2>"$work/$1.log" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do
    if ! kill -0 "$pid" 2>/dev/null || grep -q ' Z ' "/proc/$pid/stat" 2>/dev/null; then
      break
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      pid_of[$1]=$pid
      port_of[$1]=$port
      return 0
    fi
    sleep 0.05
  done
  kill "$pid" 2>/dev/null || true
  # why: the keys this binary does not know, else its first complaint
  if grep -q "listeners\[0\]: unknown key 'protocol'" "$work/$1.log"; then
    echo "outrigger: listener protocol http2 not supported by this binary" >&2
  fi
  if grep -q "clusters\[0\]: unknown key 'protocol'" "$work/$1.log"; then
    echo "outrigger: cluster protocol http2 not supported by this binary" >&2
  fi
  if ! grep -q "unknown key 'protocol'" "$work/$1.log"; then
    echo "outrigger: did not start: $(head -c 300 "$work/$1.log" | head -3)" >&2
  fi
  echo "  (outrigger skipped for $3)" >&2
  return 1
}

h2_ok() {  # port: one h2c GET answered "ok"
  [ "$(timeout 5 curl -s --http2-prior-knowledge "http://127.0.0.1:$1/" 2>/dev/null)" = ok ]
}

scenarios=(h1 h2)
declare -A label=([h1]="h2c -> h1" [h2]="h2c -> h2")
declare -A targets_of
for s in "${scenarios[@]}"; do
  targets_of[$s]=""
  start_haproxy "haproxy_$s" "$s"
  if h2_ok "${port_of[haproxy_$s]}"; then
    targets_of[$s]+="haproxy "
  else
    echo "haproxy (${label[$s]}): no answer to an h2c GET; skipped" >&2
  fi
  if start_outrigger "outrigger_$s" "$s" "${label[$s]}"; then
    if h2_ok "${port_of[outrigger_$s]}"; then
      targets_of[$s]+="outrigger "
    else
      echo "outrigger (${label[$s]}): no answer to an h2c GET; skipped" >&2
      kill "${pid_of[outrigger_$s]}" 2>/dev/null || true
    fi
  fi
done

# --- load -------------------------------------------------------------------
ticks=$(getconf CLK_TCK)
declare -A rps cpu failed m
echo "load: h2load -c$CONNS -m$STREAMS -D ${DURATION}s, $RUNS runs per target, medians" >&2
for s in "${scenarios[@]}"; do
  for t in ${targets_of[$s]}; do  # warm-up
    timeout 30 h2load -c"$CONNS" -m"$STREAMS" -D 2 "http://127.0.0.1:${port_of[${t}_$s]}/" >/dev/null 2>&1 || true
  done
done
for run in $(seq "$RUNS"); do
  for s in "${scenarios[@]}"; do
    for t in ${targets_of[$s]}; do
      k=${t}_$s
      pid=${pid_of[$k]}
      c0=$(cpu_ticks "$pid")
      out=$(timeout $((DURATION + 30)) h2load -c"$CONNS" -m"$STREAMS" -D "$DURATION" "http://127.0.0.1:${port_of[$k]}/" 2>&1) || true
      c1=$(cpu_ticks "$pid")
      r=$(awk '/^finished in/ {print $4 + 0}' <<<"$out")
      ok=$(awk '/^requests:/ {for (i = 2; i <= NF; i++) if ($i == "succeeded,") print $(i - 1)}' <<<"$out")
      bad=$(awk '/^requests:/ {for (i = 2; i <= NF; i++) if ($i == "failed,") print $(i - 1)}' <<<"$out")
      if [ -z "$r" ] || [ -z "$ok" ] || [ "$ok" = 0 ]; then
        echo "  run $run ${label[$s]} $t: no requests succeeded" >&2
        tail -3 <<<"$out" | sed 's/^/    /' >&2
        continue
      fi
      rps[$k]+="$r "
      failed[$k]+="$bad "
      cpu[$k]+="$(awk -v d=$((c1 - c0)) -v n="$ok" -v hz="$ticks" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}') "
      echo "  run $run ${label[$s]} $t: $r req/s, $ok succeeded, $bad failed" >&2
    done
  done
done
for s in "${scenarios[@]}"; do
  for t in haproxy outrigger; do
    k=${t}_$s
    for v in rps cpu failed; do
      declare -n arr=$v
      if [ -n "${arr[$k]:-}" ]; then
        m[$k.$v]=$(tr ' ' '\n' <<<"${arr[$k]}" | grep -v '^$' | median)
      else
        m[$k.$v]="-"
      fi
      unset -n arr
    done
  done
done

# VmRSS once it stops moving: the same reading 3 times in a row, 100 ms apart
# (at most 5 s), so that nothing still settling is measured.
settled_rss() {
  local last=-1 same=0 now
  for _ in $(seq 50); do
    now=$(status_kb "$1" VmRSS)
    if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; fi
    [ "$same" -ge 2 ] && break
    last=$now
    sleep 0.1
  done
  echo "$now"
}

# --- memory: fresh proxies, idle h2c clients -------------------------------
declare -A mem_idle mem_per
echo >&2
echo "memory: $IDLE_CONNS idle h2c connections after one request each, fresh proxies" >&2
for t in haproxy outrigger; do
  k=${t}_mem
  mem_idle[$t]="-"
  mem_per[$t]="-"
  if [ "$t" = haproxy ]; then start_haproxy "$k" h1; elif ! start_outrigger "$k" h1 memory; then continue; fi
  pid=${pid_of[$k]}
  before=$(settled_rss "$pid")
  mem_idle[$t]=$(awk -v k="$before" 'BEGIN {printf "%.1f", k / 1024}')
  timeout 200 /usr/bin/python3 "$here/idle_h2_conns.py" "${port_of[$k]}" "$IDLE_CONNS" "$work/$k.ready" 120 &
  client=$!
  pids+=("$client")
  for _ in $(seq 1200); do
    { [ -e "$work/$k.ready" ] || ! kill -0 "$client" 2>/dev/null; } && break
    sleep 0.1
  done
  if [ -e "$work/$k.ready" ]; then
    after=$(settled_rss "$pid")  # Outrigger gives idle buffers back after a moment
    mem_per[$t]=$(awk -v a="$after" -v b="$before" -v n="$IDLE_CONNS" 'BEGIN {printf "%.2f", (a - b) / n}')
    echo "  $t: VmRSS $before kB -> $after kB" >&2
  else
    echo "  $t: the idle clients did not all get their answer" >&2
  fi
  kill "$client" 2>/dev/null || true
  wait "$client" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done

# --- report -----------------------------------------------------------------
printf '\n| scenario | target | requests/s | proxy CPU per request (us) | failed requests |\n|---|---|---|---|---|\n'
for s in "${scenarios[@]}"; do
  for t in haproxy outrigger; do
    k=${t}_$s
    rp=${m[$k.rps]}
    [ "$rp" != "-" ] && rp=$(printf '%.0f' "$rp")
    printf '| %s | %s | %s | %s | %s |\n' "${label[$s]}" "$t" "$rp" "${m[$k.cpu]}" "${m[$k.failed]}"
  done
done
echo
for s in "${scenarios[@]}"; do
  printf 'Outrigger / HAProxy (%s): CPU per request %s, requests/s %s\n' "${label[$s]}" \
    "$(ratio "${m[outrigger_$s.cpu]}" "${m[haproxy_$s.cpu]}")" \
    "$(ratio "${m[outrigger_$s.rps]}" "${m[haproxy_$s.rps]}")"
done
printf '\n| proxy | idle RSS (MB) | per idle h2c connection (KB) |\n|---|---|---|\n'
for t in haproxy outrigger; do
  printf '| %s | %s | %s |\n' "$t" "${mem_idle[$t]}" "${mem_per[$t]}"
done
printf 'Outrigger / HAProxy (memory per idle h2c connection): %s\n' "$(ratio "${mem_per[outrigger]}" "${mem_per[haproxy]}")"
