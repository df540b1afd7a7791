"""A delaying TCP relay: the round-trip time of a WAN where the kernel has no ``netem``.

Every chunk read from one side is stamped and written to the other side half the RTT later;
reading never waits for writing (a queue of stamped chunks per direction, bounded far above
the bandwidth-delay product), so the relay delays without throttling: bandwidth is ``tc``'s
job. Run as ``python3 -m staging.relay --listen HOST:PORT --to HOST:PORT --rtt-ms 50``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time

CHUNK = 256 * 1024
QUEUE = 4096  # chunks: 1 GiB at most in flight per direction, never reached below 10 Gbit/s


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE)

    async def read() -> None:
        try:
            while True:
                data = await reader.read(CHUNK)
                await queue.put((time.monotonic() + delay, data))
                if not data:
                    return
        except OSError:
            await queue.put((time.monotonic() + delay, b""))

    async def write() -> None:
        try:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                if writer.transport.get_write_buffer_size() > 4 * CHUNK:
                    await writer.drain()
        except OSError:
            return

    await asyncio.gather(read(), write())


async def _serve(listen: tuple[str, int], target: tuple[str, int], rtt: float) -> None:
    half = rtt / 2

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection(*target)
        except OSError:
            cw.close()
            return
        for w in (cw, sw):
            s = w.get_extra_info("socket")
            if s is not None:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.gather(_pump(cr, sw, half), _pump(sr, cw, half))
        finally:
            for w in (cw, sw):
                w.close()

    server = await asyncio.start_server(handle, *listen, reuse_address=True)
    async with server:
        await server.serve_forever()


def _addr(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", required=True, type=_addr)
    p.add_argument("--to", required=True, type=_addr)
    p.add_argument("--rtt-ms", type=float, required=True)
    a = p.parse_args(argv)
    try:
        asyncio.run(_serve(a.listen, a.to, a.rtt_ms / 1000))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
