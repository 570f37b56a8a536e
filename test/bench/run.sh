#!/usr/bin/env bash
# Outrigger's core benchmark: the same wrk load, in one run, straight to an nginx
# upstream and through HAProxy, NGINX and Outrigger (one worker/thread each).
# Prints medians over RUNS runs and Outrigger's ratios against HAProxy, then the
# idle-memory figures. Loopback only; every step is bounded in time.
#
#   test/bench/run.sh            # load + memory (RUNS=3 DURATION=10 by default)
#   test/bench/run.sh load       # only the load part
#   test/bench/run.sh memory     # only the memory part
#   test/bench/run.sh memory-burst  # RSS after a 100x burst and 60 s of quiet, against HAProxy and NGINX (memory_burst.py)
#   test/bench/run.sh chaos      # endpoints killed and stalled under load (chaos.py)
#   test/bench/run.sh chaos-mesh # resets, reloads, certificate rotation, collector gone, in an mTLS mesh (chaos_mesh.py)
#   test/bench/run.sh soak       # 30 minutes of HTTP/1.1, HTTP/2 and gRPC through an mTLS mesh (soak.py; SOAK_ARGS=--ci: 3)
#   test/bench/run.sh tracing    # Outrigger without tracing, and sampling 1 % and 100 %
#   test/bench/run.sh tls        # mTLS handshakes and keep-alive mTLS requests against HAProxy (tls.sh)
#   test/bench/run.sh overload   # 2x the capacity, with and without the overload limit (overload.py)
#   test/bench/run.sh framing    # request-smuggling vectors against HAProxy and NGINX (framing_diff.py)
#   test/bench/run.sh h2         # HTTP/2 (h2load) against HAProxy, idle h2c memory (h2.sh)
#   test/bench/run.sh grpc       # gRPC unary latency added at a fixed rate (grpc.sh)
#   test/bench/run.sh tcp        # opaque TCP (iperf3) against HAProxy, latency of protocol detection (tcp.sh)
#   test/bench/run.sh interception  # iptables interception against a plain listener, in network namespaces (interception.sh)
#   OUTRIGGER_BIN=path RUNS=5 DURATION=15 IDLE_CONNS=5000 test/bench/run.sh
#   BASELINE_BIN=path test/bench/run.sh   # also an older Outrigger ("baseline"), for an A/B in one run
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
what=${1:-all}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
IDLE_CONNS=${IDLE_CONNS:-5000}

"$root/docker/install-deps.sh" bench
if [ -z "${OUTRIGGER_BIN:-}" ]; then
  "$root/docker/build.sh" build >/dev/null
  OUTRIGGER_BIN="$root/build/release/outrigger"
fi
if [ "$what" = chaos ]; then  # its own endpoints and schedule: test/bench/chaos.py
  exec timeout 900 python3 "$here/chaos.py" --outrigger "$OUTRIGGER_BIN"
fi
if [ "$what" = chaos-mesh ]; then  # resets, reloads, rotation, collector gone: test/bench/chaos_mesh.py
  exec timeout 900 /usr/bin/python3 "$here/chaos_mesh.py" --outrigger "$OUTRIGGER_BIN"
fi
if [ "$what" = soak ]; then  # a bounded soak through an mTLS mesh: test/bench/soak.py
  # shellcheck disable=SC2086  # SOAK_ARGS is a list of options
  exec timeout 2400 /usr/bin/python3 "$here/soak.py" --outrigger "$OUTRIGGER_BIN" ${SOAK_ARGS:-}
fi
if [ "$what" = overload ]; then  # 2x the capacity, with and without the limit: test/bench/overload.py
  exec timeout 300 /usr/bin/python3 "$here/overload.py" --outrigger "$OUTRIGGER_BIN"
fi
if [ "$what" = framing ]; then  # smuggling vectors against HAProxy and NGINX: test/bench/framing_diff.py
  exec timeout 900 /usr/bin/python3 "$here/framing_diff.py" --outrigger "$OUTRIGGER_BIN"
