"""The gateway's end of the connectors' tunnels: admit them, keep them by group, open streams.

Where it sits: `run.py` listens on the tunnel port with `TunnelRegistry.protocol` and calls
`swap` with each new snapshot; the upstream `Pool` calls `connect` for an app routed through
a connector group. Connectors dial in; nothing here dials out.

Theory:
1. Admission: the TLS handshake proved a certificate from our CA; a tunnel is kept only if
   that certificate is a connector's and its serial is one the current snapshot admits for
   that connector. Every new snapshot re-checks every tunnel, so a revoked or deleted
   connector is cut within the snapshot's delay (about 0.1 s after the change).
2. Each tunnel starts with a hello stream saying which worker process holds it, so a
   connector can keep one tunnel to each worker sharing this port.
3. A stream starts with an open request carrying a grant signed with this gateway's TLS key
   (the key the connector saw in the handshake), and is handed to its protocol only after
   the connector answered that the target is connected.
4. Load goes to the usable tunnel (not draining, not going away) of the group with the fewest
   open streams; a stream whose tunnel dies before the connector answered is tried once on
   another tunnel, so a dead connector costs new requests nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from zerogate.core.mux import MuxError
from zerogate.core.policy.snapshot import AdmittedConnector, Snapshot
from zerogate.core.tunnel.grants import GRANT_SECONDS, Grant, sign_grant
from zerogate.core.tunnel.opening import (
    Hello,
    OpeningReader,
    OpeningViolation,
    decode_reply,
    encode_hello,
    encode_request,
)
from zerogate.pki import CertKind, kind_of
from zerogate.tunnel.link import MuxLink, MuxStream, feed

log = logging.getLogger("zerogate.gateway.tunnels")
OPEN_SECONDS = 10.0  # the connector's own connect timeout, plus a margin
P = TypeVar("P", bound=asyncio.BaseProtocol)


class TunnelRefused(ConnectionError):
    """The connector refused the stream (its reason), or no connector could take it."""


@dataclass(eq=False)
class Tunnel:
    name: str
    group: str
    serial: str
    link: MuxLink


class TunnelLink(MuxLink):
    """A connector's tunnel as the gateway accepts it: admitted first, then registered."""

    def __init__(self, registry: TunnelRegistry) -> None:
        super().__init__(registry.loop, client=False, on_closed=registry.forget)
        self.registry = registry

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der or not self.registry.admit(self, x509.load_der_x509_certificate(der)):
            self.abort("not an admitted connector")


class Opener(asyncio.Protocol):
    """A new stream's protocol until the connector answers; then the real one takes over."""

    def __init__(
        self, request: bytes, protocol: asyncio.Protocol | asyncio.BufferedProtocol
    ) -> None:
        self.request = request
        self.protocol = protocol
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader: OpeningReader | None = OpeningReader()
        self.stream: MuxStream | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.stream = transport  # type: ignore[assignment]
        assert self.stream is not None
        self.stream.write(self.request)

    def data_received(self, data: bytes) -> None:
        assert self._reader is not None and self.stream is not None
        try:
            done = self._reader.feed(data)
            if done is None:
                return
            reply = decode_reply(done[0])
        except OpeningViolation as exc:
            self._fail(TunnelRefused(f"the connector broke the protocol: {exc}"))
            self.stream.abort()
            return
        self._reader = None
        if not reply.ok:
            error = reply.error.value if reply.error else "refused"
            self._fail(TunnelRefused(f"the connector refused: {error} ({reply.detail})"))
            self.stream.close()
            return
        # From here the stream is the real protocol's, as if it had connected a socket: this
        # read's rest goes to it here, every later piece from the stream (`_deliver`).
        self.stream.set_protocol(self.protocol)
        self.protocol.connection_made(self.stream)
        if done[1]:
            feed(self.protocol, done[1])
        if not self.answered.done():
            self.answered.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionResetError("the tunnel ended before the connector answered"))

    def _fail(self, exc: Exception) -> None:
        if not self.answered.done():
            self.answered.set_exception(exc)


