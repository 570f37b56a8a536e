#!/usr/bin/python3
"""An HTTP/1.1 upstream that resets connections on demand (chaos_mesh.py's endpoint B).

  reset_upstream.py --port P --fraction 0.2 --stats FILE

Answers every request `200 ok` (h11 does the HTTP, asyncio the sockets) until
SIGUSR1; from then on, until SIGUSR2, it resets FRACTION of the requests: it
reads the whole request and closes the connection with SO_LINGER 0, so that the
peer gets a TCP RST instead of an answer. On SIGTERM it writes {requests, resets}
to FILE.
"""
import argparse
import asyncio
import json
import random
import signal
import socket
import struct

import h11


class State:
    resetting = False
    requests = 0
    resets = 0


class Connection(asyncio.Protocol):
    def __init__(self, fraction):
        self.fraction = fraction
        self.h11 = h11.Connection(h11.SERVER)
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.h11.receive_data(data)
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError:
                self.transport.close()
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.ConnectionClosed):
                self.transport.close()
                return
            if isinstance(event, h11.Request):
                State.requests += 1
            elif isinstance(event, h11.EndOfMessage):
                if State.resetting and random.random() < self.fraction:
                    State.resets += 1
                    sock = self.transport.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.transport.abort()
                    return
                out = self.h11.send(h11.Response(status_code=200, headers=[("content-length", "3")]))
                out += self.h11.send(h11.Data(data=b"ok\n"))
                out += self.h11.send(h11.EndOfMessage())
                self.transport.write(out)
                if self.h11.our_state is h11.MUST_CLOSE:
                    self.transport.close()
                    return
                self.h11.start_next_cycle()


async def serve(args):
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(State, "resetting", True))
    loop.add_signal_handler(signal.SIGUSR2, lambda: setattr(State, "resetting", False))
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    server = await loop.create_server(lambda: Connection(args.fraction), "127.0.0.1", args.port,
                                      reuse_address=True, backlog=1024)
    await done.wait()
    server.close()
    with open(args.stats, "w") as f:
        json.dump({"requests": State.requests, "resets": State.resets}, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--stats", required=True)
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
