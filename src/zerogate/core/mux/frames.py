"""Yamux frames: the 12-byte header codec between the wire and the session state machine.

Where it sits: `session.MuxSession` feeds whatever the transport read into a `FrameDecoder`
and turns the `Frame`s it yields into stream events; every frame the session sends goes
through `encode`. Nothing here knows about streams or windows beyond one number: the
largest Data payload the decoder will buffer (the receive window), so a peer cannot make us
hold more than that before the session can judge the frame.

Wire format (HashiCorp yamux spec.md, "Framing"), all fields big-endian:

    version u8 (=0) | type u8 | flags u16 | stream id u32 | length u32 | payload (Data only)

The meaning of `length` depends on the type: Data = payload size, WindowUpdate = window
delta, Ping = opaque value echoed back, GoAway = error code.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

VERSION = 0
HEADER_SIZE = 12
MAX_U32 = 0xFFFF_FFFF
SESSION_ID = 0  # spec "StreamID Field": 0 addresses the session (Ping, GoAway)

_HEADER = struct.Struct(">BBHII")


class FrameType(enum.IntEnum):
    DATA = 0
    WINDOW_UPDATE = 1
    PING = 2
    GO_AWAY = 3


class GoAwayCode(enum.IntEnum):
    NORMAL = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class Flag(enum.IntFlag):
    NONE = 0
    SYN = 1
    ACK = 2
    FIN = 4
    RST = 8


_FLAG_BITS = 0xF  # SYN | ACK | FIN | RST; plain int, so `~` means every other bit
_TYPES = frozenset(int(kind) for kind in FrameType)
_CODES = frozenset(int(code) for code in GoAwayCode)


class FrameError(ValueError):
    """The bytes are not a valid yamux frame. The message is a fixed phrase, never peer bytes."""


@dataclass(frozen=True, slots=True)
class Frame:
    type: FrameType
    flags: Flag
    stream_id: int
    length: int  # Data: len(payload); WindowUpdate: delta; Ping: opaque; GoAway: code
    payload: bytes = b""

    @classmethod
    def data(cls, stream_id: int, payload: bytes, flags: Flag = Flag.NONE) -> Frame:
        return cls(FrameType.DATA, flags, stream_id, len(payload), payload)

    @classmethod
    def window_update(cls, stream_id: int, flags: Flag = Flag.NONE, delta: int = 0) -> Frame:
        return cls(FrameType.WINDOW_UPDATE, flags, stream_id, delta)

    @classmethod
    def ping(cls, flags: Flag, opaque: int) -> Frame:
        return cls(FrameType.PING, flags, SESSION_ID, opaque)

    @classmethod
    def go_away(cls, code: GoAwayCode) -> Frame:
        return cls(FrameType.GO_AWAY, Flag.NONE, SESSION_ID, int(code))


def header_problem(
    type_: int, flags: int, stream_id: int, length: int, max_data: int = MAX_U32
) -> str | None:
    """Why this header breaks the spec, or None. Shared by `encode` and the decoder."""
    if type_ not in _TYPES:
        return "unknown frame type"
    if not 0 <= flags <= 0xFFFF or flags & ~_FLAG_BITS:
        return "unknown flag bits"
    if not 0 <= stream_id <= MAX_U32 or not 0 <= length <= MAX_U32:
        return "field out of range"
    kind = FrameType(type_)
    if kind in (FrameType.PING, FrameType.GO_AWAY):
        # spec "StreamID Field": Ping and Go Away always use stream 0
        if stream_id != SESSION_ID:
            return "ping or go away on a stream"
        if kind is FrameType.PING and flags not in (Flag.SYN, Flag.ACK):
            return "ping is neither request nor answer"
        if kind is FrameType.GO_AWAY and flags:
            return "flags on go away"
        if kind is FrameType.GO_AWAY and length not in _CODES:
            return "unknown go away code"
        return None
    if stream_id == SESSION_ID:
        return "stream frame on the session id"
    if kind is FrameType.DATA and length > max_data:
        return "data frame larger than the receive window"
    return None


def encode(frame: Frame) -> bytes:
    """The wire bytes of a frame; ValueError if it is not one a conforming peer may send."""
    problem = header_problem(frame.type, frame.flags, frame.stream_id, frame.length)
    if problem is None and frame.type is not FrameType.DATA and frame.payload:
        problem = "payload on a control frame"
    if problem is None and frame.type is FrameType.DATA and frame.length != len(frame.payload):
        problem = "data length differs from its payload"
    if problem is not None:
        raise ValueError(problem)
    header = _HEADER.pack(VERSION, frame.type, frame.flags, frame.stream_id, frame.length)
    return header + frame.payload


def decode_header(header: bytes, max_data: int = MAX_U32) -> Frame:
    """The frame a 12-byte header announces (Data without its payload yet)."""
    if len(header) != HEADER_SIZE:
        raise FrameError("short header")
    version, type_, flags, stream_id, length = _HEADER.unpack(header)
    if version != VERSION:
        raise FrameError("unsupported version")
    problem = header_problem(type_, flags, stream_id, length, max_data)
    if problem is not None:
        raise FrameError(problem)
    return Frame(FrameType(type_), Flag(flags), stream_id, length)


class FrameDecoder:
    """Cuts a byte stream, split anywhere, into frames. Holds at most one frame's bytes.

    `feed` appends; `next_frame` returns the next complete frame or None. Once a header is
    invalid the decoder stays broken: every later `next_frame` raises the same FrameError.
    """

    def __init__(self, max_data: int = MAX_U32) -> None:
        self._max_data = max_data
        self._buffer = bytearray()
        self._pos = 0
        self._header: Frame | None = None  # decoded header waiting for its payload
        self._error: FrameError | None = None

    @property
    def pending(self) -> int:
        """Bytes received but not yet returned as a frame (0: between frames)."""
        return self._available() + (HEADER_SIZE if self._header is not None else 0)

    def _available(self) -> int:
        return len(self._buffer) - self._pos

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buffer[: self._pos]  # compact once per feed, not once per frame
            self._pos = 0
        self._buffer += data

    def next_frame(self) -> Frame | None:
        if self._error is not None:
            raise self._error
        if self._header is None:
            if self._available() < HEADER_SIZE:
                return None
            end = self._pos + HEADER_SIZE
            try:
                self._header = decode_header(bytes(self._buffer[self._pos : end]), self._max_data)
            except FrameError as error:
                self._error = error
                raise
            self._pos = end
        header = self._header
        if header.type is not FrameType.DATA:
            self._header = None
            return header
        if self._available() < header.length:
            return None
        end = self._pos + header.length
        payload = bytes(self._buffer[self._pos : end])
        self._pos = end
        self._header = None
        return Frame(header.type, header.flags, header.stream_id, header.length, payload)
