#!/usr/bin/python3
"""Soak: a paced mix of HTTP/1.1, HTTP/2 and gRPC through a two-proxy mTLS mesh,
for a bounded time, with retries and tracing on. Checks that the proxies' RSS
and open file descriptors stay flat after the warm-up and that clients see no
error that the upstreams did not cause.

    wrk (HTTP/1.1) ----\\                     mTLS: HTTP/1.1 and HTTP/2
    h2load (h2c) -------> outbound Outrigger ========================> inbound Outrigger
    gRPC client (h2c) -/      (retries)                                  |   |   |
                                                          nginx (HTTP/1.1, h2c)  gRPC server
    both proxies -> Zipkin collector (here, counting spans)

The upstreams answer FAULT % (default 1 %) of the requests with an error of their
own (nginx: `500` with `x-upstream-fault: 1`; gRPC: UNAVAILABLE with that
trailing metadata) and count them; the outbound proxy retries them (`retry_on`
with a retry budget). A client-visible error is "caused by the upstream" when it
carries that mark (h2load cannot show headers: there, a `500`, which Outrigger
never makes itself, is the upstream's, and the count is checked against what
nginx sent); everything else counts against the proxies.

Every SAMPLE seconds: each proxy's memory (/proc/PID/status: VmRSS and its two
parts, RssAnon and RssFile) and open descriptors (/proc/PID/fd); its counters
(admin /metrics) before and after. Growth is measured from the end of the warm-up
to the end of the load, each reading the median of the 3 samples up to that
point (a single sample can catch a connection being replaced). The warm-up is a
third of the run, at most 10 minutes: 10 minutes of the 30-minute run, 60 s of the
CI variant (where the check is stricter than the 30-minute run's: anonymous memory
still climbs slowly between 1 and 10 minutes). The memory check
is on RssAnon (heap and stacks, where a leak shows). RssFile is the pages of the
binary and its libraries that have run or been read so far: it grows as code runs
for the first time (a retry, a replaced connection, a rare timer), up to the size
of the files, and is not memory the process allocated; VmRSS = RssAnon + RssFile
(+ RssShmem, 0 here) is reported beside it.

Descriptors are judged by their floor over those 3 samples instead (a connection
being replaced holds one more for a moment; a leaked one raises the floor).

Exit 0: growth <= 1 % for RssAnon and descriptors of both proxies, no error the
upstreams did not cause, both proxies alive through the run and exiting 0 on
SIGTERM at its end (in a sanitizer build: nothing reported on the way out, leaks
included). 1: any of these failed. 77: a tool
is missing (wrk, h2load, nginx, openssl, python3-grpcio,
python3-prometheus-client). Loopback only; every subprocess ends with the run.

  test/bench/soak.py --outrigger build/release/outrigger            # 30 minutes
  test/bench/soak.py --ci --outrigger build/release/outrigger       # 3 minutes
  ASAN_OPTIONS=quarantine_size_mb=0:thread_local_quarantine_size_kb=0 \
    test/bench/soak.py --ci --outrigger build/test/outrigger         # what CI runs (docker/build.sh)
  test/bench/soak.py --minutes 5 --json soak.json --outrigger ...
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))

WRK_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  ok, upstream, other, kinds = 0, 0, 0, {}
end
function delay() return %(delay_ms)d end
function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  elseif status == 500 and (headers["x-upstream-fault"] or headers["X-Upstream-Fault"]) == "1" then
    upstream = upstream + 1
  else
    other = other + 1
    local k = tostring(status) .. ":" .. (headers["x-outrigger-error"] or "-")
    kinds[k] = (kinds[k] or 0) + 1
  end
end
function done(summary, latency, requests)
  local ok_, up, other_ = 0, 0, 0
  for _, t in ipairs(threads) do
    ok_ = ok_ + t:get("ok")
    up = up + t:get("upstream")
    other_ = other_ + t:get("other")
    for k, v in pairs(t:get("kinds")) do io.write(string.format("SOAKKIND %%s %%d\\n", k, v)) end
  end
  local e = summary.errors
  io.write(string.format("SOAK requests=%%d ok=%%d upstream=%%d other=%%d connect=%%d read=%%d write=%%d timeout=%%d p50_us=%%d p99_us=%%d\\n",
    summary.requests, ok_, up, other_, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def have_modules():
    missing = []
    for m in ("grpc", "prometheus_client"):
        try:
            __import__(m)
        except ImportError:
            missing.append({"grpc": "python3-grpcio", "prometheus_client": "python3-prometheus-client"}[m])
    return missing


def parse_wrk(text):
    out = {"kinds": {}}
    for line in text.splitlines():
        if line.startswith("SOAK "):
            for kv in line.split()[1:]:
                k, v = kv.split("=")
                out[k] = int(v)
        elif line.startswith("SOAKKIND "):
            _, k, v = line.split()
            out["kinds"][k] = out["kinds"].get(k, 0) + int(v)
    return out


def parse_h2load(stdout, log_path):
    """h2load's summary plus its per-request log (start_us, status, duration_us)."""
    out = {"statuses": {}, "durations": []}
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("requests:"):
            words = line.replace(",", "").split()
            for i in range(1, len(words) - 1, 2):
                out[words[i + 1]] = int(words[i])
    try:
        with open(log_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    out["statuses"][parts[1]] = out["statuses"].get(parts[1], 0) + 1
                    out["durations"].append(int(parts[2]))
    except FileNotFoundError:
        pass
    return out


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100.0 * len(values)))]


