"""The gateway's HTTP/1.1 front: one asyncio Protocol per client connection, httptools parsing.

Where it sits: `server.py` listens and builds a `ClientConnection` per accepted socket. Each
request's head is checked by `core/http/framing.py`, its path normalised by
`core/http/paths.py`, and handed to the `Handler` (enforcement lives there), which answers
with a `Reply` (the gateway speaks: 404, redirect to login, deny page) or a `Forward` (an
upstream, and headers to add). Bodies stream in both directions without being gathered.

Theory of operation:
- Requests on a connection are answered in order (pipelining): `cycles[0]` is the request
  being answered; a pipelined request parsed meanwhile waits in `cycles`, and reading pauses
  until the one before it is answered, so a client cannot queue unbounded work.
- Flow control is by pausing transports, never by buffering: a slow client pauses the
  upstream's reading (`pause_writing`), a slow upstream pauses the client's reading.
  `_paused` holds why reading is paused; reading resumes when no reason is left.
- An error before the response head was sent gets a status page; after it, the only honest
  signal left is to cut the connection.
- Timers: the head must arrive within `header_timeout` (slowloris), a kept-alive connection
  may idle `idle_timeout`, the upstream must start answering within `response_timeout` and
  then never fall silent for longer (unless the client is the one not reading).
- Writes are gathered per event-loop callback (`hold`/`flush`): what one read of the
  upstream produces (head, body, chunk terminator) reaches the client in one write, and a
  request's head with the body read along with it reaches the upstream in one write.
- Answers gathered that way leave together at the end of the event loop's round
  (`Gateway.defer`), after one call of `before_send`: the audit spool writes the events of
  all of them to the kernel in one system call, before any of their bytes reach a client.
  Every other write to a client calls `before_send` first too, so no answer ever leaves
  before its audit event is safe from a crash of the process. When `before_send` cannot make
  them safe (the spool's disk is full), a connection with an event reported since it was
  last sent to (`unsent_event`) is cut instead: a client never sees an answer whose event
  could still be lost. The gateway's refusals, which have no event, still leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, cast

import httptools

from zerogate.core.http.framing import (
    BodyFraming,
    HttpViolation,
    Limits,
    RequestHead,
    check_request_head,
)
from zerogate.core.http.paths import PathError, normalise_path
from zerogate.core.memo import Memo
from zerogate.gateway.upstream import UNSAFE_VALUE, Pool, Tunnels, Upstream, UpstreamConnection

# Hop-by-hop (RFC 9110 §7.6.1): never forwarded, in either direction.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"expect",  # the gateway answers 100-continue itself
        b"content-length",  # re-emitted from the framing we chose
    }
)
# Headers that could carry identity or provenance: only the gateway sets them.
IDENTITY_HEADERS = frozenset(
    {
        b"x-forwarded-user",
        b"x-forwarded-email",
        b"x-forwarded-groups",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-real-ip",
        b"forwarded",
        b"x-auth-request-user",
        b"x-auth-request-email",
        b"remote-user",
    }
)
log = logging.getLogger("zerogate.gateway")


class _Ended(Exception):
    """Raised from a parser callback: the connection's last answer is given, and whatever
    came after it in the same read is not read (see `on_message_begin`)."""


_REASONS = {
    100: b"Continue",
    200: b"OK",
    302: b"Found",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    407: b"Proxy Authentication Required",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    417: b"Expectation Failed",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}
_BUFFER_LIMIT = 256 * 1024
# Bytes a client may send with nothing parsed out of them (a head, a trailer): httptools
# collects a header's value whole before calling `on_header`, so the limits checked there
# come too late for one endless value. Well above any head the limits allow.
_UNPARSED_LIMIT = 64 * 1024
_Headers = tuple[tuple[bytes, bytes], ...]
_MEMO_BYTES = 4 << 20  # memory for each kind of remembered request part, per process
_PATHS = 4096  # normalised paths remembered
_JOIN_LIMIT = 16 * 1024  # answers up to one TLS record are joined before writing
# After a closing answer, how long the client may still send (read and dropped) once the
# answer has left the process; see `ClientConnection._linger`.
LINGER_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Options:
    limits: Limits = field(default_factory=Limits)
    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    response_timeout: float = 60.0
    max_connections_per_client: int = 512
    # Requests parsed ahead of their answers on one connection: httptools parses all of a
    # read, so without a bound 256 KiB of tiny pipelined requests would hold ~4 MB of them.
    max_pipelined: int = 100
    strip_headers: frozenset[bytes] = IDENTITY_HEADERS
    scheme: bytes = b"https"


@dataclass(frozen=True, slots=True)
class Request:
    head: RequestHead
    path: str  # normalised: what the policy matched and what the upstream receives
    client: str  # the peer's address


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one request, for the audit event (written by the handler's hook)."""

    status: int
    bytes_in: int
    bytes_out: int
    seconds: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Forward:
    upstream: Upstream
    headers: tuple[tuple[bytes, bytes], ...] = ()  # added to the upstream request
    response_headers: tuple[tuple[bytes, bytes], ...] = ()  # added to the client response
    done: Callable[[Outcome], None] | None = None
    path_prefix: str = ""  # the upstream's base path ("/wiki"), put before the request's
    # For upgraded (long-lived) connections: asked again whenever the policy changes;
    # False cuts the connection (a WebSocket whose grant was revoked).
    still_allowed: Callable[[], bool] | None = None
    # For a body that may name another method for its app to run (`_method`): reads the
    # body as it passes; a `Reply` instead of the app's answer if that method is refused.
    body_check: BodyCheck | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    content_type: bytes = b"text/html; charset=utf-8"
    done: Callable[[Outcome], None] | None = None


class BodyCheck(Protocol):
    """Reads a request's body on its way to the app (see `Forward.body_check`)."""

    def feed(self, chunk: bytes) -> Reply | None: ...

    def finish(self) -> Reply | None: ...


Handler = Callable[[Request], Forward | Reply]


def _nothing() -> bool:
    return True


