"""A mux session over one TLS connection, with each stream as an asyncio transport.

Where it sits: the asyncio shell around `core.mux.MuxSession`, shared by the gateway (which
holds connectors' tunnels and opens streams on them) and the connector (which accepts those
streams and bridges each to a target). Code written for sockets runs unchanged over a stream:
`MuxStream` is an `asyncio.Transport`, so the gateway's upstream HTTP protocol or a plain
splice protocol cannot tell a stream from a TCP connection.

Theory of operation:
1. Reads: every TLS read goes to `MuxSession.receive_data`; the events are dispatched to
   their streams at once; the session's output is written once per loop round.
2. Flow control is the mux's own, end to end: a stream hands data to its protocol and
   acknowledges it (`consumed`) only while its reading is not paused, so a slow consumer
   stops the peer after one window; writes beyond the send window wait in the stream and
   pause its protocol's writing until a window update arrives.
3. Liveness: a ping every `ping_interval`; a peer that has not answered one for
   `dead_after` seconds is cut off, so a silent network failure frees the streams.
4. Every stream's protocol gets exactly one `connection_lost`: on close once its FIN is out,
   on abort, on the peer's reset, or when the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from zerogate.core.mux import (
    DataReceived,
    GoAwayReceived,
    MuxConfig,
    MuxError,
    MuxSession,
    PingAnswered,
    SessionEnded,
    StreamAccepted,
    StreamClosed,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowOpened,
)

log = logging.getLogger("zerogate.tunnel")
HIGH_WATER = 256 * 1024  # bytes a stream holds back before it pauses its protocol's writing
LOW_WATER = 64 * 1024


def feed(protocol: asyncio.Protocol | asyncio.BufferedProtocol, data: bytes) -> None:
    """Hand `data` to a protocol of either kind (asyncio's TLS layer is a buffered one)."""
    if isinstance(protocol, asyncio.Protocol):
        protocol.data_received(data)
        return
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view)))
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


