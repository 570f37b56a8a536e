"""The pieces soak.py and chaos_mesh.py share: a two-proxy mesh on loopback.

    client --plain--> outbound Outrigger --mTLS (HTTP/1.1 and HTTP/2)--> inbound Outrigger --> upstreams

as between two pods: the outbound proxy is the client pod's sidecar (its
application speaks plain HTTP to it), the inbound proxy the server pod's. The
certificates come from a throwaway CA made here with openssl, one SPIFFE
identity per side, laid out as the kubelet mounts a Secret (files seen
through a `..data` symlink that a rotation swaps). Both proxies trace to a
small Zipkin collector run here. Every process started through `Procs` is
killed by `Procs.stop_all()`, which the scripts call in a `finally`.

Imported by the scripts next to it; not a test of its own.
"""

import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

PY = "/usr/bin/python3"
TRUST = "spiffe://cluster.local/ns/soak/sa/"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited ({proc.returncode}) before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def missing_tools(tools):
    return [t for t in tools if shutil.which(t) is None]


class Procs:
    """Every subprocess of a run, so that all of them end with it."""

    def __init__(self):
        self.procs = []
        self.groups = set()  # pids of processes started in a group of their own

    def start(self, args, group=False, **kw):
        """group: a process group of its own, signalled as a whole (a wrapper such as
        heaptrack does not pass signals on to the program it runs)."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(args, start_new_session=group, **kw)
        self.procs.append(p)
        if group:
            self.groups.add(p.pid)
        return p

    def _signal(self, p, sig):
        if p.pid in self.groups:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        else:
            p.send_signal(sig)

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            try:
                self._signal(p, signal.SIGCONT)
                self._signal(p, sig)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(p, signal.SIGKILL)
                p.wait(timeout=5)
        if p.pid in self.groups:  # the rest of the group: a moment to finish, then killed
            deadline = time.monotonic() + timeout
            try:
                while time.monotonic() < deadline:
                    os.killpg(p.pid, 0)
                    time.sleep(0.1)
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.groups.discard(p.pid)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(reversed(self.procs)):
            try:
                self.stop(p, timeout=5)
            except (OSError, subprocess.SubprocessError):
                pass


# ---- certificates --------------------------------------------------------------------------


def _ossl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class CertAuthority:
    """A throwaway CA (EC P-256) and leaves with SPIFFE URI SANs."""

    def __init__(self, work):
        self.dir = os.path.join(work, "ca")
        os.makedirs(self.dir)
        self.crt = os.path.join(self.dir, "ca.crt")
        self.key = os.path.join(self.dir, "ca.key")
        _ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
              "-subj", "/O=outrigger-soak/CN=soak CA", "-keyout", self.key, "-out", self.crt,
              "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.serial = 0

    def leaf(self, out_dir, sa):
        """tls.crt, tls.key and ca.crt for spiffe://.../sa/SA, written into out_dir."""
        os.makedirs(out_dir, exist_ok=True)
        self.serial += 1
        ext = os.path.join(out_dir, "leaf.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                    f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:{TRUST}{sa}\n")
        csr = os.path.join(out_dir, "leaf.csr")
        _ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-subj", f"/O=outrigger-soak/CN={sa}", "-keyout", os.path.join(out_dir, "tls.key"), "-out", csr)
        _ossl("x509", "-req", "-in", csr, "-CA", self.crt, "-CAkey", self.key, "-set_serial", str(self.serial),
              "-days", "1", "-extfile", ext, "-out", os.path.join(out_dir, "tls.crt"))
        shutil.copy(self.crt, os.path.join(out_dir, "ca.crt"))
        os.remove(ext)
        os.remove(csr)


class MountedSecret:
    """A workload's certificate files as the kubelet mounts a Secret:
    DIR/tls.crt -> ..data/tls.crt, DIR/..data -> ..genN. rotate() writes a
    new leaf into ..genN+1 and swaps ..data in one rename, so that the proxy
    never sees a key and a certificate that do not belong together."""

    def __init__(self, ca, work, sa):
        self.ca, self.sa = ca, sa
        self.dir = os.path.join(work, "certs-" + sa)
        os.makedirs(self.dir)
        self.generation = 0
        self.rotate()
        for name in ("tls.crt", "tls.key", "ca.crt"):
            os.symlink(os.path.join("..data", name), os.path.join(self.dir, name))

    def rotate(self):
        self.generation += 1
        gen = f"..gen{self.generation}"
        self.ca.leaf(os.path.join(self.dir, gen), self.sa)
        tmp = os.path.join(self.dir, "..data_tmp")
        os.symlink(gen, tmp)
        os.replace(tmp, os.path.join(self.dir, "..data"))
        old = os.path.join(self.dir, f"..gen{self.generation - 1}")
        if os.path.isdir(old):
            shutil.rmtree(old)

    def tls(self, **extra):
        d = {"cert": os.path.join(self.dir, "tls.crt"), "key": os.path.join(self.dir, "tls.key"),
             "ca": os.path.join(self.dir, "ca.crt")}
        d.update(extra)
        return d


