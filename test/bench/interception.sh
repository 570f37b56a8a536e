#!/usr/bin/env bash
# The interception benchmark: what `outrigger iptables` (REDIRECT to an
# `original_destination` listener, SO_ORIGINAL_DST, protocol detection) costs
# the proxy per request, against the same path through a plain listener.
#
# Two network namespaces joined by a veth pair on 198.51.100.0/24:
#   peer 198.51.100.2: nginx (one worker) answering `ok` on :80
#   pod  198.51.100.1: Outrigger (workers: 1, UID 2102), wrk (the application,
#                      root), and an nginx "application" on 127.0.0.1:8080
# Scenarios (wrk -t1 -cCONNS --latency, keep-alive):
#   out-plain   pod:  wrk -> 127.0.0.1:10000 (plain listener) -> 198.51.100.2:80; no iptables rules
#   out-redir   pod:  wrk -> http://198.51.100.2:80/, redirected by `outrigger iptables` to
#                     the outbound listener 127.0.0.1:15001 (original_destination) -> 198.51.100.2:80
#   in-plain    peer: wrk -> 198.51.100.1:10001 (plain listener) -> 127.0.0.1:8080; no iptables rules
#   in-redir    peer: wrk -> http://198.51.100.1:8080/, redirected to the inbound listener
#                     :15006 (original_destination, application_address 127.0.0.1) -> 127.0.0.1:8080
# One Outrigger process holds all four listeners, so the config is the same
# in both halves of a pair; a pair differs only in its listener (the routes are
# the same list, to the same cluster). Plain runs have no rules at all: the
# rules are removed (`outrigger iptables --cleanup`) and, where `nft` is
# installed, the emptied nat tables deleted, so that conntrack is off again in
# the pod's namespace. The scenarios are interleaved, RUNS runs each after a
# warm-up, medians. Per scenario: requests/s, p50/p99 (wrk), the proxy's CPU
# per request (utime + stime from /proc/PID/stat over the run / requests,
# also split into user and system), and the requests the listener counted
# (outrigger_downstream_requests_total: a redirect that missed the proxy
# fails the run). Then redirected / plain of CPU per request (target <= 1.3).
#
#   test/bench/interception.sh                     # as root; RUNS=3 DURATION=10 CONNS=32
#   OUTRIGGER_BIN=build/release/outrigger RUNS=5 DURATION=15 test/bench/interception.sh
#   INBOUND=0 RUNS=1 DURATION=3 test/bench/interception.sh   # a quick check, outbound only
#   PERF_DIR=/tmp/prof test/bench/interception.sh   # also one perf-recorded run per scenario
#
# Needs root, ip, iptables, setpriv, wrk, nginx, curl; without root, or where
# network namespaces or veth pairs cannot be made, it says so and exits 0.
# Exits 1 when something does not start or a run fails. Every wait is bounded.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
INBOUND=${INBOUND:-1}  # 0: outbound scenarios only
PROXY_UID=2102
OUTRIGGER_BIN=$(realpath -m "${OUTRIGGER_BIN:-$root/build/release/outrigger}")
# shellcheck source=lib.sh
. "$here/lib.sh"

