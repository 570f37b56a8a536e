#!/usr/bin/env python3
"""Overload benchmark: Outrigger at about twice its capacity, with and
without its overload limit, then back to half its capacity.

One nginx worker answers "ok"; Outrigger runs with workers: 1 in front of it;
h2load (nghttp2's load generator, cleartext HTTP/2 with prior knowledge) is
the client, since one h2load thread offers far more requests a second than
one proxy worker serves.

  1. Capacity: closed loop, `h2load -c64 -m1` for CAPACITY_SECONDS: the
     proxy's requests/s when each request arrives on its own, as the paced
     load below sends them (one HEADERS frame per read, one response per
     write). A closed loop with many streams per connection (`-c4 -m32`)
     batches a read's worth of requests and measures about twice that: 2x
     of it would be 4x of what the paced load costs, and its 0.5x would
     still be an overload.
  2. Per target (`limited`: overload.max_requests_per_worker = LIMIT;
     `unlimited`: 0), a fresh proxy, then open-loop paced load: `h2load
     --rps` with up to 100 streams per connection, so that a slow answer
     does not slow the offer. Two clients at once: a "base" one at 0.5x the
     capacity for OVERLOAD + AFTER seconds, and an "extra" one at 1.5x for
     the first OVERLOAD seconds. Together 2x, then 0.5x.
  3. Meanwhile the admin listener's /ready is asked every 50 ms.

Reported per target: offered and answered requests/s in the overload window,
the share answered 503 (shed), the p50/p99 latency of the requests answered
200 during overload and after the drop, /ready's p50/p99/max during overload,
and the time from the drop to the last 503 (must be < 1 s). Loopback only;
every step is bounded.

  test/bench/overload.py --outrigger build/release/outrigger [--json out.json]
"""

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chaos import free_port, wait_port  # noqa: E402  (the benchmarks' shared helpers)



def start_nginx(work):
    port = free_port()
    d = os.path.join(work, "nginx")
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
master_process off;
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port


def start_outrigger(binary, work, name, upstream, limit, max_idle=None):
    port, admin = free_port(), free_port()
    conf = os.path.join(work, f"{name}.yaml")
    with open(conf, "w") as f:
        f.write(f"""
admin: {{ address: 127.0.0.1:{admin} }}
workers: 1
log_level: warn
overload: {{ max_requests_per_worker: {limit} }}
listeners:
  - name: ingress
    address: 127.0.0.1:{port}
    routes: [{{ name: app, cluster: app }}]
clusters:
  - name: app
    endpoints: [127.0.0.1:{upstream}]
    circuit_breakers: {{ max_connections: 100000, max_pending_requests: 100000, max_requests: 100000 }}
""")
        if max_idle is not None:
            f.write(f"    connection_pool: {{ max_idle_per_endpoint: {max_idle} }}\n")
    proc = subprocess.Popen([binary, "run", "-c", conf])
    wait_port(port)
    wait_port(admin)
    return proc, port, admin


def h2load(args, timeout):
    out = subprocess.run(["h2load", *args], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"h2load {' '.join(args)}: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


def capacity(port, seconds):
    text = h2load(["-c64", "-m1", f"-D{seconds}", "--warm-up-time=1", f"http://127.0.0.1:{port}/"],
                  timeout=seconds + 30)
    m = re.search(r"finished in [^,]+, ([\d.]+) req/s", text)
    if not m:
        raise RuntimeError("no req/s in h2load's output:\n" + text)
    return float(m.group(1))


class ReadyProbe(threading.Thread):
    """GET /ready on the admin listener every 50 ms, a new connection each
    time (as a kubelet probe does); (start, latency, ok) per probe."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.samples = []

    def run(self):
        while not self.stop.is_set():
            start = time.time()
            ok = False
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/ready")
                ok = c.getresponse().status == 200
                c.close()
            except OSError:
                pass
            self.samples.append((start, time.time() - start, ok))
            self.stop.wait(max(0.0, 0.05 - (time.time() - start)))


def read_log(path):
    """h2load's --log-file: start (us since the epoch), status, duration (us)."""
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 3:
                rows.append((int(parts[0]) / 1e6, int(parts[1]), int(parts[2]) / 1e6))
    return rows


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100.0 * len(values)))]


