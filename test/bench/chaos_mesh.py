#!/usr/bin/python3
"""Chaos in a mesh: what clients see while an upstream resets connections, the
config reloads every second, the certificates of the mTLS hop rotate, and the
Zipkin collector goes away, each in a phase of its own and then all at once.

chaos.py kills, restarts and stalls an endpoint behind one proxy; these phases
need what it does not have: an mTLS hop whose certificates can rotate, tracing to
a collector that can disappear, and a config to reload. So this is the topology
of soak.py (see mesh.py):

    client --plain--> outbound Outrigger ==mTLS==> inbound Outrigger --> endpoint A: nginx
                       (retry_on 5xx, reset,                        \\-> endpoint B: reset_upstream.py
                        connect-failure; budget)
    both proxies -> Zipkin collector (here)

The load is chaos.py's: THREADS paced closed-loop clients (keep-alive GETs,
HTTP/1.1). The outbound proxy's connections to the inbound one are replaced every
100 requests, so that new mTLS handshakes happen all along (a rotation would
otherwise only meet the connections made after it). The same schedule runs
straight to the endpoints too ("direct": the client alternates between A and B,
no retries); there the proxy-only events (reload, rotation, collector) change
nothing, and their phases show the load's own noise.

Phases (lengths times --scale):
  baseline      10 s  nothing happens
  resets        20 s  B resets 20 % of its requests (TCP RST after reading the request)
  reload        20 s  both proxies' configs rewritten (a route header's value) and SIGHUP, every second
  rotation      20 s  new leaf certificates for both sides of the mTLS hop, every 2 s (a ..data symlink swap)
  zipkin_down   20 s  the collector is gone (listener closed, connections cut)
  zipkin_back   10 s  the collector is back on its port
  everything    20 s  resets, reloads, rotations and no collector at once

Per target and phase: requests, client-visible errors (by kind), p50/p99; per
phase the proxies' reload, certificate-reload, handshake, retry and span counters;
at the end whether the inbound proxy serves the last certificate written. Exit 1
if a proxy died, a proxy-side check failed (a reload or certificate reload
rejected, the last certificate not served, no spans after the collector came
back), or clients of the mesh saw any error outside the resets phases. Loopback
only; bounded (about 5 minutes at --scale 1).

  test/bench/chaos_mesh.py --outrigger build/release/outrigger [--scale 0.5] [--json out.json]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)

import mesh  # noqa: E402
from chaos import Load, percentile  # noqa: E402
from mesh import log, metric_sum  # noqa: E402

PATH = "/h1/chaos"
COUNTERS = {
    "config_reloads_ok": ("outrigger_config_reloads_total", {"result": "success"}),
    "config_reloads_failed": ("outrigger_config_reloads_total", {"result": "failure"}),
    "cert_reloads_ok": ("outrigger_tls_reloads_total", {"result": "success"}),
    "cert_reloads_failed": ("outrigger_tls_reloads_total", {"result": "failure"}),
    "tls_handshakes": ("outrigger_tls_handshakes_total", {}),
    "tls_handshake_failures": ("outrigger_tls_handshake_failures_total", {}),
    "retries": ("outrigger_upstream_rq_retry_total", {"result": "attempt"}),
    "retry_budget_exhausted": ("outrigger_upstream_rq_retry_total", {"result": "budget_exhausted"}),
    "spans_sent": ("outrigger_tracing_spans_sent_total", {}),
    "spans_dropped": ("outrigger_tracing_spans_dropped_total", {}),
}


class ResetUpstream:
    def __init__(self, procs, work, fraction):
        self.procs = procs
        self.port = mesh.free_port()
        self.stats = os.path.join(work, "reset-upstream.json")
        self.args = [mesh.PY, os.path.join(HERE, "reset_upstream.py"), "--port", str(self.port),
                     "--fraction", str(fraction), "--stats", self.stats]
        self.proc = None

    def start(self):
        self.proc = self.procs.start(self.args)
        mesh.wait_port(self.port, proc=self.proc)

    def resetting(self, on):
        self.proc.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)

    def stop(self):
        self.procs.stop(self.proc)
        try:
            with open(self.stats) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}


class Repeater:
    """Runs fn every `every` seconds on a thread until stopped."""

    def __init__(self, fn, every):
        self.fn, self.every = fn, every
        self.stop_ = threading.Event()
        self.count = 0
        self.errors = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_.wait(self.every):
            try:
                self.fn()
                self.count += 1
            except Exception as e:  # reported, not fatal: the run goes on
                self.errors.append(repr(e))

    def stop(self):
        self.stop_.set()
        self.thread.join(timeout=30)


class Mesh:
    """The proxies and what the phases do to them."""

    def __init__(self, procs, binary, work, zipkin, a, b, sample_rate):
        self.zipkin = zipkin
        ca = mesh.CertAuthority(work)
        self.client_secret = mesh.MountedSecret(ca, work, "client")
        self.server_secret = mesh.MountedSecret(ca, work, "server")
        self.a, self.b, self.sample_rate = a, b, sample_rate
        self.inbound = mesh.Proxy(procs, binary, work, "inbound", mesh.free_port(), mesh.free_port())
        self.outbound = mesh.Proxy(procs, binary, work, "outbound", mesh.free_port(), mesh.free_port())
        self.generation = 0
        self.grpc_port = mesh.free_port()  # no gRPC in this load; the route needs a cluster
        self.write()
        self.inbound.start()
        self.outbound.start()
        self.lock = threading.Lock()

    def write(self):
        self.inbound.write(mesh.inbound_config(
            self.inbound.port, self.inbound.admin, self.server_secret, "client", self.a, self.grpc_port,
            self.zipkin.port, self.sample_rate, extra_endpoints=[f"127.0.0.1:{self.b.port}"],
            generation=self.generation))
        self.outbound.write(mesh.outbound_config(
            self.outbound.port, self.outbound.admin, self.client_secret, "server", self.inbound.port,
            self.zipkin.port, self.sample_rate, max_requests_per_connection=100, generation=self.generation))

    def reload(self):
        with self.lock:
            self.generation += 1
            self.write()
            self.inbound.reload()
            self.outbound.reload()

    def rotate(self):
        with self.lock:
            self.server_secret.rotate()
            self.client_secret.rotate()

    def counters(self):
        out = {}
        for p in (self.outbound, self.inbound):
            m = p.metrics()
            out[p.name] = {k: metric_sum(m, n, **labels) for k, (n, labels) in COUNTERS.items()}
        return out

    def served_serial(self):
        """The serial of the certificate the inbound proxy serves a new client now."""
        d = self.client_secret.dir
        ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
        ctx.check_hostname = False
        ctx.load_cert_chain(os.path.join(d, "tls.crt"), os.path.join(d, "tls.key"))
        with socket.create_connection(("127.0.0.1", self.inbound.port), timeout=5) as s:
            with ctx.wrap_socket(s) as t:
                return int(t.getpeercert()["serialNumber"], 16)

    def current_serial(self):
        out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in",
                              os.path.join(self.server_secret.dir, "tls.crt")], capture_output=True, text=True)
        return int(out.stdout.strip().split("=")[1], 16)


def run_target(target, args, binary):
    work = tempfile.mkdtemp(prefix="outrigger-chaos-mesh.")
    procs = mesh.Procs()
    s = args.scale
    result = {"phases": {}}
    try:
        zipkin = mesh.ZipkinCollector()
        zipkin.start()
        a = mesh.Nginx(procs, work, "nginx-a")
        a.start()
        b = ResetUpstream(procs, work, args.reset_fraction)
        b.start()
        m = Mesh(procs, binary, work, zipkin, a, b, args.sample_rate) if target == "mesh" else None
        ports = [m.outbound.port] if m else [a.h1_port, b.port]
        repeaters = []

        def every(fn, seconds):
            def start():
                repeaters.append(Repeater(fn, seconds))
            return start

        def all_at_once():
            b.resetting(True)
            zipkin.stop()
            repeaters.append(Repeater(m.reload, 1.0))
            repeaters.append(Repeater(m.rotate, 2.0))

        proxy_only = (lambda fn: fn) if m else (lambda fn: None)
        schedule = [
            ("baseline", 10 * s, None),
            ("resets", 20 * s, lambda: b.resetting(True)),
            ("reload", 20 * s, proxy_only(m and every(m.reload, 1.0))),
            ("rotation", 20 * s, proxy_only(m and every(m.rotate, 2.0))),
            ("zipkin_down", 20 * s, proxy_only(zipkin.stop)),
            ("zipkin_back", 10 * s, proxy_only(zipkin.start)),
            ("everything", 20 * s, proxy_only(m and all_at_once) or (lambda: b.resetting(True))),
        ]
        ends = {"resets": lambda: b.resetting(False), "everything": lambda: b.resetting(False)}
        log(f"--- {target}")
        boundaries = []
        with Load(ports, args.threads, args.rate, path=PATH) as load:
            time.sleep(2)  # connections up before the baseline counts
            for phase, seconds, action in schedule:
                for r in repeaters:
                    r.stop()
                    result.setdefault("repeater_errors", []).extend(r.errors)
                repeaters.clear()
                snap = m.counters() if m else {}
                boundaries.append((phase, snap, zipkin.count()))
                if action:
                    action()
                load.phase = phase
                time.sleep(seconds)
                if phase in ends:
                    ends[phase]()
            for r in repeaters:
                r.stop()
                result.setdefault("repeater_errors", []).extend(r.errors)
            repeaters.clear()
            if zipkin.server is None:
                zipkin.start()
            boundaries.append(("end", m.counters() if m else {}, zipkin.count()))
            load.phase = None
        if m:
            time.sleep(2.5)  # a file-watch interval and then some: the last rotation is picked up
            result["served_serial"] = m.served_serial()
            result["current_serial"] = m.current_serial()
            result["alive"] = {p.name: p.alive() for p in (m.outbound, m.inbound)}
            result["logs"] = {p.name: p.stderr_tail(8) for p in (m.outbound, m.inbound)}
            result["reloads_sent"] = m.generation
            result["rotations"] = m.server_secret.generation - 1
        result["reset_upstream"] = b.stop()
    finally:
        procs.stop_all()
        try:
            zipkin.stop()
        except NameError:
            pass
        shutil.rmtree(work, ignore_errors=True)

    by_phase = {}
    for phase, start, latency, error in load.results:
        if phase is not None:
            by_phase.setdefault(phase, []).append((latency, error))
    for i, (phase, seconds, _) in enumerate(schedule):
        rs = by_phase.get(phase, [])
        kinds = {}
        for _, e in rs:
            if e:
                kinds[e] = kinds.get(e, 0) + 1
        lat = [r[0] for r in rs]
        row = {"requests": len(rs), "errors": sum(kinds.values()), "kinds": kinds,
               "p50_ms": (percentile(lat, 50) or 0) * 1000, "p99_ms": (percentile(lat, 99) or 0) * 1000,
               "spans_received": boundaries[i + 1][2] - boundaries[i][2]}
        if m:
            row["proxy"] = {p: {k: boundaries[i + 1][1][p][k] - boundaries[i][1][p][k] for k in COUNTERS}
                            for p in ("outbound", "inbound")}
        result["phases"][phase] = row
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--outrigger", required=True)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--rate", type=float, default=50.0, help="requests per second per client thread")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every phase length")
    ap.add_argument("--reset-fraction", type=float, default=0.2, help="of endpoint B's requests, when resetting")
    ap.add_argument("--sample-rate", type=float, default=0.1, help="tracing sample_rate")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    missing = mesh.missing_tools(["nginx", "openssl"])
    if missing:
        print("chaos_mesh: SKIPPED: missing " + ", ".join(missing), file=sys.stderr)
        return 77
    binary = os.path.abspath(args.outrigger)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = {t: run_target(t, args, binary) for t in ("direct", "mesh")}

    failures = []
    print()
    print("| phase | direct: requests | direct: errors | direct: p50 / p99 (ms) | mesh: requests | mesh: errors | "
          "mesh: p50 / p99 (ms) | mesh: what the proxies counted |")
    print("|---|---|---|---|---|---|---|---|")
    for phase, d in results["direct"]["phases"].items():
        r = results["mesh"]["phases"][phase]
        out, inn = r["proxy"]["outbound"], r["proxy"]["inbound"]
        notes = []
        for k in ("config_reloads_ok", "config_reloads_failed", "cert_reloads_ok", "cert_reloads_failed",
                  "tls_handshake_failures", "retry_budget_exhausted", "spans_dropped"):
            if out[k] or inn[k]:
                notes.append(f"{k} {out[k]:g}/{inn[k]:g}")
        notes.append(f"handshakes {out['tls_handshakes']:g}/{inn['tls_handshakes']:g}")
        notes.append(f"retries {out['retries']:g}")
        notes.append(f"spans at the collector {r['spans_received']}")

        def errs(x):
            s = f"{x['errors']} ({100 * x['errors'] / x['requests']:.2f} %)" if x["requests"] else "-"
            if x["kinds"]:
                s += ": " + ", ".join(f"{k} x{v}" for k, v in sorted(x["kinds"].items()))
            return s
        print(f"| {phase} | {d['requests']} | {errs(d)} | {d['p50_ms']:.2f} / {d['p99_ms']:.2f} | "
              f"{r['requests']} | {errs(r)} | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} | "
              f"{'; '.join(notes)} (outbound/inbound) |")
        if phase not in ("resets", "everything") and r["errors"]:
            failures.append(f"mesh clients saw {r['errors']} errors in phase {phase}: {r['kinds']}")
        if out["config_reloads_failed"] or inn["config_reloads_failed"]:
            failures.append(f"config reloads rejected in phase {phase}")
        if out["cert_reloads_failed"] or inn["cert_reloads_failed"]:
            failures.append(f"certificate reloads rejected in phase {phase}")
    mr = results["mesh"]
    print()
    print(f"mesh: {mr['reloads_sent']} reloads sent (SIGHUP to each proxy), {mr['rotations']} rotations; "
          f"inbound serves serial {mr['served_serial']}, the last written is {mr['current_serial']}")
    for t in ("direct", "mesh"):
        print(f"{t}: endpoint B: {results[t]['reset_upstream']}")
    if mr["served_serial"] != mr["current_serial"]:
        failures.append("the inbound proxy does not serve the last certificate written")
    if not mr["phases"]["zipkin_back"]["spans_received"]:
        failures.append("no spans reached the collector after it came back")
    for name, ok in mr["alive"].items():
        if not ok:
            failures.append(f"the {name} proxy died: {mr['logs'][name]}")
    if mr.get("repeater_errors"):
        failures.append(f"reload/rotation errors: {mr['repeater_errors'][:3]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    for f in failures:
        print("chaos_mesh: FAIL: " + f)
    if not failures:
        print("chaos_mesh: PASS")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