skip() { echo "interception.sh: skipped: $*"; exit 0; }
fail() { echo "interception.sh: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces and iptables)"
for tool in ip iptables setpriv wrk nginx curl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (docker/install-deps.sh bench; iproute2, iptables, util-linux)"
done
[ -x "$OUTRIGGER_BIN" ] || fail "$OUTRIGGER_BIN is not an executable (build it: cmake --build build/release --target outrigger)"

tag=$$
pod=outrigger-ib-pod-$tag
peer=outrigger-ib-peer-$tag
veth_pod=oibp$tag
veth_peer=oibq$tag
pod_ip=198.51.100.1
peer_ip=198.51.100.2
work=$(mktemp -d /tmp/outrigger-interception-bench.XXXXXX)
chmod 755 "$work"  # the proxy, as UID 2102, reads its config here
pids=()
made=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Deleting a namespace removes its veth end, its addresses and its rules.
  for ns in "${made[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  ip link del "$veth_pod" 2>/dev/null || true  # only if it never left the root namespace
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
alive() { kill -0 "$1" 2>/dev/null && ! grep -q ' Z ' "/proc/$1/stat" 2>/dev/null; }
# ns address port: until something accepts there, 10 s at most
wait_listen() {
  timeout 15 ip netns exec "$1" bash -c '
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/$0/$1") 2>/dev/null && exit 0; sleep 0.05; done; exit 1' "$2" "$3" ||
    fail "nothing listens on $2:$3 in namespace $1 after 10 s"
}
to_us() {  # wrk latency "512.00us" / "1.20ms" / "1.01s" -> microseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n }'
}
med() {  # "v v v " [decimals=2] -> their median, or "-"
  if [ -n "${1// /}" ]; then tr ' ' '\n' <<<"$1" | grep -v '^$' | median | xargs printf "%.${2:-2}f"; else echo "-"; fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

# --- the namespaces ---------------------------------------------------------
for ns in "$pod" "$peer"; do
  ip netns add "$ns" 2>/dev/null || skip "\`ip netns add\` failed: network namespaces are not available here"
  made+=("$ns")
done
ip link add "$veth_pod" type veth peer name "$veth_peer" 2>/dev/null || skip "no veth pairs here"
ip link set "$veth_pod" netns "$pod"
ip link set "$veth_peer" netns "$peer"
ip -n "$pod" addr add "$pod_ip/24" dev "$veth_pod"
ip -n "$peer" addr add "$peer_ip/24" dev "$veth_peer"
for ns_dev in "$pod $veth_pod" "$peer $veth_peer" "$pod lo" "$peer lo"; do
  read -r ns dev <<<"$ns_dev"
  ip -n "$ns" link set "$dev" up
done

# --- nginx: the peer's server, and the pod's application --------------------
start_nginx() {  # name namespace address:port
  mkdir -p "$work/$1/logs"
  cat >"$work/$1/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $work/$1/nginx.pid;
error_log $work/$1/logs/error.log;
worker_rlimit_nofile 20000;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  server {
    listen $3;
    location / { return 200 "ok\n"; }
  }
}
CONF
  ip netns exec "$2" nginx -c "$work/$1/nginx.conf" -p "$work/$1" &  # (not a function: $! is nginx)
  pids+=($!)
}
start_nginx peer-web "$peer" "$peer_ip:80"
wait_listen "$peer" "$peer_ip" 80
if [ "$INBOUND" = 1 ]; then
  start_nginx app "$pod" 127.0.0.1:8080
  wait_listen "$pod" 127.0.0.1 8080
fi

# --- Outrigger: one process, a plain and an intercepting listener each way ---
cat >"$work/outrigger.yaml" <<CONF
workers: 1
admin: { address: 127.0.0.1:9901 }
log_level: warn
listeners:
  - name: out-plain
    address: 127.0.0.1:10000
    direction: outbound
    idle_timeout: 5m
    routes: [{ match: { prefix: / }, cluster: peer-web, timeout: 15s }]
  - name: outbound
    address: 127.0.0.1:15001
    direction: outbound
    original_destination: true
    idle_timeout: 5m
    routes: [{ match: { prefix: / }, cluster: peer-web, timeout: 15s }]
  - name: in-plain
    address: $pod_ip:10001
    direction: inbound
    idle_timeout: 5m
    routes: [{ match: { prefix: / }, cluster: app, timeout: 15s }]
  - name: inbound
    address: 0.0.0.0:15006
    direction: inbound
    original_destination: true
    application_address: 127.0.0.1
    idle_timeout: 5m
    routes: [{ match: { prefix: / }, cluster: app, timeout: 15s }]
clusters:
  - { name: peer-web, endpoints: ["$peer_ip:80"] }
  - { name: app, endpoints: ["127.0.0.1:8080"] }
CONF
chmod 644 "$work/outrigger.yaml"
# ip netns exec and setpriv both exec: $! is the proxy itself.
ip netns exec "$pod" setpriv --reuid "$PROXY_UID" --regid "$PROXY_UID" --clear-groups \
  "$OUTRIGGER_BIN" run -c "$work/outrigger.yaml" >"$work/outrigger.log" 2>&1 &
out_pid=$!
pids+=("$out_pid")
ready=""
for _ in $(seq 200); do  # /ready is 200 once every listener is bound; 10 s at most
  alive "$out_pid" || break
  if [ "$(timeout 2 ip netns exec "$pod" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9901/ready 2>/dev/null)" = 200 ]; then
    ready=1
    break
  fi
  sleep 0.05
done
if [ -z "$ready" ]; then
  head -8 "$work/outrigger.log" | sed 's/^/  | /' >&2
  fail "outrigger did not become ready in 10 s (or exited)"
fi
[ "$(awk '/^Uid:/ {print $2}' "/proc/$out_pid/status")" = "$PROXY_UID" ] || fail "pid $out_pid is not the proxy running as UID $PROXY_UID"

# --- the rules --------------------------------------------------------------
rules=off
rules_on() {
  [ "$rules" = on ] && return 0
  local out
  out=$(timeout 30 ip netns exec "$pod" "$OUTRIGGER_BIN" iptables --proxy-uid "$PROXY_UID" 2>&1) ||
    { echo "$out" | sed 's/^/  | /' >&2; fail "outrigger iptables failed"; }
  [ -n "${iptables_mode:-}" ] || iptables_mode=$(head -1 <<<"$out")
  rules=on
}
rules_off() {
  [ "$rules" = off ] && return 0
  local out
  out=$(timeout 30 ip netns exec "$pod" "$OUTRIGGER_BIN" iptables --cleanup 2>&1) ||
    { echo "$out" | sed 's/^/  | /' >&2; fail "outrigger iptables --cleanup failed"; }
  # The empty nat tables would keep conntrack (and its per-packet cost) on in
  # the namespace: delete them, so that the plain runs have no netfilter at all.
  if command -v nft >/dev/null; then
    for family in ip ip6; do timeout 10 ip netns exec "$pod" nft delete table "$family" nat 2>/dev/null || true; done
  fi
  rules=off
}
# nat tables in the pod's namespace now (0: no NAT hooks, so conntrack is off there;
# "-": no nft to tell). Conntrack entries would not say it: they outlive the hooks.
nat_tables() {
  if command -v nft >/dev/null; then
    timeout 5 ip netns exec "$pod" nft list tables 2>/dev/null | grep -c ' nat$' || true
  else
    echo "-"
  fi
}
# requests a listener has counted (outrigger_downstream_requests_total, all protocols)
listener_requests() {
  timeout 5 ip netns exec "$pod" curl -s http://127.0.0.1:9901/metrics |
    awk -v l="listener=\"$1\"" '/^outrigger_downstream_requests_total\{/ && index($0, l) {s += $NF} END {printf "%.0f\n", s}'
}

# --- the scenarios ----------------------------------------------------------
scenarios=(out-plain out-redir)
[ "$INBOUND" = 1 ] && scenarios+=(in-plain in-redir)
declare -A ns_of=([out-plain]=$pod [out-redir]=$pod [in-plain]=$peer [in-redir]=$peer)
declare -A url_of=([out-plain]="http://127.0.0.1:10000/" [out-redir]="http://$peer_ip:80/"
  [in-plain]="http://$pod_ip:10001/" [in-redir]="http://$pod_ip:8080/")
declare -A listener_of=([out-plain]=out-plain [out-redir]=outbound [in-plain]=in-plain [in-redir]=inbound)
declare -A label_of=([out-plain]="outbound, plain listener" [out-redir]="outbound, intercepted"
  [in-plain]="inbound, plain listener" [in-redir]="inbound, intercepted")
set_rules_for() { case "$1" in *-redir) rules_on ;; *) rules_off ;; esac; }

