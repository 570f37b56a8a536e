#!/usr/bin/python3
"""Request-framing vectors (request smuggling) against Outrigger, HAProxy and NGINX
alike, through one recording upstream: for each vector and proxy, what the client
got and what the upstream saw. Outrigger must do no worse than the better of the
two peers on every vector.

Outcomes, from best to worst:
  rejected   the proxy answered an error and forwarded nothing
  forwarded  the upstream got the request, framed one way (no smuggled request, no
             bytes it could not parse)
  silent     no answer within the wait, nothing forwarded
  desync     the upstream processed more requests than the client was answered
             for (a request hidden in a body the proxy framed otherwise), or got
             bytes it could not frame: two parsers read the request differently
"rejected" and "forwarded" are both safe; a proxy is worse than another on a
vector when its outcome is silent or desync and the other's is not (or desync
against silent).

The vectors are generated (test/bench/README.md says which classes):
Transfer-Encoding obfuscated with every byte before, after and inside "chunked"
(each beside a Content-Length that frames the body otherwise), Content-Length
variants, malformed chunk sizes, Host variants, absolute-form targets, header
names with odd bytes. Files of more vectors (one raw request per file, with a
`{ID}` placeholder in the target) can be added with --vectors DIR.

usage: framing_diff.py --outrigger BIN [--vectors DIR] [--wait 0.3] [--only PREFIX]
Needs haproxy, nginx (docker/install-deps.sh bench) and python3-h11. Loopback only.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import h11

STATUS = re.compile(rb"(?:^|\n)HTTP/1\.[01] (\d{3}) ")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Upstream:
    """An HTTP/1.1 server (h11) that answers 200 to every request and records,
    by vector id, what requests it saw and whether it could parse the bytes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.requests = []  # (target, body)
        self.errors = 0
        self.stop = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        h = h11.Connection(h11.SERVER)
        conn.settimeout(5)
        target, body = None, b""
        try:
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA:
                    data = conn.recv(65536)
                    if not data:
                        if h.their_state not in (h11.IDLE, h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
                            with self.lock:  # a request cut short is not a desync: the proxy gave it up
                                pass
                        return
                    h.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    target, body = event.target, b""
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    with self.lock:
                        self.requests.append((target, body))
                    conn.sendall(h.send(h11.Response(status_code=200, headers=[("content-length", "3")])))
                    conn.sendall(h.send(h11.Data(data=b"ok\n")))
                    conn.sendall(h.send(h11.EndOfMessage()))
                    if h.our_state is h11.MUST_CLOSE:
                        return
                    h.start_next_cycle()
                elif isinstance(event, (h11.ConnectionClosed,)):
                    return
        except h11.RemoteProtocolError:
            with self.lock:
                self.errors += 1
        except OSError:
            pass
        finally:
            conn.close()

    def take(self):
        with self.lock:
            out, errors = self.requests, self.errors
            self.requests, self.errors = [], 0
        return out, errors


def vectors():
    """(name, raw bytes with {ID} in every target) pairs."""
    out = []
    post = b"POST /v{ID}/a HTTP/1.1\r\nHost: a\r\n"
    smuggle = b"GET /v{ID}/smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    chunked = b"0\r\n\r\n" + smuggle  # as chunked: an empty body, then a request; as length: one body
    cl = str(len(chunked) - 2).encode()

    def te_vector(value):
        return post + b"Transfer-Encoding: " + value + b"\r\nContent-Length: " + cl + b"\r\n\r\n" + chunked

    # Every byte before, after and inside the word (668 of the 768 are not plain ASCII letters).
    for b in range(256):
        if b in (0x0A,):  # a bare LF ends the line: a different vector
            continue
        byte = bytes([b])
        out.append((f"te-prefix-{b:02x}", te_vector(byte + b"chunked")))
        out.append((f"te-suffix-{b:02x}", te_vector(b"chunked" + byte)))
        out.append((f"te-inside-{b:02x}", te_vector(b"chun" + byte + b"ked")))
    for value in [b"chunked, identity", b"identity, chunked", b"identity", b"gzip", b"gzip, chunked", b"chunked,",
                  b",chunked", b"chunked;q=1", b'"chunked"', b"CHUNKED", b" chunked", b"chunked ", b"\tchunked",
                  b"chunked\t", b"chunk", b"chunkedchunked", b"chunked, chunked", b"x, chunked"]:
        out.append((f"te-list-{value!r}", te_vector(value)))
    for name in [b"Transfer-Encoding ", b"Transfer-Encoding\t", b" Transfer-Encoding", b"Transfer_Encoding",
                 b"Transfer-encoding", b"TRANSFER-ENCODING", b"Transfer-\xffEncoding", b"X: y\r\n Transfer-Encoding",
                 b"Transfer-Encoding\x0b"]:
        out.append((f"te-name-{name!r}", post + name + b": chunked\r\nContent-Length: " + cl + b"\r\n\r\n" + chunked))
    out.append(("te-twice", post + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked))
    out.append(("te-then-identity", post + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"
                b"Content-Length: " + cl + b"\r\n\r\n" + chunked))
    out.append(("te-http10", b"POST /v{ID}/a HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: " + cl +
                b"\r\n\r\n" + chunked))
    # Content-Length: the body is "hello", then a request.
    rest = b"hello" + smuggle
    for fields in [b"Content-Length: 5, 5", b"Content-Length: 5\r\nContent-Length: 5", b"Content-Length: 5, 6",
                   b"Content-Length: 5\r\nContent-Length: 6", b"Content-Length: +5", b"Content-Length: -5",
                   b"Content-Length: 0x5", b"Content-Length: 5 5", b"Content-Length: 05", b"Content-Length:5",
                   b"Content-Length: 5\x00", b"Content-Length: 99999999999999999999", b"Content-Length: 5.0",
                   b"Content-Length : 5", b"Content_Length: 5", b"Content-Length: \xff5"]:
        out.append((f"cl-{fields!r}", post + fields + b"\r\n\r\n" + rest))
    # Chunk sizes and chunk framing.
    for body in [b"+5\r\nhello\r\n0\r\n\r\n", b"-5\r\nhello\r\n0\r\n\r\n", b"0x5\r\nhello\r\n0\r\n\r\n",
                 b"5_0\r\nhello\r\n0\r\n\r\n", b"5\rhello\r\n0\r\n\r\n", b"5\nhello\r\n0\r\n\r\n",
                 b"fffffffffffffffff5\r\nhello\r\n0\r\n\r\n", b"10000000000000005\r\nhello\r\n0\r\n\r\n",
                 b"5 \r\nhello\r\n0\r\n\r\n", b" 5\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX\r\n0\r\n\r\n",
                 b"5\r\nhel\r\n0\r\n\r\n", b"5;x=\"a\r\nb\"\r\nhello\r\n0\r\n\r\n", b"zz\r\nhello\r\n0\r\n\r\n",
                 b"5\r\nhello\r\n0\r\nX: y\r\n", b"5\r\nhello0\r\n\r\n"]:
        out.append((f"chunk-{body[:12]!r}", post + b"Transfer-Encoding: chunked\r\n\r\n" + body + smuggle))
    # Host and targets.
    for fields, target in [(b"Host: a\r\nHost: b", b"/v{ID}/a"), (b"Host: a\r\nHost: a", b"/v{ID}/a"),
                           (b"Host: user@a", b"/v{ID}/a"), (b"Host: a b", b"/v{ID}/a"), (b"Host: a/b", b"/v{ID}/a"),
                           (b"Host: a", b"http://b/v{ID}/a"), (b"Host: a", b"ftp://a/v{ID}/a"),
                           (b"Host: a", b"/v{ID}/a#frag"), (b"Host: a", b"/v{ID}/%zz"), (b"", b"/v{ID}/a"),
                           (b"Host: a", b"/v{ID}/caf\xc3\xa9")]:
        out.append((f"host-{fields!r}-{target!r}", b"GET " + target + b" HTTP/1.1\r\n" + fields + b"\r\n\r\n"))
    # Header names and line endings.
    for raw in [b"GET /v{ID}/a HTTP/1.1\nHost: a\n\n", b"GET /v{ID}/a HTTP/1.1\r\nHost: a\r\nX\x00: y\r\n\r\n",
                b"GET /v{ID}/a HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", b"GET  /v{ID}/a HTTP/1.1\r\nHost: a\r\n\r\n",
                b"GET /v{ID}/a HTTP/1.1 \r\nHost: a\r\n\r\n", b"GET /v{ID}/a HTTP/1.2\r\nHost: a\r\n\r\n",
                b"GET /v{ID}/a HTTP/2.0\r\nHost: a\r\n\r\n", b"G\xffT /v{ID}/a HTTP/1.1\r\nHost: a\r\n\r\n"]:
        out.append((f"line-{raw[:24]!r}", raw))
    return out


def send(port, raw, wait):
    """What the client got: the response statuses and whether the proxy closed."""
    data = b""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(raw)
        s.settimeout(wait)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    return [int(m) for m in STATUS.findall(data)]


def outcome(statuses, requests, errors, vid):
    mine = [t for t, _ in requests if f"/v{vid}/".encode() in t]
    # The upstream processed more requests than the client was answered for
    # (the proxy framed the body one way and forwarded bytes the upstream
    # framed another), or got bytes it could not parse.
    if errors or len(mine) > sum(1 for s in statuses if s < 300):
        return "desync"
    if mine:
        return "forwarded"
    if any(s >= 400 for s in statuses):
        return "rejected"
    return "silent"


RANK = {"rejected": 0, "forwarded": 0, "silent": 1, "desync": 2}


def start_proxies(binary, upstream_port, work):
    ports = {"haproxy": free_port(), "nginx": free_port(), "outrigger": free_port()}
    procs = []
    with open(f"{work}/haproxy.cfg", "w") as f:
        f.write(f"""global
  nbthread 1
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend f
  bind 127.0.0.1:{ports['haproxy']}
  default_backend b
backend b
  server up 127.0.0.1:{upstream_port}
""")
    procs.append(subprocess.Popen(["haproxy", "-f", f"{work}/haproxy.cfg", "-db"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
    os.makedirs(f"{work}/ngx/logs", exist_ok=True)
    with open(f"{work}/ngx/nginx.conf", "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
master_process off;
pid {work}/ngx/nginx.pid;
error_log {work}/ngx/logs/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  upstream up {{ server 127.0.0.1:{upstream_port}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{ports['nginx']};
    location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
""")
    procs.append(subprocess.Popen(["nginx", "-c", f"{work}/ngx/nginx.conf", "-p", f"{work}/ngx"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    with open(f"{work}/outrigger.yaml", "w") as f:
        f.write(f"""admin: {{ enabled: false }}
workers: 1
log_level: off
listeners:
  - name: f
    address: 127.0.0.1:{ports['outrigger']}
    routes: [{{ cluster: up, timeout: 5s }}]
clusters:
  - {{ name: up, endpoints: [127.0.0.1:{upstream_port}] }}
""")
    procs.append(subprocess.Popen([binary, "run", "-c", f"{work}/outrigger.yaml"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
    for p in ports.values():
        wait_port(p)
    return ports, procs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--outrigger", required=True)
    ap.add_argument("--vectors", help="a directory of raw request files ({ID} in the target)")
    ap.add_argument("--wait", type=float, default=0.3, help="seconds of silence that end a vector")
    ap.add_argument("--only", default="", help="run the vectors whose name starts with this")
    args = ap.parse_args()
    vs = vectors()
    if args.vectors:
        for name in sorted(os.listdir(args.vectors)):
            with open(os.path.join(args.vectors, name), "rb") as f:
                vs.append((name, f.read()))
    vs = [v for v in vs if v[0].startswith(args.only)]
    work = tempfile.mkdtemp(prefix="outrigger-framing.")
    up = Upstream()
    ports, procs = start_proxies(args.outrigger, up.port, work)
    counts = {p: {} for p in ports}
    worse, unsafe = [], []  # worse than a peer; unsafe, but no worse than the better peer
    started = time.time()
    try:
        for i, (name, raw) in enumerate(vs):
            got = {}
            for proxy, port in ports.items():
                vid = f"{i}{proxy[0]}"
                statuses = send(port, raw.replace(b"{ID}", vid.encode()), args.wait)
                time.sleep(0.01)  # the upstream's thread records what it saw
                requests, errors = up.take()
                got[proxy] = outcome(statuses, requests, errors, vid)
                counts[proxy][got[proxy]] = counts[proxy].get(got[proxy], 0) + 1
            best_peer = min(RANK[got["haproxy"]], RANK[got["nginx"]])
            if RANK[got["outrigger"]] > best_peer:
                worse.append((name, got))
            elif RANK[got["outrigger"]] > 0:
                unsafe.append((name, got))
            if time.time() - started > 600:  # bounded: never more than ten minutes
                print("stopping after ten minutes", file=sys.stderr)
                break
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        up.stop = True
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(vs)} vectors, {time.time() - started:.0f} s")
    for proxy, c in counts.items():
        print(f"  {proxy:10s} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    print(f"Outrigger worse than the better peer on {len(worse)} vectors")
    for name, got in worse:
        print(f"  {name}: " + ", ".join(f"{p} {o}" for p, o in got.items()))
    if unsafe:
        print(f"Silent or desync for Outrigger and both peers alike on {len(unsafe)} vectors")
        for name, got in unsafe:
            print(f"  {name}: " + ", ".join(f"{p} {o}" for p, o in got.items()))
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
