"""Listening: the gateway's sockets, with SO_REUSEPORT so several worker processes share one port.

Where it sits: the CLI (`zerogate gateway`, `zerogate up`) builds a `Gateway` with its handler
and calls `listen`; each worker process does the same on the same port and the kernel spreads
new connections between them.
"""

from __future__ import annotations

import asyncio
import ssl

from zerogate.gateway.http import Gateway

BACKLOG = 4096


async def listen(
    gateway: Gateway,
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None = None,
    reuse_port: bool = True,
) -> asyncio.Server:
    """Start accepting; the caller owns the server (close it, then `gateway.close()`)."""
    return await gateway.loop.create_server(
        gateway.protocol,
        host,
        port,
        ssl=tls,
        reuse_port=reuse_port,
        backlog=BACKLOG,
        ssl_handshake_timeout=10.0 if tls else None,
    )