# A first request each way, checked: through the proxy's intended listener.
for s in "${scenarios[@]}"; do
  set_rules_for "$s"
  before=$(listener_requests "${listener_of[$s]}")
  body=$(timeout 10 ip netns exec "${ns_of[$s]}" curl -s --max-time 5 "${url_of[$s]}" || true)
  after=$(listener_requests "${listener_of[$s]}")
  [ "$body" = ok ] || fail "$s: ${url_of[$s]} answered '$body', not 'ok'"
  [ "$after" -gt "$before" ] || fail "$s: the request did not go through listener ${listener_of[$s]}"
done
# The order of a run: the plain ones, then the intercepted ones (one install,
# one cleanup); every other run the other way round, so that neither half
# always comes first after the rules change.
order=()
for s in "${scenarios[@]}"; do [[ $s == *-plain ]] && order+=("$s"); done
for s in "${scenarios[@]}"; do [[ $s == *-redir ]] && order+=("$s"); done
reversed=()
for s in "${scenarios[@]}"; do [[ $s == *-redir ]] && reversed+=("$s"); done
for s in "${scenarios[@]}"; do [[ $s == *-plain ]] && reversed+=("$s"); done

ticks=$(getconf CLK_TCK)
per() { awk -v d="$1" -v r="$requests" -v hz="$ticks" 'BEGIN {printf "%.3f", d * 1e6 / hz / r}'; }  # ticks -> us per request
declare -A rps p50 p99 cpu ucpu scpu ct cpu_run
echo "interception: wrk -t1 -c$CONNS -d${DURATION}s --latency, $RUNS runs per scenario, medians; proxy pid $out_pid (UID $PROXY_UID, workers: 1)" >&2
for s in "${order[@]}"; do  # warm-up
  set_rules_for "$s"
  timeout 30 ip netns exec "${ns_of[$s]}" wrk -t1 -c"$CONNS" -d2s "${url_of[$s]}" >/dev/null || fail "warm-up $s: wrk failed"
