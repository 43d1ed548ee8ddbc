"""The floor: the least a Python daemon can do with the same datagrams. An asyncio UDP
receiver on the same kind of socket as slipway's (`udp_socket`: same receive buffer) that only
counts. `python -m bench.ingest.floor` prints its port, then serves until SIGTERM.

asyncio reads every datagram into a fresh 256 KiB buffer. glibc serves blocks that large with
mmap (then mremap to shrink it, munmap to free it: three system calls per datagram) until its
dynamic threshold has been raised by an earlier free of a larger mapped block, which happens
in a daemon that has lived a while but not in a process this small. The floor sets the
threshold itself, so it measures receiving, not the allocator's start-up state.

A datagram `?` is a question: the answer is the count so far. The socket's queue is first in,
first out, so the answer covers every datagram sent before the question."""

from __future__ import annotations

import asyncio
import ctypes
import signal
import sys
from typing import cast

from slipway.metrics.ingest import udp_socket

QUESTION = b"?"
M_MMAP_THRESHOLD = -3  # mallopt(3)
MMAP_THRESHOLD = 1024 * 1024


def raise_mmap_threshold() -> None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to do


class Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.count = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if data == QUESTION:
            assert self.transport is not None
            self.transport.sendto(str(self.count).encode(), addr)
        else:
            self.count += 1


async def serve() -> None:
    raise_mmap_threshold()
    sock = udp_socket(0)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    transport, _ = await loop.create_datagram_endpoint(Counter, sock=sock)
    print(sock.getsockname()[1], flush=True)
    await stop
    transport.close()


if __name__ == "__main__":
    asyncio.run(serve())
    sys.exit(0)
