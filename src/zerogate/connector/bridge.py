"""One tunnel stream on the connector: check it, dial its target, splice the bytes both ways.

Where it sits: the connector's `MuxLink` calls `Bridge` for each stream a gateway opens.
The stream's first bytes are an open request (`core.tunnel.opening`): a grant the gateway
signed with the key of the certificate it presented on this tunnel. The bridge verifies the
grant, resolves the target here, inside the private network, checks every resolved address
against the connector's own allow-list, dials the first allowed one, and only then answers.
A refusal is an open reply with its reason, then the stream closes; nothing is dialled.

Flow control runs end to end: the target socket's reading pauses while the stream's send
window is full, and the stream's reading pauses while the target socket cannot take more.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from zerogate.core.tunnel.allowlist import Address, AllowList, split_target
from zerogate.core.tunnel.grants import Grant, GrantError, verify_grant
from zerogate.core.tunnel.opening import (
    Hello,
    OpenError,
    OpeningReader,
    OpeningViolation,
    OpenReply,
    decode_request,
    encode_reply,
)
from zerogate.tunnel.link import MuxStream

log = logging.getLogger("zerogate.connector")
CONNECT_SECONDS = 10.0
OPENING_SECONDS = 10.0  # a stream that sends no complete open request in time is reset


@dataclass
class BridgeContext:
    """What every stream of one tunnel shares."""

    group: str
    allow: AllowList
    gateway_key: ec.EllipticCurvePublicKey  # from the tunnel's TLS handshake
    on_hello: Callable[[Hello], None]
    draining: Callable[[], bool]
    counters: dict[str, int] = field(default_factory=lambda: {"refused": 0})


class TargetSide(asyncio.Protocol):
    """The connection to the target: its bytes go to the stream."""

    def __init__(self, stream: MuxStream) -> None:
        self.stream = stream
        self.transport: asyncio.Transport | None = None
        # Until the open reply is out, a target that speaks first is held back.
        self.started = False
        self._early: list[bytes] = []
        self._eof = False
        self._lost: tuple[Exception | None] | None = None

    def begin(self) -> None:
        """The open reply is written: the target's bytes may follow it."""
        self.started = True
        for data in self._early:
            self.stream.write(data)
        self._early.clear()
        if self._eof:
            self.stream.write_eof()
        if self._lost is not None:
            self.connection_lost(self._lost[0])
        elif self.transport is not None:
            self.transport.resume_reading()

    def itself(self) -> TargetSide:
        return self  # the protocol factory `create_connection` asks for

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.started:
            self._early.append(data)
            if self.transport is not None:
                self.transport.pause_reading()
            return
        self.stream.write(data)

    def eof_received(self) -> bool | None:
        if not self.started:
            self._eof = True
            return True
        self.stream.write_eof()
        return True  # the other direction may still flow

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.started:
            self._lost = (exc,)
            return
        if exc is None:
            self.stream.close()
        else:
            self.stream.abort()

    def pause_writing(self) -> None:
        self.stream.pause_reading()

    def resume_writing(self) -> None:
        self.stream.resume_reading()


