#!/usr/bin/python3
"""A name server for the DNS-cluster tests, on 127.0.0.1, UDP, a free port.

    dns_server.py PORT_FILE ZONE_FILE

Answers from ZONE_FILE, a JSON object read again for every query (the test
rewrites it, atomically, to change the answers):

    {"svc.test": {"a": ["127.0.0.2"], "aaaa": ["::1"], "ttl": 30, "mode": "ok"}}

`mode`: ok (the records), servfail, nxdomain, or drop (no answer at all).
A name the file does not hold is NXDOMAIN. Each query is printed to stdout as
`query NAME TYPE`, so that a test can wait for it. Writes its port to
PORT_FILE once it listens. Uses dnslib (Debian's python3-dnslib) for the wire
format; nothing here parses DNS by hand.
"""
import json
import socket
import sys

from dnslib import AAAA, A, QTYPE, RCODE, RR, DNSRecord


def main():
    port_file, zone_file = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    with open(port_file + ".tmp", "w") as f:
        f.write(str(sock.getsockname()[1]))
    import os
    os.rename(port_file + ".tmp", port_file)
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            query = DNSRecord.parse(data)
        except Exception:  # not DNS: ignore it, as a server would
            continue
        name = str(query.q.qname).rstrip(".")
        qtype = QTYPE[query.q.qtype]
        print(f"query {name} {qtype}", flush=True)
        try:
            with open(zone_file) as f:
                zone = json.load(f)
        except (OSError, ValueError):
            zone = {}
        entry = zone.get(name)
        reply = query.reply()
        if entry is None or entry.get("mode") == "nxdomain":
            reply.header.rcode = RCODE.NXDOMAIN
        elif entry.get("mode") == "drop":
            continue
        elif entry.get("mode") == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
        else:
            ttl = int(entry.get("ttl", 30))
            if qtype == "A":
                for ip in entry.get("a", []):
                    reply.add_answer(RR(name, QTYPE.A, rdata=A(ip), ttl=ttl))
            elif qtype == "AAAA":
                for ip in entry.get("aaaa", []):
                    reply.add_answer(RR(name, QTYPE.AAAA, rdata=AAAA(ip), ttl=ttl))
        sock.sendto(reply.pack(), peer)


if __name__ == "__main__":
    main()
