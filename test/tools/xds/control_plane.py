#!/usr/bin/python3
"""A scriptable xDS control plane (Envoy v3 ADS) for Outrigger's tests.

Serves envoy.service.discovery.v3.AggregatedDiscoveryService, both variants:
StreamAggregatedResources (state of the world) and DeltaAggregatedResources
(incremental), from one in-memory snapshot that a test replaces at will through
a small JSON admin API on loopback (see README.md). It records every request it
receives, classified as initial/ACK/NACK/stale, so a test can assert on what the
client under test said, not only on what it did.

Usage:
  /usr/bin/python3 control_plane.py [--ads-port 0] [--admin-port 0] [--snapshot FILE]
                                    [--tls-cert CERT --tls-key KEY [--tls-ca CA]]
Prints `LISTENING ads=<port> admin=<port>` (flushed) once both ports accept, then
one line per notable event. SIGTERM/SIGINT: stops both servers, exits 0.

This is a test tool, deliberately simple: a single snapshot version shared by
all types, resources served to every node alike, no per-node snapshots, no TTLs,
no on-demand/xdstp names. What it does implement, it implements as the protocol
(envoy/api/xds_protocol) says, because the point is to hold clients to it.
"""

import argparse
import hashlib
import http.server
import itertools
import json
import os
import queue
import signal
import sys
import threading
import time
import urllib.parse
from concurrent import futures

# Keep the source tree clean of __pycache__ when importing xds_api.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xds_api  # noqa: E402

try:
    import grpc
    from google.protobuf import any_pb2, json_format
except ImportError as e:  # not Debian's python3, or python3-grpcio missing
    print(f"control_plane.py: {e}: run it with /usr/bin/python3 (python3-grpcio, python3-protobuf)",
          file=sys.stderr)
    sys.exit(77)

discovery_pb2, ads_pb2_grpc = xds_api.load()

# LDS and CDS are the types whose empty subscription means "everything" (legacy
# wildcard); for the others an empty list means no resource at all.
WILDCARD_TYPES = (xds_api.LISTENER, xds_api.CLUSTER)
# Order of pushes when one snapshot changes several types: what is referenced goes
# before what references it (secrets, clusters and endpoints before the listeners
# and routes that point at them), the make-before-break order the protocol advises.
PUSH_ORDER = [xds_api.SECRET, xds_api.CLUSTER, xds_api.ENDPOINT, xds_api.LISTENER, xds_api.ROUTE]
# How often a stream's loop wakes up to notice that its client or the server went away.
POLL_SECONDS = 0.5

_print_lock = threading.Lock()


def say(line):
    """One event line on stdout; flushed, since tests read it through a pipe."""
    with _print_lock:
        print(line, flush=True)


# --------------------------------------------------------------------------- snapshot

class Snapshot:
    """An immutable set of resources: {type_url: {name: (Any, resource_version)}}."""

    def __init__(self, version, by_type):
        self.version = version
        self.by_type = by_type

    @staticmethod
    def parse(obj):
        """Builds a Snapshot from the admin API's JSON; raises ValueError with a useful message."""
        if not isinstance(obj, dict):
            raise ValueError("snapshot must be a JSON object")
        version = obj.get("version")
        if not isinstance(version, str) or not version:
            raise ValueError('snapshot needs a non-empty string "version"')
        resources = obj.get("resources", [])
        if not isinstance(resources, list):
            raise ValueError('"resources" must be a list')
        by_type = {}
        for i, res in enumerate(resources):
            if not isinstance(res, dict) or "@type" not in res:
                raise ValueError(f"resources[{i}]: needs an \"@type\"")
            type_url = res["@type"]  # read first: ParseDict consumes it
            packed = any_pb2.Any()
            try:
                json_format.ParseDict(res, packed)
            except json_format.ParseError as e:
                raise ValueError(f"resources[{i}] ({type_url}): {e}") from e
            cls = xds_api.message_class(packed.type_url)
            message = cls()
            packed.Unpack(message)
            # Resources are named by "name", except ClusterLoadAssignment.
            fields = message.DESCRIPTOR.fields_by_name
            name_field = "name" if "name" in fields else "cluster_name" if "cluster_name" in fields else None
            name = getattr(message, name_field) if name_field else ""
            if not name:
                raise ValueError(f"resources[{i}] ({packed.type_url}): has no name")
            of_type = by_type.setdefault(packed.type_url, {})
            if name in of_type:
                raise ValueError(f"resources[{i}]: duplicate {packed.type_url} {name!r}")
            # A resource's own version (delta xDS) is a digest of its content, so it
            # changes exactly when the resource does, whatever the snapshot version.
            digest = hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()[:12]
            of_type[name] = (packed, digest)
        return Snapshot(version, by_type)

    def resources(self, type_url):
        return self.by_type.get(type_url, {})


