"""A connector process: tunnels out to every gateway, health to the control plane, drain on SIGTERM.

Where it sits: `zerogate connector` builds `ConnectorSettings` and calls `serve`. Nothing
listens: each `GatewayTunnels` dials one gateway address over TLS 1.3 with the connector's
certificate and keeps one mux session to each of that gateway's worker processes (they
share the port; each says which it is in its hello). A failed attempt waits an exponential,
jittered back-off (0.5 s doubling to 30 s) so a fleet of connectors does not stampede a
gateway that restarts. Each stream a gateway opens goes to a `Bridge`.

Health: every `health_seconds` the connector posts its tunnels' state to the control plane
and renews its certificate once two thirds of its life have passed.

Drain (SIGTERM, SIGINT): a go-away on every tunnel, so gateways send new requests to the
group's other connectors while the streams in flight finish; after `drain_seconds` or when
no stream is left, the tunnels close and the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from zerogate import __version__
from zerogate.connector.bridge import Bridge, BridgeContext
from zerogate.connector.identity import EnrollmentError, Identity, renew_if_due
from zerogate.core.connector_health import GatewayLink, HealthReport
from zerogate.core.tunnel.allowlist import AllowList, split_target
from zerogate.core.tunnel.opening import Hello
from zerogate.tunnel.link import MuxLink, MuxStream

log = logging.getLogger("zerogate.connector")
HELLO_SECONDS = 10.0
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0


@dataclass(frozen=True, slots=True)
class ConnectorSettings:
    control_url: str
    identity: Identity
    gateways: tuple[str, ...]  # host:port of each gateway's tunnel listener
    allow: AllowList
    health_seconds: float = 10.0
    drain_seconds: float = 30.0


class Connector:
    """The process's state: its identity, its tunnels, whether it drains."""

    def __init__(self, settings: ConnectorSettings) -> None:
        self.settings = settings
        self.identity = settings.identity
        self.context = self.identity.client_context()
        self.draining = False
        self.counters = {"refused": 0}  # shared by every stream's bridge
        self.tunnels = [GatewayTunnels(self, address) for address in settings.gateways]

    def report(self) -> HealthReport:
        return HealthReport(
            version=__version__,
            draining=self.draining,
            gateways=[tunnels.link_report() for tunnels in self.tunnels],
            refused=self.counters["refused"],
        )

    def streams(self) -> int:
        return sum(len(link.streams) for t in self.tunnels for link in t.sessions.values())

    def renew(self) -> None:
        renewed = renew_if_due(self.identity, self.settings.control_url)
        if renewed is not self.identity:
            log.info("renewed the connector certificate until %s", renewed.not_after)
            self.identity = renewed
            self.context = renewed.client_context()  # new tunnels use it; old ones stay valid