class MuxStream(asyncio.Transport):
    """One mux stream, as the transport of an `asyncio.Protocol`."""

    def __init__(self, link: MuxLink, stream_id: int) -> None:
        super().__init__({"stream_id": stream_id})
        self.link = link
        self.stream_id = stream_id
        self.protocol: asyncio.BaseProtocol | None = None
        self._pending = bytearray()  # accepted by write(), beyond the send window
        self._inbox: deque[bytes] = deque()  # received while reading is paused or unclaimed
        self._peer_ended = False  # FIN seen (delivered after the inbox)
        self._eof_sent = False
        self._closing = False  # close() or write_eof(): FIN once pending is out
        self._close_requested = False  # close(): lost once the FIN is out
        self._read_paused = False
        self._write_paused = False
        self._lost = False

    # --- asyncio.Transport -----------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "stream_id":
            return self.stream_id
        transport = self.link.transport
        return transport.get_extra_info(name, default) if transport is not None else default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def is_reading(self) -> bool:
        return not self._read_paused

    def pause_reading(self) -> None:
        self._read_paused = True

    def resume_reading(self) -> None:
        if not self._read_paused:
            return
        self._read_paused = False
        self._deliver()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._lost or not data:
            return
        if not self._pending:  # the common case: straight to the session, no copy kept
            taken = self.link.send(self.stream_id, bytes(data))
            if taken == len(data):
                return
            data = memoryview(data)[taken:]
        self._pending += data
        self._pump()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        if self._eof_sent or self._lost:
            return
        self._closing = True
        self._pump()

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        if self._lost:
            return
        self._closing = True
        self._close_requested = True
        self._read_paused = False
        self._inbox.clear()  # no more data is delivered after close()
        self._pump()

    def abort(self) -> None:
        if self._lost:
            return
        self._pending.clear()
        self.link.reset(self.stream_id)
        self._lose(None)

    # --- from the link -----------------------------------------------------------------------

    def start(self, protocol: asyncio.BaseProtocol) -> None:
        """Attach the protocol and hand it what arrived before it was there."""
        self.protocol = protocol
        protocol.connection_made(self)
        self._deliver()

    def received(self, data: bytes) -> None:
        if self._close_requested or self._lost:
            self.link.consumed(self.stream_id, len(data))  # closed for reading: drop it
            return
        self._inbox.append(data)
        self._deliver()

    def ended(self) -> None:
        self._peer_ended = True
        self._deliver()

    def window_opened(self) -> None:
        self._pump()

    def lost(self, exc: Exception | None) -> None:
        self._pending.clear()
        self._lose(exc)

    # --- inside ------------------------------------------------------------------------------

    def _deliver(self) -> None:
        # The protocol is looked up for every piece: one may hand the stream to another
        # (`set_protocol`) in the middle, as the gateway's opener does.
        while self._inbox and not self._read_paused and not self._lost:
            protocol = self.protocol
            if not isinstance(protocol, asyncio.Protocol | asyncio.BufferedProtocol):
                return
            data = self._inbox.popleft()
            feed(protocol, data)
            self.link.consumed(self.stream_id, len(data))
        protocol = self.protocol
        if not isinstance(protocol, asyncio.Protocol | asyncio.BufferedProtocol) or self._lost:
            return
        if self._peer_ended and not self._inbox and not self._read_paused:
            self._peer_ended = False
            if not protocol.eof_received():
                self.close()

    def _pump(self) -> None:
        if self._lost:
            return
        room = self.link.send_window(self.stream_id)
        if self._pending and room:
            taken = self.link.send(self.stream_id, bytes(self._pending[:room]))
            del self._pending[:taken]
        self._flow()
        if self._closing and not self._pending and not self._eof_sent:
            self._eof_sent = True
            self.link.close_stream(self.stream_id)
        if self._close_requested and self._eof_sent:
            self._lose(None)

    def _flow(self) -> None:
        protocol = self.protocol
        if protocol is None:
            return
        size = len(self._pending)
        if not self._write_paused and size > HIGH_WATER:
            self._write_paused = True
            protocol.pause_writing()
        elif self._write_paused and size <= LOW_WATER:
            self._write_paused = False
            protocol.resume_writing()

    def _lose(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self.link.forget(self.stream_id)
        if self.protocol is not None:
            self.link.loop.call_soon(self.protocol.connection_lost, exc)


class MuxLink(asyncio.Protocol):
    """The protocol of one tunnel connection: a mux session and its streams."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        client: bool,
        on_stream: Callable[[MuxStream], None] | None = None,
        on_closed: Callable[[MuxLink], None] | None = None,
        config: MuxConfig | None = None,
        ping_interval: float = 5.0,
        dead_after: float = 15.0,
    ) -> None:
        self.loop = loop
        self.session = MuxSession(client=client, config=config or MuxConfig())
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, MuxStream] = {}
        self.on_stream = on_stream
        self.on_closed = on_closed
        self.rtt: float | None = None  # seconds, the latest ping's
        self.bytes_in = 0
        self.bytes_out = 0
        self.closed = asyncio.Event()
        self.end_reason = ""
        self._ping_interval = ping_interval
        self._dead_after = dead_after
        self._pinger: asyncio.TimerHandle | None = None
        self._flush_scheduled = False

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._pinger = self.loop.call_later(self._ping_interval, self._ping)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self.session.receive_data(data, time.monotonic())
        self._dispatch()
        self._flush()

    def eof_received(self) -> bool | None:
        self.session.receive_data(b"", time.monotonic())
        self._dispatch()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
        if not self.end_reason:
            self.end_reason = str(exc) if exc else "the connection closed"
        error = ConnectionResetError(f"the tunnel ended: {self.end_reason}")
        for stream in list(self.streams.values()):
            stream.lost(error)
        self.streams.clear()
        self.closed.set()
        if self.on_closed is not None:
            self.on_closed(self)

    # --- for the application -----------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return not (self.session.closed or self.session.going_away or self.closed.is_set())

    def open_stream(self) -> MuxStream:
        """A new stream (raises MuxError when the session cannot open one)."""
        stream = MuxStream(self, self.session.open_stream())
        self.streams[stream.stream_id] = stream
        self._schedule_flush()
        return stream

    def go_away(self) -> None:
        """Drain: no new streams either way; the open ones finish."""
        if not self.session.closed:
            self.session.go_away()
            self._schedule_flush()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self, reason: str) -> None:
        self.end_reason = reason
        if self.transport is not None:
            self.transport.abort()

    # --- for the streams ---------------------------------------------------------------------

    def send(self, stream_id: int, data: bytes) -> int:
        try:
            taken = self.session.send(stream_id, data)
        except MuxError:
            return 0
        if taken:
            self._schedule_flush()
        return taken

    def send_window(self, stream_id: int) -> int:
        try:
            return self.session.send_window(stream_id)
        except MuxError:
            return 0

    def consumed(self, stream_id: int, n: int) -> None:
        with contextlib.suppress(MuxError):
            self.session.consumed(stream_id, n)
            self._schedule_flush()

    def close_stream(self, stream_id: int) -> None:
        with contextlib.suppress(MuxError):
            self.session.close_stream(stream_id)
            self._schedule_flush()

    def reset(self, stream_id: int) -> None:
        with contextlib.suppress(MuxError):
            self.session.reset_stream(stream_id)
            self._schedule_flush()

    def accept(self, stream: MuxStream) -> None:
        with contextlib.suppress(MuxError):
            self.session.accept_stream(stream.stream_id)
            self._schedule_flush()

    def forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)

    # --- inside ------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while (event := self.session.next_event()) is not None:
            if isinstance(event, DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.received(event.data)
                else:  # a stream we already let go of: keep the peer's window moving
                    self.consumed(event.stream_id, len(event.data))
            elif isinstance(event, WindowOpened):
                if (stream := self.streams.get(event.stream_id)) is not None:
                    stream.window_opened()
            elif isinstance(event, StreamEnded):
                if (stream := self.streams.get(event.stream_id)) is not None:
                    stream.ended()
            elif isinstance(event, StreamReset):
                if (stream := self.streams.pop(event.stream_id, None)) is not None:
                    stream.lost(ConnectionResetError("the peer reset the stream"))
            elif isinstance(event, StreamClosed):
                if (stream := self.streams.pop(event.stream_id, None)) is not None:
                    stream.lost(None)
            elif isinstance(event, StreamOpened):
                self._opened(event.stream_id)
            elif isinstance(event, PingAnswered):
                self.rtt = event.rtt
            elif isinstance(event, GoAwayReceived):
                pass  # `usable` is false from now on: the session is going away
            elif isinstance(event, SessionEnded):
                self.end_reason = event.reason
                self._flush()
                if self.transport is not None:
                    self.transport.close()
            elif isinstance(event, StreamAccepted):
                pass  # data may flow before the ACK; nothing waits for it

    def _opened(self, stream_id: int) -> None:
        stream = MuxStream(self, stream_id)
        self.streams[stream_id] = stream
        if self.on_stream is None:
            self.reset(stream_id)
            self.streams.pop(stream_id, None)
            return
        self.on_stream(stream)

    def _ping(self) -> None:
        if self.session.closed or self.transport is None:
            return
        now = time.monotonic()  # uvloop's loop.time() counts whole milliseconds: too coarse
        since = self.session.unanswered_since
        if since is not None and now - since > self._dead_after:
            log.warning("tunnel peer silent for %.0f s: cutting the tunnel", now - since)
            self.abort("the peer stopped answering pings")
            return
        self.session.ping(now)
        self._flush()
        self._pinger = self.loop.call_later(self._ping_interval, self._ping)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.session.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.bytes_out += len(data)
            self.transport.write(data)
