#!/usr/bin/python3
"""Cross-check: does control_plane.py speak real xDS?

Drives a client nobody here wrote, Google's xDS client for gRPC
(@grpc/grpc-js-xds, via grpc_js_client.js), against control_plane.py, and
checks that it follows the control plane's configuration as the protocol says:

  1. initial   LDS (api_listener + HCM) -> RDS -> CDS (EDS) -> EDS routes the
               Echo service to backend A: calls reach A, never B, and the client
               ACKs LDS, RDS, CDS and EDS.
  2. switch    a new snapshot points EDS at backend B: calls move to B.
  3. nack      a snapshot whose Cluster has an lb_policy gRPC does not support:
               the client NACKs CDS (error_detail set) and calls keep working.
  4. reconnect admin /break ends the stream and refuses new ones for a second:
               the client reconnects, re-requests, ACKs, calls keep working.
  5. delta     a Python client (grpcio) on DeltaAggregatedResources: subscribe,
               ACK, push, remove, "does not exist". grpc-js-xds speaks only state
               of the world, so this phase checks the delta side against our own
               reading of the protocol, not against an independent client.

Exit 0: all passed; 1: a check failed; 77: skipped (no node/npm, no grpc for
Python, no protoc). Every server binds port 0 on 127.0.0.1; every wait has a
deadline; every process started here is stopped on the way out.
Run: /usr/bin/python3 test/tools/xds/crosscheck.py [--verbose]
"""

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent import futures

HERE = os.path.dirname(os.path.abspath(__file__))
# Keep the source tree clean of __pycache__ when importing xds_api.
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)

SKIP = 77
OVERALL_SECONDS = 90  # hard cap (SIGALRM); a passing run takes ~15 s
NODE_ID = "crosscheck-grpc-js"
SERVICE_NAME = "echo.test"
ROUTE_NAME = "echo-route"
CLUSTER_NAME = "echo"
METHOD = "/outrigger.test.Echo/Unary"

try:
    import grpc
    import xds_api
    DISCOVERY, ADS_GRPC = xds_api.load()
except ImportError as e:
    print(f"SKIP: {e}: run with Debian's /usr/bin/python3 (python3-grpcio, python3-protobuf)")
    sys.exit(SKIP)
except xds_api.Unavailable as e:
    print(f"SKIP: {e}")
    sys.exit(SKIP)

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
ADS_SOURCE = {"ads": {}, "resource_api_version": "V3"}

VERBOSE = False


class CheckFailed(Exception):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)
    log(f"  ok: {msg}")


def wait_for(what, predicate, timeout, interval=0.1):
    """Polls predicate() until it returns something truthy; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise CheckFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- snapshots

def snapshot(version, backend_port, lb_policy="ROUND_ROBIN"):
    """LDS api_listener (HCM with RDS) -> RouteConfiguration -> EDS Cluster -> one endpoint."""
    return {"version": version, "resources": [
        {"@type": xds_api.LISTENER, "name": SERVICE_NAME,
         "api_listener": {"api_listener": {
             "@type": HCM,
             "rds": {"config_source": ADS_SOURCE, "route_config_name": ROUTE_NAME},
             "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}]}}},
        {"@type": xds_api.ROUTE, "name": ROUTE_NAME,
         "virtual_hosts": [{"name": "echo", "domains": [SERVICE_NAME],
                            "routes": [{"match": {"prefix": ""}, "route": {"cluster": CLUSTER_NAME}}]}]},
        {"@type": xds_api.CLUSTER, "name": CLUSTER_NAME, "type": "EDS",
         "eds_cluster_config": {"eds_config": ADS_SOURCE}, "lb_policy": lb_policy},
        {"@type": xds_api.ENDPOINT, "cluster_name": CLUSTER_NAME,
         # gRPC ignores localities without a weight.
         "endpoints": [{"locality": {"region": "local"}, "load_balancing_weight": 1,
                        "lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                            "address": "127.0.0.1", "port_value": backend_port}}},
                            "health_status": "HEALTHY"}]}]},
    ]}


# --------------------------------------------------------------------------- processes

class LineReader:
    """Collects a child's stdout lines in a thread, so reads can have deadlines."""

    def __init__(self, proc, name):
        self.lines = queue.Queue()
        self.name = name
        threading.Thread(target=self._run, args=(proc.stdout,), daemon=True).start()

    def _run(self, pipe):
        for line in pipe:
            line = line.rstrip("\n")
            if VERBOSE:
                print(f"    {self.name}| {line}", flush=True)
            self.lines.put(line)
        self.lines.put(None)

    def next(self, timeout):
        """The next line, or None at EOF; CheckFailed after timeout."""
        try:
            return self.lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            raise CheckFailed(f"{self.name}: no output for {timeout:.0f}s") from None