done
echo "  iptables: ${iptables_mode:-?}" >&2
for run in $(seq "$RUNS"); do
  this_run=("${order[@]}")
  [ $((run % 2)) = 0 ] && this_run=("${reversed[@]}")
  for s in "${this_run[@]}"; do
    set_rules_for "$s"
    alive "$out_pid" || { tail -5 "$work/outrigger.log" | sed 's/^/  | /' >&2; fail "the proxy exited"; }
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$out_pid/stat")
    n0=$(listener_requests "${listener_of[$s]}")
    out=$(timeout $((DURATION + 30)) ip netns exec "${ns_of[$s]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${url_of[$s]}") ||
      fail "run $run $s: wrk failed"
    c=$(nat_tables)
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$out_pid/stat")
    n1=$(listener_requests "${listener_of[$s]}")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    [ -n "$requests" ] && [ "$requests" -gt 0 ] || fail "run $run $s: wrk completed no request"
    [ -z "$errors" ] || fail "run $run $s: $errors"
    # Every request wrk completed went through the listener (it may count a few more
    # that wrk cut off at the end of the run).
    [ $((n1 - n0)) -ge "$requests" ] ||
      fail "run $run $s: wrk completed $requests requests, listener ${listener_of[$s]} counted $((n1 - n0))"
    r=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    rps[$s]+="$r "
    p50[$s]+="$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")") "
    p99[$s]+="$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")") "
    cpu[$s]+="$(per $((u1 + s1 - u0 - s0))) "
    ucpu[$s]+="$(per $((u1 - u0))) "
    scpu[$s]+="$(per $((s1 - s0))) "
    ct[$s]+="$c "
    cpu_run[$s.$run]=$(per $((u1 + s1 - u0 - s0)))
    echo "  run $run $s: $r req/s, proxy CPU $(per $((u1 + s1 - u0 - s0))) us/request (user $(per $((u1 - u0))), system $(per $((s1 - s0)))), nat tables $c" >&2
  done
