"""A gateway process that forwards every request to one upstream (no policy): for measuring
the data plane itself, e.g. its memory while 1 GiB streams through it.

Run: python tests/gateway_static.py LISTEN_PORT UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from zerogate.gateway.http import Forward, Gateway, Options, Request
from zerogate.gateway.server import listen
from zerogate.gateway.upstream import Upstream


async def main(port: int, upstream_port: int) -> None:
    target = Upstream("127.0.0.1", upstream_port)

    def forward(request: Request) -> Forward:
        return Forward(target)

    gateway = Gateway(forward, Options(), asyncio.get_running_loop())
    await listen(gateway, "127.0.0.1", port, reuse_port=False)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
