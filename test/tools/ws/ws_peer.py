#!/usr/bin/python3
"""WebSocket peers for Outrigger's integration tests (Debian's python3-websockets and python3-h2).

  ws_peer.py server PORT_FILE            echo server on 127.0.0.1:0; writes its port to PORT_FILE
  ws_peer.py client URL COUNT            COUNT text messages and one 100 KB binary one, each echoed: prints "ok N"
  ws_peer.py client-h2 PORT PATH         WebSocket over HTTP/2 (RFC 8441 extended CONNECT, h2c prior
                                         knowledge): prints the :status, then "echo <text>" per message
  ws_peer.py client-idle URL SECONDS     connects, sends nothing; prints "closed <seconds>" when the peer closes

Every wait is bounded; a server exits after 120 s or when its parent goes.
"""
import asyncio
import os
import socket
import struct
import sys
import threading
import time

import websockets


def server(port_file):
    async def echo(ws):
        try:
            async for m in ws:
                await ws.send(m)
        except websockets.ConnectionClosed:
            pass

    async def main():
        async with websockets.serve(echo, "127.0.0.1", 0, compression=None, max_size=None) as s:
            port = s.sockets[0].getsockname()[1]
            with open(port_file + ".tmp", "w") as f:
                f.write(str(port))
            os.rename(port_file + ".tmp", port_file)
            # Until the test kills it, or its parent is gone, at most 120 s.
            parent = os.getppid()
            for _ in range(240):
                if os.getppid() != parent:
                    break
                await asyncio.sleep(0.5)

    asyncio.run(main())


def client(url, count):
    async def main():
        async with websockets.connect(url, compression=None, max_size=None, open_timeout=5) as ws:
            for i in range(count):
                await ws.send(f"message {i}")
                got = await asyncio.wait_for(ws.recv(), 5)
                assert got == f"message {i}", got
            blob = os.urandom(100_000)
            await ws.send(blob)
            got = await asyncio.wait_for(ws.recv(), 5)
            assert got == blob, "binary echo differs"
            print("ok", count + 1, flush=True)

    asyncio.run(main())


def client_idle(url, seconds):
    async def main():
        start = time.monotonic()
        async with websockets.connect(url, compression=None, open_timeout=5, ping_interval=None) as ws:
            try:
                await asyncio.wait_for(ws.recv(), seconds)
            except websockets.ConnectionClosed:
                print("closed %.3f" % (time.monotonic() - start), flush=True)
                return
            except asyncio.TimeoutError:
                print("still open", flush=True)

    asyncio.run(main())


def ws_frame(text):
    """A masked text frame, as a client sends it (RFC 6455 §5.2)."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def client_h2(port, path):
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings

    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    deadline = time.monotonic() + 5
    stream = None
    status = None
    buf = b""
    echoes = []
    sent = False
    while time.monotonic() < deadline and len(echoes) < 2:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RemoteSettingsChanged) and stream is None:
                if conn.remote_settings.enable_connect_protocol != 1:
                    print("no extended CONNECT", flush=True)
                    return
                stream = conn.get_next_available_stream_id()
                conn.send_headers(stream, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                                           (":path", path), (":authority", "ws.test"),
                                           ("sec-websocket-version", "13")])
            elif isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers).get(":status")
                print("status", status, flush=True)
                if status == "200" and not sent:
                    conn.send_data(stream, ws_frame("hello over h2"))
                    conn.send_data(stream, ws_frame("second"))
                    sent = True
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                buf += ev.data
                while len(buf) >= 2 and len(buf) >= 2 + (buf[1] & 0x7F):
                    n = buf[1] & 0x7F
                    echoes.append(buf[2:2 + n].decode())
                    print("echo", echoes[-1], flush=True)
                    buf = buf[2 + n:]
            elif isinstance(ev, (h2.events.StreamReset, h2.events.StreamEnded)):
                print("stream ended", flush=True)
                deadline = 0
        sock.sendall(conn.data_to_send())
    if stream is not None and len(echoes) == 2:
        conn.end_stream(stream)
        sock.sendall(conn.data_to_send())
        # The half-close reaches the server, which closes; the stream then ends.
        end = time.monotonic() + 5
        ended = False
        while time.monotonic() < end and not ended:
            data = sock.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended = True
            sock.sendall(conn.data_to_send())
        print("ended" if ended else "not ended", flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "server":
        server(sys.argv[2])
    elif cmd == "client":
        client(sys.argv[2], int(sys.argv[3]))
    elif cmd == "client-idle":
        client_idle(sys.argv[2], float(sys.argv[3]))
    elif cmd == "client-h2":
        client_h2(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit("unknown command " + cmd)
