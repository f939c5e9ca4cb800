"""The ceiling of the gateway's architecture: the least a uvloop + httptools TLS proxy can do.

`bench/http_proxy.py` runs it as scenario (f), a reference beside the peers. It is what issue 5
describes as "a bare uvloop + httptools proxy with a verified-token cache": TLS in front,
HTTP/1.1 requests parsed by httptools, the session cookie looked up in a cache of verified
tokens (the same `Verifier` as the authorizer of (c) and (d): ES256 checked once per token),
`Cookie` dropped and `X-Forwarded-For` added, and each client connection tied to its own
keep-alive connection to the upstream, whose answer is copied back as it comes, unparsed.

It is deliberately not a proxy anyone should run: no decision beyond the token, no audit, no
framing checks, no timeouts, no limits, no pipelining, no streaming control; a response is
trusted to end where the upstream's next one begins. Whatever the gateway does per request
costs on top of this, so (e) can approach (f) but not pass it.

Run: `.venv/bin/python bench/bare_proxy.py --port N --upstream PORT --jwk FILE --cert PEM
--key PEM [--workers N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
from pathlib import Path
from typing import cast

import httptools
import uvloop
from http_authorizer import DENIED, Verifier, session_token
from joserfc.jwk import ECKey


class Upstream(asyncio.Protocol):
    """The upstream side of one client connection: bytes back to the client, as they come."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        if not self.client.is_closing():
            self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class Client(asyncio.Protocol):
    """One client connection: each request checked by its cookie, then sent upstream."""

    def __init__(self, verifier: Verifier, upstream_port: int) -> None:
        self.verifier = verifier
        self.upstream_port = upstream_port
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.waiting: list[bytes] = []  # heads sent before the upstream connection is up
        self.url = b""
        self.headers: list[bytes] = []
        self.cookie: bytes | None = None
        self.connecting: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.headers, self.cookie = [], None

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"cookie":
            self.cookie = value
        else:
            self.headers.append(name + b": " + value + b"\r\n")

    def on_headers_complete(self) -> None:
        transport = self.transport
        if transport is None:
            return
        token = session_token(self.cookie, None)
        if token is None or self.verifier.subject(token) is None:
            transport.write(DENIED)
            return
        method = cast(bytes, self.parser.get_method())
        forwarded = b"X-Forwarded-For: 127.0.0.1\r\n\r\n"
        head = b"".join([method, b" ", self.url, b" HTTP/1.1\r\n", *self.headers, forwarded])
        if self.upstream is not None:
            self.upstream.write(head)
            return
        self.waiting.append(head)
        if len(self.waiting) == 1:
            self.connecting = asyncio.ensure_future(self._connect(transport))

    async def _connect(self, client: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        upstream, _ = await loop.create_connection(
            lambda: Upstream(client), "127.0.0.1", self.upstream_port
        )
        self.upstream = cast("asyncio.Transport", upstream)
        self.upstream.write(b"".join(self.waiting))
        self.waiting.clear()


def listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def serve(args: argparse.Namespace) -> None:
    key = ECKey.import_key(json.loads(Path(args.jwk).read_text()))
    verifier = Verifier(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Client(verifier, args.upstream),
            sock=listening_socket(args.port),
            ssl=context,
            backlog=1024,
        )
        async with server:
            await server.serve_forever()

    uvloop.run(run())


def _exit(*_: object) -> None:
    raise SystemExit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", type=int, required=True)
    parser.add_argument("--jwk", required=True, help="the token key's public JWK (JSON file)")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    args = parser.parse_args()
    children = []
    for _ in range(args.workers - 1):
        pid = os.fork()
        if pid == 0:
            serve(args)
            return
        children.append(pid)
    signal.signal(signal.SIGTERM, _exit)  # set after the forks: the workers just die of it
    try:
        serve(args)
    finally:
        for child in children:
            os.kill(child, signal.SIGTERM)


if __name__ == "__main__":
    main()