class Backend:
    """An in-process gRPC server answering outrigger.test.Echo/Unary with its own name."""

    def __init__(self, name):
        self.name = name
        self.calls = 0
        self._lock = threading.Lock()

        def unary(request, context):
            with self._lock:
                self.calls += 1
            if VERBOSE:
                log(f"backend {name} got {request!r}")
            return name.encode()

        # No serializers: requests and responses stay raw bytes.
        handler = grpc.method_handlers_generic_handler(
            "outrigger.test.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(unary)})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self):
        self.server.stop(grace=0).wait(5)


class Admin:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def post(self, path, body):
        return self._call("POST", path, body)

    def get(self, path):
        status, body = self._call("GET", path)
        if status != 200:
            raise CheckFailed(f"GET {path}: HTTP {status}")
        return body

    def push(self, snap):
        status, body = self.post("/snapshot", snap)
        if status != 200:
            raise CheckFailed(f"POST /snapshot {snap['version']}: HTTP {status}: {body}")


def stop_process(proc, name):
    """SIGTERM, then SIGKILL if it lingers; never leaves a child behind."""
    if proc is None or proc.poll() is not None:
        return
    try:
        if proc.stdin:
            proc.stdin.close()  # grpc_js_client.js exits when its stdin ends
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log(f"{name} ignored SIGTERM; killing it")
        proc.kill()
        proc.wait(timeout=5)
    except OSError:
        pass


# --------------------------------------------------------------------------- the grpc-js client

class Calls:
    """The grpc_js_client.js output: one JSON object per call."""

    def __init__(self, reader):
        self.reader = reader
        self.history = []

    def next_call(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            line = self.reader.next(deadline - time.monotonic())
            if line is None:
                raise CheckFailed("grpc_js_client.js exited")
            try:
                call = json.loads(line)
            except ValueError:
                continue  # not ours (a warning from a library)
            self.history.append(call)
            return call

    def until(self, what, predicate, timeout):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CheckFailed(f"timed out after {timeout:.0f}s waiting for {what}; last calls: "
                                  f"{self.history[-3:]}")
            call = self.next_call(remaining)
            if predicate(call):
                return call

    def take(self, n, timeout):
        return [self.next_call(timeout) for _ in range(n)]


def acked(admin, type_url, version=None, since=0):
    return [r for r in admin.get(f"/requests?since={since}")
            if r["type_url"] == type_url and r["kind"] == "ack" and r["node_id"] == NODE_ID
            and (version is None or r["version_info"] == version)]


# --------------------------------------------------------------------------- delta phase

def delta_phase(ads_port, admin, backend_port):
    """Our own delta client: checks the incremental side of control_plane.py."""
    outgoing = queue.Queue()

    def requests():
        while True:
            item = outgoing.get()
            if item is None:
                return
            yield item

    channel = grpc.insecure_channel(f"127.0.0.1:{ads_port}")
    stub = ADS_GRPC.AggregatedDiscoveryServiceStub(channel)
    call = stub.DeltaAggregatedResources(requests(), timeout=30)
    responses = queue.Queue()

    def read():
        try:
            for r in call:
                responses.put(r)
        except grpc.RpcError:
            pass
        responses.put(None)

    threading.Thread(target=read, daemon=True).start()

    def recv(what):
        try:
            r = responses.get(timeout=5)
        except queue.Empty:
            raise CheckFailed(f"delta: no response for {what}") from None
        if r is None:
            raise CheckFailed(f"delta: stream ended waiting for {what}")
        return r

    def expect_silence():
        try:
            r = responses.get(timeout=0.5)
        except queue.Empty:
            return
        raise CheckFailed(f"delta: unexpected response {r.type_url} nonce={r.nonce}")

    req = DISCOVERY.DeltaDiscoveryRequest
    try:
        node = {"id": "crosscheck-delta"}
        outgoing.put(req(node=node, type_url=xds_api.CLUSTER))  # legacy wildcard
        r = recv("CDS wildcard")
        check([x.name for x in r.resources] == [CLUSTER_NAME] and r.system_version_info == "v5",
              "delta: CDS wildcard subscription gets the cluster, with system_version_info")
        cds_version = r.resources[0].version
        outgoing.put(req(type_url=xds_api.CLUSTER, response_nonce=r.nonce))
        outgoing.put(req(type_url=xds_api.ENDPOINT, resource_names_subscribe=[CLUSTER_NAME, "missing"]))
        r = recv("EDS subscription")
        check([x.name for x in r.resources] == [CLUSTER_NAME] and list(r.removed_resources) == ["missing"],
              "delta: EDS sends the subscribed resource and reports the absent one in removed_resources")
        outgoing.put(req(type_url=xds_api.ENDPOINT, response_nonce=r.nonce))
        expect_silence()
        # Only EDS changes: only EDS is pushed, and only the changed resource.
        admin.push(snapshot("v6", backend_port + 1))  # any other port: only the content matters
        r = recv("EDS push")
        check(r.type_url == xds_api.ENDPOINT and [x.name for x in r.resources] == [CLUSTER_NAME]
              and r.system_version_info == "v6", "delta: a changed endpoint is pushed alone")
        outgoing.put(req(type_url=xds_api.ENDPOINT, response_nonce=r.nonce,
                         error_detail={"code": 3, "message": "crosscheck says no"}))
        expect_silence()
        # The cluster goes away: removed_resources, for CDS and EDS.
        empty = {"version": "v7", "resources": []}
        admin.push(empty)
        got = {}
        for _ in range(2):
            r = recv("removal")
            got[r.type_url] = list(r.removed_resources)
        check(got == {xds_api.CLUSTER: [CLUSTER_NAME], xds_api.ENDPOINT: [CLUSTER_NAME]},
              "delta: removing the cluster and its endpoints sends removed_resources for both")
        ours = [x for x in admin.get("/requests") if x["node_id"] == "crosscheck-delta"]
        kinds = [x["kind"] for x in ours]
        check(kinds == ["initial", "ack", "initial", "ack", "nack"] and ours[-1]["error_detail"]["code"] == 3,
              f"delta: /requests classifies the delta requests ({kinds})")
        check(cds_version != "", "delta: resources carry a version")
    finally:
        outgoing.put(None)
        call.cancel()
        channel.close()


# --------------------------------------------------------------------------- main

def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--verbose", action="store_true", help="echo the children's output and backend calls")
    ap.add_argument("--npm-cache", help="where npm-install.sh installs grpc-js-xds")
    args = ap.parse_args()
    VERBOSE = args.verbose
    npm_dir = args.npm_cache or os.path.join(
        os.environ.get("HOME") or tempfile.gettempdir(), ".cache", "outrigger-xds-grpc-js")

    rc = subprocess.run(["sh", os.path.join(HERE, "npm-install.sh"), npm_dir]).returncode
    if rc == SKIP:
        print("SKIP: node/npm missing")
        return SKIP
    if rc != 0:
        print(f"FAIL: npm-install.sh exited {rc}")
        return 1
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()

    # A hard cap on the whole run: SIGALRM raises in the main thread, and the
    # finally below still stops everything.
    def on_alarm(*_):
        raise CheckFailed(f"overall time limit of {OVERALL_SECONDS}s exceeded")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(OVERALL_SECONDS)

    tmp = tempfile.mkdtemp(prefix="xds-crosscheck-")
    backends, cp, client = [], None, None
    phase = "setup"
    started = time.monotonic()
    try:
        a, b = Backend("A"), Backend("B")
        backends = [a, b]
        log(f"backends: A on {a.port}, B on {b.port}")

        snap_file = os.path.join(tmp, "snapshot.json")
        with open(snap_file, "w") as f:
            json.dump(snapshot("v1", a.port), f)
        cp = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "control_plane.py"), "--ads-port", "0", "--admin-port", "0",
             "--snapshot", snap_file], stdout=subprocess.PIPE, text=True)
        cp_out = LineReader(cp, "control-plane")
        first = cp_out.next(20)
        if not first or not first.startswith("LISTENING "):
            raise CheckFailed(f"control plane did not start: {first!r}")
        ports = dict(kv.split("=") for kv in first.split()[1:])
        ads_port, admin = int(ports["ads"]), Admin(int(ports["admin"]))
        log(f"control plane: ads={ads_port} admin={ports['admin']}")

        bootstrap = os.path.join(tmp, "bootstrap.json")
        with open(bootstrap, "w") as f:
            json.dump({"xds_servers": [{"server_uri": f"127.0.0.1:{ads_port}",
                                        "channel_creds": [{"type": "insecure"}],
                                        "server_features": ["xds_v3"]}],
                       "node": {"id": NODE_ID, "locality": {"region": "local"}}}, f)
        env = dict(os.environ, GRPC_XDS_BOOTSTRAP=bootstrap)
        env.pop("GRPC_XDS_BOOTSTRAP_CONFIG", None)
        client = subprocess.Popen(
            ["node", os.path.join(HERE, "grpc_js_client.js"), "--modules", os.path.join(npm_dir, "node_modules"),
             "--target", f"xds:///{SERVICE_NAME}", "--method", METHOD, "--interval-ms", "100",
             "--max-seconds", str(OVERALL_SECONDS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        calls = Calls(LineReader(client, "grpc-js"))

        phase = "1 initial"
        log(f"phase {phase}: v1 routes {SERVICE_NAME} to A")
        first_ok = calls.until("a successful call", lambda c: c["ok"], 20)
        check(first_ok["backend"] == "A", f"the first successful call reached A ({first_ok})")
        batch = calls.take(5, 5)
        check(all(c["ok"] and c["backend"] == "A" for c in batch), "the next 5 calls all reached A")
        check(b.calls == 0 and a.calls >= 6, f"backend B got no call (A: {a.calls}, B: {b.calls})")
        for type_url in (xds_api.LISTENER, xds_api.ROUTE, xds_api.CLUSTER, xds_api.ENDPOINT):
            check(acked(admin, type_url, "v1"), f"the client ACKed {xds_api.SHORT_NAMES[type_url]} v1")

        phase = "2 switch"
        log(f"phase {phase}: v2 points EDS at B")
        b_before = b.calls
        admin.push(snapshot("v2", b.port))
        calls.until("a call answered by B", lambda c: c["ok"] and c["backend"] == "B", 15)
        batch = calls.take(5, 5)
        check(all(c["ok"] and c["backend"] == "B" for c in batch), "after v2 the next 5 calls all reached B")
        check(b.calls > b_before, f"backend B counted the calls (B: {b.calls})")
        wait_for("an EDS v2 ACK", lambda: acked(admin, xds_api.ENDPOINT, "v2"), 5)
        check(True, "the client ACKed EDS v2")
        check(not acked(admin, xds_api.CLUSTER, "v2"),
              "CDS was not re-sent for v2 (its content did not change)")

        phase = "3 nack"
        log(f"phase {phase}: v3 has a Cluster with lb_policy RANDOM (unsupported by gRPC)")
        admin.push(snapshot("v3", b.port, lb_policy="RANDOM"))
        nack = wait_for("a CDS NACK", lambda: [
            r for r in admin.get("/requests") if r["type_url"] == xds_api.CLUSTER and r["kind"] == "nack"], 10)[0]
        check(nack["error_detail"] and nack["error_detail"]["message"],
              f"the client NACKed CDS v3: {nack['error_detail']['message']!r}")
        check(nack["version_info"] == "v1", "the NACK carries the last accepted CDS version (v1)")
        batch = calls.take(5, 5)
        check(all(c["ok"] and c["backend"] == "B" for c in batch), "calls keep working (B) after the NACK")
        state = admin.get("/state")
        cds = [s["types"][xds_api.CLUSTER] for s in state["streams"] if s["node_id"] == NODE_ID][-1]
        check(cds["acked_version"] == "v1" and cds["last_nack"]["nonce"] == nack["response_nonce"],
              "/state shows CDS still ACKed at v1 and the NACK")

        phase = "4 reconnect"
        log(f"phase {phase}: v4 (valid, back to A), then /break with refuse_seconds=1")
        admin.push(snapshot("v4", a.port))
        calls.until("a call answered by A", lambda c: c["ok"] and c["backend"] == "A", 15)
        wait_for("a CDS v4 ACK", lambda: acked(admin, xds_api.CLUSTER, "v4"), 5)
        opened = admin.get("/state")["streams_opened"]
        mark = len(admin.get("/requests"))
        status, body = admin.post("/break", {"refuse_seconds": 1})
        check(status == 200 and body["broken"] == 1, "/break ended the client's stream")
        wait_for("the client to reconnect and ACK LDS again",
                 lambda: acked(admin, xds_api.LISTENER, "v4", since=mark), 15)
        state = admin.get("/state")
        check(state["streams_opened"] == opened + 1 and len(state["streams_open"]) == 1,
              f"one new stream (opened {opened} -> {state['streams_opened']}, "
              f"refused while breaking: {state['streams_refused']})")
        new = admin.get(f"/requests?since={mark}")
        check(any(r["kind"] == "initial" and r["version_info"] == "v4" for r in new),
              "the reconnecting client re-requested with the version it holds (v4)")
        batch = calls.take(5, 5)
        check(all(c["ok"] and c["backend"] == "A" for c in batch), "calls keep working after the reconnect")
        failed = [c for c in calls.history if not c["ok"]]
        check(len(calls.history) > 0, f"{len(calls.history)} calls made, {len(failed)} failed "
              f"(failures before the first success are expected while the client starts)")

        # The grpc-js client is done: the delta phase pushes snapshots it must not see.
        stop_process(client, "grpc_js_client.js")

        phase = "5 delta"
        log(f"phase {phase}: a Python delta client")
        admin.push(snapshot("v5", a.port))
        delta_phase(ads_port, admin, a.port)

        phase = "done"
        log(f"PASS: all phases passed in {time.monotonic() - started:.1f}s "
            f"(grpc-js-xds 1.14.1 / grpc-js 1.14.7 on node {node_version})")
        return 0
    except CheckFailed as e:
        log(f"FAIL in phase {phase}: {e}")
        return 1
    finally:
        signal.alarm(0)
        stop_process(client, "grpc_js_client.js")
        stop_process(cp, "control_plane.py")
        if cp is not None and cp.returncode not in (0, None):
            log(f"control_plane.py exited {cp.returncode}")
        for backend in backends:
            backend.stop()
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
