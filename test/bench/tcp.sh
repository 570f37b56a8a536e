#!/usr/bin/env bash
# The opaque-TCP benchmark: Outrigger and HAProxy, in one run, one thread each.
#   1. Throughput and CPU per byte: iperf3 (-P 1, -P 4, and -P 1 -R) for
#      DURATION seconds straight to an `iperf3 -s` upstream, through HAProxy
#      (`mode tcp`, nbthread 1) and through Outrigger (a `protocol: tcp`
#      listener, workers: 1). Per target: Gbit/s (iperf3 -J,
#      end.sum_received), the proxy's CPU seconds (utime+stime from
#      /proc/PID/stat over the run) and GB moved per CPU-second; then
#      Outrigger / HAProxy.
#   2. What protocol detection adds to a new connection: conn_latency.py
#      (CONN_N new connections per target, one `GET /` with `Connection:
#      close` each, the targets in turn in a random order each round) to an
#      nginx upstream directly, through Outrigger's plain HTTP listener and
#      through its detecting listener (`protocol: auto` with a `cluster`);
#      p50/p99 and detect - plain.
#   3. Memory per idle tunnel: IDLE_TUNNELS connections held open through
#      each proxy (idle_tunnels.py: one byte each, then nothing), RSS growth
#      per connection once it settles.
# Targets interleaved, RUNS runs each, medians. Loopback only; every step is
# bounded in time. A binary that will not start with this config is reported,
# the rest is measured, and the script exits 1.
#
#   test/bench/tcp.sh                                  # RUNS=3 DURATION=10 CONN_N=2000
#   OUTRIGGER_BIN=build/release/outrigger RUNS=5 DURATION=15 test/bench/tcp.sh
#   RUNS=1 DURATION=3 CONN_N=500 REVERSE=0 test/bench/tcp.sh   # a quick check
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
PARALLEL=${PARALLEL:-1 4}  # iperf3 -P values, each a scenario
REVERSE=${REVERSE:-1}      # 1: also -P 1 -R (the upstream sends)
CONN_N=${CONN_N:-2000}     # connections per conn_latency.py run
IDLE_TUNNELS=${IDLE_TUNNELS:-2000}  # idle connections per proxy for the memory figure
OUTRIGGER_BIN=$(realpath -m "${OUTRIGGER_BIN:-$root/build/release/outrigger}")
py=/usr/bin/python3

for tool in iperf3 haproxy nginx curl; do
  command -v "$tool" >/dev/null || { echo "tcp.sh: $tool is not installed" >&2; exit 1; }
done

work=$(mktemp -d /tmp/outrigger-tcp-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=lib.sh
. "$here/lib.sh"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
diff_us() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%+.0f", a - b }'; }
alive() { kill -0 "$1" 2>/dev/null && ! grep -q ' Z ' "/proc/$1/stat" 2>/dev/null; }
med() {  # "v v v " [decimals=2] -> their median, or "-"
  if [ -n "${1// /}" ]; then tr ' ' '\n' <<<"$1" | grep -v '^$' | median | xargs printf "%.${2:-2}f"; else echo "-"; fi
}

# --- the upstreams: iperf3 -s, and one nginx worker answering "ok" ----------
iperf_port=$(free_port)
iperf3 -s -B 127.0.0.1 -p "$iperf_port" >"$work/iperf3.log" 2>&1 &
pids+=($!)
web_port=$(free_port)
mkdir -p "$work/web/logs"
cat >"$work/web/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $work/web/nginx.pid;
error_log $work/web/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$web_port;
    location / { return 200 "ok\n"; }
  }
}
CONF
nginx -c "$work/web/nginx.conf" -p "$work/web" &
pids+=($!)
wait_port "$iperf_port"
wait_port "$web_port"

# --- HAProxy: mode tcp, one thread ------------------------------------------
hap_port=$(free_port)
cat >"$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 1000
defaults
  mode tcp
  timeout connect 1s
  timeout client 1m
  timeout server 1m
frontend bench
  bind 127.0.0.1:$hap_port
  default_backend iperf
backend iperf
  server up 127.0.0.1:$iperf_port
CONF
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
hap_pid=$!
pids+=("$hap_pid")
wait_port "$hap_port"

