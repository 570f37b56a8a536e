#!/usr/bin/env python3
"""Opens N keep-alive connections to 127.0.0.1:PORT, sends one request on each
and reads its response, then keeps them open and idle until killed or TIMEOUT
seconds pass. Touches READY_FILE once all connections are idle.

usage: idle_conns.py PORT N READY_FILE [TIMEOUT]"""
import asyncio
import resource
import sys


async def one(port, sem):
    async with sem:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        return writer


async def main():
    port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 60
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    sem = asyncio.Semaphore(64)  # a crowd arriving, not a stampede
    writers = await asyncio.wait_for(asyncio.gather(*(one(port, sem) for _ in range(n))), timeout)
    open(ready, "w").close()
    await asyncio.sleep(timeout)
    for w in writers:
        w.close()


asyncio.run(main())
