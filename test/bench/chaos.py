#!/usr/bin/env python3
"""Chaos benchmark: what clients see while one of two endpoints dies, comes
back, and stalls.

Two nginx endpoints (one process each, so that SIGKILL, SIGSTOP and SIGCONT
act on the whole endpoint). A paced load of GETs runs through a schedule of
phases; at each phase boundary one endpoint is killed, restarted, stalled or
resumed. The same schedule runs against each target:

  direct     the client itself alternates between the two endpoints, no retries
             (what the application sees without a sidecar)
  outrigger  through Outrigger, defaults plus retry_on [5xx, connect-failure,
             reset] and outlier_detection with its defaults
  outrigger+ptt
             the same plus per_try_timeout (a stalled try is abandoned and
             retried elsewhere)

Per target and phase it prints requests, the client-visible error rate and the
p50/p99 latency, and for the stall how long after the stall began the
per-second p99 was back under max(2 x baseline p99, baseline p99 + 5 ms) for
good. Loopback only; every request has a timeout and the run ends by itself.

  test/bench/chaos.py --outrigger build/release/outrigger [--scale 0.5]
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROUTE_TIMEOUT = 15.0  # Outrigger's default route timeout; the direct client waits as long


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class Endpoint:
    """One nginx process (master_process off) answering "ok"."""

    def __init__(self, work, name):
        self.port = free_port()
        self.dir = os.path.join(work, name)
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""
master_process off;
daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/logs/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{self.port} reuseport; location / {{ return 200 "ok\\n"; }} }}
}}
""")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["nginx", "-c", self.conf, "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=5)

    def stall(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=5)


def outrigger_config(path, port, admin_port, endpoints, per_try_timeout):
    retry = "{ retry_on: [5xx, connect-failure, reset]"
    retry += f", per_try_timeout: {per_try_timeout} }}" if per_try_timeout else " }"
    eps = ", ".join(f"127.0.0.1:{e.port}" for e in endpoints)
    with open(path, "w") as f:
        f.write(f"""
admin: {{ address: 127.0.0.1:{admin_port} }}
workers: 1
log_level: warn
listeners:
  - name: ingress
    address: 127.0.0.1:{port}
    routes: [{{ name: app, cluster: app, retry: {retry} }}]
clusters:
  - name: app
    endpoints: [{eps}]
    outlier_detection: {{}}
""")


class Load:
    """THREADS paced, closed-loop clients; each request's phase, start,
    latency and whether the client saw an error."""

    def __init__(self, targets, threads, rate_per_thread, path="/"):
        self.targets = targets  # list of ports; more than one: the client alternates
        self.path = path
        self.threads = threads
        self.interval = 1.0 / rate_per_thread
        self.phase = None
        self.stop = threading.Event()
        self.results = []  # (phase, start, latency, error)
        self.lock = threading.Lock()

    def run_client(self, k):
        conns = {}
        mine = []
        n = k
        next_at = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            next_at = max(next_at + self.interval, time.monotonic() - self.interval)
            port = self.targets[n % len(self.targets)]
            n += 1
            phase = self.phase
            start = time.monotonic()
            error = None
            try:
                c = conns.get(port)
                if c is None:
                    c = conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=ROUTE_TIMEOUT + 1)
                c.request("GET", self.path)
                r = c.getresponse()
                r.read()
                if not 200 <= r.status < 300:
                    error = f"{r.status} {r.getheader('x-outrigger-error', '')}".strip()
                if r.will_close:
                    c.close()
                    conns.pop(port, None)
            except (OSError, http.client.HTTPException) as e:
                error = type(e).__name__
                conns.pop(port, None)
            mine.append((phase, start, time.monotonic() - start, error))
        with self.lock:
            self.results.extend(mine)

    def __enter__(self):
        self.workers = [threading.Thread(target=self.run_client, args=(k,), daemon=True) for k in range(self.threads)]
        for w in self.workers:
            w.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for w in self.workers:
            w.join(timeout=ROUTE_TIMEOUT + 5)


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100.0 * len(values)))]


