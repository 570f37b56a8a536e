#!/usr/bin/python3
"""gRPC peers of the soak and chaos benchmarks (grpc-core's Python, python3-grpcio).

  grpc_upstream.py serve --port P [--fault-percent F] --stats FILE
      serves soak.Echo/Unary (raw bytes echoed). F % of the calls fail with
      UNAVAILABLE and the trailing metadata `x-upstream-fault: 1`, so that a
      client can tell them from errors a proxy made (those carry
      `x-outrigger-error`). On SIGTERM writes {calls, faults} to FILE.
  grpc_upstream.py load --target HOST:PORT --rate R --duration S [--threads N]
      paced unary calls (closed loop, N threads sharing R calls/s), then one
      JSON line: {calls, ok, upstream_faults, other_errors, errors: {kind: n},
      p50_ms, p99_ms}.
"""
import argparse
import json
import random
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

OPTIONS = [("grpc.enable_retries", 0), ("grpc.enable_http_proxy", 0)]


def serve(args):
    lock = threading.Lock()
    stats = {"calls": 0, "faults": 0}

    def unary(request, context):
        fault = random.random() * 100 < args.fault_percent
        with lock:
            stats["calls"] += 1
            stats["faults"] += fault
        if fault:
            context.set_trailing_metadata((("x-upstream-fault", "1"),))
            context.abort(grpc.StatusCode.UNAVAILABLE, "injected")
        return request

    handler = grpc.method_handlers_generic_handler(
        "soak.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(unary)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=OPTIONS)
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop(1)
    with lock, open(args.stats, "w") as f:
        json.dump(stats, f)


def load(args):
    channel = grpc.insecure_channel(args.target, options=OPTIONS)
    call = channel.unary_unary("/soak.Echo/Unary")
    payload = b"soak-payload-16b"
    lock = threading.Lock()
    out = {"calls": 0, "ok": 0, "upstream_faults": 0, "other_errors": 0, "errors": {}}
    latencies = []
    interval = args.threads / args.rate
    end = time.monotonic() + args.duration

    def client(k):
        next_at = time.monotonic() + k * interval / args.threads
        mine = []
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now < next_at:
                time.sleep(next_at - now)
            next_at = max(next_at + interval, time.monotonic() - interval)
            start = time.monotonic()
            kind = None
            try:
                reply = call(payload, timeout=args.timeout)
                if reply != payload:
                    kind = "bad_reply"
            except grpc.RpcError as e:
                md = dict(e.trailing_metadata() or ())
                if md.get("x-upstream-fault") == "1":
                    kind = "upstream"
                else:
                    kind = f"{e.code().name} {md.get('x-outrigger-error', '')}".strip()
            mine.append(time.monotonic() - start)
            with lock:
                out["calls"] += 1
                if kind is None:
                    out["ok"] += 1
                elif kind == "upstream":
                    out["upstream_faults"] += 1
                else:
                    out["other_errors"] += 1
                    out["errors"][kind] = out["errors"].get(kind, 0) + 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    channel.close()
    latencies.sort()
    pick = (lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000) if latencies else None
    out["p50_ms"] = pick(0.5) if latencies else None
    out["p99_ms"] = pick(0.99) if latencies else None
    print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--fault-percent", type=float, default=0.0)
    s.add_argument("--stats", required=True)
    lo = sub.add_parser("load")
    lo.add_argument("--target", required=True)
    lo.add_argument("--rate", type=float, required=True)
    lo.add_argument("--duration", type=float, required=True)
    lo.add_argument("--threads", type=int, default=4)
    lo.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    serve(args) if args.cmd == "serve" else load(args)


if __name__ == "__main__":
    sys.exit(main())