def ordered_types(type_urls):
    known = [t for t in PUSH_ORDER if t in type_urls]
    return known + sorted(t for t in type_urls if t not in PUSH_ORDER)


# --------------------------------------------------------------------------- streams

class TypeState:
    """What one stream knows about one type_url."""

    def __init__(self):
        self.names = set()         # explicitly subscribed names
        self.wildcard = False
        self.named_once = False    # SotW: once names were given, empty means none
        self.nonce = None          # nonce of the latest response sent
        self.sent_version = None
        self.sent = None           # SotW: {name: resource_version} of the latest response
        self.known = {}            # delta: {name: resource_version} the client holds
        self.told_absent = set()   # delta: subscribed names already reported missing
        self.acked_version = None
        self.acked_nonce = None
        self.last_nack = None      # {"version_info", "nonce", "code", "message"}
        self.responses = 0

    def in_scope(self, name):
        return self.wildcard or name in self.names

    def as_json(self):
        return {
            "subscribed": (["*"] if self.wildcard else []) + sorted(self.names),
            "sent_version": self.sent_version, "sent_nonce": self.nonce, "responses": self.responses,
            "acked_version": self.acked_version, "acked_nonce": self.acked_nonce,
            "last_nack": self.last_nack,
        }


class Stream:
    def __init__(self, stream_id, delta, peer):
        self.id = stream_id
        self.delta = delta
        self.peer = peer
        self.node_id = None
        self.open = True
        self.types = {}
        self.events = queue.Queue()

    def as_json(self):
        return {"stream": self.id, "delta": self.delta, "peer": self.peer, "node_id": self.node_id,
                "open": self.open, "types": {t: s.as_json() for t, s in self.types.items()}}


def _error_detail(req):
    if not req.HasField("error_detail"):
        return None
    return {"code": req.error_detail.code, "message": req.error_detail.message}