# ---- the Zipkin collector ------------------------------------------------------------------


class ZipkinCollector:
    """Accepts POST /api/v2/spans (a JSON array of spans) and counts them.
    stop() closes the listener and every open connection (the collector is
    gone: connections are refused); start() brings it back on the same port."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.spans = 0
        self.posts = 0
        self.bad = 0
        self.lock = threading.Lock()
        self.server = None
        self.conns = set()

    def start(self):
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with collector.lock:
                    collector.conns.add(self.connection)

            def finish(self):
                with collector.lock:
                    collector.conns.discard(self.connection)
                super().finish()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = 202
                try:
                    n = len(json.loads(body)) if self.path == "/api/v2/spans" else None
                except ValueError:
                    n = None
                with collector.lock:
                    collector.posts += 1
                    if n is None:
                        collector.bad += 1
                        status = 400
                    else:
                        collector.spans += n
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop(self):
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server = None

    def count(self):
        with self.lock:
            return self.spans


# ---- the upstreams -------------------------------------------------------------------------


class Nginx:
    """One nginx process (master_process off: signals act on the whole
    upstream) answering "ok" over HTTP/1.1 on h1_port and h2c (prior
    knowledge) on h2_port. fault_percent of the requests are answered 500
    with `x-upstream-fault: 1` (Outrigger never makes a 500 itself), and each
    of those is logged, so that the run can tell the errors it caused from
    the ones the proxies made."""

    def __init__(self, procs, work, name="nginx", fault_percent=0.0):
        self.procs = procs
        self.h1_port, self.h2_port = free_port(), free_port()
        self.dir = os.path.join(work, name)
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.faults_log = os.path.join(self.dir, "logs", "faults.log")
        split = (f'split_clients "${{request_id}}" $fault {{ {fault_percent}% fault; * ok; }}'
                 if fault_percent > 0 else "map $request_id $fault { default ok; }")
        with open(self.conf, "w") as f:
            f.write(f"""
master_process off;
daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/logs/error.log;
worker_rlimit_nofile 10000;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  {split}
  map $fault $fault_header {{ fault 1; default ""; }}
  log_format fault '$msec $server_port $status';
  server {{
    listen 127.0.0.1:{self.h1_port} reuseport;
    listen 127.0.0.1:{self.h2_port} http2 reuseport;
    access_log {self.faults_log} fault if=$fault_header;
    add_header x-upstream-fault $fault_header always;
    location / {{
      if ($fault = fault) {{ return 500 "injected\\n"; }}
      return 200 "ok\\n";
    }}
  }}
}}
""")
        self.proc = None

    def start(self):
        self.proc = self.procs.start(["nginx", "-c", self.conf, "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.h1_port, proc=self.proc)
        wait_port(self.h2_port, proc=self.proc)

    def faults(self):
        """The 500s it sent, by port."""
        out = {}
        try:
            with open(self.faults_log) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3:
                        out[int(parts[1])] = out.get(int(parts[1]), 0) + 1
        except FileNotFoundError:
            pass
        return out


class GrpcServer:
    """The Python gRPC server (grpc-core, `soak.Echo/Unary` echoing raw
    bytes) in a process of its own: `grpc_upstream.py serve`."""

    def __init__(self, procs, work, fault_percent=0.0):
        self.procs = procs
        self.port = free_port()
        self.stats = os.path.join(work, "grpc-server.json")
        self.args = [PY, os.path.join(os.path.dirname(os.path.abspath(__file__)), "grpc_upstream.py"), "serve",
                     "--port", str(self.port), "--fault-percent", str(fault_percent), "--stats", self.stats]
        self.proc = None

    def start(self):
        self.proc = self.procs.start(self.args, stdout=subprocess.DEVNULL)
        wait_port(self.port, timeout=20, proc=self.proc)

    def stop(self):
        """Stops it and returns what it counted: {calls, faults}."""
        if self.proc is not None:
            self.procs.stop(self.proc)
        try:
            with open(self.stats) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}


# ---- the proxies ---------------------------------------------------------------------------


def inbound_config(port, admin, secret, outbound_sa, nginx, grpc_port, zipkin_port, sample_rate,
                   extra_endpoints=(), generation=0):
    """The server pod's sidecar: mTLS from the outbound proxy only, to the upstreams."""
    h1_eps = [f"127.0.0.1:{nginx.h1_port}"] + list(extra_endpoints)
    return {
        "admin": {"address": f"127.0.0.1:{admin}"},
        "workers": 1,
        "log_level": "warn",
        "tracing": {"service_name": "soak-server", "collector_cluster": "zipkin", "sample_rate": sample_rate},
        "listeners": [{
            "name": "inbound", "address": f"127.0.0.1:{port}", "direction": "inbound",
            "idle_timeout": "5m",
            "tls": secret.tls(mode="strict", verify_identity=[TRUST + outbound_sa]),
            "filters": [{"type": "tracing"}],
            "routes": [
                {"name": "h1", "match": {"prefix": "/h1/"}, "cluster": "app_h1",
                 "request_headers_to_add": {"x-soak-generation": str(generation)}},
                {"name": "h2", "match": {"prefix": "/h2/"}, "cluster": "app_h2"},
                {"name": "grpc", "match": {"prefix": "/soak.Echo/"}, "cluster": "app_grpc"},
            ],
        }],
        "clusters": [
            {"name": "app_h1", "endpoints": h1_eps},
            {"name": "app_h2", "protocol": "http2", "endpoints": [f"127.0.0.1:{nginx.h2_port}"]},
            {"name": "app_grpc", "protocol": "http2", "endpoints": [f"127.0.0.1:{grpc_port}"]},
            {"name": "zipkin", "endpoints": [f"127.0.0.1:{zipkin_port}"]},
        ],
    }


