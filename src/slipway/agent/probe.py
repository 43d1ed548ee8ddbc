"""An HTTP health probe from the host itself (the instance listens on its host's address),
standard library only: GET, read the status line, answer within the timeout."""

from __future__ import annotations

import asyncio


async def probe(address: str, port: int, path: str, timeout: float) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, port)
            try:
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: slipway-probe\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
    except TimeoutError:
        return False, f"GET {path} timed out after {timeout:g}s"
    except OSError as exc:
        return False, f"GET {path} failed: {exc.strerror or exc}"
    parts = line.decode("latin-1").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, f"GET {path} answered something that is not HTTP"
    status = int(parts[1])
    return status < 400, f"GET {path} answered HTTP {status}"