# --- Outrigger: an opaque TCP listener, a plain HTTP one, a detecting one ---
out_tcp=$(free_port)
out_http=$(free_port)
out_detect=$(free_port)
out_admin=$(free_port)
cat >"$work/outrigger.yaml" <<CONF
workers: 1
admin: { address: 127.0.0.1:$out_admin }
log_level: warn
listeners:
  - name: tcp
    address: 127.0.0.1:$out_tcp
    protocol: tcp
    cluster: iperf
  - name: http
    address: 127.0.0.1:$out_http
    routes: [{ match: { prefix: / }, cluster: web }]
  - name: detect
    address: 127.0.0.1:$out_detect
    protocol: auto
    cluster: web_tcp
    routes: [{ match: { prefix: / }, cluster: web }]
clusters:
  - name: iperf
    endpoints: [127.0.0.1:$iperf_port]
  - name: web
    endpoints: [127.0.0.1:$web_port]
  - name: web_tcp
    endpoints: [127.0.0.1:$web_port]
CONF
out_pid=""
out_problem=""
if [ ! -x "$OUTRIGGER_BIN" ]; then
  out_problem="$OUTRIGGER_BIN is not an executable"
else
  "$OUTRIGGER_BIN" run -c "$work/outrigger.yaml" >"$work/outrigger.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  out_problem="not ready after 10 s with the tcp/detect config (admin /ready never answered 200)"
  for _ in $(seq 200); do  # ready: /ready is 200 once every listener is bound
    if ! alive "$pid"; then
      out_problem="exited at startup with the tcp/detect config"
      break
    fi
    if [ "$(timeout 2 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$out_admin/ready" 2>/dev/null)" = 200 ]; then
      out_pid=$pid
      out_problem=""
      break
    fi
    sleep 0.05
  done
  if [ -z "$out_pid" ]; then kill "$pid" 2>/dev/null || true; fi
fi
if [ -n "$out_problem" ]; then
  {
    echo "outrigger: FAILED: $out_problem"
    echo "  (listener 'protocol: tcp' with 'cluster:', and 'protocol: auto' with 'cluster:' for detection)"
    [ -s "$work/outrigger.log" ] && head -8 "$work/outrigger.log" | sed 's/^/  | /'
    echo "  outrigger skipped; direct and haproxy are measured"
  } >&2
fi

# --- 1. throughput and CPU per byte ----------------------------------------
declare -A port_of=([direct]=$iperf_port [haproxy]=$hap_port) pid_of=([haproxy]=$hap_pid)
targets=(direct haproxy)
if [ -n "$out_pid" ]; then
  port_of[outrigger]=$out_tcp
  pid_of[outrigger]=$out_pid
  targets+=(outrigger)
fi
scenarios=()
declare -A label
for p in $PARALLEL; do scenarios+=("p$p"); label[p$p]="-P $p"; done
if [ "$REVERSE" = 1 ]; then scenarios+=(r1); label[r1]="-P 1 -R"; fi
iperf_args() {  # scenario -> iperf3 options
  case "$1" in
    r*) echo "-P ${1#r} -R" ;;
    p*) echo "-P ${1#p}" ;;
  esac
}
# port seconds options... -> "bits_per_second bytes" of end.sum_received, or fails
iperf() {
  local port=$1 secs=$2 json
  shift 2
  if ! json=$(timeout $((secs + 20)) iperf3 -c 127.0.0.1 -p "$port" -t "$secs" --connect-timeout 2000 -J "$@" 2>&1); then
    $py -c 'import json,sys
try: print("iperf3:", json.loads(sys.stdin.read()).get("error", "failed"))
except Exception: print("iperf3: failed or timed out")' <<<"$json" >&2
    return 1
  fi
  $py -c 'import json,sys; s = json.load(sys.stdin)["end"]["sum_received"]; print(s["bits_per_second"], s["bytes"])' <<<"$json"
}

ticks=$(getconf CLK_TCK)
declare -A gbps cpus gbcpu m
echo "throughput: iperf3 -t ${DURATION}s ($(for s in "${scenarios[@]}"; do printf '[%s] ' "${label[$s]}"; done)), $RUNS runs per target, medians" >&2
for t in "${targets[@]}"; do  # warm-up
  iperf "${port_of[$t]}" 2 -P 1 >/dev/null || echo "  warm-up $t failed" >&2