class ControlPlane:
    """The shared state: snapshot, streams, request log. One lock guards all of it;
    each stream's protocol work runs in its own gRPC handler thread under that lock,
    and the responses are yielded outside it."""

    def __init__(self, snapshot):
        self.lock = threading.Lock()
        self.snapshot = snapshot
        self.streams = {}
        self.requests = []
        self.streams_opened = 0
        self.streams_refused = 0
        self.refuse_until = 0.0
        self._ids = itertools.count(1)
        self._nonces = itertools.count(1)

    # ---- admin side

    def set_snapshot(self, snapshot):
        with self.lock:
            self.snapshot = snapshot
            open_streams = [s for s in self.streams.values() if s.open]
        say(f"SNAPSHOT version={snapshot.version} resources="
            f"{sum(len(r) for r in snapshot.by_type.values())}")
        # Each stream computes its own push in its own thread.
        for s in open_streams:
            s.events.put(("snapshot", None))

    def break_streams(self, refuse_seconds):
        with self.lock:
            self.refuse_until = time.monotonic() + max(0.0, refuse_seconds)
            open_streams = [s for s in self.streams.values() if s.open]
        say(f"BREAK streams={len(open_streams)} refuse_seconds={refuse_seconds}")
        for s in open_streams:
            s.events.put(("break", None))
        return len(open_streams)

    def state(self):
        with self.lock:
            return {
                "version": self.snapshot.version,
                "streams_opened": self.streams_opened,
                "streams_refused": self.streams_refused,
                "streams_open": [s.id for s in self.streams.values() if s.open],
                "refusing": time.monotonic() < self.refuse_until,
                "streams": [s.as_json() for s in self.streams.values()],
            }

    def request_log(self, since=0):
        with self.lock:
            return self.requests[since:]

    # ---- gRPC side

    def serve(self, request_iterator, context, delta):
        with self.lock:
            if time.monotonic() < self.refuse_until:
                self.streams_refused += 1
                refused = True
            else:
                refused = False
                self.streams_opened += 1
                stream = Stream(next(self._ids), delta, context.peer())
                self.streams[stream.id] = stream
        if refused:
            say("STREAM refused")
            context.abort(grpc.StatusCode.UNAVAILABLE, "control plane refusing streams (admin /break)")

        # Requests are read in a thread of their own so that this one can wait on a
        # single queue for requests, snapshot changes and admin breaks alike.
        def read():
            try:
                for req in request_iterator:
                    stream.events.put(("request", req))
            except Exception:  # the client went away or the call was cancelled
                pass
            stream.events.put(("end", None))

        threading.Thread(target=read, name=f"ads-read-{stream.id}", daemon=True).start()
        say(f"STREAM opened id={stream.id} delta={str(delta).lower()} peer={stream.peer}")
        ended_by = "client"
        try:
            while True:
                try:
                    kind, req = stream.events.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    if not context.is_active():
                        ended_by = "cancel"
                        return
                    continue
                if kind == "end":
                    return
                if kind == "break":
                    ended_by = "break"
                    context.abort(grpc.StatusCode.UNAVAILABLE, "stream broken by the control plane (admin /break)")
                try:
                    with self.lock:
                        if kind == "request":
                            out = self._on_request(stream, req)
                        else:
                            out = self._on_snapshot(stream)
                except Exception as e:  # a bug or an odd request must not end the server
                    say(f"ERROR stream={stream.id}: {type(e).__name__}: {e}")
                    continue
                for resp in out:
                    yield resp
        finally:
            with self.lock:
                stream.open = False
            say(f"STREAM closed id={stream.id} by={ended_by}")

    def _log_request(self, stream, req, kind):
        entry = {
            "stream": stream.id, "delta": stream.delta, "type_url": req.type_url,
            "response_nonce": req.response_nonce, "error_detail": _error_detail(req),
            "node_id": stream.node_id, "kind": kind, "time": time.time(),
        }
        if stream.delta:
            entry["version_info"] = None
            entry["subscribe"] = list(req.resource_names_subscribe)
            entry["unsubscribe"] = list(req.resource_names_unsubscribe)
            entry["initial_resource_versions"] = dict(req.initial_resource_versions)
        else:
            entry["version_info"] = req.version_info
            entry["resource_names"] = list(req.resource_names)
        self.requests.append(entry)
        short = xds_api.SHORT_NAMES.get(req.type_url, req.type_url)
        detail = f" error={entry['error_detail']['message']!r}" if entry["error_detail"] else ""
        say(f"REQUEST stream={stream.id} type={short} kind={kind} nonce={req.response_nonce!r}{detail}")

    def _classify(self, stream, req):
        """initial / stale / nack / ack, and the type's state (created on first sight)."""
        if req.HasField("node") and req.node.id:
            # Clients send the node only on a stream's first request.
            stream.node_id = req.node.id
        st = stream.types.get(req.type_url)
        new = st is None
        if new:
            st = stream.types[req.type_url] = TypeState()
        if not req.response_nonce:
            kind = "initial"
        elif new or req.response_nonce != st.nonce:
            # An answer to a response that a newer one has superseded: the client
            # will answer the newer one too, so acting on this one would be wrong.
            kind = "stale"
        elif req.HasField("error_detail"):
            kind = "nack"
        else:
            kind = "ack"
        self._log_request(stream, req, kind)
        if kind == "ack":
            st.acked_version, st.acked_nonce = st.sent_version, req.response_nonce
        elif kind == "nack":
            st.last_nack = {"version_info": req.version_info if not stream.delta else None,
                            "nonce": req.response_nonce, **_error_detail(req)}
        return st, new, kind

    def _on_request(self, stream, req):
        if not req.type_url:
            # ADS requires a type_url on every request; nothing sensible to answer.
            self._log_request(stream, req, "invalid")
            return []
        st, new, kind = self._classify(stream, req)
        if stream.delta:
            return self._delta_request(stream, st, new, kind, req)
        return self._sotw_request(stream, st, kind, req)

    def _on_snapshot(self, stream):
        out = []
        for type_url in ordered_types(stream.types.keys()):
            st = stream.types[type_url]
            if stream.delta:
                resp = self._delta_response(stream, type_url, st, force=False)
            else:
                resp = self._sotw_response(type_url, st, force=False)
            if resp is not None:
                out.append(resp)
        return out

    # ---- state of the world

    def _sotw_request(self, stream, st, kind, req):
        if kind == "stale":
            return []
        names = set(req.resource_names)
        st.wildcard = "*" in names or (req.type_url in WILDCARD_TYPES and not names and not st.named_once)
        st.names = names - {"*"}
        if st.names:
            st.named_once = True
        # An initial request always gets an answer (it may be a reconnecting client
        # that needs the current version); otherwise answer only when what the
        # subscription selects differs from what was sent. After a NACK it does
        # not: resending what was just rejected helps nobody, the client keeps the
        # last version it accepted until a new snapshot comes.
        resp = self._sotw_response(req.type_url, st, force=(kind == "initial"))
        return [resp] if resp is not None else []

    def _sotw_response(self, type_url, st, force):
        selected = {n: r for n, r in self.snapshot.resources(type_url).items() if st.in_scope(n)}
        digest = {n: r[1] for n, r in selected.items()}
        if not force and digest == st.sent:
            return None
        st.sent = digest
        st.sent_version = self.snapshot.version
        st.nonce = str(next(self._nonces))
        st.responses += 1
        say(f"RESPONSE type={xds_api.SHORT_NAMES.get(type_url, type_url)} version={st.sent_version} "
            f"nonce={st.nonce} resources={sorted(selected)}")
        return discovery_pb2.DiscoveryResponse(
            version_info=st.sent_version, type_url=type_url, nonce=st.nonce,
            resources=[selected[n][0] for n in sorted(selected)])

    # ---- delta (incremental)

    def _delta_request(self, stream, st, new, kind, req):
        subscribe = set(req.resource_names_subscribe)
        unsubscribe = set(req.resource_names_unsubscribe)
        if new:
            # Legacy wildcard: the first request of LDS/CDS with no names at all.
            st.wildcard = req.type_url in WILDCARD_TYPES and not subscribe
            # A reconnecting client says what it already holds; do not resend it.
            st.known = dict(req.initial_resource_versions)
        if "*" in subscribe:
            st.wildcard = True
        if "*" in unsubscribe:
            st.wildcard = False
        st.names |= subscribe - {"*"}
        st.names -= unsubscribe
        for name in unsubscribe:
            # The client forgets what it unsubscribed from; a later resubscription
            # must send the resource again.
            st.known.pop(name, None)
            st.told_absent.discard(name)
        # Unlike SotW, subscription changes are applied even from a stale request:
        # they are deltas, and dropping one would lose it for good.
        resp = self._delta_response(stream, req.type_url, st, force=(kind == "initial" and new))
        return [resp] if resp is not None else []

    def _delta_response(self, stream, type_url, st, force):
        current = self.snapshot.resources(type_url)
        changed = [n for n, (_, v) in current.items() if st.in_scope(n) and st.known.get(n) != v]
        removed = [n for n in st.known if n not in current or not st.in_scope(n)]
        # A subscribed name the snapshot lacks is reported as removed once: that is
        # how the incremental protocol tells a client a resource does not exist.
        absent = [n for n in st.names if n not in current and n not in st.known and n not in st.told_absent]
        if not changed and not removed and not absent and not force:
            return None
        for n in removed:
            del st.known[n]
        st.told_absent |= set(absent)
        for n in changed:
            st.known[n] = current[n][1]
            st.told_absent.discard(n)
        st.sent_version = self.snapshot.version
        st.nonce = str(next(self._nonces))
        st.responses += 1
        say(f"RESPONSE delta type={xds_api.SHORT_NAMES.get(type_url, type_url)} version={st.sent_version} "
            f"nonce={st.nonce} resources={sorted(changed)} removed={sorted(removed + absent)}")
        return discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=st.sent_version, type_url=type_url, nonce=st.nonce,
            resources=[discovery_pb2.Resource(name=n, version=current[n][1], resource=current[n][0])
                       for n in sorted(changed)],
            removed_resources=sorted(removed + absent))


class AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, cp):
        self.cp = cp

    def StreamAggregatedResources(self, request_iterator, context):
        return self.cp.serve(request_iterator, context, delta=False)

    def DeltaAggregatedResources(self, request_iterator, context):
        return self.cp.serve(request_iterator, context, delta=True)


# --------------------------------------------------------------------------- admin HTTP

def make_admin_handler(cp):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # stdout is for event lines only
            pass

        def _reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw.strip() else {}

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path == "/requests":
                since = int(query.get("since", ["0"])[0])
                self._reply(200, cp.request_log(since))
            elif url.path == "/state":
                self._reply(200, cp.state())
            else:
                self._reply(404, {"ok": False, "error": f"no such path {url.path}"})

        def do_POST(self):
            url = urllib.parse.urlparse(self.path)
            try:
                body = self._body()
            except (ValueError, UnicodeDecodeError) as e:
                self._reply(400, {"ok": False, "error": f"body is not JSON: {e}"})
                return
            if url.path == "/snapshot":
                try:
                    snapshot = Snapshot.parse(body)
                except ValueError as e:
                    self._reply(400, {"ok": False, "error": str(e)})
                    return
                cp.set_snapshot(snapshot)
                self._reply(200, {"ok": True})
            elif url.path == "/break":
                try:
                    seconds = float(body.get("refuse_seconds", 0)) if isinstance(body, dict) else 0.0
                except (TypeError, ValueError):
                    self._reply(400, {"ok": False, "error": "refuse_seconds must be a number"})
                    return
                self._reply(200, {"ok": True, "broken": cp.break_streams(seconds)})
            else:
                self._reply(404, {"ok": False, "error": f"no such path {url.path}"})

    return Handler


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description="Scriptable xDS (ADS, SotW + delta) control plane for tests")
    ap.add_argument("--ads-port", type=int, default=0)
    ap.add_argument("--admin-port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1", help="address both servers bind (loopback by default)")
    ap.add_argument("--snapshot", help="initial snapshot JSON file (as POST /snapshot takes)")
    ap.add_argument("--tls-cert", help="serve ADS over TLS with this certificate (PEM)")
    ap.add_argument("--tls-key", help="... and this key (PEM)")
    ap.add_argument("--tls-ca", help="require client certificates signed by this CA (mTLS)")
    args = ap.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_ca and not args.tls_cert):
        ap.error("--tls-cert and --tls-key go together; --tls-ca needs them")

    snapshot = Snapshot("", {})
    if args.snapshot:
        try:
            with open(args.snapshot) as f:
                snapshot = Snapshot.parse(json.load(f))
        except (OSError, ValueError) as e:
            print(f"control_plane.py: --snapshot {args.snapshot}: {e}", file=sys.stderr)
            return 2
    cp = ControlPlane(snapshot)

    # Every stream holds a worker thread for its whole life; 64 is plenty for tests.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="ads"))
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(AdsServicer(cp), server)
    address = f"{args.host}:{args.ads_port}"
    if args.tls_cert:
        def read(path):
            with open(path, "rb") as f:
                return f.read()
        creds = grpc.ssl_server_credentials(
            [(read(args.tls_key), read(args.tls_cert))],
            root_certificates=read(args.tls_ca) if args.tls_ca else None,
            require_client_auth=bool(args.tls_ca))
        ads_port = server.add_secure_port(address, creds)
    else:
        ads_port = server.add_insecure_port(address)
    if not ads_port:
        print(f"control_plane.py: cannot bind {address}", file=sys.stderr)
        return 1

    admin = http.server.ThreadingHTTPServer((args.host, args.admin_port), make_admin_handler(cp))
    admin.daemon_threads = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    server.start()
    threading.Thread(target=admin.serve_forever, name="admin", daemon=True).start()
    say(f"LISTENING ads={ads_port} admin={admin.server_address[1]}")
    while not stop.wait(1.0):  # wake up now and then so the signal handler runs
        pass
    # Cancel the open streams (their loops notice within POLL_SECONDS), then stop.
    server.stop(grace=0.5).wait(5)
    admin.shutdown()
    admin.server_close()
    say("STOPPED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
