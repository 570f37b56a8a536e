#!/usr/bin/python3
"""Memory per idle TCP tunnel: opens N connections through a proxy's port to an
upstream that accepts and holds them (this script's own, on UPSTREAM_PORT), sends
one byte on each, waits until the proxy's RSS settles, and prints the growth per
connection in KB. Bounded: the connections close after --hold seconds at most.

  idle_tunnels.py --pid PID --port PROXY_PORT --upstream-port PORT [--conns 2000]
"""
import argparse
import socket
import threading
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--hold", type=float, default=30)
    a = ap.parse_args()

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", a.upstream_port))
    listener.listen(4096)
    listener.settimeout(0.2)
    held, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except socket.timeout:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    before = rss_kb(a.pid)
    clients = []
    deadline = time.monotonic() + a.hold
    for _ in range(a.conns):
        c = socket.create_connection(("127.0.0.1", a.port), timeout=5)
        c.sendall(b"x")
        clients.append(c)
    while len(held) < a.conns and time.monotonic() < deadline:
        time.sleep(0.05)
    # RSS settles once every tunnel is up and idle.
    last, after = -1, rss_kb(a.pid)
    while after != last and time.monotonic() < deadline:
        time.sleep(0.5)
        last, after = after, rss_kb(a.pid)
    print("%.2f" % ((after - before) / len(clients)))
    stop.set()
    for c in clients + held:
        c.close()


if __name__ == "__main__":
    main()
