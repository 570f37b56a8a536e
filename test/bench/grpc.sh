#!/usr/bin/env bash
# gRPC unary latency: the same open-loop load (RATE calls/s for DURATION
# seconds, 16-byte messages, grpc-core's Python client from
# test/tools/grpc/grpc_peer.py) straight to a gRPC server and through
# Outrigger (h2c listener, `protocol: http2` cluster, one worker), RUNS runs
# each, interleaved. Prints the medians of p50 and p99 per target and the
# latency Outrigger adds (through - direct). Loopback only; every step is
# bounded in time.
#
#   test/bench/grpc.sh                          # RATE=1000 DURATION=10 RUNS=3
#   OUTRIGGER_BIN=build/release/outrigger RUNS=5 test/bench/grpc.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
RATE=${RATE:-1000}
OUTRIGGER_BIN=$(realpath "${OUTRIGGER_BIN:-$root/build/release/outrigger}")
peer="$root/test/tools/grpc/grpc_peer.py"
py=/usr/bin/python3
$py -c 'import grpc' 2>/dev/null || { echo "grpc.sh: python3-grpcio is not installed for $py" >&2; exit 1; }

work=$(mktemp -d /tmp/outrigger-grpc-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=lib.sh
. "$here/lib.sh"

# --- the gRPC server ----------------------------------------------------------
$py "$peer" server --port 0 >"$work/server.out" 2>"$work/server.err" &
pids+=($!)
for _ in $(seq 200); do grep -q '^LISTENING' "$work/server.out" && break; sleep 0.05; done
up=$(awk '/^LISTENING/ {print $2}' "$work/server.out")
[ -n "$up" ] || { echo "grpc.sh: the gRPC server did not start" >&2; cat "$work/server.err" >&2; exit 1; }

# --- Outrigger ----------------------------------------------------------------
port=$(free_port)
admin=$(free_port)
cat >"$work/outrigger.yaml" <<CONF
admin: { address: 127.0.0.1:$admin }
workers: 1
log_level: warn
listeners:
  - name: grpc
    address: 127.0.0.1:$port
    protocol: http2
    idle_timeout: 5m
    routes: [{ cluster: grpc, timeout: 10s }]
clusters:
  - { name: grpc, protocol: http2, endpoints: [127.0.0.1:$up] }
CONF
"$OUTRIGGER_BIN" run -c "$work/outrigger.yaml" >"$work/outrigger.log" 2>&1 &
pids+=($!)
wait_port "$port"

load() {  # target -> one JSON line
  timeout $((DURATION + 30)) $py "$peer" load --target "127.0.0.1:$1" --rate "$RATE" --duration "$DURATION"
}
field() { $py -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

# a warm-up of each, then interleaved runs
DURATION=2 load "$up" >/dev/null
DURATION=2 load "$port" >/dev/null
echo "grpc unary: $RATE calls/s for ${DURATION}s, $RUNS runs per target, medians"
for run in $(seq "$RUNS"); do
  for target in direct outrigger; do
    p=$up
    [ $target = outrigger ] && p=$port
    out=$(load "$p")
    echo "  run $run $target: $out"
    field "$out" p50_ms >>"$work/$target.p50"
    field "$out" p99_ms >>"$work/$target.p99"
    field "$out" errors >>"$work/$target.errors"
  done
done

echo
echo "| target | p50 (ms) | p99 (ms) | errors (sum) |"
echo "|---|---|---|---|"
for target in direct outrigger; do
  echo "| $target | $(median <"$work/$target.p50") | $(median <"$work/$target.p99") | $(awk "{s += \$1} END {print s}" "$work/$target.errors") |"
done
d50=$(median <"$work/direct.p50"); o50=$(median <"$work/outrigger.p50")
d99=$(median <"$work/direct.p99"); o99=$(median <"$work/outrigger.p99")
awk -v a="$o50" -v b="$d50" -v c="$o99" -v d="$d99" \
  'BEGIN { printf "Outrigger adds: p50 %+.2f ms, p99 %+.2f ms\n", a - b, c - d }'
