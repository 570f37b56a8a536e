#!/usr/bin/python3
"""Peers for the original-destination tests (test/integration/original_destination_test.cpp).

Run inside a network namespace (ip netns exec NAME python3 peer.py ...), on
either side of an Outrigger that iptables REDIRECT puts in the path. Stdlib
only. Every socket operation has a timeout. A server exits when its stdin (a
pipe) closes, when its parent goes (it is orphaned), or after --lifetime
seconds (default 120), whichever comes first, so a test that dies leaves
nothing behind for long.

Servers (print "listening" once they accept connections, and "accepted PEER"
for each connection):
  http-server HOST PORT      answers every request 200; the body is the
                             request's headers, one "name: value" a line,
                             names lower-cased
  echo-server HOST PORT      TCP echo; on the client's FIN, shuts down writing
                             after the last echoed byte (half-close)
  greeting-server HOST PORT  server speaks first: a MySQL-like greeting line on
                             accept, then echoes

Clients (print what they saw, exit 0 on success, 1 otherwise):
  client-http HOST PORT      GET / with Connection: close; prints
                             "status N" and then the body
  client-echo HOST PORT DATA sends DATA, shuts down writing, reads to EOF;
                             prints "echo DATA-READ"
  client-greeting HOST PORT  reads the greeting line without sending anything;
                             prints "greeting LINE" and "elapsed_ms N"
  client-silent HOST PORT    connects, sends nothing, reads to EOF or timeout;
                             prints "bytes N", then "eof", "reset" or
                             "timeout", then "elapsed_ms N"
  metrics ADMINPORT          prints http://127.0.0.1:ADMINPORT/metrics
  wait-ready ADMINPORT       polls http://127.0.0.1:ADMINPORT/ready until it
                             answers 200 (exit 0) or 10 s pass (exit 1)
"""

import argparse
import os
import stat
import socket
import sys
import threading
import time
import urllib.request

TIMEOUT = 5.0
GREETING = b"5.7.0-outrigger-test mysql_native_password\n"


def exit_when_abandoned(lifetime):
    """Ends the process when stdin (a pipe or socket) reaches EOF, when the
    parent goes, or after `lifetime` seconds. Stdin that is a terminal or
    /dev/null (a test runner's) says nothing and is not watched."""

    def watch_stdin():
        try:
            fd = sys.stdin.fileno()
            mode = os.fstat(fd).st_mode
            if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
                return
            while os.read(fd, 4096):
                pass
            os._exit(0)
        except (OSError, ValueError):
            return

    def watch_parent():
        parent = os.getppid()
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Thread(target=watch_parent, daemon=True).start()
    timer = threading.Timer(lifetime, lambda: os._exit(0))
    timer.daemon = True
    timer.start()


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listen(host, port):
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(64)
    return s


def serve(host, port, handler, lifetime):
    exit_when_abandoned(lifetime)
    s = listen(host, port)
    print("listening", flush=True)
    lock = threading.Lock()
    while True:
        conn, peer = s.accept()
        conn.settimeout(TIMEOUT)
        with lock:
            print(f"accepted {peer[0]}:{peer[1]}", flush=True)

        def run(c=conn, p=peer):
            try:
                handler(c, p)
            except OSError:
                pass
            finally:
                try:
                    c.close()
                except OSError:
                    pass

        threading.Thread(target=run, daemon=True).start()


def read_head(conn, buf):
    """Bytes up to and including the blank line, and what followed; None at EOF."""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def http_handler(conn, peer):
    buf = b""
    while True:
        head, buf = read_head(conn, buf)
        if head is None:
            return
        lines = head.decode("latin-1").split("\r\n")
        headers = []
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            headers.append(f"{name}: {value}")
            if name == "content-length":
                length = int(value)
            if name == "connection" and value.lower() == "close":
                close = True
        while len(buf) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
        buf = buf[length:]
        body = ("\n".join(headers) + "\n").encode("latin-1")
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n%s\r\n%s"
                     % (len(body), b"connection: close\r\n" if close else b"", body))
        if close:
            return