fi
if [ "$what" = memory-burst ]; then  # RSS after a burst, against HAProxy and NGINX: test/bench/memory_burst.py
  exec timeout 1800 /usr/bin/python3 "$here/memory_burst.py" --outrigger "$OUTRIGGER_BIN" --runs "$RUNS"
fi
if [ "$what" = h2 ]; then  # HTTP/2 against HAProxy: test/bench/h2.sh
  OUTRIGGER_BIN="$OUTRIGGER_BIN" exec timeout 1200 "$here/h2.sh"
fi
if [ "$what" = grpc ]; then  # gRPC latency, direct and through Outrigger: test/bench/grpc.sh
  OUTRIGGER_BIN="$OUTRIGGER_BIN" exec timeout 900 "$here/grpc.sh"
fi
if [ "$what" = tcp ]; then  # opaque TCP against HAProxy, protocol detection: test/bench/tcp.sh
  OUTRIGGER_BIN="$OUTRIGGER_BIN" exec timeout 900 "$here/tcp.sh"
fi
if [ "$what" = interception ]; then  # iptables interception against a plain listener: test/bench/interception.sh
  OUTRIGGER_BIN="$OUTRIGGER_BIN" exec timeout 900 "$here/interception.sh"
fi
if [ "$what" = tls ]; then  # mTLS against HAProxy: test/bench/tls.sh
  OUTRIGGER_BIN="$OUTRIGGER_BIN" exec timeout 1200 "$here/tls.sh"
fi
ulimit -n "$(ulimit -Hn)"  # 5,000 idle clients need a few more descriptors than the default

work=$(mktemp -d /tmp/outrigger-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=lib.sh
. "$here/lib.sh"

# one kB figure from /proc/PID/status
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
to_us() {  # wrk latency "512.00us" / "1.20ms" / "1.01s" -> microseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n }'
}

# --- the upstream: one nginx worker answering "ok" -------------------------
up_port=$(free_port)
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
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$up_port;
    location / { return 200 "ok\n"; }
    location = /api/v2/spans { return 202; }  # the Zipkin collector of the tracing runs
  }
}
CONF
nginx -c "$work/up/nginx.conf" -p "$work/up" &
pids+=($!)
wait_port "$up_port"

# --- the proxies ------------------------------------------------------------
hap_port=$(free_port)
cat >"$work/haproxy.cfg" <<CONF
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
  bind 127.0.0.1:$hap_port
  default_backend upstream
backend upstream
  server up 127.0.0.1:$up_port
CONF
haproxy -f "$work/haproxy.cfg" -db >/dev/null 2>&1 &
hap_pid=$!
pids+=($hap_pid)

