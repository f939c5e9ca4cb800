"""The TCP targets of `bench/connector.py`, in their own process: a byte source and an echo.

Usage: tcp_target.py SOURCE_PORT ECHO_PORT BYTES. A connection to SOURCE_PORT receives BYTES
bytes and then EOF; a connection to ECHO_PORT gets back everything it sends.
"""

from __future__ import annotations

import asyncio
import socket
import sys

import uvloop

CHUNK = bytes(256 * 1024)


async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, total: int) -> None:
    left = total
    while left > 0:
        piece = CHUNK if left >= len(CHUNK) else CHUNK[:left]
        writer.write(piece)
        left -= len(piece)
        await writer.drain()
    writer.close()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main() -> None:
    source_port, echo_port, total = (int(a) for a in sys.argv[1:4])
    await asyncio.start_server(
        lambda r, w: source(r, w, total), "127.0.0.1", source_port, reuse_address=True
    )
    await asyncio.start_server(echo, "127.0.0.1", echo_port, reuse_address=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main())