class Gateway:
    """What every connection of one listener shares."""

    def __init__(
        self,
        handler: Handler,
        options: Options,
        loop: asyncio.AbstractEventLoop,
        *,
        # Makes the audit events written so far safe from a crash; False if it could not.
        before_send: Callable[[], bool] = _nothing,
        tunnels: Tunnels | None = None,  # connectors' tunnels, for apps routed through them
        # The host name a TLS connection asked for (SNI), from its `ssl_object`; see `asked`.
        server_name: Callable[[object], str | None] | None = None,
    ):
        self.handler = handler
        self.server_name = server_name
        self.options = options
        self.loop = loop
        self.before_send = before_send
        self.pool = Pool(loop, tunnels=tunnels)
        self.per_client: defaultdict[str, int] = defaultdict(int)
        self.connections: set[ClientConnection] = set()
        self._deferred: list[ClientConnection] = []
        # What a client sends again and again, and what follows from it by pure functions:
        # checked request heads, normalised paths, the headers forwarded upstream and the
        # upstream request itself (filtering and building them showed in the profile).
        self._heads: Memo[tuple[bytes, bytes, str, _Headers], RequestHead] = Memo(_MEMO_BYTES)
        self._paths: Memo[str, str] = Memo(_PATHS)
        self._header_blocks: Memo[_Headers, bytes] = Memo(_MEMO_BYTES)
        self._requests: Memo[tuple[object, ...], tuple[RequestHead, bytes]] = Memo(_MEMO_BYTES)

    def check_head(
        self, method: bytes, target: bytes, version: str, headers: list[tuple[bytes, bytes]]
    ) -> RequestHead:
        """`check_request_head`, remembered (HttpViolation is raised every time, never kept)."""
        key = (method, target, version, tuple(headers))
        head = self._heads.get(key)
        if head is None:
            head = check_request_head(method, target, version, headers, self.options.limits)
            self._heads.put(key, head, 2 * (len(target) + _size(headers)))
        return head

    def normalise(self, path: str) -> str:
        """`normalise_path`, remembered for paths of up to 1 KiB (PathError is never kept)."""
        found = self._paths.get(path)
        if found is None:
            found = normalise_path(path)
            if len(path) <= 1024:
                self._paths.put(path, found)
        return found

    def forwarded_headers(self, headers: _Headers) -> bytes:
        """The client's header lines that go upstream: no hop-by-hop and no identity headers."""
        block = self._header_blocks.get(headers)
        if block is None:
            block = _forwarded_headers(headers, self.options.strip_headers)
            self._header_blocks.put(headers, block, len(block) + _size(headers))
        return block

    def upstream_request(self, head: RequestHead, path: str, forward: Forward, peer: str) -> bytes:
        """`_upstream_request`, remembered: a client repeating a request (the same head object,
        from `check_head`) with the same token gets the very same bytes. The entry keeps its
        head, so an id in a key always names that head while the entry exists."""
        key = (id(head), path, forward.path_prefix, forward.headers, peer)
        entry = self._requests.get(key)
        if entry is not None and entry[0] is head:
            return entry[1]
        request = _upstream_request(self, head, path, forward, peer)
        self._requests.put(key, (head, request), 2 * len(request))
        return request

    def defer(self, conn: ClientConnection) -> None:
        """Send `conn`'s gathered answer at the end of this round of the event loop."""
        if not self._deferred:
            self.loop.call_soon(self._send_deferred)
        self._deferred.append(conn)

    def _send_deferred(self) -> None:
        conns, self._deferred = self._deferred, []
        safe = self.before_send()  # once for every answer of the round
        for conn in conns:
            try:
                if safe or not conn.unsent_event:  # an answer without an event may leave anyway
                    conn.send_held(audited=True)
                else:
                    conn.cut_unaudited()
            except Exception:  # one connection's failure must not hold the others' answers
                log.exception("could not send a held answer; the connection is cut")
                if conn.transport is not None:
                    conn.transport.abort()

    def protocol(self) -> ClientConnection:
        return ClientConnection(self)

    def close(self) -> None:
        for conn in list(self.connections):
            conn.close()
            transport = conn.transport
            if transport is not None and transport.get_write_buffer_size():
                # A stopping gateway does not wait for a client to read what is left (one that
                # stopped reading would hold the event loop's close forever).
                transport.abort()
        self.pool.close()

    def recheck_tunnels(self, *, everything: bool = False) -> int:
        """Cut every upgraded connection whose grant no longer holds (with `everything`,
        every one that has a grant: there is no policy to hold it); how many were cut."""
        cut = 0
        for conn in list(self.connections):
            tunnel = conn.upgraded
            check = tunnel.forward.still_allowed if tunnel and tunnel.forward else None
            if check is None:
                continue
            try:
                allowed = not everything and check()
            except Exception:  # a check that cannot decide denies
                allowed = False
            if not allowed:
                conn.cut(tunnel)
                cut += 1
        return cut


def _upgrades(head: RequestHead) -> bool:
    """Whether the request's bytes after its head belong to a tunnel, not to HTTP."""
    return head.upgrade is not None or head.method == "CONNECT"


def status_page(status: int, text: str) -> Reply:
    body = f"<!doctype html><title>{status}</title><p>{html.escape(text)}</p>\n".encode()
    return Reply(status, body)