def overload_run(port, admin, rate, overload_s, after_s, work, name):
    base_clients, extra_clients = 16, 48
    base_log, extra_log = os.path.join(work, f"{name}-base.log"), os.path.join(work, f"{name}-extra.log")
    probe = ReadyProbe(admin)
    probe.start()
    t0 = time.time()
    common = ["-m100", f"http://127.0.0.1:{port}/"]
    base = subprocess.Popen(["h2load", f"-c{base_clients}", f"--rps={0.5 * rate / base_clients:.1f}",
                             f"-D{int(overload_s + after_s)}", f"--log-file={base_log}", *common],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    extra = subprocess.Popen(["h2load", f"-c{extra_clients}", f"--rps={1.5 * rate / extra_clients:.1f}",
                              f"-D{int(overload_s)}", f"--log-file={extra_log}", *common],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    extra_out, _ = extra.communicate(timeout=overload_s + 60)
    t_drop = time.time()
    base_out, _ = base.communicate(timeout=overload_s + after_s + 60)
    probe.stop.set()
    probe.join(timeout=5)
    for path, out in ((base_log, base_out), (extra_log, extra_out)):
        if not os.path.exists(path):
            raise RuntimeError(f"h2load wrote no {os.path.basename(path)}:\n{out}")
    rows = read_log(base_log) + read_log(extra_log)
    if not rows:
        raise RuntimeError("h2load logged nothing:\n" + base_out + extra_out)
    extra_rows = read_log(extra_log)
    # The drop: the extra client's last request; the overload window is the
    # extra client's run, its first second (connections, ramp) left out.
    start = min(r[0] for r in extra_rows)
    drop = max(r[0] for r in extra_rows) if extra_rows else t_drop
    window = [r for r in rows if start + 1 <= r[0] < drop]
    after = [r for r in rows if r[0] >= drop]
    span = max(1e-9, drop - start - 1)
    shed = [r for r in window if r[1] == 503]
    ok = [r for r in window if r[1] == 200]
    after_503 = [r[0] for r in after if r[1] == 503]
    ready = [s for s in probe.samples if start + 1 <= s[0] < drop]
    # Around the drop, per 250 ms: requests started, how many were shed, the
    # 200s' median latency. Shows how fast the shedding stops.
    timeline = []
    for i in range(-4, int(after_s * 4)):
        b = [r for r in rows if drop + i * 0.25 <= r[0] < drop + (i + 1) * 0.25]
        timeline.append((i * 0.25, len(b), sum(1 for r in b if r[1] == 503),
                         round(pct([r[2] for r in b if r[1] == 200], 50) * 1e3, 1)))
    return {
        "offered_rps": round(len(window) / span),
        "answered_200_rps": round(len(ok) / span),
        "shed_rps": round(len(shed) / span),
        "shed_share": round(len(shed) / max(1, len(window)), 4),
        "other_statuses": sorted({r[1] for r in window} - {200, 503}),
        "ok_p50_ms": round(pct([r[2] for r in ok], 50) * 1e3, 2),
        "ok_p99_ms": round(pct([r[2] for r in ok], 99) * 1e3, 2),
        "shed_p50_ms": round(pct([r[2] for r in shed], 50) * 1e3, 2) if shed else None,
        "after_ok_p99_ms": round(pct([r[2] for r in after if r[1] == 200], 99) * 1e3, 2),
        "after_requests": len(after),
        "recovery_s": round(max(after_503) - drop, 3) if after_503 else 0.0,
        "ready_p50_ms": round(pct([s[1] for s in ready], 50) * 1e3, 2),
        "ready_p99_ms": round(pct([s[1] for s in ready], 99) * 1e3, 2),
        "ready_max_ms": round(max((s[1] for s in ready), default=float("nan")) * 1e3, 2),
        "ready_failures": sum(1 for s in ready if not s[2]),
        "ready_probes": len(ready),
        "t_drop_skew_s": round(t_drop - drop, 3),
        "elapsed_s": round(time.time() - t0, 1),
        "timeline": timeline,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outrigger", required=True)
    # 4x what the paced load keeps in flight at 0.5x (rate x latency, 30-60
    # here): room for normal bursts, a bound on the queue under overload.
    ap.add_argument("--limit", type=int, default=256, help="max_requests_per_worker of the limited target")
    ap.add_argument("--overload", type=int, default=10, help="seconds at 2x")
    ap.add_argument("--after", type=int, default=5, help="seconds at 0.5x after the drop")
    ap.add_argument("--max-idle", type=int, help="the cluster's connection_pool.max_idle_per_endpoint "
                    "(default: the proxy's own, 1024; 64 was the default before 2026-12-08)")
    ap.add_argument("--capacity-seconds", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    for tool in ("nginx", "h2load"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (docker/install-deps.sh bench)")
    work = tempfile.mkdtemp(prefix="outrigger-overload-")
    nginx, upstream = start_nginx(work)
    procs = []
    results = {}
    try:
        proc, port, _ = start_outrigger(args.outrigger, work, "capacity", upstream, 0, args.max_idle)
        procs.append(proc)
        rate = capacity(port, args.capacity_seconds)
        proc.terminate()
        proc.wait(timeout=15)
        results["capacity_rps"] = round(rate)
        print(f"capacity (closed loop, -c64 -m1, workers: 1): {rate:.0f} req/s; offering {2 * rate:.0f}, then {0.5 * rate:.0f}")
        for name, limit in (("limited", args.limit), ("unlimited", 0)):
            proc, port, admin = start_outrigger(args.outrigger, work, name, upstream, limit, args.max_idle)
            procs.append(proc)
            r = overload_run(port, admin, rate, args.overload, args.after, work, name)
            r["max_requests_per_worker"] = limit
            results[name] = r
            proc.terminate()
            proc.wait(timeout=15)
            print(f"{name} (max_requests_per_worker: {limit}): {json.dumps(r)}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        nginx.kill()
        nginx.wait(timeout=5)
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'':<24}{'limited':>12}{'unlimited':>12}")
    for key, label in (("offered_rps", "offered req/s"), ("answered_200_rps", "answered 200 req/s"),
                       ("shed_share", "shed (503) share"), ("ok_p50_ms", "200s p50 ms"),
                       ("ok_p99_ms", "200s p99 ms"), ("ready_p99_ms", "/ready p99 ms"),
                       ("ready_max_ms", "/ready max ms"), ("recovery_s", "last 503 after drop s"),
                       ("after_ok_p99_ms", "after drop p99 ms")):
        print(f"{label:<24}{results['limited'][key]!s:>12}{results['unlimited'][key]!s:>12}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    lim = results["limited"]
    if lim["recovery_s"] >= 1.0 or lim["ready_failures"]:
        sys.exit("limited: 503s went on for a second or more after the drop, or /ready failed")


if __name__ == "__main__":
    main()
