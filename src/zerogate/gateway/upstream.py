"""Connections to upstream applications: one HTTP/1.1 exchange at a time, pooled when idle.

Where it sits: `http.py` asks the `Pool` for a connection to an `Upstream`, writes the request
through it and receives the response as callbacks on an `Exchange` (its own object), so
bytes flow from the upstream socket to the client socket without a queue or a task in
between. Flow control is the transports' own: when the client cannot take more, the
exchange pauses this connection's reading, and the other way round.

Invariants:
1. A connection is in the pool only when idle: its previous response was complete, the
   upstream said keep-alive, and the connection is still open.
2. Every exchange ends exactly once: `response_done`, or `upstream_failed` (before or after
   the response head), never both.
3. A connection goes back to the pool only after the read that ended its response has been
   parsed whole: what follows the response in it (an app that sent more than it should)
   fails the connection, never the request that would have taken it next.
4. A response to HEAD, or whose body length the parser cannot know, never returns its
   connection to the pool (the parser may not be at a message boundary).
5. Nor does one that came before its request was wholly sent (an app may answer a large
   upload early): the app still waits for the rest of that body, and would read the next
   request sent on the connection as part of it (a desync: a smuggling vector).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from asyncio import sslproto
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

import httptools

MAX_IDLE_PER_UPSTREAM = 64
# Bytes of a response with nothing parsed out of them (its head): httptools collects a
# header whole before calling back, so an app sending an endless one is stopped here.
UNPARSED_LIMIT = 1 << 20
IDLE_SECONDS = 30.0
P = TypeVar("P", bound=asyncio.BaseProtocol)


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int
    tls: ssl.SSLContext | None = None
    server_hostname: str | None = None  # SNI and verification name when `tls` is set
    via: str | None = None  # the connector group that reaches it; None: dial directly
    app: str = ""  # the app it belongs to (named in a connector's grant)
    principal: str = ""  # who a raw (CONNECT) connection is for; named in the grant


class Tunnels(Protocol):
    """Where streams through connectors come from (`tunnels.TunnelRegistry`)."""

    async def connect(
        self,
        group: str,
        app: str,
        target: str,
        principal: str,
        factory: Callable[[], P],
    ) -> P: ...


class Exchange(Protocol):
    """The consumer of one response (the client side of the proxy)."""

    def response_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool
    ) -> None: ...

    def response_body(self, chunk: bytes) -> None: ...

    def response_done(self) -> None: ...

    def upstream_failed(self, why: str) -> None: ...

    def request_sent(self) -> bool: ...  # the whole request (head, body, its end) was written

    def upgrade_requested(self) -> bool: ...  # a WebSocket upgrade or CONNECT: 101 expected

    def hold(self) -> None: ...  # gather what the callbacks below write to the client

    def flush(self) -> None: ...  # and write it at once

    def upstream_writable(self) -> None: ...

    def upstream_upgraded(self, rest: bytes) -> None: ...

    def tunnel_data(self, data: bytes) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: Pool, upstream: Upstream, *, tunnel: bool = False) -> None:
        self.pool = pool
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.head_request = False
        self.write_paused = False
        self.closed = False
        self.tunnel = tunnel  # raw bytes both ways (an upgrade, or CONNECT from the start)
        self._early: list[bytes] = []  # a tunnel's bytes that came before its exchange did
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._until_close = False
        self._got_head = False
        self._status = 0
        # Idle expiry: one timer kept across exchanges (see `idle_since_now`).
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None
        self._held: list[bytes] | None = None  # request bytes gathered for one write (`hold`)
        self._unparsed = 0  # bytes received since something was parsed out of them
        self._reusable = False  # the exchange ended cleanly: back to the pool after this read

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its interface.
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        if self.tunnel:
            if self.exchange is not None:
                self.exchange.tunnel_data(data)
            else:  # a server that speaks first: hold its bytes until the client is there
                self._early.append(data)
                if self.transport is not None:
                    self.transport.pause_reading()
            return
        # Whatever this read makes the exchange write to its client (a small response's head,
        # body and end) is gathered and written once, when the read is handled.
        exchange = self.exchange
        if exchange is None:
            # An idle connection has nothing to say (some servers send a 408 before closing
            # one): whatever it says now is no answer to anything, and parsed, it would put
            # the connection back in the pool a second time.
            self._fail("the upstream spoke while idle")
            return
        self._unparsed += len(data)  # cleared by whatever parsing gets out of it
        exchange.hold()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            self.tunnel = True
            if self.exchange is not None:
                self.exchange.upstream_upgraded(data[offset:])
        except httptools.HttpParserError:
            self._fail("the upstream sent a malformed response")
        finally:
            exchange.flush()
        if self._unparsed > UNPARSED_LIMIT and not self.closed:
            self._fail("the upstream sent a response head that is too large")
            return
        if self._reusable:
            # Pooled only once the whole read is parsed: bytes after the answer (a body
            # after a 204) break the connection, and must not break the next request too.
            self._reusable = False
            if not self.closed:
                self.pool.release(self)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        exchange, self.exchange = self.exchange, None
        if exchange is None:
            return
        if self.tunnel:
            exchange.upstream_failed("closed")
        elif self._got_head and self._until_close:
            exchange.response_done()  # RFC 9112 §6.3 (8): the body ends with the connection
        else:
            exchange.upstream_failed("the upstream closed the connection")

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.exchange is not None:
            self.exchange.upstream_writable()

    # --- httptools callbacks ----------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._unparsed = 0
        status = self._parser.get_status_code()
        headers, reason = self._headers, self._reason
        self._headers, self._reason = [], b""
        if status < 100:  # "099": not a status any client reads the same way
            self._fail("the upstream answered with an invalid status")
            return
        if UNSAFE_VALUE.search(reason) is not None:
            reason = b""  # a control character is no reason to pass on: the standard one goes
        if 100 <= status < 200 and status != 101:
            return  # interim responses (103 Early Hints…): we asked for none, so drop them
        if status == 101 and not (self.exchange is not None and self.exchange.upgrade_requested()):
            # An app that switches protocols unasked would take the client's next bytes
            # straight, past the gateway's decisions.
            self._fail("the upstream switched protocols unasked")
            return
        self._got_head = True
        self._status = status
        try:
            self._until_close = _close_delimited(status, headers, self.head_request)
        except _UnaskedCoding:
            # The gateway asks for no transfer coding (it sends no TE), and could not relay
            # one: dropping `gzip` from `gzip, chunked` would pass gzip bytes as plain ones.
            self._fail("the upstream used a transfer coding other than chunked")
            return
        if self.exchange is not None:
            self.exchange.response_head(status, reason, headers, self._parser.should_keep_alive())
        if self.head_request:
            self._finish(reusable=False)

    def on_body(self, body: bytes) -> None:
        self._unparsed = 0
        if self.exchange is not None:
            self.exchange.response_body(body)

    def on_message_complete(self) -> None:
        self._unparsed = 0
        if self._status == 101:
            return  # the upgrade error that follows hands the connection to the tunnel
        if self._got_head and not self.tunnel:
            exchange = self.exchange
            self._finish(
                reusable=self._parser.should_keep_alive()
                and not self._until_close
                and exchange is not None
                and exchange.request_sent()
            )

    # --- used by the client side ------------------------------------------------------------

    def start_tunnel(self, exchange: Exchange) -> None:
        """Give a raw connection (CONNECT) its client: what came early first, then the rest."""
        self.exchange = exchange
        for data in self._early:
            exchange.tunnel_data(data)
        self._early.clear()
        if self.closed:
            self.exchange = None
            exchange.upstream_failed("closed")
        elif self.transport is not None:
            self.transport.resume_reading()

    def start(self, exchange: Exchange, *, head_request: bool) -> None:
        self._idle_since = None  # busy: a running idle timer fires into nothing
        self.exchange = exchange
        self.head_request = head_request
        self._got_head = False
        self._status = 0
        self._until_close = False

    def write(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)
        elif self.transport is not None and not self.closed:
            self.transport.write(data)

    def hold(self) -> None:
        """Gather writes until `flush` (a request's head and small body: one system call)."""
        if self._held is None:
            self._held = []

    def flush(self) -> None:
        held, self._held = self._held, None
        if not held or self.transport is None or self.closed or self.transport.is_closing():
            return
        if len(held) == 1:
            self.transport.write(held[0])
        else:
            self.transport.writelines(held)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def abort(self) -> None:
        self.exchange = None
        self._held = None
        if self.transport is not None:
            self.transport.abort()

    def _finish(self, *, reusable: bool) -> None:
        """End the exchange; called from the parser's callbacks, inside `data_received`."""
        exchange, self.exchange = self.exchange, None
        if reusable:
            self._reusable = True  # released when `data_received` has parsed the whole read
        elif self.transport is not None:
            self.transport.close()
        if exchange is not None:
            exchange.response_done()

    def _fail(self, why: str) -> None:
        exchange, self.exchange = self.exchange, None
        # Closed now, not when the loop reports the connection lost: the release waiting
        # for the end of this read (`data_received`) must not pool it, nor the pool hand it
        # to the next request (perhaps another client's) in the meantime.
        self.closed = True
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()
        if exchange is not None:
            exchange.upstream_failed(why)

    def idle_since_now(self, loop: asyncio.AbstractEventLoop) -> None:
        # A pooled connection goes idle after every exchange; rather than a timer made and
        # cancelled each time, the one running timer checks when it fires (and sleeps again).
        self._idle_since = loop.time()
        if self._idle_timer is None:
            self._idle_timer = loop.call_at(self._idle_since + IDLE_SECONDS, self._idle_expired)

    def _idle_expired(self) -> None:
        self._idle_timer = None
        if self._idle_since is None:
            return  # in use; `idle_since_now` arms again when it is back in the pool
        loop = self.pool.loop
        due = self._idle_since + IDLE_SECONDS
        if loop.time() < due:
            self._idle_timer = loop.call_at(due, self._idle_expired)
            return
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.close()


UNSAFE_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # controls but HTAB (RFC 9110 §5.5)


class _UnaskedCoding(Exception):
    """A response's Transfer-Encoding names a coding other than chunked."""


def _close_delimited(status: int, headers: list[tuple[bytes, bytes]], head: bool) -> bool:
    """True when only the connection's end can end this response's body (RFC 9112 §6.3);
    _UnaskedCoding for a transfer coding other than chunked."""
    if head or status in (204, 304) or 100 <= status < 200:
        return False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            return False
        if lowered == b"transfer-encoding":
            if value.strip(b" \t").lower() != b"chunked":
                raise _UnaskedCoding
            return False
    return True


class Pool:
    """Idle keep-alive connections per upstream, newest first (warm sockets, fewer timeouts)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        connect_timeout: float = 5.0,
        tunnels: Tunnels | None = None,
    ) -> None:
        self.loop = loop
        self.connect_timeout = connect_timeout
        self.tunnels = tunnels
        self._idle: defaultdict[Upstream, deque[UpstreamConnection]] = defaultdict(deque)

    def take_idle(self, upstream: Upstream) -> UpstreamConnection | None:
        """An idle connection, without waiting: the common case needs no task."""
        idle = self._idle.get(upstream)
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    async def acquire(self, upstream: Upstream) -> UpstreamConnection:
        return self.take_idle(upstream) or await self._connect(upstream)

    async def _connect(self, upstream: Upstream, *, tunnel: bool = False) -> UpstreamConnection:
        if upstream.via is not None:
            return await self._through_connector(upstream, upstream.via, tunnel)
        connecting = self.loop.create_connection(
            lambda: UpstreamConnection(self, upstream, tunnel=tunnel),
            upstream.host,
            upstream.port,
            ssl=upstream.tls,
            server_hostname=upstream.server_hostname if upstream.tls else None,
        )
        _, conn = await asyncio.wait_for(connecting, self.connect_timeout)
        return conn

    async def _through_connector(
        self, upstream: Upstream, group: str, tunnel: bool
    ) -> UpstreamConnection:
        if self.tunnels is None:
            raise ConnectionError("this gateway holds no connector tunnels")
        conn = UpstreamConnection(self, upstream, tunnel=tunnel)
        on_stream: asyncio.BaseProtocol = conn
        handshake: asyncio.Future[None] | None = None
        if upstream.tls is not None:
            # TLS to the app itself, inside the stream: uvloop's start_tls takes only its own
            # sockets, so asyncio's TLS protocol sits between the stream and the connection.
            handshake = self.loop.create_future()
            on_stream = sslproto.SSLProtocol(
                self.loop, conn, upstream.tls, handshake, server_hostname=upstream.server_hostname
            )
        target = f"{upstream.host}:{upstream.port}"
        # The principal is "" for pooled HTTP: each request on it was decided already.
        await self.tunnels.connect(
            group, upstream.app, target, upstream.principal, lambda: on_stream
        )
        if handshake is not None:
            await asyncio.wait_for(handshake, self.connect_timeout)
        return conn

    async def open_raw(self, upstream: Upstream) -> UpstreamConnection:
        """A new connection for a byte tunnel (CONNECT): never pooled, never HTTP."""
        return await self._connect(upstream, tunnel=True)

    def release(self, conn: UpstreamConnection) -> None:
        idle = self._idle[conn.upstream]
        if conn.closed or len(idle) >= MAX_IDLE_PER_UPSTREAM:
            if conn.transport is not None:
                conn.transport.close()
            return
        conn.idle_since_now(self.loop)
        idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.upstream)
        if idle is not None and conn in idle:
            idle.remove(conn)

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                if conn.transport is not None:
                    conn.transport.close()
        self._idle.clear()
