#!/usr/bin/python3
"""Opens N cleartext HTTP/2 connections (h2c, prior knowledge) to 127.0.0.1:PORT,
sends one request (GET /) on each and reads its response to the end of the
stream, then keeps them open and idle until killed or TIMEOUT seconds pass.
Touches READY_FILE once all connections are idle. One process, asyncio; uses
Debian's python3-h2 (h2 4.x) for the framing.

usage: idle_h2_conns.py PORT N READY_FILE [TIMEOUT]"""
import asyncio
import resource
import sys

import h2.config
import h2.connection
import h2.events


async def one(port, sem):
    async with sem:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"bench"),
                                (b":path", b"/")], end_stream=True)
        writer.write(conn.data_to_send())
        await writer.drain()
        status, done = None, False
        while not done:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("closed before the response ended")
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = dict(ev.headers).get(b":status")
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    done = True
                elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    raise ConnectionError(f"{type(ev).__name__} before the response ended")
            out = conn.data_to_send()  # SETTINGS ACK, WINDOW_UPDATE
            if out:
                writer.write(out)
                await writer.drain()
        if status != b"200":
            raise ConnectionError(f"status {status!r}")
        return writer  # the connection stays open; nothing more is sent or read


async def main():
    port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 60
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    sem = asyncio.Semaphore(64)  # a crowd arriving, not a stampede
    try:
        writers = await asyncio.wait_for(asyncio.gather(*(one(port, sem) for _ in range(n))), timeout)
    except Exception as e:  # noqa: BLE001 - any failure means no figure
        print(f"idle_h2_conns: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    open(ready, "w").close()
    await asyncio.sleep(timeout)
    for w in writers:
        w.close()


asyncio.run(main())