class Cycle:
    """One request and its response; receives the upstream's response callbacks."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.head: RequestHead | None = None
        self.reply: Reply | None = None  # an answer decided before forwarding (errors)
        self.body: deque[bytes] = deque()
        self.body_buffered = 0
        self.body_done = False
        self.chunked_in = False
        self.upstream: UpstreamConnection | None = None
        self.forward: Forward | None = None
        self.head_sent = False
        self.chunked_out = False
        self.length_out: int | None = None
        self.reported = False
        self.keep_alive = True
        self.finished = False
        self.tunnel_pending: list[bytes] = []
        self.tunnel = False
        self.started = time.monotonic()
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        # Whether the app's answer is being timed, and until when: `response_timeout` after
        # the request's last byte, moved on by progress (the connection's `watch_answer`).
        self.timed = False
        self.deadline = 0.0
        self.check: BodyCheck | None = None  # reads the body until its end (`start_check`)
        self.reserve = b""  # the body's last byte so far, held while `check` reads

    def abandon(self) -> None:
        """Stop this exchange where it is: no timer, no upstream, nothing more to the client."""
        self.finished = True
        self.timed = False
        if self.upstream is not None:
            self.upstream.abort()
            self.upstream = None

    # --- request body, from the client parser -----------------------------------------------

    def start_check(self, check: BodyCheck) -> Reply | None:
        """Read the body with `check` before the app has it whole: what was read ahead now,
        the rest as it comes."""
        for chunk in self.body:
            reply = check.feed(chunk)
            if reply is not None:
                return reply
        if self.body_done:
            return check.finish()
        self.check = check
        return None

    def feed_body(self, chunk: bytes) -> None:
        self.bytes_in += len(chunk)
        if self.check is not None:
            reply = self.check.feed(chunk)
            if reply is not None:
                self.conn.overridden(self, reply)
                return
        if self.upstream is not None:
            self._send_body(chunk)
            return
        if self.reply is not None or self.finished:
            return  # answered without forwarding: the body is read and dropped
        self.body.append(chunk)
        self.body_buffered += len(chunk)
        if self.body_buffered > _BUFFER_LIMIT:
            self.conn.pause("buffer")

    def complete_body(self) -> None:
        if self.body_done:
            return  # no body: its end was known with the head
        self.body_done = True
        check, self.check = self.check, None
        if check is not None:
            reply = check.finish()
            if reply is not None:
                self.conn.overridden(self, reply)
                return
        if self.upstream is not None:
            if self.reserve:
                self.upstream.write(self.reserve)
                self.reserve = b""
            if self.chunked_in:
                self.upstream.write(b"0\r\n\r\n")
            self._progress()

    def _send_body(self, chunk: bytes) -> None:
        assert self.upstream is not None
        if self.chunked_in:
            self.upstream.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        elif self.check is None:
            self.upstream.write(chunk)
        else:
            # An app acts on a request only once it has the whole of it: while the check
            # reads, the last byte waits (a chunked body's end waits in `complete_body`).
            chunk, self.reserve = self.reserve + chunk[:-1], chunk[-1:]
            if chunk:
                self.upstream.write(chunk)
        if self.upstream.write_paused:
            self.conn.pause("upstream")
        self._progress()

    def _progress(self) -> None:
        """The exchange moved (the app got more of the request, or sent more of its answer,
        or the client reads again): the app's time to answer, or to go on, counts from now.
        Only silence counts: an upload or a download may take longer than the timeout."""
        if self.timed:
            self.deadline = (
                self.conn.gateway.loop.time() + self.conn.gateway.options.response_timeout
            )

    # --- attaching the upstream ---------------------------------------------------------------

    def attach(self, upstream: UpstreamConnection, forward: Forward, request: bytes) -> None:
        assert self.head is not None
        self.upstream = upstream
        upstream.start(self, head_request=self.head.method == "HEAD")
        # The head, the body read so far and its end go out as one write; while the client's
        # bytes are being parsed, what they add (the rest of a small body) joins it too.
        upstream.hold()
        upstream.write(request)
        while self.body:
            self._send_body(self.body.popleft())
        self.body_buffered = 0
        self.conn.resume("buffer")
        if self.body_done and self.chunked_in:
            upstream.write(b"0\r\n\r\n")
        if self.conn.receiving:
            if self.conn.held_upstream not in (None, upstream):
                self.conn.flush_upstream(self.conn.held_upstream)
            self.conn.held_upstream = upstream  # flushed when data_received returns
        else:
            self.conn.flush_upstream(upstream)
        self.deadline = self.conn.gateway.loop.time() + self.conn.gateway.options.response_timeout
        self.timed = True
        self.conn.watch_answer(self.deadline)

    def app_may_send(self) -> None:
        """The client reads again: the app's silence counts from now, not from before the
        pause (its next bytes may not have arrived yet when the timer fires)."""
        if self.head_sent:
            self._progress()

    def response_due(self) -> None:
        """The connection's answer timer fired: cut the exchange if its app has been silent
        for `response_timeout`, else have the timer fire again at the new deadline. Each piece
        of the body sent or received moves only `deadline`."""
        if not self.timed or self.upstream is None or self.finished:
            return
        loop = self.conn.gateway.loop
        if self.head_sent and self.conn.write_paused:
            # The app waits for the client to read (its answer backs up here): that silence
            # is the client's, and the client's own stall timer governs it.
            self.deadline = loop.time() + self.conn.gateway.options.response_timeout
        if loop.time() < self.deadline:
            self.conn.watch_answer(self.deadline)
            return
        self.timed = False
        upstream, self.upstream = self.upstream, None
        upstream.abort()
        if self.head_sent:
            # Nothing more can be said to the client: cutting its connection is how it learns
            # that the answer is incomplete (as nginx's proxy_read_timeout does).
            log.info(
                "cut an answer its app stopped sending for %.0f s",
                self.conn.gateway.options.response_timeout,
            )
            self.keep_alive = False
            self.conn.finish(self, error="the application stopped sending its answer", cut=True)
            return
        if self.body_done or self.conn.paused_for("upstream"):
            self.conn.answer_error(self, 504, "the application did not answer in time")
        else:  # the client stopped sending its body: it is the one that is late
            self.conn.answer_error(self, 408, "the request body did not arrive in time")

    # --- the upstream's response (upstream.Exchange) --------------------------------------------

    def hold(self) -> None:
        self.conn.hold()

    def flush(self) -> None:
        self.conn.flush()

    def response_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool
    ) -> None:
        assert self.head is not None
        self.status = status
        length = None
        chunked = False
        out = bytearray(b"HTTP/1.1 %d %b\r\n" % (status, reason or _REASONS.get(status, b"")))
        connection_tokens = _connection_tokens(headers)
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-length":
                length = value
            elif lowered == b"transfer-encoding":
                chunked = True
            if lowered in HOP_BY_HOP or lowered in connection_tokens:
                continue
            out += name + b": " + value + b"\r\n"
        if self.forward is not None:
            for name, value in self.forward.response_headers:
                out += name + b": " + value + b"\r\n"
        no_body = self.head.method == "HEAD" or status in (204, 304)
        if status == 101:
            out += b"connection: upgrade\r\nupgrade: " + _header(headers, b"upgrade") + b"\r\n"
        elif length is not None and not chunked:
            out += b"content-length: " + length + b"\r\n"
            self.length_out = int(length) if length.isdigit() else None
        elif not no_body:
            if self.head.keep_alive and self.conn.http11:
                self.chunked_out = True
                out += b"transfer-encoding: chunked\r\n"
            else:
                self.keep_alive = False  # the end of the body is the end of the connection
        if not self.head.keep_alive or not self.keep_alive or not self.body_done:
            self.keep_alive = False
            if status != 101:
                out += b"connection: close\r\n"
        elif not self.conn.http11:
            out += b"connection: keep-alive\r\n"  # HTTP/1.0 closes unless told otherwise
        out += b"\r\n"
        self.head_sent = True
        if no_body or self.length_out == 0 or status == 101:
            self.timed = False  # a tunnel may stay silent; other answers end here
            if status != 101:
                self.conn.report(self)  # these bytes are the whole answer
        else:  # the body must keep coming: `response_timeout` is now for its silences
            self._progress()
        self.conn.write(bytes(out))

    def response_body(self, chunk: bytes) -> None:
        self.bytes_out += len(chunk)
        self._progress()
        if self.chunked_out:
            self.conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            return
        if self.length_out is not None and self.bytes_out >= self.length_out:
            self.conn.report(self)  # the client has its answer once this chunk arrives
        self.conn.write(chunk)

    def response_done(self) -> None:
        self.conn.report(self)
        if self.chunked_out:
            self.conn.write(b"0\r\n\r\n")
        self.upstream = None
        self.conn.finish(self)

    def upstream_failed(self, why: str) -> None:
        self.upstream = None
        self.timed = False
        if self.finished:
            return
        if not self.head_sent:
            self.conn.answer_error(self, 502, "the application is not reachable")
        else:
            self.keep_alive = False
            self.conn.finish(self, error=why, cut=True)

    def upstream_writable(self) -> None:
        self.conn.resume("upstream")

    def request_sent(self) -> bool:
        return self.body_done

    def upgrade_requested(self) -> bool:
        return self.head is not None and _upgrades(self.head)

    def upstream_upgraded(self, rest: bytes) -> None:
        self.tunnel = True
        self.conn.start_tunnel(self)
        if rest:
            self.conn.write(rest)
        if self.upstream is not None:
            for data in self.tunnel_pending:  # what the client sent after its upgrade request
                self.upstream.write(data)
        self.tunnel_pending.clear()
        self.conn.resume("buffer")

    def tunnel_data(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self.conn.write(data)


def _misdirected(head: RequestHead, asked: str) -> bool:
    """Whether a request names a host other than its connection's SNI. A CONNECT names the
    tunnel's target, not the gateway; an HTTP/1.0 request may name no host at all."""
    return head.method != "CONNECT" and head.host != "" and head.host.rstrip(".") != asked