class Bridge(asyncio.Protocol):
    """The protocol of one stream: opening first, then a splice to the target."""

    def __init__(self, context: BridgeContext) -> None:
        self.context = context
        self.stream: MuxStream | None = None
        self.target: TargetSide | None = None
        self._reader: OpeningReader | None = OpeningReader()
        self._early = bytearray()  # application bytes that came before the target answered
        self._timer: asyncio.TimerHandle | None = None
        self._peer_eof = False

    # --- from the stream -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.stream = transport  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(OPENING_SECONDS, self._too_slow)

    def data_received(self, data: bytes) -> None:
        if self._reader is not None:
            self._opening(data)
        elif self.target is not None and self.target.transport is not None:
            self.target.transport.write(data)
        else:
            self._early += data

    def eof_received(self) -> bool | None:
        if self.target is not None and self.target.transport is not None:
            if self.target.transport.can_write_eof():
                self.target.transport.write_eof()
        else:
            self._peer_eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.target is not None and self.target.transport is not None:
            self.target.transport.close()

    def pause_writing(self) -> None:
        if self.target is not None and self.target.transport is not None:
            self.target.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.target is not None and self.target.transport is not None:
            self.target.transport.resume_reading()

    # --- the opening ------------------------------------------------------------------------

    def _opening(self, data: bytes) -> None:
        assert self._reader is not None and self.stream is not None
        try:
            done = self._reader.feed(data)
            if done is None:
                return
            body, rest = done
            request = decode_request(body)
        except OpeningViolation as exc:
            log.warning("tunnel stream: %s", exc)
            self.stream.abort()
            return
        self._reader = None
        if self._timer is not None:
            self._timer.cancel()
        if isinstance(request, Hello):
            self.context.on_hello(request)
            self.stream.close()
            return
        self._early += rest
        self.stream.pause_reading()  # the peer waits for our answer; hold the rest back
        asyncio.get_running_loop().create_task(self._open(request))

    async def _open(self, text: str) -> None:
        assert self.stream is not None
        try:
            grant = verify_grant(
                text, self.context.gateway_key, group=self.context.group, now=time.time()
            )
        except GrantError as exc:
            self._refuse(OpenError.BAD_GRANT, str(exc), None)
            return
        if self.context.draining():
            self._refuse(OpenError.DRAINING, "the connector is draining", grant)
            return
        try:
            host, port = split_target(grant.target)
        except ValueError as exc:
            self._refuse(OpenError.BAD_REQUEST, str(exc), grant)
            return
        await self._dial(grant, host, port)

    async def _dial(self, grant: Grant, host: str, port: int) -> None:
        assert self.stream is not None
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            self._refuse(OpenError.UNRESOLVED, f"{host}: {exc}", grant)
            return
        addresses: list[str] = []
        for *_, sockaddr in infos:
            ip = _ip(str(sockaddr[0]))
            if ip is not None and self.context.allow.permits(ip, port):
                addresses.append(str(ip))  # dialled as checked: no second lookup
        if not addresses:
            self._refuse(OpenError.NOT_ALLOWED, f"{grant.target} is outside the allow-list", grant)
            return
        last: Exception | None = None
        for address in addresses:
            target = TargetSide(self.stream)
            try:
                await asyncio.wait_for(
                    loop.create_connection(target.itself, address, port), CONNECT_SECONDS
                )
            except (OSError, TimeoutError) as exc:
                last = exc
                continue
            self._connected(target, grant)
            return
        self._refuse(OpenError.UNREACHABLE, f"{grant.target}: {last}", grant)

    def _connected(self, target: TargetSide, grant: Grant) -> None:
        assert self.stream is not None and target.transport is not None
        if self.stream.is_closing():  # the gateway gave up meanwhile
            target.transport.close()
            return
        self.target = target
        log.debug("opened %s for %s via %s", grant.target, grant.app, grant.gateway)
        self.stream.write(encode_reply(OpenReply(True)))
        if self._early:
            target.transport.write(bytes(self._early))
            self._early.clear()
        if self._peer_eof and target.transport.can_write_eof():
            target.transport.write_eof()
        self.stream.resume_reading()
        target.begin()
        target.begin()

    def _refuse(self, error: OpenError, detail: str, grant: Grant | None) -> None:
        assert self.stream is not None
        self.context.counters["refused"] += 1
        app = grant.app if grant is not None else "?"
        log.warning("refused a stream for app %s: %s (%s)", app, error.value, detail)
        self.stream.write(encode_reply(OpenReply(False, error, detail)))
        self.stream.close()

    def _too_slow(self) -> None:
        if self._reader is not None and self.stream is not None:
            self.stream.abort()


def _ip(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # no zone index
    except ValueError:
        return None
