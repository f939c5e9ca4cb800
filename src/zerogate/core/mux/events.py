"""What a mux session reports to its shell: one frozen value per thing that happened.

Where it sits: `MuxSession.receive_data` (and a few API calls) queue these; the shell drains
them with `next_event()` / `events()` and acts: start a bridge for `StreamOpened`, write
`DataReceived.data` to a socket and then call `consumed`, resume writing on `WindowOpened`,
tear everything down on `SessionEnded`.

Per stream the order is: `StreamOpened` (peer-opened streams only) or nothing,
`StreamAccepted` (our streams, at most once), `DataReceived`* and `WindowOpened`* in wire
order, `StreamEnded` at most once (no data after it), then at most one terminal event:
`StreamClosed` (both halves finished) or `StreamReset`. After `SessionEnded` nothing follows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened a stream (SYN). Answer with `accept_stream` or `reset_stream`."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamAccepted:
    """The peer acknowledged (ACK) a stream we opened."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Payload for a stream. Call `consumed(stream_id, len(data))` once it is processed."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The peer half-closed (FIN): it sends no more data on this stream."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The peer aborted (RST) the stream, or refused one we opened. The session forgot it."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """Both halves are finished (FIN each way). The session forgot the stream."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class WindowOpened:
    """Our send window on a stream grew: `send` may take more bytes now."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PingAnswered:
    """The answer to our `ping`; `rtt` is measured with the `now` values we were given."""

    opaque: int
    rtt: float


@dataclass(frozen=True, slots=True)
class GoAwayReceived:
    """The peer will open no more streams and takes no new ones; existing ones may finish."""

    code: int


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session is over: every stream is gone. `code` is a GoAwayCode value."""

    code: int
    reason: str


MuxEvent = (
    StreamOpened
    | StreamAccepted
    | DataReceived
    | StreamEnded
    | StreamReset
    | StreamClosed
    | WindowOpened
    | PingAnswered
    | GoAwayReceived
    | SessionEnded
)