ngx_port=$(free_port)
mkdir -p "$work/ngx/logs"
cat >"$work/ngx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $work/ngx/nginx.pid;
error_log $work/ngx/logs/error.log;
worker_rlimit_nofile 20000;
events { worker_connections 12000; }
http {
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$up_port; keepalive 64; }
  server {
    listen 127.0.0.1:$ngx_port;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
nginx -c "$work/ngx/nginx.conf" -p "$work/ngx" &
ngx_pid=$!
pids+=($ngx_pid)

out_port=$(free_port)
out_admin=$(free_port)
cat >"$work/outrigger.yaml" <<CONF
admin: { address: 127.0.0.1:$out_admin }
workers: 1
log_level: warn
listeners:
  - name: bench
    address: 127.0.0.1:$out_port
    idle_timeout: 5m
    routes:
      - cluster: upstream
        timeout: 15s
clusters:
  - name: upstream
    endpoints: [127.0.0.1:$up_port]
CONF
"$OUTRIGGER_BIN" run -c "$work/outrigger.yaml" 2>"$work/outrigger.log" &
out_pid=$!
pids+=($out_pid)
for p in "$hap_port" "$ngx_port" "$out_port"; do wait_port "$p"; done

declare -A port_of=([direct]=$up_port [haproxy]=$hap_port [nginx]=$ngx_port [outrigger]=$out_port)
declare -A pid_of=([direct]=$(cat "$work/up/nginx.pid") [haproxy]=$hap_pid [nginx]=$ngx_pid [outrigger]=$out_pid)
targets=(direct haproxy nginx outrigger)
memory_targets=(haproxy nginx outrigger)
if [ -n "${BASELINE_BIN:-}" ]; then  # the same config on other ports, for an A/B in this run
  base_port=$(free_port)
  base_admin=$(free_port)
  sed -e "s/127.0.0.1:$out_admin/127.0.0.1:$base_admin/" -e "s/127.0.0.1:$out_port/127.0.0.1:$base_port/" \
    "$work/outrigger.yaml" >"$work/baseline.yaml"
  "$BASELINE_BIN" run -c "$work/baseline.yaml" 2>"$work/baseline.log" &
  pid_of[baseline]=$!
  pids+=($!)
  port_of[baseline]=$base_port
  wait_port "$base_port"
  targets+=(baseline)
  memory_targets+=(baseline)
fi
declare -A admin_of_trace

# Tracing overhead: the same Outrigger with the tracing filter, sampling 1 % and
# 100 %, reporting to a live collector (the upstream nginx answers 202).
if [ "$what" = tracing ]; then
  for rate in 0.01 1; do
    t=trace_$rate
    tp=$(free_port)
    ta=$(free_port)
    cat >"$work/$t.yaml" <<CONF
admin: { address: 127.0.0.1:$ta }
workers: 1
log_level: warn
tracing: { service_name: bench, collector_cluster: zipkin, sample_rate: $rate }
listeners:
  - name: bench
    address: 127.0.0.1:$tp
    idle_timeout: 5m
    filters: [{ type: tracing }]
    routes:
      - cluster: upstream
        timeout: 15s
clusters:
  - name: upstream
    endpoints: [127.0.0.1:$up_port]
  - name: zipkin
    endpoints: [127.0.0.1:$up_port]
CONF
    "$OUTRIGGER_BIN" run -c "$work/$t.yaml" 2>"$work/$t.log" &
    pid_of[$t]=$!
    pids+=($!)
    port_of[$t]=$tp
    admin_of_trace[$rate]=$ta
    wait_port "$tp"
  done
  targets=(outrigger trace_0.01 trace_1)
fi
declare -A idle_rss
for t in "${memory_targets[@]}"; do idle_rss[$t]=$(status_kb "${pid_of[$t]}" VmRSS); done

load() {
  local ticks
  ticks=$(getconf CLK_TCK)
  declare -A rps p50 p99 cpu
  echo "load: wrk -t1 -c$CONNS -d${DURATION}s, $RUNS runs per target, medians" >&2
  for t in "${targets[@]}"; do
    timeout 30 wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:${port_of[$t]}/" >/dev/null  # warm-up
  done
  for run in $(seq "$RUNS"); do
    for t in "${targets[@]}"; do
      local pid=${pid_of[$t]} c0 c1 out requests
      c0=$(cpu_ticks "$pid")
      out=$(timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:${port_of[$t]}/")
      c1=$(cpu_ticks "$pid")
      requests=$(awk '/requests in/ {print $1}' <<<"$out")
      rps[$t]+="$(awk '/Requests\/sec/ {print $2}' <<<"$out") "
      p50[$t]+="$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")") "
      p99[$t]+="$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")") "
      cpu[$t]+="$(awk -v d=$((c1 - c0)) -v r="$requests" -v hz="$ticks" 'BEGIN {printf "%.2f", d * 1e6 / hz / r}') "
      echo "  run $run $t: $(awk '/Requests\/sec/ {print $2}' <<<"$out") req/s" >&2
    done
  done
  declare -A m
  printf '\n| target | requests/s | p50 (us) | p99 (us) | proxy CPU per request (us) | peak RSS (MB) |\n|---|---|---|---|---|---|\n'
  for t in "${targets[@]}"; do
    for k in rps p50 p99 cpu; do
      local -n arr=$k
      m[$t.$k]=$(tr ' ' '\n' <<<"${arr[$t]}" | grep -v '^$' | median)
    done
    local cpu_col=${m[$t.cpu]} rss
    rss=$(awk -v k="$(status_kb "${pid_of[$t]}" VmHWM)" 'BEGIN {printf "%.1f", k / 1024}')
    [ "$t" = direct ] && cpu_col="-" && rss="-"
    printf '| %s | %.0f | %.0f | %.0f | %s | %s |\n' "$t" "${m[$t.rps]}" "${m[$t.p50]}" "${m[$t.p99]}" "$cpu_col" "$rss"
  done
  if [ "$what" = tracing ]; then
    for rate in 0.01 1; do
      printf 'Tracing at sample_rate %s / off: CPU per request %.3f, p99 %.2f\n' "$rate" \
        "$(awk -v a="${m[trace_$rate.cpu]}" -v b="${m[outrigger.cpu]}" 'BEGIN {print a / b}')" \
        "$(awk -v a="${m[trace_$rate.p99]}" -v b="${m[outrigger.p99]}" 'BEGIN {print a / b}')"
      curl -s "http://127.0.0.1:${admin_of_trace[$rate]}/metrics" | grep '^outrigger_tracing_spans' | sed 's/^/  /'
    done
    return
  fi
  printf '\nOutrigger / HAProxy: CPU per request %.2f, p99 %.2f, requests/s %.2f\n' \
    "$(awk -v a="${m[outrigger.cpu]}" -v b="${m[haproxy.cpu]}" 'BEGIN {print a / b}')" \
    "$(awk -v a="${m[outrigger.p99]}" -v b="${m[haproxy.p99]}" 'BEGIN {print a / b}')" \
    "$(awk -v a="${m[outrigger.rps]}" -v b="${m[haproxy.rps]}" 'BEGIN {print a / b}')"
  printf 'Outrigger / NGINX:   CPU per request %.2f\n' \
    "$(awk -v a="${m[outrigger.cpu]}" -v b="${m[nginx.cpu]}" 'BEGIN {print a / b}')"
  if [ -n "${BASELINE_BIN:-}" ]; then
    printf 'Baseline / HAProxy:  CPU per request %.2f; Outrigger / baseline %.3f\n' \
      "$(awk -v a="${m[baseline.cpu]}" -v b="${m[haproxy.cpu]}" 'BEGIN {print a / b}')" \
      "$(awk -v a="${m[outrigger.cpu]}" -v b="${m[baseline.cpu]}" 'BEGIN {print a / b}')"
  fi
}

