"""The connector/agent multiplexer: yamux framing and a sans-io session state machine.

Data flow: a shell feeds transport bytes to `MuxSession.receive_data`, drains events
(`events.py`), drives its own side through the session's methods and writes
`data_to_send()`. `frames.py` is the 12-byte header codec underneath. Pure: no I/O, no clock.
"""

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
    HEADER_SIZE,
    Flag,
    Frame,
    FrameDecoder,
    FrameError,
    FrameType,
    GoAwayCode,
    decode_header,
    encode,
)
from zerogate.core.mux.session import (
    RECEIVING_STATES,
    SENDING_STATES,
    TRANSITIONS,
    MuxConfig,
    MuxError,
    MuxSession,
    StreamInput,
    StreamState,
)

__all__ = [
    "HEADER_SIZE",
    "RECEIVING_STATES",
    "SENDING_STATES",
    "TRANSITIONS",
    "DataReceived",
    "Flag",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameType",
    "GoAwayCode",
    "GoAwayReceived",
    "MuxConfig",
    "MuxError",
    "MuxEvent",
    "MuxSession",
    "PingAnswered",
    "SessionEnded",
    "StreamAccepted",
    "StreamClosed",
    "StreamEnded",
    "StreamInput",
    "StreamOpened",
    "StreamReset",
    "StreamState",
    "WindowOpened",
    "decode_header",
    "encode",
]
