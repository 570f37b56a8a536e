#!/usr/bin/python3
"""Connection-setup latency through a listener: N times, one after the other, a
NEW TCP connection to 127.0.0.1:PORT, one `GET / HTTP/1.1` with `Connection:
close`, read until the server closes. Each sample is connect() to EOF.

    conn_latency.py PORT[,PORT...] [N=2000] [TIMEOUT_S=60]

With several ports, the connections go to each in turn (N per port), in a new
random order each round, so that whatever drifts on the machine meanwhile, and
whatever the previous connection leaves behind (a proxy still closing its
upstream side), hits them alike. Prints one JSON line
per port, in order: port, n (samples), errors (connections refused, reset,
timed out, or answered other than 200), p50_us, p99_us, mean_us. Stops early,
with what it has, at TIMEOUT_S in all; each connection may take at most 2 s.
Exits 1 if a port got no sample.
"""
import json
import random
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def one(port):
    """One connection -> (seconds, ok)."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(REQUEST)
        got = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            got.append(b)
    dt = time.perf_counter() - t0
    head = b"".join(got)[:16]
    return dt, head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")


def pct(sorted_xs, p):
    if not sorted_xs:
        return None
    return sorted_xs[min(len(sorted_xs) - 1, int(p / 100 * len(sorted_xs)))]


def main():
    ports = [int(p) for p in sys.argv[1].split(",")]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    limit = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    deadline = time.monotonic() + limit
    rng = random.Random(1)
    order = list(ports)
    samples = {p: [] for p in ports}
    errors = {p: 0 for p in ports}
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        rng.shuffle(order)
        for port in order:
            try:
                dt, ok = one(port)
            except OSError:
                errors[port] += 1
                continue
            if ok:
                samples[port].append(dt * 1e6)
            else:
                errors[port] += 1
    for port in ports:
        xs = sorted(samples[port])
        print(json.dumps({"port": port, "n": len(xs), "errors": errors[port],
                          "p50_us": round(pct(xs, 50), 1) if xs else None,
                          "p99_us": round(pct(xs, 99), 1) if xs else None,
                          "mean_us": round(sum(xs) / len(xs), 1) if xs else None}))
    return 0 if all(samples.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