done
for run in $(seq "$RUNS"); do
  for s in "${scenarios[@]}"; do
    for t in "${targets[@]}"; do
      k=$t.$s
      pid=${pid_of[$t]:-}
      if [ -n "$pid" ] && ! alive "$pid"; then
        echo "  run $run ${label[$s]} $t: the proxy is gone" >&2
        continue
      fi
      c0=0
      [ -n "$pid" ] && c0=$(cpu_ticks "$pid")
      # shellcheck disable=SC2046
      if ! r=$(iperf "${port_of[$t]}" "$DURATION" $(iperf_args "$s")); then
        echo "  run $run ${label[$s]} $t: failed" >&2
        continue
      fi
      read -r bps bytes <<<"$r"
      g=$(awk -v b="$bps" 'BEGIN {printf "%.2f", b / 1e9}')
      gbps[$k]+="$g "
      if [ -n "$pid" ]; then
        c1=$(cpu_ticks "$pid")
        cs=$(awk -v d=$((c1 - c0)) -v hz="$ticks" 'BEGIN {printf "%.2f", d / hz}')
        cpus[$k]+="$cs "
        gbcpu[$k]+="$(awk -v d=$((c1 - c0)) -v hz="$ticks" -v n="$bytes" 'BEGIN { if (d > 0) printf "%.2f", n / 1e9 / (d / hz); else print "-" }') "
        echo "  run $run ${label[$s]} $t: $g Gbit/s, proxy CPU ${cs} s" >&2
      else
        echo "  run $run ${label[$s]} $t: $g Gbit/s" >&2
      fi
    done
  done
done
for s in "${scenarios[@]}"; do
  for t in direct haproxy outrigger; do
    k=$t.$s
    m[$k.gbps]=$(med "${gbps[$k]:-}")
    m[$k.cpu]=$(med "${cpus[$k]:-}")
    m[$k.gbcpu]=$(med "$(tr -d '-' <<<"${gbcpu[$k]:-}")")
  done
done

# --- 2. latency added by protocol detection --------------------------------
declare -A lport=([direct]=$web_port)
ltargets=(direct)
if [ -n "$out_pid" ]; then
  lport[http]=$out_http
  lport[detect]=$out_detect
  ltargets+=(http detect)
fi
declare -A llabel=([direct]="direct (nginx)" [http]="outrigger plain HTTP" [detect]="outrigger detecting")
declare -A p50 p99 lerr
field() { $py -c "import json,sys; v = json.loads(sys.argv[1])[sys.argv[2]]; print('-' if v is None else v)" "$1" "$2"; }
ports=$(for t in "${ltargets[@]}"; do printf '%s,' "${lport[$t]}"; done)
ports=${ports%,}
# n -> one JSON line per target, in the order of ltargets: the connections go to
# the targets in turn, so that drift on the machine hits them alike
latency() { timeout 90 $py "$here/conn_latency.py" "$ports" "$1" 60; }
echo >&2
echo "connection latency: $CONN_N new connections per target, one GET each (Connection: close), targets in turn, $RUNS runs, medians" >&2
latency 200 >/dev/null || echo "  warm-up: a target had no successful connection" >&2
for run in $(seq "$RUNS"); do
  if [ -n "$out_pid" ] && ! alive "$out_pid"; then
    echo "  run $run: outrigger is gone" >&2
    break
  fi
  out=$(latency "$CONN_N") || echo "  run $run: a target had no successful connection, or the run timed out" >&2
  i=0
  while IFS= read -r line; do
    t=${ltargets[$i]}
    i=$((i + 1))
    echo "  run $run ${llabel[$t]}: $line" >&2
    [ "$(field "$line" n)" = 0 ] && continue
    p50[$t]+="$(field "$line" p50_us) "
    p99[$t]+="$(field "$line" p99_us) "
    lerr[$t]+="$(field "$line" errors) "
  done <<<"$out"
done
for t in direct http detect; do
  m[$t.p50]=$(med "${p50[$t]:-}" 1)
  m[$t.p99]=$(med "${p99[$t]:-}" 1)
  m[$t.err]=$(awk '{s = 0; for (i = 1; i <= NF; i++) s += $i; print (NF ? s : "-")}' <<<"${lerr[$t]:-}")
done

# --- 3. memory per idle tunnel ----------------------------------------------
# Fresh proxies of their own, to an upstream that holds what it accepts.
idle_up=$(free_port)
idle_hap=$(free_port)
idle_out=$(free_port)
idle_admin=$(free_port)
sed -e "s/127.0.0.1:$hap_port/127.0.0.1:$idle_hap/" -e "s/127.0.0.1:$iperf_port/127.0.0.1:$idle_up/" \
  -e "s/maxconn 1000/maxconn $((IDLE_TUNNELS + 100))/" "$work/haproxy.cfg" >"$work/haproxy-idle.cfg"
