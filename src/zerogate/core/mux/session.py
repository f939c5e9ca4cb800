"""The yamux session: a sans-io state machine for the gateway/connector/agent multiplexer.

Where it sits: a shell (the gateway's tunnel endpoint, the connector, the agent) owns the TLS
socket. It hands every read to `receive_data(data, now)`, drains `next_event()` and acts on
the events, calls `open_stream` / `send` / `consumed` / `close_stream` / `reset_stream` for
its own side, and writes `data_to_send()` to the socket after each step. No clock, no I/O:
time arrives as `now`, only to measure ping round trips.

Theory of operation
-------------------
Every frame from the peer is checked twice: the header by `frames.FrameDecoder` (version,
type, flags, session id, a Data length never above our window) and its meaning here against
the stream's state. Stream lifecycles are the `TRANSITIONS` table; a (state, input) pair that
is absent is illegal: `MuxError` when our application asks for it, a protocol error when the
peer sends it. Flags of one frame are applied in the order SYN, ACK, payload / window delta,
FIN, RST, so a "SYN + data + FIN" frame reads as open, data, end.

Flow control (spec "Flow Control"): each direction of a stream starts with
`MuxConfig.initial_window` bytes of credit, which both ends assume (the spec's 256 KiB; a
peer may grant more with a delta on its SYN/ACK). The receiver hands data out at once as
`DataReceived` and grants credit back only when the application says it `consumed` bytes,
in one WindowUpdate per half window, so a slow consumer stalls only its own stream.

A stream we reset, or one that has fully closed, is forgotten; the peer may still have
frames for it on the wire, so frames for a forgotten id (one we have seen before: ours below
`_next_id`, the peer's up to `_highest_remote`) are dropped, as yamux does. A frame for an id
never used is a protocol error. The peer's SYNs may arrive slightly out of order (HashiCorp's
yamux allocates ids before it takes the send lock), so the ids it skipped just below its
highest one stay open for a late SYN: `_remote_gaps`, at most `_MAX_GAPS` of them.

Invariants
----------
1. For every stream the peer may still send on: recv_window + unconsumed + credit ==
   initial_window. So the peer never has more bytes on the way plus the application never
   holds more unconsumed bytes than one window.
2. `send` queues Data only within the stream's send window; send_window >= 0 always, and the
   outgoing buffer holds only such Data plus control frames.
3. A stream is in `_streams` exactly while it is neither CLOSED nor RESET; its state changes
   only through `TRANSITIONS`.
4. Stream ids are never reused: ours rise by two from 1 (client) or 2 (server); a peer SYN
   must carry its parity and an id it never used: above its highest, or a recent gap.
5. Nothing the peer sends raises out of `receive_data`: it ends the session with
   `SessionEnded(PROTOCOL_ERROR, reason)` and queues GoAway(PROTOCOL_ERROR). Once `closed`,
   input is ignored, no event follows `SessionEnded`, and `_streams` is empty.
6. After either side's GoAway no stream opens in either direction: our `open_stream` raises,
   a peer SYN is answered with RST.
7. Payload in queued events is bounded by the windows of the streams it belongs to: the queue
   grows only by what one `receive_data` delivered, and a shell drains it after each call.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from zerogate.core.mux.events import (
    DataReceived,
    GoAwayReceived,
    MuxEvent,
    PingAnswered,
    SessionEnded,
    StreamAccepted,
    StreamClosed,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowOpened,
)
from zerogate.core.mux.frames import (
    MAX_U32,
    Flag,
    Frame,
    FrameDecoder,
    FrameError,
    FrameType,
    GoAwayCode,
    encode,
)

_MAX_PINGS = 64  # unanswered pings remembered; older ones are forgotten
_MAX_GAPS = 128  # skipped peer ids below its highest that may still open late


class MuxError(Exception):
    """Our own application misused the session API. Never raised for what the peer sends."""


class _Violation(Exception):
    """The peer broke the protocol; `receive_data` turns this into SessionEnded."""


@dataclass(frozen=True, slots=True)
class MuxConfig:
    initial_window: int = 256 * 1024  # both ends must agree; the spec's value is 256 KiB
    max_window: int = 16 * 1024 * 1024  # a peer pushing our send window past this is an error
    max_streams: int = 1024  # open at once; a peer SYN beyond this gets RST
    max_frame: int = 64 * 1024  # largest Data payload we send in one frame
    accept_backlog: int = 256  # peer-opened streams not yet accepted; beyond: RST

    def __post_init__(self) -> None:
        if not 1 <= self.initial_window <= self.max_window <= MAX_U32:
            raise ValueError("need 1 <= initial_window <= max_window <= 2**32 - 1")
        if not 1 <= self.max_frame <= MAX_U32:
            raise ValueError("max_frame must be between 1 and 2**32 - 1")
        if self.max_streams < 1 or self.accept_backlog < 0:
            raise ValueError("max_streams must be positive and accept_backlog not negative")


class StreamState(enum.Enum):
    SYN_SENT = "syn-sent"  # we opened it; no ACK yet
    SYN_RECEIVED = "syn-received"  # the peer opened it; we have not ACKed yet
    ESTABLISHED = "established"
    LOCAL_CLOSED = "local-closed"  # we sent FIN
    REMOTE_CLOSED = "remote-closed"  # the peer sent FIN
    CLOSED = "closed"  # FIN both ways: forgotten
    RESET = "reset"  # RST either way: forgotten


class StreamInput(enum.Enum):
    SEND_ACK = "send-ack"
    RECV_ACK = "recv-ack"
    SEND_FIN = "send-fin"
    RECV_FIN = "recv-fin"
    SEND_RST = "send-rst"
    RECV_RST = "recv-rst"


_S = StreamState
_I = StreamInput
_LIVE = (_S.SYN_SENT, _S.SYN_RECEIVED, _S.ESTABLISHED, _S.LOCAL_CLOSED, _S.REMOTE_CLOSED)

# spec "Opening a stream" / "Closing a stream". An ACK owed or awaited outlives the SYN_*
# states: the peer may FIN before we accept, we may FIN before its ACK arrives.
TRANSITIONS: dict[tuple[StreamState, StreamInput], StreamState] = {
    (_S.SYN_SENT, _I.RECV_ACK): _S.ESTABLISHED,
    (_S.SYN_SENT, _I.SEND_FIN): _S.LOCAL_CLOSED,
    (_S.SYN_SENT, _I.RECV_FIN): _S.REMOTE_CLOSED,
    (_S.SYN_RECEIVED, _I.SEND_ACK): _S.ESTABLISHED,
    (_S.SYN_RECEIVED, _I.RECV_FIN): _S.REMOTE_CLOSED,
    (_S.ESTABLISHED, _I.SEND_FIN): _S.LOCAL_CLOSED,
    (_S.ESTABLISHED, _I.RECV_FIN): _S.REMOTE_CLOSED,
    (_S.LOCAL_CLOSED, _I.RECV_ACK): _S.LOCAL_CLOSED,
    (_S.LOCAL_CLOSED, _I.RECV_FIN): _S.CLOSED,
    (_S.REMOTE_CLOSED, _I.SEND_ACK): _S.REMOTE_CLOSED,
    (_S.REMOTE_CLOSED, _I.RECV_ACK): _S.REMOTE_CLOSED,
    (_S.REMOTE_CLOSED, _I.SEND_FIN): _S.CLOSED,
    **{(state, _I.SEND_RST): _S.RESET for state in _LIVE},
    **{(state, _I.RECV_RST): _S.RESET for state in _LIVE},
}
# A SYN_RECEIVED stream is ACKed (SEND_ACK) before any FIN of ours leaves, so it has no
# SEND_FIN entry of its own.

SENDING_STATES = frozenset({_S.SYN_SENT, _S.SYN_RECEIVED, _S.ESTABLISHED, _S.REMOTE_CLOSED})
RECEIVING_STATES = frozenset({_S.SYN_SENT, _S.SYN_RECEIVED, _S.ESTABLISHED, _S.LOCAL_CLOSED})


@dataclass(slots=True)
class _Stream:
    state: StreamState
    local: bool  # we opened it
    send_window: int
    recv_window: int  # credit the peer has left
    unconsumed: int = 0  # delivered to the application, not yet reported consumed
    credit: int = 0  # consumed, not yet granted back in a window update
    handshaken: bool = False  # ours: the peer ACKed; theirs: we sent ACK


class MuxSession:
    """One end of a yamux session. `client` is the end that dialled (it uses odd ids)."""

    def __init__(self, *, client: bool, config: MuxConfig = MuxConfig()) -> None:
        self._config = config
        self._decoder = FrameDecoder(max_data=config.initial_window)
        self._threshold = max(1, config.initial_window // 2)
        self._streams: dict[int, _Stream] = {}
        self._next_id = 1 if client else 2
        self._highest_remote = 0 if client else -1  # the peer's first id is this + 2
        self._remote_gaps: set[int] = set()
        self._gap_order: deque[int] = deque()  # the gaps, oldest first (claimed ones linger)
        self._unaccepted = 0  # peer-opened streams still owed an ACK
        self._events: deque[MuxEvent] = deque()
        self._out = bytearray()
        self._pings: dict[int, float] = {}
        self._next_opaque = 1
        self._local_go_away = False
        self._remote_go_away = False
        self._closed = False

    # ----- state the shell may read -------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def going_away(self) -> bool:
        """Either side sent GoAway: no new streams in either direction."""
        return self._local_go_away or self._remote_go_away

    @property
    def stream_ids(self) -> tuple[int, ...]:
        return tuple(self._streams)

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    @property
    def backlog(self) -> int:
        """Peer-opened streams not yet accepted (no ACK sent)."""
        return self._unaccepted

    @property
    def bytes_to_send(self) -> int:
        return len(self._out)

    @property
    def unanswered_since(self) -> float | None:
        """When the oldest unanswered ping was sent: a keep-alive deadline starts there."""
        return min(self._pings.values(), default=None)

    def stream_state(self, stream_id: int) -> StreamState | None:
        """The stream's state, or None once it is forgotten (or never existed)."""
        stream = self._streams.get(stream_id)
        return None if stream is None else stream.state

    def send_window(self, stream_id: int) -> int:
        return self._stream(stream_id).send_window

    # ----- bytes in, events out -----------------------------------------------------------

    def receive_data(self, data: bytes, now: float = 0.0) -> None:
        """Take bytes read from the transport; b"" means it reached end of file."""
        if self._closed:
            return
        if not data:
            self._on_eof()
            return
        self._decoder.feed(data)
        try:
            while not self._closed and (frame := self._decoder.next_frame()) is not None:
                self._on_frame(frame, now)
        except (FrameError, _Violation) as problem:
            self._fail(str(problem))

    def next_event(self) -> MuxEvent | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[MuxEvent]:
        """Every queued event, oldest first; the queue is left empty."""
        drained = list(self._events)
        self._events.clear()
        return drained

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    # ----- the application's side of the protocol -----------------------------------------

    def open_stream(self) -> int:
        """Open a stream (WindowUpdate + SYN) and return its id; data may follow at once."""
        self._check_usable()
        if self.going_away:
            raise MuxError("the session is going away")
        if len(self._streams) >= self._config.max_streams:
            raise MuxError("too many open streams")
        if self._next_id > MAX_U32:
            raise MuxError("stream ids exhausted")
        stream_id = self._next_id
        self._next_id += 2
        window = self._config.initial_window
        self._streams[stream_id] = _Stream(_S.SYN_SENT, True, window, window)
        self._queue(Frame.window_update(stream_id, Flag.SYN))
        return stream_id

    def accept_stream(self, stream_id: int) -> None:
        """Accept a peer-opened stream (ACK). `send` and `close_stream` also accept it."""
        stream = self._stream(stream_id)
        if stream.local or stream.handshaken:
            raise MuxError(f"stream {stream_id} is not waiting to be accepted")
        self._queue(Frame.window_update(stream_id, self._take_ack(stream_id, stream)))

    def send(self, stream_id: int, data: bytes) -> int:
        """Queue as much of `data` as the send window allows; return how many bytes."""
        stream = self._writable(stream_id)
        taken = min(len(data), stream.send_window)
        if taken == 0:
            return 0
        flags = self._take_ack(stream_id, stream)
        step = self._config.max_frame
        for start in range(0, taken, step):
            chunk = data[start : min(start + step, taken)]
            self._queue(Frame.data(stream_id, chunk, flags))
            flags = Flag.NONE
        stream.send_window -= taken
        return taken

    def consumed(self, stream_id: int, n: int) -> None:
        """The application processed `n` received bytes: grant them back in time."""
        if n < 0:
            raise MuxError("consumed a negative number of bytes")
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._closed or self._was_used(stream_id):
                return  # the stream is gone; nobody needs the credit
            raise MuxError(f"unknown stream {stream_id}")
        if n > stream.unconsumed:
            raise MuxError(f"consumed more than stream {stream_id} delivered")
        stream.unconsumed -= n
        stream.credit += n
        if stream.state in RECEIVING_STATES and stream.credit >= self._threshold:
            self._queue(Frame.window_update(stream_id, Flag.NONE, stream.credit))
            stream.recv_window += stream.credit
            stream.credit = 0

    def close_stream(self, stream_id: int) -> None:
        """Half-close our direction (FIN); the peer may still send until it closes too."""
        stream = self._writable(stream_id)
        flags = self._take_ack(stream_id, stream) | Flag.FIN
        self._queue(Frame.window_update(stream_id, flags))
        self._advance(stream_id, stream, _I.SEND_FIN)

    def reset_stream(self, stream_id: int) -> None:
        """Abort both directions (RST). Idempotent for a stream already gone."""
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._closed or self._was_used(stream_id):
                return
            raise MuxError(f"unknown stream {stream_id}")
        self._queue(Frame.window_update(stream_id, Flag.RST))
        self._advance(stream_id, stream, _I.SEND_RST)

    def ping(self, now: float) -> int:
        """Send a ping; its answer arrives as PingAnswered(opaque, rtt)."""
        self._check_usable()
        opaque = self._next_opaque
        self._next_opaque = opaque % MAX_U32 + 1
        self._pings.pop(opaque, None)  # a wrapped counter replaces, never duplicates
        self._pings[opaque] = now
        if len(self._pings) > _MAX_PINGS:
            del self._pings[next(iter(self._pings))]
        self._queue(Frame.ping(Flag.SYN, opaque))
        return opaque

    def go_away(self, code: int = GoAwayCode.NORMAL) -> None:
        """NORMAL: drain (no new streams, existing ones finish). Other codes end the session."""
        try:
            code = GoAwayCode(code)
        except ValueError:
            raise MuxError(f"unknown go away code {code}") from None
        if self._closed:
            return
        if code != GoAwayCode.NORMAL:
            self._queue(Frame.go_away(code))
            self._end(code, "closed locally")
        elif not self._local_go_away:
            self._local_go_away = True
            self._queue(Frame.go_away(GoAwayCode.NORMAL))

    # ----- frames from the peer -----------------------------------------------------------

    def _on_frame(self, frame: Frame, now: float) -> None:
        if frame.type is FrameType.PING:
            self._on_ping(frame, now)
        elif frame.type is FrameType.GO_AWAY:
            self._on_go_away(frame.length)
        else:
            self._on_stream_frame(frame)

    def _on_stream_frame(self, frame: Frame) -> None:
        stream_id = frame.stream_id
        stream = self._streams.get(stream_id)
        if frame.flags & Flag.SYN:
            stream = self._on_syn(stream_id)
        elif stream is None and not self._was_used(stream_id):
            raise _Violation("frame for a stream that was never opened")
        if stream is None:
            return  # refused, or gone while this frame was on the wire: drop it
        if frame.flags & Flag.ACK:
            self._on_ack(stream_id, stream)
        if frame.type is FrameType.DATA:
            self._on_data(stream_id, stream, frame.payload)
        else:
            self._on_window_update(stream_id, stream, frame.length)
        if frame.flags & Flag.FIN:
            self._advance(stream_id, stream, _I.RECV_FIN, StreamEnded(stream_id))
        if frame.flags & Flag.RST and stream_id in self._streams:
            self._advance(stream_id, stream, _I.RECV_RST, StreamReset(stream_id))

    def _on_syn(self, stream_id: int) -> _Stream | None:
        if stream_id % 2 == self._next_id % 2:
            raise _Violation("SYN with a stream id of our parity")
        self._claim_remote_id(stream_id)
        full = len(self._streams) >= self._config.max_streams
        if full or self.going_away or self._unaccepted >= self._config.accept_backlog:
            self._queue(Frame.window_update(stream_id, Flag.RST))  # refuse, not an error
            return None
        window = self._config.initial_window
        stream = _Stream(_S.SYN_RECEIVED, False, window, window)
        self._streams[stream_id] = stream
        self._unaccepted += 1
        self._events.append(StreamOpened(stream_id))
        return stream

    def _on_ack(self, stream_id: int, stream: _Stream) -> None:
        if not stream.local or stream.handshaken:
            return  # yamux tolerates repeated or stray ACKs
        stream.handshaken = True
        self._advance(stream_id, stream, _I.RECV_ACK, StreamAccepted(stream_id))

    def _on_data(self, stream_id: int, stream: _Stream, payload: bytes) -> None:
        if not payload:
            return
        if stream.state not in RECEIVING_STATES:
            raise _Violation("data after FIN")
        if len(payload) > stream.recv_window:
            raise _Violation("data beyond the receive window")
        stream.recv_window -= len(payload)
        stream.unconsumed += len(payload)
        self._events.append(DataReceived(stream_id, payload))

    def _on_window_update(self, stream_id: int, stream: _Stream, delta: int) -> None:
        if delta == 0:
            return
        if stream.send_window + delta > self._config.max_window:
            raise _Violation("window update beyond the maximum window")
        stream.send_window += delta
        if stream.state in SENDING_STATES:
            self._events.append(WindowOpened(stream_id))

    def _on_ping(self, frame: Frame, now: float) -> None:
        if frame.flags & Flag.SYN:
            self._queue(Frame.ping(Flag.ACK, frame.length))
            return
        sent = self._pings.pop(frame.length, None)
        if sent is not None:  # an answer nobody waits for any more is dropped
            self._events.append(PingAnswered(frame.length, now - sent))

    def _on_go_away(self, code: int) -> None:
        if code != GoAwayCode.NORMAL:
            self._events.append(GoAwayReceived(code))
            self._end(code, f"peer went away: {GoAwayCode(code).name.lower()}")
        elif not self._remote_go_away:
            self._remote_go_away = True
            self._events.append(GoAwayReceived(code))

    def _on_eof(self) -> None:
        if self._decoder.pending:
            self._fail("transport closed inside a frame")
        else:
            self._end(GoAwayCode.NORMAL, "transport closed")

    # ----- helpers ------------------------------------------------------------------------

    def _advance(
        self, stream_id: int, stream: _Stream, event: StreamInput, peer: MuxEvent | None = None
    ) -> None:
        """Apply one table transition. `peer` is the event announcing a peer's input (and
        marks the input as the peer's: an illegal one is then a protocol error)."""
        new = TRANSITIONS.get((stream.state, event))
        if new is None:
            problem = f"{event.value} on a {stream.state.value} stream"
            raise _Violation(problem) if peer is not None else MuxError(problem)
        stream.state = new
        if peer is not None:
            self._events.append(peer)
        if new in (_S.CLOSED, _S.RESET):
            del self._streams[stream_id]
            if not stream.local and not stream.handshaken:
                self._unaccepted -= 1
            if new is _S.CLOSED:
                self._events.append(StreamClosed(stream_id))

    def _take_ack(self, stream_id: int, stream: _Stream) -> Flag:
        """ACK for the first frame we send on a peer-opened stream; NONE otherwise."""
        if stream.local or stream.handshaken:
            return Flag.NONE
        self._advance(stream_id, stream, _I.SEND_ACK)
        stream.handshaken = True
        self._unaccepted -= 1
        return Flag.ACK

    def _was_used(self, stream_id: int) -> bool:
        if stream_id % 2 == self._next_id % 2:
            return 0 < stream_id < self._next_id
        return 0 < stream_id <= self._highest_remote and stream_id not in self._remote_gaps

    def _claim_remote_id(self, stream_id: int) -> None:
        if stream_id in self._remote_gaps:
            self._remote_gaps.discard(stream_id)
            return
        if stream_id <= self._highest_remote:
            raise _Violation("SYN reuses a stream id")
        floor = stream_id - 2 * _MAX_GAPS  # gaps further back count as used
        skipped = range(max(self._highest_remote + 2, floor), stream_id, 2)
        self._remote_gaps.update(skipped)
        self._gap_order.extend(skipped)
        while self._gap_order and self._gap_order[0] < floor:
            self._remote_gaps.discard(self._gap_order.popleft())
        self._highest_remote = stream_id

    def _stream(self, stream_id: int) -> _Stream:
        self._check_usable()
        stream = self._streams.get(stream_id)
        if stream is None:
            raise MuxError(f"no open stream {stream_id}")
        return stream

    def _writable(self, stream_id: int) -> _Stream:
        stream = self._stream(stream_id)
        if stream.state not in SENDING_STATES:
            raise MuxError(f"stream {stream_id} is closed for sending")
        return stream

    def _check_usable(self) -> None:
        if self._closed:
            raise MuxError("the session has ended")

    def _queue(self, frame: Frame) -> None:
        self._out += encode(frame)

    def _fail(self, reason: str) -> None:
        self._queue(Frame.go_away(GoAwayCode.PROTOCOL_ERROR))
        self._end(GoAwayCode.PROTOCOL_ERROR, reason)

    def _end(self, code: int, reason: str) -> None:
        self._closed = True
        self._streams.clear()
        self._pings.clear()
        self._unaccepted = 0
        self._events.append(SessionEnded(code, reason))