def pid_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


COUNTERS = {  # what the report shows per proxy, as deltas over the load
    "requests": ("outrigger_requests_total", {}),
    "retries": ("outrigger_upstream_rq_retry_total", {"result": "attempt"}),
    "retry_budget_exhausted": ("outrigger_upstream_rq_retry_total", {"result": "budget_exhausted"}),
    "connect_failures": ("outrigger_upstream_connect_failures_total", {}),
    "upstream_timeouts": ("outrigger_upstream_rq_timeout_total", {}),
    "overflow": ("outrigger_upstream_overflow_total", {}),
    "tls_handshakes": ("outrigger_tls_handshakes_total", {}),
    "tls_handshake_failures": ("outrigger_tls_handshake_failures_total", {}),
    "upstream_connections": ("outrigger_upstream_connections_total", {}),
    "bad_requests": ("outrigger_downstream_bad_requests_total", {}),
    "spans_sent": ("outrigger_tracing_spans_sent_total", {}),
    "spans_dropped": ("outrigger_tracing_spans_dropped_total", {}),
}


def counters(proxy):
    from mesh import metric_sum
    m = proxy.metrics()
    out = {k: metric_sum(m, name, **labels) for k, (name, labels) in COUNTERS.items()}
    codes = {}
    for (name, labels), v in m.items():
        if name == "outrigger_requests_total" and v:
            code = dict(labels).get("code", "?")
            codes[code] = codes.get(code, 0) + v
    out["codes"] = codes
    return out


def sample(s, proxy):
    for k, v in proxy.memory_kb().items():
        s[f"{proxy.name}.{k}"] = v
    s[proxy.name + ".fds"] = proxy.fds()
    s[proxy.name + ".cpu_s"] = proxy.cpu_seconds()