haproxy -f "$work/haproxy-idle.cfg" -db >"$work/haproxy-idle.log" 2>&1 &
idle_hap_pid=$!
pids+=("$idle_hap_pid")
cat >"$work/outrigger-idle.yaml" <<CONF
workers: 1
admin: { address: 127.0.0.1:$idle_admin }
log_level: warn
listeners:
  - { name: tcp, address: 127.0.0.1:$idle_out, protocol: tcp, cluster: hold }
clusters:
  - { name: hold, endpoints: [127.0.0.1:$idle_up] }
CONF
idle_out_pid=""
if [ -n "$out_pid" ]; then
  "$OUTRIGGER_BIN" run -c "$work/outrigger-idle.yaml" >"$work/outrigger-idle.log" 2>&1 &
  idle_out_pid=$!
  pids+=("$idle_out_pid")
  wait_port "$idle_out"
fi
wait_port "$idle_hap"
declare -A idle_kb=([haproxy]="-" [outrigger]="-")
idle_kb[haproxy]=$(timeout 120 "$py" "$here/idle_tunnels.py" --pid "$idle_hap_pid" --port "$idle_hap" \
  --upstream-port "$idle_up" --conns "$IDLE_TUNNELS" || echo "-")
if [ -n "$idle_out_pid" ]; then
  idle_kb[outrigger]=$(timeout 120 "$py" "$here/idle_tunnels.py" --pid "$idle_out_pid" --port "$idle_out" \
    --upstream-port "$idle_up" --conns "$IDLE_TUNNELS" || echo "-")
fi

# --- report -----------------------------------------------------------------
printf '\n| iperf3 | target | Gbit/s | proxy CPU (s) | GB per proxy CPU-second |\n|---|---|---|---|---|\n'
for s in "${scenarios[@]}"; do
  for t in direct haproxy outrigger; do
    printf '| %s | %s | %s | %s | %s |\n' "${label[$s]}" "$t" "${m[$t.$s.gbps]}" "${m[$t.$s.cpu]}" "${m[$t.$s.gbcpu]}"
  done
done
printf '\n| proxy | per idle tunnel (KB), %s connections |\n|---|---|\n' "$IDLE_TUNNELS"
for t in haproxy outrigger; do printf '| %s | %s |\n' "$t" "${idle_kb[$t]}"; done
printf '\n| listener | new connection + GET, p50 (us) | p99 (us) | errors (all runs) |\n|---|---|---|---|\n'
for t in direct http detect; do
  printf '| %s | %s | %s | %s |\n' "${llabel[$t]}" "${m[$t.p50]}" "${m[$t.p99]}" "${m[$t.err]}"
done

echo
echo "summary (medians of $RUNS runs, iperf3 -t ${DURATION}s, $CONN_N connections per latency run):"
for s in "${scenarios[@]}"; do
  printf '  Outrigger / HAProxy (iperf3 %s): throughput %s, bytes per CPU-second %s\n' "${label[$s]}" \
    "$(ratio "${m[outrigger.$s.gbps]}" "${m[haproxy.$s.gbps]}")" \
    "$(ratio "${m[outrigger.$s.gbcpu]}" "${m[haproxy.$s.gbcpu]}")"
done
printf '  Memory per idle tunnel: Outrigger %s KB, HAProxy %s KB\n' "${idle_kb[outrigger]}" "${idle_kb[haproxy]}"
printf '  Detection adds (detecting - plain HTTP listener): p50 %s us, p99 %s us\n' \
  "$(diff_us "${m[detect.p50]}" "${m[http.p50]}")" "$(diff_us "${m[detect.p99]}" "${m[http.p99]}")"
printf '  Outrigger plain HTTP listener adds (plain - direct): p50 %s us, p99 %s us\n' \
  "$(diff_us "${m[http.p50]}" "${m[direct.p50]}")" "$(diff_us "${m[http.p99]}" "${m[direct.p99]}")"
if [ -n "$out_pid" ] && ! alive "$out_pid"; then
  out_problem="exited during the benchmark"
  tail -5 "$work/outrigger.log" | sed 's/^/  | /' >&2
fi
if [ -n "$out_problem" ]; then
  echo "  outrigger: FAILED: $out_problem (see above); its figures are '-'"
  exit 1
fi