class GatewayTunnels:
    """The sessions to one gateway address: one per worker process, redialled when lost."""

    def __init__(self, connector: Connector, address: str) -> None:
        self.connector = connector
        self.address = address
        self.host, self.port = split_target(address)
        self.sessions: dict[int, MuxLink] = {}
        self.workers = 1
        self.last_error: str | None = None
        self.changed = asyncio.Event()
        self._bytes = [0, 0]  # in, out of sessions that ended

    def link_report(self) -> GatewayLink:
        live = list(self.sessions.values())
        rtts = [link.rtt for link in live if link.rtt is not None]
        return GatewayLink(
            gateway=self.address,
            sessions=len(live),
            streams=sum(len(link.streams) for link in live),
            bytes_in=self._bytes[0] + sum(link.bytes_in for link in live),
            bytes_out=self._bytes[1] + sum(link.bytes_out for link in live),
            rtt_ms=round(min(rtts) * 1000, 3) if rtts else None,
            last_error=self.last_error,
        )

    async def run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self.connector.draining:
            if len(self.sessions) >= self.workers:
                self.changed.clear()
                await self.changed.wait()
                continue
            try:
                link, hello = await self._dial()
            except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
                self.last_error = str(exc) or type(exc).__name__
                delay = random.uniform(backoff / 2, backoff)  # noqa: S311 (jitter, not secrets)
                log.warning(
                    "tunnel to %s failed (%s); again in %.1f s",
                    self.address,
                    self.last_error,
                    delay,
                )
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_FIRST
            self.last_error = None
            self.workers = hello.workers
            if hello.worker in self.sessions:
                link.close()  # that worker has a tunnel already: dial again for another
                await asyncio.sleep(0.05)
                continue
            self.sessions[hello.worker] = link
            log.info(
                "tunnel up to %s (gateway %s, worker %d of %d)",
                self.address, hello.gateway, hello.worker + 1, hello.workers,
            )  # fmt: skip

    async def _dial(self) -> tuple[MuxLink, Hello]:
        loop = asyncio.get_running_loop()
        said: asyncio.Future[Hello] = loop.create_future()

        def on_hello(hello: Hello) -> None:
            if not said.done():
                said.set_result(hello)

        def lost(link: MuxLink) -> None:
            if not said.done():
                said.set_exception(
                    ConnectionError(f"the gateway closed the tunnel: {link.end_reason}")
                )
            for worker, known in list(self.sessions.items()):
                if known is link:
                    del self.sessions[worker]
                    self._bytes[0] += link.bytes_in
                    self._bytes[1] += link.bytes_out
                    log.warning("tunnel to %s lost: %s", self.address, link.end_reason)
            self.changed.set()

        context: BridgeContext | None = None

        def on_stream(stream: MuxStream) -> None:
            # Streams can come before this coroutine resumes after the handshake, so the
            # context (which needs the gateway's certificate) is made by the first of them.
            nonlocal context
            if context is None:
                try:
                    context = self._context(stream.link, on_hello)
                except ConnectionError as exc:
                    stream.link.abort(str(exc))
                    return
            stream.link.accept(stream)
            stream.start(Bridge(context))

        connecting = loop.create_connection(
            lambda: MuxLink(loop, client=True, on_stream=on_stream, on_closed=lost),
            self.host,
            self.port,
            ssl=self.connector.context,
            server_hostname=self.host,
            ssl_handshake_timeout=HELLO_SECONDS,
        )
        _, link = await asyncio.wait_for(connecting, HELLO_SECONDS)
        try:
            return link, await asyncio.wait_for(said, HELLO_SECONDS)
        except BaseException:
            link.close()
            raise

    def _context(self, link: MuxLink, on_hello: Callable[[Hello], None]) -> BridgeContext:
        assert link.transport is not None
        return BridgeContext(
            group=self.connector.identity.group,
            allow=self.connector.settings.allow,
            gateway_key=_peer_key(link.transport),
            on_hello=on_hello,
            draining=lambda: self.connector.draining,
            counters=self.connector.counters,
        )


def _peer_key(transport: asyncio.BaseTransport) -> ec.EllipticCurvePublicKey:
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        raise ConnectionError("the gateway presented no certificate")
    key = x509.load_der_x509_certificate(der).public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConnectionError("the gateway's certificate has no ECDSA key")
    return key


async def _post_health(connector: Connector) -> None:
    url = f"{connector.settings.control_url}/api/v1/connector/health"
    try:
        async with httpx.AsyncClient(verify=connector.context, timeout=10) as client:
            response = await client.post(url, json=connector.report().model_dump(mode="json"))
    except (httpx.HTTPError, OSError) as exc:
        log.warning("health report failed: %s", exc)
        return
    if response.status_code != 200:
        log.warning("health report refused (%d): %s", response.status_code, response.text[:200])


async def _health(connector: Connector, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.to_thread(connector.renew)
        except (EnrollmentError, OSError) as exc:
            log.warning("certificate renewal failed: %s", exc)
        await _post_health(connector)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), connector.settings.health_seconds)


async def _drain(connector: Connector) -> None:
    connector.draining = True
    for tunnels in connector.tunnels:
        tunnels.changed.set()
        for link in tunnels.sessions.values():
            link.go_away()
    await _post_health(connector)  # the admins see it draining
    loop = asyncio.get_running_loop()
    deadline = loop.time() + connector.settings.drain_seconds
    while connector.streams() and loop.time() < deadline:
        await asyncio.sleep(0.1)
    log.info("drained (%d streams cut at the deadline)", connector.streams())


async def run(settings: ConnectorSettings) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    connector = Connector(settings)
    log.info(
        "connector %s (group %s) dialling %s",
        settings.identity.name, settings.identity.group, ", ".join(settings.gateways),
    )  # fmt: skip
    dialers = [loop.create_task(tunnels.run()) for tunnels in connector.tunnels]
    health = loop.create_task(_health(connector, stop))
    await stop.wait()
    log.info("draining: no new streams, waiting up to %.0f s", settings.drain_seconds)
    await _drain(connector)
    await _post_health(connector)  # its streams, gone
    for task in [*dialers, health]:
        task.cancel()
    for tunnels in connector.tunnels:
        for link in list(tunnels.sessions.values()):
            link.close()
    await asyncio.sleep(0.1)


def serve(settings: ConnectorSettings) -> None:
    uvloop.run(run(settings))