def outbound_config(port, admin, secret, inbound_sa, inbound_port, zipkin_port, sample_rate,
                    max_requests_per_connection=0, generation=0):
    """The client pod's sidecar: plain from the application, mTLS to the
    inbound proxy (an HTTP/1.1 cluster and an HTTP/2 one), retries on."""
    tls = secret.tls(verify_identity=[TRUST + inbound_sa])
    pool = {"max_requests_per_connection": max_requests_per_connection}
    budget = {"ratio": 0.2, "min_retries_per_second": 10}
    http_retry = {"retry_on": ["5xx", "reset", "connect-failure"], "num_retries": 2}
    grpc_retry = {"retry_on": ["unavailable", "reset", "connect-failure"], "num_retries": 2}
    return {
        "admin": {"address": f"127.0.0.1:{admin}"},
        "workers": 1,
        "log_level": "warn",
        "tracing": {"service_name": "soak-client", "collector_cluster": "zipkin", "sample_rate": sample_rate},
        "listeners": [{
            "name": "outbound", "address": f"127.0.0.1:{port}", "direction": "outbound",
            "idle_timeout": "5m",
            "filters": [{"type": "tracing"}],
            "routes": [
                {"name": "h1", "match": {"prefix": "/h1/"}, "cluster": "server_h1", "retry": http_retry,
                 "request_headers_to_add": {"x-soak-generation": str(generation)}},
                {"name": "h2", "match": {"prefix": "/h2/"}, "cluster": "server_h2", "retry": http_retry},
                {"name": "grpc", "match": {"prefix": "/soak.Echo/"}, "cluster": "server_h2", "retry": grpc_retry},
            ],
        }],
        "clusters": [
            {"name": "server_h1", "endpoints": [f"127.0.0.1:{inbound_port}"], "tls": tls,
             "connection_pool": pool, "retry_budget": budget},
            {"name": "server_h2", "protocol": "http2", "endpoints": [f"127.0.0.1:{inbound_port}"], "tls": tls,
             "connection_pool": pool, "retry_budget": budget},
            {"name": "zipkin", "endpoints": [f"127.0.0.1:{zipkin_port}"]},
        ],
    }


class Proxy:
    """One Outrigger process, its config file (JSON, which is YAML), and what
    /proc and its admin listener say about it."""

    def __init__(self, procs, binary, work, name, port, admin):
        self.procs, self.binary, self.name = procs, binary, name
        self.port, self.admin = port, admin
        self.conf = os.path.join(work, name + ".yaml")
        self.log = os.path.join(work, name + ".log")
        self.proc = None

    def write(self, cfg):
        tmp = self.conf + ".tmp"
        with open(tmp, "w") as f:
            json.dump(cfg, f, indent=1)
        os.replace(tmp, self.conf)

    def start(self):
        check = subprocess.run([self.binary, "validate", "-c", self.conf], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"{self.name}: config rejected:\n{check.stderr}")
        # A diagnosis hook: SOAK_WRAP_INBOUND="heaptrack -o /tmp/inbound" runs it under a tool.
        wrap = os.environ.get("SOAK_WRAP_" + self.name.upper(), "").split()
        self.proc = self.procs.start(wrap + [self.binary, "run", "-c", self.conf], group=bool(wrap),
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        wait_port(self.port, proc=self.proc)
        wait_port(self.admin, proc=self.proc)

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def memory_kb(self):
        """VmRSS and its parts: RssAnon (heap, stacks: where a leak shows) and RssFile
        (pages of the binary and its libraries, faulted in as code first runs)."""
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(line.split()[1])
        return out

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metrics(self):
        """{(name, frozenset(labels)): value} from /metrics, counters and gauges."""
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=5)
        try:
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
        finally:
            c.close()
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def stderr_tail(self, n=5):
        try:
            with open(self.log) as f:
                return f.readlines()[-n:]
        except OSError:
            return []


def metric_sum(metrics, name, **labels):
    """The sum of the series of `name` whose labels include `labels`."""
    total = 0.0
    want = set(labels.items())
    for (n, ls), v in metrics.items():
        if n == name and want <= ls:
            total += v
    return total


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, file=sys.stderr, flush=True)
