#!/usr/bin/python3
"""Memory after a burst: does RSS come back once the load has gone?

For each target (Outrigger with 1 and 2 workers, HAProxy, NGINX as a proxy; all
in front of one nginx upstream on loopback): a baseline load (BASE keep-alive
connections, a few requests each, then closed), VmRSS; then a burst FACTOR
times that (BASE x FACTOR connections open at once, each doing requests, some
with request or response bodies of tens of KB), all closed together; then quiet,
VmRSS sampled every second for --quiet-seconds. Each target runs in a fresh
process per run; bursts go one target after another and the quiet periods
overlap (a quiet process's RSS does not depend on the others' load).

    /usr/bin/python3 test/bench/memory_burst.py --outrigger build/release/outrigger [--runs 3]
    /usr/bin/python3 test/bench/memory_burst.py --outrigger BIN --ci      # quick: 1 run, 300 connections, 20 s
    ... --baseline OLD_BIN             # an older Outrigger too, in the same run (A/B)
    ... --variant 'jemalloc=LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'   # Outrigger with an env

Reports, per target, the medians over --runs of: RSS before the burst, the
peak (VmHWM), RSS 10 s, 30 s and --quiet-seconds after the burst, in MB and as a
ratio to before. --check exits 1 when an Outrigger target ends more than 10 %
above its pre-burst RSS. Every step is bounded in time.
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import h11

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from chaos import free_port, wait_port  # noqa: E402  (the benchmarks' shared helpers)
BODY_KB = 32



def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for {pid}")


# --- the client -------------------------------------------------------------
# One connection's requests: mostly small GETs, some 32 KB responses, some
# 32 KB request bodies (so that proxies' buffers grow).
def request_of(i):
    kind = i % 5
    if kind == 1:
        return h11.Request(method="GET", target="/big", headers=[("Host", "bench")]), None
    if kind == 3:
        body = b"x" * (BODY_KB * 1024)
        return h11.Request(method="POST", target="/upload",
                           headers=[("Host", "bench"), ("Content-Length", str(len(body)))]), body
    return h11.Request(method="GET", target="/", headers=[("Host", "bench")]), None


async def exchange(reader, writer, conn, i):
    req, body = request_of(i)
    data = conn.send(req)
    if body is not None:
        data += conn.send(h11.Data(data=body))
    data += conn.send(h11.EndOfMessage())
    writer.write(data)
    await writer.drain()
    status = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError("closed by the proxy")
            conn.receive_data(chunk)
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
            if status != 200:  # Outrigger says why in x-outrigger-error
                why = dict(event.headers).get(b"x-outrigger-error", b"").decode()
                status = f"{status} {why}".strip()
        elif isinstance(event, h11.EndOfMessage):
            break
    if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
        raise ConnectionError(f"closed by the proxy after {status}")
    conn.start_next_cycle()
    return status


async def client_main(port, n, requests, opened, done, timeout):
    loop = asyncio.get_running_loop()
    ok = failed = 0
    reasons = {}
    sem = asyncio.Semaphore(200)  # connect in waves: the listen backlog stays short

    async def connect():
        async with sem:
            return await asyncio.open_connection("127.0.0.1", port)

    conns = await asyncio.wait_for(asyncio.gather(*(connect() for _ in range(n)), return_exceptions=True), timeout)
    live = [c for c in conns if not isinstance(c, BaseException)]
    failed += n - len(live)
    await loop.run_in_executor(None, opened.wait, timeout)  # every process has all its connections open

    async def work(reader, writer, k):
        conn = h11.Connection(h11.CLIENT)
        good = 0
        for i in range(requests):
            status = await exchange(reader, writer, conn, i + k)
            if status != 200:
                reasons[f"status {status}"] = reasons.get(f"status {status}", 0) + 1
                return good, requests - good
            good += 1
        return good, 0

    results = await asyncio.wait_for(
        asyncio.gather(*(work(r, w, k) for k, (r, w) in enumerate(live)), return_exceptions=True), timeout)
    for r in results:
        if isinstance(r, BaseException):
            failed += 1
            reasons[repr(r)[:60]] = reasons.get(repr(r)[:60], 0) + 1
        else:
            ok += r[0]
            failed += r[1]
    await loop.run_in_executor(None, done.wait, timeout)  # all requests answered: the peak, then close together
    for _, w in live:
        w.close()
    for _, w in live:
        try:
            await w.wait_closed()
        except OSError:
            pass
    if reasons:
        print(f"client: failures {reasons}", file=sys.stderr)
    return ok, failed


def client_process(port, n, requests, opened, done, timeout, out):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        out.put(asyncio.run(client_main(port, n, requests, opened, done, timeout)))
    except Exception as e:  # reported as all failed
        print(f"client: {e!r}", file=sys.stderr)
        out.put((0, n * requests))


def load(port, conns, requests, procs, timeout, at_peak=None):
    """conns connections open at once over `procs` processes, `requests` each; closes them all together.
    Calls at_peak() once every request is answered and before any connection closes."""
    procs = max(1, min(procs, conns))
    ctx = multiprocessing.get_context("fork")
    opened, done, out = ctx.Barrier(procs + 1), ctx.Barrier(procs + 1), ctx.Queue()
    shares = [conns // procs + (1 if i < conns % procs else 0) for i in range(procs)]
    ps = [ctx.Process(target=client_process, args=(port, s, requests, opened, done, timeout, out)) for s in shares]
    for p in ps:
        p.start()
    try:
        opened.wait(timeout)
        done.wait(timeout)
        if at_peak:
            at_peak()
    except threading.BrokenBarrierError:
        pass
    results = [out.get(timeout=timeout) for _ in ps]
    for p in ps:
        p.join(timeout)
    return sum(r[0] for r in results), sum(r[1] for r in results)


# --- the processes ----------------------------------------------------------
class Target:
    def __init__(self, name, argv, port, pid_file=None, env=None):
        self.name, self.argv, self.port, self.pid_file, self.env = name, argv, port, pid_file, env
        self.proc = None

    def start(self, log):
        env = dict(os.environ, **(self.env or {}))
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=log, env=env)
        wait_port(self.port, timeout=10)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def write_configs(work, up_port, outrigger, baseline, variants):
    os.makedirs(f"{work}/up/logs")
    with open(f"{work}/up/big.bin", "wb") as f:
        f.write(b"y" * (BODY_KB * 1024))
    with open(f"{work}/up/nginx.conf", "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {work}/up/nginx.pid;
error_log {work}/up/logs/error.log;
worker_rlimit_nofile 20000;
events {{ worker_connections 12000; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_max_body_size 1m;
  server {{
    listen 127.0.0.1:{up_port};
    location / {{ return 200 "ok\\n"; }}
    location = /big {{ default_type application/octet-stream; alias {work}/up/big.bin; }}
  }}
}}
""")
    targets = []
    # The peers as test/bench/run.sh runs them: one thread, one process.
    hp = free_port()
    with open(f"{work}/haproxy.cfg", "w") as f:
        f.write(f"""global
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
  bind 127.0.0.1:{hp}
  default_backend upstream
backend upstream
  server up 127.0.0.1:{up_port}
""")
    targets.append(Target("haproxy", ["haproxy", "-f", f"{work}/haproxy.cfg", "-db"], hp))
    np_ = free_port()
    os.makedirs(f"{work}/ngx/logs")
    with open(f"{work}/ngx/nginx.conf", "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
master_process off;
pid {work}/ngx/nginx.pid;
error_log {work}/ngx/logs/error.log;
worker_rlimit_nofile 20000;
events {{ worker_connections 12000; }}
http {{
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  client_max_body_size 1m;
  client_body_temp_path {work}/ngx/body;
  proxy_temp_path {work}/ngx/proxy;
  upstream up {{ server 127.0.0.1:{up_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{np_};
    location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
""")
    targets.append(Target("nginx", ["nginx", "-c", f"{work}/ngx/nginx.conf", "-p", f"{work}/ngx"], np_))

    def outrigger_target(name, binary, workers, env=None):
        port, admin = free_port(), free_port()
        path = f"{work}/{name}.yaml"
        with open(path, "w") as f:
            f.write(f"""admin: {{ address: 127.0.0.1:{admin} }}
workers: {workers}
log_level: warn
listeners:
  - name: bench
    address: 127.0.0.1:{port}
    idle_timeout: 5m
    routes:
      - cluster: upstream
        timeout: 15s
clusters:
  - name: upstream
    endpoints: [127.0.0.1:{up_port}]
""")
        t = Target(name, [binary, "run", "-c", path], port, env=env)
        t.admin = admin
        return t

    for w in (1, 2):
        targets.append(outrigger_target(f"outrigger-w{w}", outrigger, w))
        if baseline:
            targets.append(outrigger_target(f"baseline-w{w}", baseline, w))
        for name, env in variants:
            targets.append(outrigger_target(f"{name}-w{w}", outrigger, w, env))
    return targets


def parse_variant(s):
    name, _, rest = s.partition("=")
    env = {}
    for kv in filter(None, rest.split(";")):
        k, _, v = kv.partition("=")
        env[k] = v
    return name, env


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outrigger", required=True)
    ap.add_argument("--baseline", help="an older Outrigger binary, measured in the same run")
    ap.add_argument("--variant", action="append", default=[], help="NAME=ENV=VAL;ENV=VAL: Outrigger with an environment")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quiet-seconds", type=int, default=60)
    ap.add_argument("--base-conns", type=int, default=10)
    ap.add_argument("--factor", type=int, default=100)
    ap.add_argument("--requests", type=int, default=10, help="per connection, in the burst and the baseline")
    ap.add_argument("--procs", type=int, default=2, help="client processes")
    ap.add_argument("--only", help="comma-separated target names (default: all)")
    ap.add_argument("--ci", action="store_true", help="quick: 1 run, 3 x 100 connections, 20 s quiet")
    ap.add_argument("--check", action="store_true", help="exit 1 when Outrigger ends >10 %% above its pre-burst RSS")
    ap.add_argument("--json", help="write the samples here")
    a = ap.parse_args()
    if a.ci:
        a.runs, a.base_conns, a.quiet_seconds = 1, 3, min(a.quiet_seconds, 20)
    variants = [parse_variant(v) for v in a.variant]
    marks = sorted({m for m in (10, 30) if m < a.quiet_seconds} | {a.quiet_seconds})
    burst = a.base_conns * a.factor
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the proxies inherit it
    deadline = None  # set once the targets are known
    timeout = 120

    work = tempfile.mkdtemp(prefix="outrigger-membench.")
    os.chmod(work, 0o755)  # nginx workers (nobody, when run as root) read big.bin
    up_port = free_port()
    targets = write_configs(work, up_port, a.outrigger, a.baseline, variants)
    if a.only:
        keep = a.only.split(",")
        targets = [t for t in targets if t.name in keep]
    for t in targets:
        if shutil.which(t.argv[0]) is None and not os.path.exists(t.argv[0]):
            print(f"{t.name}: {t.argv[0]} not found, left out", file=sys.stderr)
    targets = [t for t in targets if shutil.which(t.argv[0]) or os.path.exists(t.argv[0])]
    deadline = time.monotonic() + 60 + a.runs * (a.quiet_seconds + 150 * len(targets))
    upstream = Target("upstream", ["nginx", "-c", f"{work}/up/nginx.conf", "-p", f"{work}/up"], up_port)
    log = open(f"{work}/stderr.log", "w")
    results = {t.name: [] for t in targets}
    errors = {t.name: 0 for t in targets}
    try:
        upstream.start(log)
        print(f"memory after a burst: {a.base_conns} connections, then {burst} at once, {a.requests} requests each "
              f"(1 in 5 with a {BODY_KB} KB response, 1 in 5 with a {BODY_KB} KB body), then {a.quiet_seconds} s quiet; "
              f"{a.runs} run(s)", file=sys.stderr)
        for run in range(a.runs):
            samplers = []
            for t in targets:
                if time.monotonic() > deadline:
                    raise RuntimeError("out of time")
                t.start(log)
                time.sleep(0.5)
                ok, bad = load(t.port, a.base_conns, a.requests, 1, timeout)
                time.sleep(2)  # the baseline's connections have closed; periodic work has run once
                pre = status_kb(t.pid, "VmRSS")
                pre_split = (status_kb(t.pid, "RssAnon"), status_kb(t.pid, "RssFile"))
                peak_sampled = [pre]
                at_peak = lambda t=t, s=peak_sampled: s.append(status_kb(t.pid, "VmRSS"))
                t0 = time.monotonic()
                ok2, bad2 = load(t.port, burst, a.requests, a.procs, timeout, at_peak)
                errors[t.name] += bad + bad2
                rec = {"run": run, "pre_kb": pre, "peak_kb": max(status_kb(t.pid, "VmHWM"), max(peak_sampled)),
                       "burst_seconds": round(time.monotonic() - t0, 2), "requests": ok + ok2, "failed": bad + bad2,
                       "quiet_kb": [], "pre_anon_kb": pre_split[0], "pre_file_kb": pre_split[1]}
                results[t.name].append(rec)
                print(f"  run {run + 1} {t.name}: pre {pre / 1024:.1f} MB, burst {rec['burst_seconds']} s, "
                      f"{ok2} requests ({bad2} failed), peak {rec['peak_kb'] / 1024:.1f} MB", file=sys.stderr)

                def sample(t=t, rec=rec, start=time.monotonic()):
                    for s in range(1, a.quiet_seconds + 1):
                        time.sleep(max(0, start + s - time.monotonic()))
                        rec["quiet_kb"].append(status_kb(t.pid, "VmRSS"))
                    # What stayed: the heap and other anonymous memory, or pages of files (code, libraries).
                    rec["end_anon_kb"], rec["end_file_kb"] = status_kb(t.pid, "RssAnon"), status_kb(t.pid, "RssFile")
                th = threading.Thread(target=sample)
                th.start()
                samplers.append(th)
            for th in samplers:
                th.join(a.quiet_seconds + 30)
            for t in targets:
                r = results[t.name][-1]
                print(f"  run {run + 1} {t.name}: after {a.quiet_seconds} s {r['quiet_kb'][-1] / 1024:.1f} MB "
                      f"({r['quiet_kb'][-1] / r['pre_kb']:.2f} of pre-burst)", file=sys.stderr)
                t.stop()
    finally:
        for t in targets:
            t.stop()
        upstream.stop()
        log.close()
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"args": vars(a), "results": results}, f, indent=1)
        shutil.rmtree(work, ignore_errors=True)

    med = lambda xs: statistics.median(xs)
    cols = "".join(f" after {m} s (MB) | ratio |" for m in marks)
    print(f"\n| target | pre-burst (MB) | peak (MB) |{cols} failed requests |")
    print("|---|---|---|" + "---|---|" * len(marks) + "---|")
    worst = 0.0
    for t in targets:
        rs = results[t.name]
        if not rs:
            continue
        pre = med([r["pre_kb"] for r in rs])
        row = f"| {t.name} | {pre / 1024:.1f} | {med([r['peak_kb'] for r in rs]) / 1024:.1f} |"
        for m in marks:
            kb = med([r["quiet_kb"][m - 1] for r in rs])
            ratio = med([r["quiet_kb"][m - 1] / r["pre_kb"] for r in rs])
            row += f" {kb / 1024:.1f} | {ratio:.2f} |"
            if m == a.quiet_seconds and t.name.startswith("outrigger"):
                worst = max(worst, ratio)
        print(row + f" {errors[t.name]} |")
    # Where the difference is: anonymous memory (heap, stacks) or file pages (code first touched by the burst).
    print(f"\n| target | RssAnon before / after {a.quiet_seconds} s (MB) | RssFile before / after (MB) |")
    print("|---|---|---|")
    for t in targets:
        rs = [r for r in results[t.name] if "end_anon_kb" in r]
        if rs:
            mb = lambda k: med([r[k] for r in rs]) / 1024
            print(f"| {t.name} | {mb('pre_anon_kb'):.1f} / {mb('end_anon_kb'):.1f} | "
                  f"{mb('pre_file_kb'):.1f} / {mb('end_file_kb'):.1f} |")
    if a.check and worst > 1.10:
        print(f"Outrigger ends at {worst:.2f} of its pre-burst RSS (limit 1.10)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
