#!/usr/bin/env python3
"""Keep-alive mTLS load for the TLS benchmark (wrk cannot present a client
certificate): PROCS processes, each with CONNS connections that send pipelined
batches of GETs and count the responses. Bounded by DURATION seconds and by a
request cap. Prints the number of responses received. The figure that matters
is the proxy's CPU per request, measured by the caller; this client only has to
keep the proxy busy.

  tls_load.py PORT CA CERT KEY DURATION [PROCS] [CONNS] [BATCH]
"""
import multiprocessing
import socket
import ssl
import sys
import time

MAX_REQUESTS = 5_000_000


def worker(port, ca, cert, key, duration, conns, batch, out):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(cert, key)
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(ctx.wrap_socket(s))
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n" * batch
    marker = b"HTTP/1.1 200"
    done = 0
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline and done < MAX_REQUESTS:
        for s in socks:
            s.sendall(request)
        for s in socks:
            seen, tail = 0, b""
            while seen < batch:
                data = s.recv(65536)
                if not data:
                    raise SystemExit("connection closed")
                chunk = tail + data
                seen += chunk.count(marker)
                tail = chunk[-(len(marker) - 1):]
            done += batch
    for s in socks:
        s.close()
    out.put(done)


def main():
    port, ca, cert, key, duration = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
    procs = int(sys.argv[6]) if len(sys.argv) > 6 else 2
    conns = int(sys.argv[7]) if len(sys.argv) > 7 else 4
    batch = int(sys.argv[8]) if len(sys.argv) > 8 else 16
    out = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(port, ca, cert, key, duration, conns, batch, out))
          for _ in range(procs)]
    for p in ps:
        p.start()
    total = sum(out.get(timeout=duration + 30) for _ in ps)
    for p in ps:
        p.join(timeout=10)
    print(total)


if __name__ == "__main__":
    main()