class TunnelRegistry:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        gateway: str,
        signing_key: ec.EllipticCurvePrivateKey,
        worker: int = 0,
        workers: int = 1,
    ) -> None:
        self.loop = loop
        self.gateway = gateway
        self.signing_key = signing_key
        self.worker = worker
        self.workers = workers
        self.admitted: Mapping[str, AdmittedConnector] = {}
        self.tunnels: dict[str, list[Tunnel]] = {}  # by connector group

    # --- the listener's side ---------------------------------------------------------------

    def protocol(self) -> TunnelLink:
        return TunnelLink(self)

    def admit(self, link: MuxLink, cert: x509.Certificate) -> bool:
        name, serial = _identity(cert)
        entry = self.admitted.get(name) if name else None
        if name is None or entry is None or serial not in entry.serials:
            log.warning("refused a tunnel from %r: not an admitted connector certificate", name)
            return False
        tunnel = Tunnel(name, entry.group, serial, link)
        self.tunnels.setdefault(entry.group, []).append(tunnel)
        stream = link.open_stream()
        stream.write(encode_hello(Hello(self.gateway, self.worker, self.workers)))
        stream.write_eof()
        stream.set_protocol(asyncio.Protocol())  # the connector closes it after reading
        log.info("connector %s (group %s) attached", name, entry.group)
        return True

    def forget(self, link: MuxLink) -> None:
        for group, tunnels in list(self.tunnels.items()):
            kept = [t for t in tunnels if t.link is not link]
            if len(kept) != len(tunnels):
                log.warning("connector tunnel closed: %s", link.end_reason)
            if kept:
                self.tunnels[group] = kept
            else:
                del self.tunnels[group]

    def swap(self, snapshot: Snapshot) -> int:
        """Take the admitted connectors of a new snapshot; cut the tunnels it no longer admits."""
        self.admitted = {c.name: c for c in snapshot.connectors}
        cut = 0
        for tunnels in list(self.tunnels.values()):
            for tunnel in tunnels:
                entry = self.admitted.get(tunnel.name)
                if (
                    entry is None
                    or tunnel.serial not in entry.serials
                    or entry.group != tunnel.group
                ):
                    log.warning("cutting connector %s: no longer admitted", tunnel.name)
                    tunnel.link.abort("the connector is no longer admitted")
                    cut += 1
        return cut

    # --- the upstream side -----------------------------------------------------------------

    def usable(self, group: str) -> list[Tunnel]:
        return [t for t in self.tunnels.get(group, ()) if t.link.usable]

    async def connect(
        self, group: str, app: str, target: str, principal: str, factory: Callable[[], P]
    ) -> P:
        """A protocol connected to `target` through a connector of `group`, or TunnelRefused."""
        tried: set[int] = set()
        for _ in range(2):
            candidates = [t for t in self.usable(group) if id(t) not in tried]
            if not candidates:
                break
            tunnel = min(candidates, key=lambda t: len(t.link.streams))
            tried.add(id(tunnel))
            protocol = factory()
            try:
                await self._open(tunnel, app, target, principal, protocol)
            except ConnectionResetError:
                continue  # the tunnel died under us: the connector saw nothing; next one
            return protocol
        raise TunnelRefused(f"no connector of group {group!r} is connected")

    async def _open(
        self, tunnel: Tunnel, app: str, target: str, principal: str, protocol: P
    ) -> None:
        now = time.time()
        grant = Grant(app, target, tunnel.group, self.gateway, principal, now, now + GRANT_SECONDS)
        request = encode_request(sign_grant(self.signing_key, grant))
        assert isinstance(protocol, asyncio.Protocol | asyncio.BufferedProtocol)
        opener = Opener(request, protocol)
        try:
            stream = tunnel.link.open_stream()
        except MuxError as exc:
            raise ConnectionResetError(str(exc)) from None
        stream.start(opener)
        try:
            await asyncio.wait_for(opener.answered, OPEN_SECONDS)
        except TimeoutError:
            stream.abort()
            raise TunnelRefused("the connector did not answer in time") from None

    def close(self) -> None:
        for tunnels in list(self.tunnels.values()):
            for tunnel in tunnels:
                tunnel.link.close()


def _identity(cert: x509.Certificate) -> tuple[str | None, str]:
    serial = format(cert.serial_number, "x")
    if kind_of(cert) is not CertKind.CONNECTOR:
        return None, serial
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return (str(names[0].value) if names else None), serial