class ClientConnection(asyncio.Protocol):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.parser = httptools.HttpRequestParser(self)
        self.parsing: Cycle | None = None
        self.cycles: deque[Cycle] = deque()
        self.http11 = True
        self.closing = False
        self.upgraded: Cycle | None = None
        # A malformed request came after whole ones: its error, sent once they are answered.
        self.broken: tuple[int, str] | None = None
        # The request whose head made the parser stop (an upgrade offered, or CONNECT).
        self.stopped_at: Cycle | None = None
        self._linger_until = 0.0
        self._eof = False  # `write_eof` was called: nothing more may be written
        self._stall_timer: asyncio.TimerHandle | None = None  # see `_write_stalled`
        self._paused: set[str] = set()
        self._write_paused = False
        # The connection's one timer (see `_arm`): when it is due, and what it then calls.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._deadline = 0.0
        self._on_timeout: Callable[[], None] | None = None
        # The timer of the apps' answers (see `watch_answer`) and when it fires.
        self._answer_timer: asyncio.TimerHandle | None = None
        self._answer_timer_at = 0.0
        # Write coalescing (see `hold`): what is written to the client while held, the upstream
        # connection holding a request's bytes, and whether the client's bytes are being parsed.
        self._held: list[bytes] | None = None
        self._deferred = False  # `_held` waits for the end of the event loop's round
        self.held_upstream: UpstreamConnection | None = None
        self.receiving = False
        self.unsent_event = False  # an audit event reported since this client was last sent to
        self.unparsed = 0  # bytes received since something was parsed out of them
        # The host this TLS connection was opened for (SNI). Its requests must be for that host:
        # the certificate shown was chosen for it, and a request for another host on it is
        # domain fronting (an allowed name outside hiding another inside), so it gets 421
        # Misdirected Request (RFC 9110 §15.5.20), as Cloudflare and Caddy's strict SNI give.
        self.asked: str | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its interface.
        self.transport = cast("asyncio.Transport", transport)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""
        gateway = self.gateway
        if gateway.server_name is not None:
            self.asked = gateway.server_name(transport.get_extra_info("ssl_object"))
        gateway.per_client[self.peer] += 1
        gateway.connections.add(self)
        if gateway.per_client[self.peer] > gateway.options.max_connections_per_client:
            self.closing = True
            self._send([_plain(503, b"too many connections", close=True)])
            self._linger()
            return
        self._arm(gateway.options.header_timeout, self._head_timeout)

    def data_received(self, data: bytes) -> None:
        if self.closing or self.broken is not None:
            return
        if self.upgraded is not None:
            self._tunnel_in(self.upgraded, data)
            return
        # Counted before parsing, cleared by whatever parsing gets out of it (see the limit).
        self.unparsed += len(data)
        self.receiving = True
        try:
            self._parse(data)
        finally:
            self.receiving = False
            if self.held_upstream is not None:
                upstream, self.held_upstream = self.held_upstream, None
                self.flush_upstream(upstream)
        if self.unparsed > _UNPARSED_LIMIT and not self.closing and self.broken is None:
            self._protocol_error(431, "request header fields too large")

    def _parse(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            cycle, self.stopped_at = self.stopped_at, None
            if self.closing or self.broken is not None:
                return  # answered already (the gateway's own answer to an upgrade closes)
            if cycle is None or cycle.head is None or not cycle.body_done:
                self._protocol_error(400, "unexpected upgrade")
                return
            if not _upgrades(cycle.head):
                # An upgrade the gateway ignored (see `framing`): HTTP/1.1 goes on, read by a
                # new parser (the old one would pass on everything after it as tunnel bytes).
                self.parser = httptools.HttpRequestParser(self)
                if data[offset:] and not self.closing and self.broken is None:
                    self._parse(data[offset:])
                return
            self.upgraded = cycle
            if data[offset:]:
                self._tunnel_in(cycle, data[offset:])
        except httptools.HttpParserError as exc:
            # httptools wraps what a callback raised (our HttpViolation) in its own error.
            cause = exc.__context__
            if isinstance(cause, _Ended):
                return
            if isinstance(cause, HttpViolation):
                self._protocol_error(cause.status, cause.reason)
            else:
                self._protocol_error(400, "malformed request")

    def _write_stalled(self) -> None:
        """The client took none of what waits for it for the idle timeout: a reader that
        stopped (or a slow-read attack) would hold the connection, its answer and its app
        connection forever, and closing waits for the buffer to drain, so: abort."""
        self._stall_timer = None
        if self._write_paused and self.transport is not None:
            log.info("cut a client that read nothing for %.0f s", self.gateway.options.idle_timeout)
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        gateway = self.gateway
        gateway.connections.discard(self)
        gateway.per_client[self.peer] -= 1
        if gateway.per_client[self.peer] <= 0:
            del gateway.per_client[self.peer]
        self.closing = True
        self._on_timeout = None
        if self._timer is not None:
            self._timer.cancel()  # no timer outlives its connection, or keeps it in memory
            self._timer = None
        if self._answer_timer is not None:
            self._answer_timer.cancel()
            self._answer_timer = None
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        for cycle in self.cycles:
            cycle.abandon()
            self.report(cycle, "the client went away")
        self.cycles.clear()

    @property
    def write_paused(self) -> bool:
        """The client's socket takes no more for now (it reads slower than its answer comes)."""
        return self._write_paused

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._stall_timer is None:  # rare (a full send buffer): a timer of its own
            self._stall_timer = self.gateway.loop.call_later(
                self.gateway.options.idle_timeout, self._write_stalled
            )
        if not self.closing:
            # A client that does not read its answers sends no more requests meanwhile: else
            # the answers to what it keeps sending (a flood of 404s) would pile up here.
            self.pause("writing")
        if self.cycles and self.cycles[0].upstream is not None:
            self.cycles[0].upstream.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        self.resume("writing")
        if self.cycles and self.cycles[0].upstream is not None:
            self.cycles[0].upstream.resume_reading()
            self.cycles[0].app_may_send()

    # --- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.closing:
            # The last answer is given (an error, or an answer before the body was read):
            # what came with it in the same read is dropped, a pipelined request included,
            # as `data_received` drops what comes later.
            raise _Ended
        self.parsing = Cycle(self)
        self._arm(self.gateway.options.header_timeout, self._head_timeout)

    def on_url(self, url: bytes) -> None:
        assert self.parsing is not None
        self.parsing.url += url
        if len(self.parsing.url) > self.gateway.options.limits.max_target_length:
            raise HttpViolation(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        cycle = self.parsing
        assert cycle is not None
        cycle.headers.append((name, value))
        cycle.header_bytes += len(name) + len(value)
        limits = self.gateway.options.limits
        if len(cycle.headers) > limits.max_headers or cycle.header_bytes > limits.max_header_bytes:
            raise HttpViolation(431, "request header fields too large")

    def on_headers_complete(self) -> None:
        self._disarm()
        self.unparsed = 0
        cycle = self.parsing
        assert cycle is not None
        if len(self.cycles) >= self.gateway.options.max_pipelined:
            # The ones queued are answered first, then this refusal and the close.
            raise HttpViolation(429, "too many pipelined requests")
        version = self.parser.get_http_version()
        self.http11 = version == "1.1"
        head = self.gateway.check_head(self.parser.get_method(), cycle.url, version, cycle.headers)
        stops = self.parser.should_upgrade()
        if stops != _upgrades(head) and (not stops or head.framing is not BodyFraming.NONE):
            # `framing` refuses an ignored upgrade with a body; this guards against the parser
            # reading a head otherwise than it did: a body the parser does not read (it stops
            # after the head) would be taken for the next request.
            raise HttpViolation(400, "an upgrade the parser and the framing check read apart")
        if stops:
            self.stopped_at = cycle
        asked = self.asked
        if asked is not None and head.host != asked and _misdirected(head, asked):
            raise HttpViolation(421, "this connection was opened for another host name")
        cycle.head = head
        cycle.chunked_in = head.framing is BodyFraming.CHUNKED
        cycle.keep_alive = head.keep_alive
        if head.framing is BodyFraming.NONE:
            cycle.body_done = True
        self.cycles.append(cycle)
        if len(self.cycles) == 1:
            self._begin(cycle)

    def on_body(self, body: bytes) -> None:
        self.unparsed = 0
        if self.parsing is not None:
            self.parsing.feed_body(body)

    def on_message_complete(self) -> None:
        self.unparsed = 0
        cycle, self.parsing = self.parsing, None
        if cycle is None:
            return
        cycle.complete_body()
        if not cycle.finished:
            self.pause("pipeline")  # answer this one before reading the next
        elif not self.cycles:
            self._idle()

    # --- answering ----------------------------------------------------------------------------

    def _begin(self, cycle: Cycle) -> None:
        head = cycle.head
        assert head is not None
        try:
            path = self.gateway.normalise(head.path) if head.path != "*" else "*"
        except PathError as exc:
            self.answer(cycle, status_page(400, f"bad request path: {exc.reason}"))
            return
        try:
            decision = self.gateway.handler(Request(head, path, self.peer))
        except Exception:  # a bug in enforcement must deny, never crash the listener
            self.answer(cycle, status_page(503, "the gateway could not decide"))
            return
        if isinstance(decision, Reply):
            self.answer(cycle, decision)
            return
        cycle.forward = decision
        if decision.body_check is not None:
            refused = cycle.start_check(decision.body_check)
            if refused is not None:
                self.overridden(cycle, refused)
                return
        if head.method == "CONNECT":
            self.gateway.loop.create_task(self._open_tunnel(cycle, decision))
            return
        if head.expect_continue and not cycle.body_done:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request = self.gateway.upstream_request(head, path, decision, self.peer)
        upstream = self.gateway.pool.take_idle(decision.upstream)
        if upstream is not None:
            cycle.attach(upstream, decision, request)
        else:
            self.gateway.loop.create_task(self._connect(cycle, decision, request))

    async def _connect(self, cycle: Cycle, forward: Forward, request: bytes) -> None:
        try:
            upstream = await self.gateway.pool.acquire(forward.upstream)
        except (OSError, TimeoutError):
            if not cycle.finished and not self.closing:
                self.answer_error(cycle, 502, "the application is not reachable")
            return
        if cycle.finished or self.closing:
            self.gateway.pool.release(upstream)
            return
        cycle.attach(upstream, forward, request)

    async def _open_tunnel(self, cycle: Cycle, forward: Forward) -> None:
        """CONNECT: a raw connection to the TCP app (through its connector, if it has one),
        then `200` and bytes both ways until either side closes."""
        try:
            upstream = await self.gateway.pool.open_raw(forward.upstream)
        except (OSError, TimeoutError) as exc:
            log.warning("CONNECT to %s failed: %s", forward.upstream.app, exc or type(exc).__name__)
            if not cycle.finished and not self.closing:
                self.answer_error(cycle, 502, "the application is not reachable")
            return
        if cycle.finished or self.closing:
            upstream.abort()
            return
        cycle.upstream = upstream
        cycle.status = 200
        cycle.head_sent = True
        cycle.keep_alive = False
        self.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        cycle.upstream_upgraded(b"")
        upstream.start_tunnel(cycle)  # what the app said first follows the 200

    def answer(self, cycle: Cycle, reply: Reply) -> None:
        """The gateway answers itself; an unread request body means the connection ends."""
        cycle.reply = reply
        cycle.status = reply.status
        if not cycle.body_done or (cycle.head is not None and _upgrades(cycle.head)):
            # An upgrade answered here (a tunnel's included) ends the connection: the parser
            # stopped at its head, and what follows may be the protocol it asked for.
            cycle.keep_alive = False
        close = not cycle.keep_alive or self.closing
        out = bytearray(
            b"HTTP/1.1 %d %b\r\ncontent-type: %b\r\ncontent-length: %d\r\n"
            % (reply.status, _REASONS.get(reply.status, b""), reply.content_type, len(reply.body))
        )
        for name, value in reply.headers:
            if UNSAFE_VALUE.search(value) is not None:
                # A handler's bug must not let a client's bytes split the answer.
                log.error("refused to send header %r with a control character", name)
                self.answer(cycle, status_page(500, "Something went wrong on our side."))
                return
            out += name + b": " + value + b"\r\n"
        if close:
            out += b"connection: close\r\n"
        elif not self.http11:
            out += b"connection: keep-alive\r\n"  # HTTP/1.0 closes unless told otherwise
        out += b"\r\n"
        if cycle.head is None or cycle.head.method != "HEAD":
            out += reply.body
        cycle.head_sent = True
        cycle.bytes_out = len(reply.body)
        self.report(cycle)
        self.write(bytes(out))
        self.finish(cycle)

    def overridden(self, cycle: Cycle, reply: Reply) -> None:
        """The body named a method that the policy refuses (`Forward.body_check`): the app,
        which never got the request whole, loses it, and the client gets `reply`, whose
        event (the stricter decision's) is the exchange's."""
        cycle.check = None
        cycle.forward = None
        cycle.body.clear()
        cycle.body_buffered = 0
        self.resume("buffer")
        if cycle.upstream is not None:
            cycle.upstream.abort()
            cycle.upstream = None
        if cycle.head_sent:  # the app answered before the body ended: too late to answer
            cycle.reply = reply
            self.finish(cycle, "the body named a method the policy refuses", cut=True)
            return
        self.answer(cycle, reply)

    def answer_error(self, cycle: Cycle, status: int, text: str) -> None:
        cycle.keep_alive = False
        self.answer(cycle, status_page(status, text))

    def finish(self, cycle: Cycle, error: str | None = None, *, cut: bool = False) -> None:
        if cycle.finished:
            return
        cycle.finished = True
        cycle.timed = False
        self.report(cycle, error)
        if self.cycles and self.cycles[0] is cycle:
            self.cycles.popleft()
        if cut:
            self.send_held()  # as much of the answer as the socket takes, then the reset
            self.closing = True
            if self.transport is not None:
                self.transport.abort()
            return
        if not cycle.keep_alive or self.upgraded is cycle:
            if cycle.body_done or self.upgraded is cycle:
                self.close()
            else:  # answered before its body was read: the client may still be sending it
                self._linger()
            return
        self.resume("pipeline")
        if self.cycles:
            self._begin(self.cycles[0])
        elif self.broken is not None:
            self._refuse(*self.broken)
        elif self.parsing is None:
            self._idle()

    def report(self, cycle: Cycle, error: str | None = None) -> None:
        """Hand the exchange to the audit hook, once, and before the answer's last byte leaves:
        a client that saw its answer can count on its audit event (the spool writes through
        to the operating system at once, so even SIGKILL cannot lose it)."""
        if cycle.reported:
            return
        cycle.reported = True
        done = cycle.forward.done if cycle.forward else cycle.reply.done if cycle.reply else None
        if done is None:
            return
        outcome = Outcome(
            cycle.status,
            cycle.bytes_in,
            cycle.bytes_out,
            time.monotonic() - cycle.started,
            error,
        )
        self.unsent_event = True  # this client may not see more until `before_send` succeeds
        with contextlib.suppress(Exception):  # auditing must not take the connection down
            done(outcome)

    # --- WebSocket and other upgrades -----------------------------------------------------------

    def start_tunnel(self, cycle: Cycle) -> None:
        self.upgraded = cycle
        self._disarm()
        self.resume("pipeline")  # the upgrade request "completed": its tunnel bytes follow

    def _tunnel_in(self, cycle: Cycle, data: bytes) -> None:
        cycle.bytes_in += len(data)
        if cycle.upstream is not None and cycle.tunnel:
            cycle.upstream.write(data)
        else:
            cycle.tunnel_pending.append(data)
            if sum(map(len, cycle.tunnel_pending)) > _BUFFER_LIMIT:
                self.pause("buffer")

    # --- plumbing ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)
        else:
            self._send([data])

    def _send(self, chunks: list[bytes], *, audited: bool = False) -> None:
        """Hand bytes to the transport; the audit events written so far are made safe first
        (`audited`: `before_send` has just run)."""
        if not chunks or self.transport is None or self._eof or self.transport.is_closing():
            return  # (uvloop's transport is not "closing" after `write_eof`)
        if not audited and not self.gateway.before_send() and self.unsent_event:
            self.cut_unaudited()
            return
        self.unsent_event = False
        if len(chunks) == 1:
            self.transport.write(chunks[0])
        elif sum(map(len, chunks)) <= _JOIN_LIMIT:
            # One buffer: over TLS each buffer handed over becomes at least one record, and a
            # small answer (head and body) then costs one encryption and one record, not two.
            self.transport.write(b"".join(chunks))
        else:
            self.transport.writelines(chunks)

    def hold(self) -> None:
        """Gather writes until `flush`: the upstream's connection holds them while it handles
        one read, so a small response (head, body, chunked terminator) leaves in one write,
        one system call and, over TLS, one record. The audit `report` still comes first: it
        runs before the last byte is even handed to `write`."""
        if self._held is None:
            self._held = []

    def flush(self) -> None:
        """The end of a `hold`: what was gathered leaves at the end of the loop's round (see
        `Gateway.defer`); what is written meanwhile joins it, in order."""
        if not self._held:
            self._held = None
        elif not self._deferred:
            self._deferred = True
            self.gateway.defer(self)

    def send_held(self, *, audited: bool = False) -> None:
        """Send what is gathered now (`audited`: `before_send` has just run)."""
        self._deferred = False
        held, self._held = self._held, None
        if held:
            self._send(held, audited=audited)

    def flush_upstream(self, upstream: UpstreamConnection) -> None:
        upstream.flush()
        if upstream.write_paused and self.cycles and self.cycles[0].upstream is upstream:
            self.pause("upstream")

    def pause(self, why: str) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused.add(why)

    def paused_for(self, why: str) -> bool:
        return why in self._paused

    def resume(self, why: str) -> None:
        if why not in self._paused:
            return
        self._paused.discard(why)
        if not self._paused and self.transport is not None and not self.closing:
            self.transport.resume_reading()

    def close(self) -> None:
        self.send_held()  # the answer held so far leaves before the close
        self.closing = True
        self._disarm()
        if self.transport is not None:
            self.transport.close()

    def cut(self, cycle: Cycle | None) -> None:
        """End a connection now, both ways (its grant was revoked)."""
        if cycle is not None and cycle.upstream is not None:
            cycle.upstream.abort()
            cycle.upstream = None
        if cycle is not None:
            self.finish(cycle, error="access revoked", cut=True)
        elif self.transport is not None:
            self.transport.abort()

    def cut_unaudited(self) -> None:
        """End the connection without sending what waits: audit events could not be made
        safe, and an answer seen by the client must never be one whose event could be lost.
        The events stay held by the spool and are written once it can."""
        self._held, self._deferred = None, False
        self.closing = True
        self._disarm()
        for cycle in self.cycles:
            cycle.abandon()
            self.report(cycle, "cut: the audit spool could not record it")
        self.cycles.clear()
        if self.transport is not None:
            self.transport.abort()

    def _protocol_error(self, status: int, reason: str) -> None:
        """The byte stream can no longer be trusted: nothing more is read from it.

        Requests that arrived whole before the broken one (pipelined, in the same read) are
        answered first, in order, as if it had not come: a client pairs answers with its
        requests by their order, so an error sent in their place would be taken for theirs,
        while the app may have acted on them. Then the error, and the close."""
        self.parsing = None
        self._disarm()
        if self.cycles and not self.cycles[-1].body_done and len(self.cycles) > 1:
            # Its head was whole, its body is not: not begun (only the first one is), so
            # neither decided nor forwarded, and nothing of it is owed to anyone.
            self.cycles.pop().abandon()
        if self.cycles and self.cycles[-1].body_done:
            self.broken = (status, reason)
            self.pause("broken")
            return
        self._refuse(status, reason)

    def _refuse(self, status: int, reason: str) -> None:
        """Answer a broken byte stream (if we may) and close; what is still open is cut."""
        self.send_held()
        self.closing = True
        self._disarm()
        streaming = bool(self.cycles) and self.cycles[0].head_sent
        for cycle in self.cycles:  # nothing more may reach this client from an upstream
            cycle.abandon()
            if not streaming:  # then no cycle has sent its head
                cycle.status = status  # what the client is told, below
            # A decision was made, and its request's head may already be at the app (a body
            # that turned malformed later): its event must not be lost with the connection.
            self.report(cycle, f"cut: {reason}")
        self.cycles.clear()
        if streaming:
            if self.transport is not None:
                self.transport.abort()
            return
        if self.transport is not None:
            self._send([_plain(status, reason.encode(), close=True)])
            self._linger()

    def _linger(self) -> None:
        """Close after an answer without losing it while the client may still be sending (an
        error, or an answer that came before the request's body was read): closing a socket
        with unread input makes the kernel send RST and drop what it has not sent yet, which
        truncates a large answer. So keep reading and dropping what arrives, half-close where
        the transport can (FIN after the answer; TLS cannot, but its answer is framed and
        says `Connection: close`), and close once the answer has left the process and
        `LINGER_SECONDS` have passed, or when the client closes."""
        assert self.transport is not None
        self.send_held()
        self.closing = True
        self._paused.clear()
        self.transport.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._eof = True
        self._linger_until = self.gateway.loop.time() + self.gateway.options.idle_timeout
        self._arm(LINGER_SECONDS, self._end_linger)

    def _end_linger(self) -> None:
        transport = self.transport
        if transport is None:
            return
        # A client that takes none of its answer for the idle timeout is closed anyway.
        if transport.get_write_buffer_size() and self.gateway.loop.time() < self._linger_until:
            self._arm(LINGER_SECONDS, self._end_linger)
            return
        transport.close()

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        """Call `callback` in `seconds`, instead of what was armed before.

        Every request arms a header deadline and then an idle one; creating and cancelling an
        event-loop timer each time showed in the profile. So one timer is kept: arming only
        records the deadline, and a new timer is made only when the running one would fire
        too late. A timer that fires before the deadline sleeps again for the rest."""
        loop = self.gateway.loop
        self._deadline = deadline = loop.time() + seconds
        self._on_timeout = callback
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = loop.call_at(deadline, self._timer_fired)

    def _disarm(self) -> None:
        self._on_timeout = None  # a running timer then fires into nothing

    def _timer_fired(self) -> None:
        self._timer = None
        callback = self._on_timeout
        if callback is None:
            return
        if self.gateway.loop.time() < self._deadline:
            self._timer_at = self._deadline
            self._timer = self.gateway.loop.call_at(self._deadline, self._timer_fired)
            return
        self._on_timeout = None
        callback()

    def watch_answer(self, deadline: float) -> None:
        """Have `Cycle.response_due` called for the exchanges being timed by `deadline`.

        As with `_arm`, one timer serves every request of the connection, rather than one made
        and cancelled per request (2 µs each): a timer already due sooner is kept, and when it
        fires each exchange still timed either is cut or asks again for its own deadline."""
        if self._answer_timer is not None:
            if self._answer_timer_at <= deadline:
                return
            self._answer_timer.cancel()
        self._answer_timer_at = deadline
        self._answer_timer = self.gateway.loop.call_at(deadline, self._answer_timer_fired)

    def _answer_timer_fired(self) -> None:
        self._answer_timer = None
        for cycle in list(self.cycles):  # a cut exchange leaves the queue
            cycle.response_due()

    def _idle(self) -> None:
        self._arm(self.gateway.options.idle_timeout, self.close)

    def _head_timeout(self) -> None:
        if self.cycles:
            return  # a request is being answered; its own timers apply
        if self.parsing is not None:
            self._protocol_error(408, "request head not received in time")
        else:
            self.close()


def _plain(status: int, text: bytes, *, close: bool) -> bytes:
    body = b"<!doctype html><title>%d</title><p>%b</p>\n" % (status, text)
    return (
        b"HTTP/1.1 %d %b\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: %d\r\n%b\r\n"
        % (status, _REASONS.get(status, b""), len(body), b"connection: close\r\n" if close else b"")
        + body
    )


def _upstream_request(
    gateway: Gateway, head: RequestHead, path: str, forward: Forward, peer: str
) -> bytes:
    """The request head that goes upstream: the client's headers as forwarded, the gateway's
    own (identity assertion, X-Forwarded-*), and the framing the gateway chose."""
    # "*" (OPTIONS *) asks about the server itself: no base path goes before it.
    target = "*" if path == "*" else forward.path_prefix + path
    target += "?" + head.query if head.query else ""
    out = bytearray(b"%b %b HTTP/1.1\r\n" % (head.method.encode(), target.encode()))
    out += gateway.forwarded_headers(head.headers)
    for name, value in forward.headers:
        out += name + b": " + value + b"\r\n"
    out += b"x-forwarded-for: " + peer.encode() + b"\r\n"
    out += b"x-forwarded-proto: " + gateway.options.scheme + b"\r\n"
    if head.host:
        out += b"x-forwarded-host: " + head.host.encode() + b"\r\n"
    if head.upgrade is not None:
        # Only the protocol the gateway passes: "websocket, h2c" offered must not let the
        # app pick h2c.
        out += b"connection: upgrade\r\nupgrade: " + head.upgrade.encode() + b"\r\n"
    elif head.framing is BodyFraming.LENGTH:
        out += b"content-length: %d\r\n" % (head.content_length or 0)
    elif head.framing is BodyFraming.CHUNKED:
        out += b"transfer-encoding: chunked\r\n"
    out += b"\r\n"
    return bytes(out)


def _size(headers: Iterable[tuple[bytes, bytes]]) -> int:
    return sum(len(name) + len(value) for name, value in headers)


# Headers the gateway routed or decided by: a client's Connection option cannot remove them
# (a sender must not name one, RFC 9110 §7.6.1). Removed, the app would read the request
# otherwise than the gateway did: a body checked as text for a `_method`, read by the app
# without its Content-Type as a form.
_DECIDED_BY = frozenset({b"host", b"content-type", b"content-encoding"})


def _forwarded_headers(headers: tuple[tuple[bytes, bytes], ...], strip: frozenset[bytes]) -> bytes:
    out = bytearray()
    connection_tokens = _connection_tokens(headers)
    for name, value in headers:
        # Some servers read "_" as "-": X_Forwarded_User must not slip through either.
        canonical = name.replace(b"_", b"-")
        if (
            canonical in HOP_BY_HOP
            or canonical in strip
            or canonical.startswith(b"x-zerogate-")
            or (name in connection_tokens and name not in _DECIDED_BY)
        ):
            continue
        out += name + b": " + value + b"\r\n"
    return bytes(out)


def _connection_tokens(
    headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
) -> set[bytes]:
    """Header names listed in Connection: hop-by-hop by declaration (RFC 9110 §7.6.1)."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    tokens.discard(b"close")
    tokens.discard(b"keep-alive")
    tokens.discard(b"upgrade")
    return tokens


def _header(
    headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...], wanted: bytes
) -> bytes:
    for name, value in headers:
        if name.lower() == wanted:
            return value
    return b""