def proxy_counters(admin_port):
    """Outrigger's retry, overflow, timeout and ejection counters."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    except (OSError, http.client.HTTPException):
        return {}
    wanted = ("outrigger_upstream_rq_retry_total", "outrigger_upstream_overflow_total",
              "outrigger_upstream_rq_timeout_total", "outrigger_outlier_ejections_total",
              "outrigger_upstream_connect_failures_total")
    out = {}
    for line in text.splitlines():
        if line.startswith(wanted):
            name, value = line.rsplit(" ", 1)
            if float(value):
                out[name] = float(value)
    return out


def run_target(name, endpoints, ports, schedule, threads, rate):
    for e in endpoints:
        e.start()
    phase_start = {}
    with Load(ports, threads, rate) as load:
        for phase, seconds, action in schedule:
            if action:
                action()
            load.phase = phase
            phase_start[phase] = time.monotonic()
            time.sleep(seconds)
    for e in endpoints:
        e.stop()

    by_phase = {}
    for phase, start, latency, error in load.results:
        if phase is None:
            continue
        by_phase.setdefault(phase, []).append((start, latency, error))
    rows = {}
    for phase, _, _ in schedule:
        rs = by_phase.get(phase, [])
        lat = [r[1] for r in rs]
        errors = sum(1 for r in rs if r[2])
        kinds = {}
        for r in rs:
            if r[2]:
                kinds[r[2]] = kinds.get(r[2], 0) + 1
        rows[phase] = {
            "requests": len(rs),
            "error_rate": errors / len(rs) if rs else float("nan"),
            "errors": kinds,
            "p50_ms": percentile(lat, 50) * 1000,
            "p99_ms": percentile(lat, 99) * 1000,
        }

    # Recovery after the stall: per-second p99 by request start time.
    base = rows["baseline"]["p99_ms"]
    bound = max(2 * base, base + 5)
    stall = by_phase.get("stall", [])
    t0 = phase_start["stall"]
    buckets = {}
    for start, latency, _ in stall:
        buckets.setdefault(int(start - t0), []).append(latency * 1000)
    recovered = None
    for second in sorted(buckets):
        bad_after = [s for s in buckets if s >= second and percentile(buckets[s], 99) > bound]
        if not bad_after:
            recovered = second
            break
    rows["stall"]["recovered_after_s"] = recovered
    rows["stall"]["recovery_bound_ms"] = bound
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--outrigger", required=True)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--rate", type=float, default=50.0, help="requests per second per client thread")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every phase length")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="outrigger-chaos.")
    results = {}
    try:
        for target in ("direct", "outrigger", "outrigger+ptt"):
            a, b = Endpoint(work, target + "-a"), Endpoint(work, target + "-b")
            s = args.scale
            # The stall outlasts the route timeout (15 s) plus the first ejection.
            # A is back in service 30 s (base_ejection_time) after it was
            # ejected, before B stalls; the stall outlasts the route timeout
            # (15 s) plus the ejection that follows it.
            schedule = [
                ("baseline", 8 * s, None),
                ("a_killed", 10 * s, a.kill),
                ("a_restarted", max(35 * s, 25), a.start),
                ("stall", max(40 * s, ROUTE_TIMEOUT + 10), b.stall),
                ("b_resumed", 8 * s, b.resume),
            ]
            proxy = None
            try:
                if target == "direct":
                    ports = [a.port, b.port]
                else:
                    port, admin = free_port(), free_port()
                    conf = os.path.join(work, target + ".yaml")
                    outrigger_config(conf, port, admin, [a, b], "500ms" if target.endswith("ptt") else None)
                    proxy = subprocess.Popen([args.outrigger, "run", "-c", conf])
                    wait_port(port)
                    ports = [port]
                print(f"--- {target}", file=sys.stderr, flush=True)
                results[target] = run_target(target, [a, b], ports, schedule, args.threads, args.rate)
                if proxy:
                    results[target]["counters"] = proxy_counters(admin)
            finally:
                a.stop()
                b.stop()
                if proxy:
                    proxy.terminate()
                    proxy.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'target':14} {'phase':12} {'requests':>8} {'errors':>8} {'p50 ms':>8} {'p99 ms':>9}  recovery")
    for target, rows in results.items():
        counters = rows.get("counters", {})
        for phase, r in rows.items():
            if phase == "counters":
                continue
            rec = ""
            if phase == "stall":
                rec = (f"p99 < {r['recovery_bound_ms']:.1f} ms after {r['recovered_after_s']} s"
                       if r["recovered_after_s"] is not None else "never")
            print(f"{target:14} {phase:12} {r['requests']:8d} {100 * r['error_rate']:7.2f}% "
                  f"{r['p50_ms']:8.2f} {r['p99_ms']:9.2f}  {rec}")
            if r["errors"]:
                print(f"{'':27} errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(r["errors"].items())))
        for name, value in sorted(counters.items()):
            print(f"{'':27} {name} {value:g}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
