"""`tunnel.link` over a real loopback socket: streams behave as TCP connections would."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable

import uvloop

from zerogate.core.mux import MuxConfig
from zerogate.tunnel.link import MuxLink, MuxStream


class Echo(asyncio.Protocol):
    """Echoes every byte; closes after echoing when the peer half-closes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool | None:
        return None  # close: FIN back once the echo is out


class Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = asyncio.Event()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.pauses = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool | None:
        self.eof.set()
        return True

    def pause_writing(self) -> None:
        self.pauses += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


Scenario = Callable[[MuxLink, MuxLink], Awaitable[None]]


def run(scenario: Scenario, config: MuxConfig | None = None) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        def serve(stream: MuxStream) -> None:
            stream.link.accept(stream)
            stream.start(Echo())

        accepted: asyncio.Future[MuxLink] = loop.create_future()

        def server_link() -> MuxLink:
            link = MuxLink(loop, client=False, on_stream=serve, config=config)
            accepted.set_result(link)
            return link

        server = await loop.create_server(server_link, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, client = await loop.create_connection(
            lambda: MuxLink(loop, client=True, config=config), "127.0.0.1", port
        )
        remote = await accepted
        try:
            await asyncio.wait_for(scenario(client, remote), 30)
        finally:
            client.close()
            server.close()

    uvloop.run(main())


def test_many_streams_echo_intact_and_close_cleanly() -> None:
    async def scenario(client: MuxLink, _remote: MuxLink) -> None:
        payloads = [os.urandom(n) for n in (0, 1, 1000, 300_000, 2_000_000)]
        collectors = []
        for payload in payloads:
            stream = client.open_stream()
            got = Collect()
            stream.start(got)
            stream.write(payload)
            stream.write_eof()
            collectors.append(got)
        for payload, got in zip(payloads, collectors, strict=True):
            assert await got.lost is None
            assert hashlib.sha256(got.data).digest() == hashlib.sha256(payload).digest()
            assert got.eof.is_set()
        assert client.streams == {}

    run(scenario)


def test_a_paused_reader_holds_the_peer_to_one_window() -> None:
    async def scenario(client: MuxLink, _remote: MuxLink) -> None:
        stream = client.open_stream()
        got = Collect()
        stream.start(got)
        stream.pause_reading()
        stream.write(b"x" * 3_000_000)
        await asyncio.sleep(0.5)
        # The echo side could send one window, then had to hold the rest; so did we.
        assert len(got.data) == 0
        assert got.pauses >= 1
        stream.resume_reading()
        stream.write_eof()
        assert await got.lost is None
        assert bytes(got.data) == b"x" * 3_000_000

    run(scenario, MuxConfig(initial_window=64 * 1024))


def test_reset_and_tunnel_loss_reach_every_stream() -> None:
    async def scenario(client: MuxLink, remote: MuxLink) -> None:
        first, second = client.open_stream(), client.open_stream()
        a, b = Collect(), Collect()
        first.start(a)
        second.start(b)
        first.write(b"hello")
        await asyncio.sleep(0.1)
        remote.streams[first.stream_id].abort()
        assert isinstance(await a.lost, ConnectionResetError)
        assert a.data == b"hello"
        remote.abort("test")
        assert isinstance(await b.lost, ConnectionResetError)
        await client.closed.wait()

    run(scenario)


def test_ping_measures_rtt() -> None:
    async def scenario(client: MuxLink, _remote: MuxLink) -> None:
        client.session.ping(time.monotonic())
        client._flush()
        for _ in range(100):
            if client.rtt is not None:
                break
            await asyncio.sleep(0.01)
        assert client.rtt is not None and client.rtt > 0  # measured, not a placeholder

    run(scenario)