done
# PERF_DIR=dir: one more run per scenario, not in the figures, with `perf record -g`
# on the proxy (dir/<scenario>.data), to see where the difference goes.
if [ -n "${PERF_DIR:-}" ]; then
  command -v perf >/dev/null || fail "PERF_DIR is set but perf is not installed"
  mkdir -p "$PERF_DIR"
  for s in "${order[@]}"; do
    set_rules_for "$s"
    timeout $((DURATION + 30)) ip netns exec "${ns_of[$s]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" "${url_of[$s]}" >/dev/null &
    w=$!
    timeout $((DURATION + 30)) perf record -q -F 499 -g -p "$out_pid" -o "$PERF_DIR/$s.data" -- sleep $((DURATION > 2 ? DURATION - 1 : 1)) \
      >/dev/null 2>&1 || echo "  perf record $s failed" >&2
    wait "$w" || fail "profiled run $s: wrk failed"
  done
  echo "  profiles (not in the figures): $PERF_DIR/<scenario>.data (perf report -i FILE)" >&2
fi
rules_off

declare -A m
for s in "${scenarios[@]}"; do
  m[$s.rps]=$(med "${rps[$s]}" 0)
  m[$s.p50]=$(med "${p50[$s]}" 0)
  m[$s.p99]=$(med "${p99[$s]}" 0)
  m[$s.cpu]=$(med "${cpu[$s]}" 2)
  m[$s.ucpu]=$(med "${ucpu[$s]}" 2)
  m[$s.scpu]=$(med "${scpu[$s]}" 2)
done
printf '\n| scenario | requests/s | p50 (us) | p99 (us) | proxy CPU per request (us) | user | system | nat tables |\n|---|---|---|---|---|---|---|---|\n'
for s in "${scenarios[@]}"; do
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "${label_of[$s]}" "${m[$s.rps]}" "${m[$s.p50]}" "${m[$s.p99]}" \
    "${m[$s.cpu]}" "${m[$s.ucpu]}" "${m[$s.scpu]}" "$(tr ' ' '\n' <<<"${ct[$s]}" | grep -v '^$' | sort -u | paste -sd/)"
done
echo
echo "summary (medians of $RUNS runs, wrk -c$CONNS -d${DURATION}s; target: intercepted / plain CPU per request <= 1.3):"
for d in out in; do
  [ -n "${m[$d-plain.cpu]:-}" ] || continue
  r=$(ratio "${m[$d-redir.cpu]}" "${m[$d-plain.cpu]}")
  paired=""  # the same ratio within each run (the pair measured a few seconds apart), then their median
  for run in $(seq "$RUNS"); do paired+="$(ratio "${cpu_run[$d-redir.$run]}" "${cpu_run[$d-plain.$run]}") "; done
  verdict=met
  awk -v r="$r" 'BEGIN {exit !(r != "-" && r <= 1.3)}' || verdict=MISSED
  printf '  %s: intercepted / plain: CPU per request %s (%s; user %s, system %s; per run %s-> median %s), requests/s %s, p99 %s\n' \
    "$([ "$d" = out ] && echo outbound || echo inbound)" "$r" "$verdict" \
    "$(ratio "${m[$d-redir.ucpu]}" "${m[$d-plain.ucpu]}")" "$(ratio "${m[$d-redir.scpu]}" "${m[$d-plain.scpu]}")" "$paired" "$(med "$paired")" \
    "$(ratio "${m[$d-redir.rps]}" "${m[$d-plain.rps]}")" "$(ratio "${m[$d-redir.p99]}" "${m[$d-plain.p99]}")"
done