memory() {
  echo >&2
  echo "memory: $IDLE_CONNS idle keep-alive connections after one request each" >&2
  printf '\n| proxy | idle RSS (MB) | per idle keep-alive connection (KB) |\n|---|---|---|\n'
  for t in "${memory_targets[@]}"; do
    local pid=${pid_of[$t]} before after
    before=$(status_kb "$pid" VmRSS)
    python3 "$here/idle_conns.py" "${port_of[$t]}" "$IDLE_CONNS" "$work/$t.ready" 60 &
    local client=$!
    for _ in $(seq 600); do [ -e "$work/$t.ready" ] && break; sleep 0.1; done
    sleep 1  # let the proxy settle (Outrigger releases lingering read buffers after 100 ms)
    after=$(status_kb "$pid" VmRSS)
    kill "$client" 2>/dev/null || true
    wait "$client" 2>/dev/null || true
    printf '| %s | %.1f | %.2f |\n' "$t" "$(awk -v k="${idle_rss[$t]}" 'BEGIN {print k / 1024}')" \
      "$(awk -v a="$after" -v b="$before" -v n="$IDLE_CONNS" 'BEGIN {print (a - b) / n}')"
    sleep 1
  done
}

case "$what" in
  load) load ;;
  tracing) load ;;
  memory) memory ;;
  all) load; memory ;;
  *) echo "usage: $0 [load|memory|memory-burst|all|chaos|chaos-mesh|soak|overload|tracing|tls|framing|h2|grpc|tcp|interception]" >&2; exit 2 ;;
esac