def echo(conn):
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            conn.shutdown(socket.SHUT_WR)  # the client's FIN, passed on after the last byte
            # Wait for the other side to close too, so that the close is not a reset.
            conn.recv(1)
            return
        conn.sendall(chunk)


def echo_handler(conn, peer):
    echo(conn)


def greeting_handler(conn, peer):
    conn.sendall(GREETING)
    echo(conn)


def connect(host, port):
    return socket.create_connection((host, port), timeout=TIMEOUT)


def read_to_eof(conn):
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk


def client_http(host, port):
    with connect(host, port) as c:
        authority = f"[{host}]" if ":" in host else host
        c.sendall(b"GET / HTTP/1.1\r\nhost: %s\r\nconnection: close\r\n\r\n" % authority.encode())
        data = read_to_eof(c)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ")
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        print(f"bad response: {data!r}")
        return 1
    print(f"status {parts[1]}")
    sys.stdout.write(body.decode("latin-1"))
    return 0


def client_echo(host, port, data):
    with connect(host, port) as c:
        c.sendall(data.encode())
        c.shutdown(socket.SHUT_WR)
        got = read_to_eof(c)
    print(f"echo {got.decode('latin-1')}")
    return 0 if got == data.encode() else 1


def client_greeting(host, port):
    start = time.monotonic()
    with connect(host, port) as c:
        line = b""
        while not line.endswith(b"\n"):
            chunk = c.recv(65536)
            if not chunk:
                break
            line += chunk
        elapsed = (time.monotonic() - start) * 1000
        # The connection still works both ways after the greeting.
        c.sendall(b"ping\n")
        c.shutdown(socket.SHUT_WR)
        rest = read_to_eof(c)
    print(f"greeting {line.decode('latin-1').strip()}")
    print(f"elapsed_ms {elapsed:.0f}")
    print(f"after {rest.decode('latin-1').strip()}")
    return 0 if line == GREETING and rest == b"ping\n" else 1


def client_silent(host, port):
    start = time.monotonic()
    with connect(host, port) as c:
        n = 0
        end = "eof"
        try:
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                n += len(chunk)
        except ConnectionResetError:
            end = "reset"
        except socket.timeout:
            end = "timeout"
    print(f"bytes {n}")
    print(end)
    print(f"elapsed_ms {(time.monotonic() - start) * 1000:.0f}")
    return 1 if end == "timeout" else 0


def metrics(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=TIMEOUT) as r:
        sys.stdout.write(r.read().decode())
    return 0


def wait_ready(admin_port):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=1) as r:
                if r.status == 200:
                    print("ready")
                    return 0
        except OSError:
            pass
        time.sleep(0.01)
    print("not ready after 10 s")
    return 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lifetime", type=float, default=120.0, help="a server's longest life, in seconds")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("http-server", "echo-server", "greeting-server", "client-http", "client-greeting", "client-silent"):
        s = sub.add_parser(name)
        s.add_argument("host")
        s.add_argument("port", type=int)
    s = sub.add_parser("client-echo")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("data")
    for name in ("metrics", "wait-ready"):
        s = sub.add_parser(name)
        s.add_argument("admin_port", type=int)
    a = p.parse_args()

    servers = {"http-server": http_handler, "echo-server": echo_handler, "greeting-server": greeting_handler}
    try:
        if a.command in servers:
            serve(a.host, a.port, servers[a.command], a.lifetime)
        elif a.command == "client-http":
            return client_http(a.host, a.port)
        elif a.command == "client-echo":
            return client_echo(a.host, a.port, a.data)
        elif a.command == "client-greeting":
            return client_greeting(a.host, a.port)
        elif a.command == "client-silent":
            return client_silent(a.host, a.port)
        elif a.command == "metrics":
            return metrics(a.admin_port)
        elif a.command == "wait-ready":
            return wait_ready(a.admin_port)
    except OSError as e:
        print(f"error {type(e).__name__}: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