def growth_window(samples, key, t_end, n=3):
    """The n samples up to t_end, reduced: memory by their median (one sample
    can catch a buffer in use), descriptors by their floor (a connection being
    replaced holds one more for a moment; a leaked descriptor raises the floor)."""
    window = [s[key] for s in samples if s["t"] <= t_end + 1e-6][-n:]
    if not window:
        return None
    return min(window) if key.endswith(".fds") else statistics.median(window)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--outrigger", required=True, help="the binary (a release build)")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--ci", action="store_true", help="the 3-minute variant")
    ap.add_argument("--warmup", type=float, help="seconds (default: a third of the run, at most 600)")
    ap.add_argument("--sample", type=float, help="seconds between samples (default 10; 5 with --ci)")
    ap.add_argument("--h1-conns", type=int, default=8, help="wrk connections")
    ap.add_argument("--h1-delay-ms", type=int, default=20, help="wrk: pause after each response, per connection")
    ap.add_argument("--h2-clients", type=int, default=4, help="h2load clients")
    ap.add_argument("--h2-rps", type=int, default=50, help="h2load: requests/s per client")
    ap.add_argument("--grpc-rate", type=float, default=100.0, help="gRPC calls/s")
    ap.add_argument("--fault-percent", type=float, default=1.0, help="upstream errors, %% of requests")
    ap.add_argument("--sample-rate", type=float, default=0.1, help="tracing sample_rate")
    ap.add_argument("--max-growth", type=float, default=1.0, help="%% allowed for RSS and descriptors")
    ap.add_argument("--json", help="write the samples and figures here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    args = ap.parse_args()
    if args.ci:
        args.minutes = 3.0
    duration = args.minutes * 60.0
    # Anonymous memory climbs, ever more slowly, for about 10 minutes of this mix
    # (docs/performance.md, "Soak"); from there it is flat within 0.5 %.
    warmup = args.warmup if args.warmup is not None else min(duration / 3.0, 600.0)
    interval = args.sample if args.sample is not None else (5.0 if args.ci else 10.0)

    missing = [t for t in ("wrk", "h2load", "nginx", "openssl") if shutil.which(t) is None] + have_modules()
    if missing:
        print("soak: SKIPPED: missing " + ", ".join(missing) + " (docker/install-deps.sh bench)", file=sys.stderr)
        return SKIP
    if not os.access(args.outrigger, os.X_OK):
        print(f"soak: {args.outrigger} is not an executable", file=sys.stderr)
        return 1
    binary = os.path.abspath(args.outrigger)

    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    sys.path.insert(0, HERE)
    import mesh
    from mesh import log

    # SIGTERM (a CI timeout) ends the run through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    work = tempfile.mkdtemp(prefix="outrigger-soak.")
    procs = mesh.Procs()
    try:
        ca = mesh.CertAuthority(work)
        client_secret = mesh.MountedSecret(ca, work, "client")
        server_secret = mesh.MountedSecret(ca, work, "server")
        zipkin = mesh.ZipkinCollector()
        zipkin.start()
        nginx = mesh.Nginx(procs, work, fault_percent=args.fault_percent)
        nginx.start()
        grpc_server = mesh.GrpcServer(procs, work, fault_percent=args.fault_percent)
        grpc_server.start()

        inbound = mesh.Proxy(procs, binary, work, "inbound", mesh.free_port(), mesh.free_port())
        inbound.write(mesh.inbound_config(inbound.port, inbound.admin, server_secret, "client", nginx,
                                          grpc_server.port, zipkin.port, args.sample_rate))
        inbound.start()
        outbound = mesh.Proxy(procs, binary, work, "outbound", mesh.free_port(), mesh.free_port())
        # Connections to the inbound proxy are replaced every 1,000 requests, so that
        # the soak goes through mTLS handshakes and connection teardown all along.
        outbound.write(mesh.outbound_config(outbound.port, outbound.admin, client_secret, "server", inbound.port,
                                            zipkin.port, args.sample_rate, max_requests_per_connection=1000))
        outbound.start()
        proxies = (outbound, inbound)

        # One request of each kind first: a broken setup fails here, not after 30 minutes.
        base = f"http://127.0.0.1:{outbound.port}"
        for path, extra in (("/h1/", []), ("/h2/", ["--http2-prior-knowledge"])):
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10", *extra,
                                base + path], capture_output=True, text=True)
            if r.stdout not in ("200", "500"):
                raise RuntimeError(f"smoke test {path}: HTTP {r.stdout!r}; {outbound.stderr_tail()} "
                                   f"{inbound.stderr_tail()}")
        g = subprocess.run([mesh.PY, os.path.join(HERE, "grpc_upstream.py"), "load", "--target",
                            f"127.0.0.1:{outbound.port}", "--rate", "20", "--duration", "1", "--threads", "1"],
                           capture_output=True, text=True, timeout=60)
        if '"ok": 0' in g.stdout or not g.stdout:
            raise RuntimeError(f"smoke test gRPC: {g.stdout} {g.stderr}")
        before = {p.name: counters(p) for p in proxies}
        faults_before = nginx.faults()
        spans_before = zipkin.count()

        log(f"soak: {duration:.0f} s of load, warm-up {warmup:.0f} s, a sample every {interval:.0f} s")
        lua = os.path.join(work, "soak.lua")
        with open(lua, "w") as f:
            f.write(WRK_LUA % {"delay_ms": args.h1_delay_ms})
        d = int(duration)
        wrk = procs.start(["wrk", "-t1", f"-c{args.h1_conns}", f"-d{d}s", "--timeout", "10s", "-s", lua,
                           base + "/h1/soak"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        h2log = os.path.join(work, "h2load.log")
        h2 = procs.start(["h2load", "-D", str(d), f"-c{args.h2_clients}", "-m4", f"--rps={args.h2_rps}",
                          f"--log-file={h2log}", base + "/h2/soak"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        grpc_load = procs.start([mesh.PY, os.path.join(HERE, "grpc_upstream.py"), "load", "--target",
                                 f"127.0.0.1:{outbound.port}", "--rate", str(args.grpc_rate),
                                 "--duration", str(d)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        loads = (wrk, h2, grpc_load)
        t0 = time.monotonic()
        samples = []
        next_sample = t0
        while time.monotonic() - t0 < duration - 0.5:
            if not all(p.alive() for p in proxies):
                break
            now = time.monotonic()
            if now >= next_sample:
                s = {"t": round(now - t0, 1)}
                for p in proxies:
                    sample(s, p)
                samples.append(s)
                next_sample += interval
            time.sleep(max(0.05, min(next_sample, t0 + duration - 0.5) - time.monotonic()))
        # the end reading, under load still
        s = {"t": round(time.monotonic() - t0, 1)}
        for p in proxies:
            if p.alive():
                sample(s, p)
        samples.append(s)
        cpu_all = {"wrk": pid_cpu_seconds(wrk.pid), "h2load": pid_cpu_seconds(h2.pid),
                   "grpc client": pid_cpu_seconds(grpc_load.pid),
                   "grpc server": pid_cpu_seconds(grpc_server.proc.pid),
                   "nginx": pid_cpu_seconds(nginx.proc.pid), "soak.py": sum(os.times()[:2]),
                   "outbound": outbound.cpu_seconds() if outbound.alive() else 0.0,
                   "inbound": inbound.cpu_seconds() if inbound.alive() else 0.0}
        res = {"alive": {p.name: p.alive() for p in proxies},
               "before": before, "after": {p.name: counters(p) for p in proxies if p.alive()},
               "cpu": cpu_all, "samples": samples}
        outs = {}
        for name, p in zip(("wrk", "h2load", "grpc"), loads):
            try:
                outs[name], _ = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                outs[name], _ = p.communicate()
        res["elapsed"] = time.monotonic() - t0
        res["wrk"] = parse_wrk(outs["wrk"])
        res["h2load"] = parse_h2load(outs["h2load"], h2log)
        try:
            res["grpc"] = json.loads(outs["grpc"].strip().splitlines()[-1])
        except (ValueError, IndexError):
            res["grpc"] = {"calls": 0, "ok": 0, "upstream_faults": 0, "other_errors": 1,
                           "errors": {"client failed: " + outs["grpc"][-200:]: 1}}
        time.sleep(1.5)  # the proxies' last flush of spans
        res["spans"] = zipkin.count() - spans_before
        faults = nginx.faults()
        res["faults"] = {"h1": faults.get(nginx.h1_port, 0) - faults_before.get(nginx.h1_port, 0),
                         "h2": faults.get(nginx.h2_port, 0) - faults_before.get(nginx.h2_port, 0)}
        res["grpc_server"] = grpc_server.stop()
        # A clean exit on SIGTERM: drained, and (in a sanitizer build) no leak
        # or error reported on the way out.
        res["exit"] = {}
        for p in proxies:
            if p.alive():
                p.proc.send_signal(signal.SIGTERM)
        for p in proxies:
            try:
                res["exit"][p.name] = p.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                res["exit"][p.name] = "did not exit within 60 s of SIGTERM"
        res["logs"] = {p.name: p.stderr_tail(20) for p in proxies}
    finally:
        procs.stop_all()
        try:
            zipkin.stop()
        except NameError:
            pass
        if args.keep:
            print(f"soak: work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report(args, res, warmup, duration, interval)


def pct(a, b):
    return 100.0 * (a - b) / b if b else float("nan")


def report(args, res, warmup, duration, interval):
    failures = []
    samples = res["samples"]
    print()
    print(f"soak: {res['elapsed']:.0f} s of load ({args.minutes:g} min), warm-up {warmup:.0f} s, "
          f"a sample every {interval:.0f} s ({len(samples)} samples)")
    for name, ok in res["alive"].items():
        if not ok:
            failures.append(f"the {name} proxy exited during the run; its last lines: {res['logs'][name]}")
        elif res["exit"].get(name) != 0:
            failures.append(f"the {name} proxy's exit on SIGTERM: {res['exit'].get(name)}; "
                            f"its last lines: {res['logs'][name]}")

    # -- memory and descriptors
    print()
    print("| proxy | what | end of warm-up | end | growth | max after warm-up |")
    print("|---|---|---|---|---|---|")
    res["growth"] = {}
    t_end = samples[-1]["t"] if samples else 0
    for proxy in ("outbound", "inbound"):
        for key, unit, checked in (("RssAnon", "RssAnon (kB)", True), ("fds", "open fds", True),
                                   ("VmRSS", "VmRSS (kB)", False), ("RssFile", "RssFile (kB)", False)):
            k = f"{proxy}.{key}"
            if not all(k in s for s in samples):
                continue
            w = growth_window(samples, k, warmup)
            e = growth_window(samples, k, t_end)
            mx = max(s[k] for s in samples if s["t"] >= warmup - 1e-6)
            g = pct(e, w)
            res["growth"][k] = {"warm": w, "end": e, "growth_pct": g, "max": mx}
            print(f"| {proxy} | {unit}{'' if checked else ' (not checked)'} | {w:g} | {e:g} | {g:+.2f} % | {mx:g} |")
            if checked and not g <= args.max_growth:
                failures.append(f"{proxy} {unit} grew {g:+.2f} % after the warm-up ({w:g} -> {e:g}); "
                                f"limit {args.max_growth:g} %")

    # -- client-visible errors
    wrk, h2, grpc = res["wrk"], res["h2load"], res["grpc"]
    rows = []
    if "requests" not in wrk:
        failures.append("wrk reported nothing")
        wrk = {"requests": 0, "ok": 0, "upstream": 0, "other": 0, "kinds": {}, "connect": 0, "read": 0,
               "write": 0, "timeout": 0, "p50_us": 0, "p99_us": 0}
    sock = {k: wrk[k] for k in ("connect", "read", "write", "timeout") if wrk[k]}
    other_kinds = dict(wrk["kinds"])
    other_kinds.update({"socket " + k: v for k, v in sock.items()})
    rows.append(("HTTP/1.1 (wrk)", wrk["ok"] + wrk["upstream"] + wrk["other"], wrk["ok"], wrk["upstream"],
                 wrk["other"] + sum(sock.values()), other_kinds, wrk["p50_us"] / 1000, wrk["p99_us"] / 1000,
                 res["faults"]["h1"]))
    st = h2["statuses"]
    h2_ok = sum(v for k, v in st.items() if k.startswith("2"))
    h2_500 = st.get("500", 0)
    h2_other_kinds = {f"status {k}": v for k, v in st.items() if not k.startswith("2") and k != "500"}
    for k in ("errored", "timeout"):
        if h2.get(k):
            h2_other_kinds[k] = h2[k]
    durs = h2["durations"]
    rows.append(("HTTP/2 (h2load)", sum(st.values()) + h2.get("errored", 0) + h2.get("timeout", 0), h2_ok, h2_500,
                 sum(h2_other_kinds.values()), h2_other_kinds,
                 (percentile(durs, 50) or 0) / 1000, (percentile(durs, 99) or 0) / 1000, res["faults"]["h2"]))
    if h2_500 > res["faults"]["h2"]:
        failures.append(f"h2load saw {h2_500} 500s, more than nginx sent on its h2 port ({res['faults']['h2']})")
    rows.append(("gRPC", grpc["calls"], grpc["ok"], grpc["upstream_faults"], grpc["other_errors"], grpc["errors"],
                 grpc.get("p50_ms") or 0, grpc.get("p99_ms") or 0, res["grpc_server"].get("faults", "?")))
    print()
    print("| protocol | requests | ok | errors caused by the upstream | other errors | p50 (ms) | p99 (ms) | "
          "errors the upstream made (its count) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, n, ok, up, other, kinds, p50, p99, made in rows:
        print(f"| {name} | {n} | {ok} | {up} | {other} | {p50:.2f} | {p99:.2f} | {made} |")
        if other:
            failures.append(f"{name}: {other} errors the upstreams did not cause: {kinds}")
        if n == 0:
            failures.append(f"{name}: no requests at all")
    res["rows"] = [dict(zip(("protocol", "requests", "ok", "upstream", "other", "kinds", "p50_ms", "p99_ms",
                             "upstream_made"), r)) for r in rows]

    # -- the proxies' own counters over the run
    print()
    print("| counter (delta over the run) | outbound | inbound |")
    print("|---|---|---|")
    for k in list(COUNTERS):
        vals = []
        for proxy in ("outbound", "inbound"):
            a, b = res["after"].get(proxy, {}), res["before"].get(proxy, {})
            vals.append(f"{a.get(k, 0) - b.get(k, 0):g}" if a else "-")
        print(f"| {k} | {vals[0]} | {vals[1]} |")
    for proxy in ("outbound", "inbound"):
        a, b = res["after"].get(proxy, {}), res["before"].get(proxy, {})
        if a:
            codes = {c: a["codes"].get(c, 0) - b["codes"].get(c, 0) for c in a["codes"]}
            print(f"{proxy} responses by code: " + ", ".join(f"{c} x{v:g}" for c, v in sorted(codes.items()) if v))
    print(f"spans received by the collector: {res['spans']}")
    busy = res["cpu"]
    total = sum(busy.values())
    print("CPU over the run (% of one core): " + ", ".join(
        f"{k} {100 * v / res['elapsed']:.1f}" for k, v in busy.items()) + f"; total {100 * total / res['elapsed']:.1f}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: v for k, v in res.items() if k != "h2load"} | {"failures": failures}, f, indent=1,
                      default=str)
    print()
    if failures:
        for f in failures:
            print("soak: FAIL: " + f)
        return 1
    print("soak: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
