"""frames.py: the 12-byte header codec, its refusals, and a decoder indifferent to splits."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerogate.core.mux import (
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

PROPERTIES = settings(max_examples=200, deadline=None)
U32 = st.integers(0, 2**32 - 1)
STREAM_IDS = st.integers(1, 2**32 - 1)
STREAM_FLAGS = st.sampled_from([Flag(bits) for bits in range(16)])

frames = st.one_of(
    st.builds(Frame.data, STREAM_IDS, st.binary(max_size=300), STREAM_FLAGS),
    st.builds(Frame.window_update, STREAM_IDS, STREAM_FLAGS, U32),
    st.builds(Frame.ping, st.sampled_from([Flag.SYN, Flag.ACK]), U32),
    st.builds(Frame.go_away, st.sampled_from(list(GoAwayCode))),
)


def header(
    version: int = 0, type_: int = 1, flags: int = 0, stream: int = 1, length: int = 0
) -> bytes:
    return struct.pack(">BBHII", version, type_, flags, stream, length)


def decode_all(chunks: list[bytes], max_data: int = 2**32 - 1) -> list[Frame]:
    decoder = FrameDecoder(max_data)
    out: list[Frame] = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (frame := decoder.next_frame()) is not None:
            out.append(frame)
    assert decoder.pending == 0
    return out


def test_header_layout_is_big_endian() -> None:
    wire = encode(Frame.data(0x01020304, b"hi", Flag.SYN | Flag.FIN))
    assert wire == bytes([0, 0, 0, 5, 1, 2, 3, 4, 0, 0, 0, 2]) + b"hi"
    assert encode(Frame.ping(Flag.ACK, 7)) == bytes([0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7])
    assert encode(Frame.go_away(GoAwayCode.INTERNAL_ERROR))[-4:] == b"\x00\x00\x00\x02"
    assert len(encode(Frame.window_update(1, Flag.NONE, 5))) == HEADER_SIZE


@PROPERTIES
@given(frames)
def test_round_trip(frame: Frame) -> None:
    wire = encode(frame)
    assert len(wire) == HEADER_SIZE + len(frame.payload)
    assert decode_all([wire]) == [frame]


@PROPERTIES
@given(st.lists(frames, max_size=12), st.data())
def test_any_split_of_the_stream_decodes_the_same(
    frames_: list[Frame], data: st.DataObject
) -> None:
    wire = b"".join(encode(frame) for frame in frames_)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=20)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert decode_all(chunks) == frames_


def test_byte_at_a_time() -> None:
    frames_ = [Frame.data(3, b"x" * 40, Flag.SYN), Frame.ping(Flag.SYN, 9), Frame.data(3, b"")]
    wire = b"".join(encode(f) for f in frames_)
    assert decode_all([wire[i : i + 1] for i in range(len(wire))]) == frames_


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (header(version=1), "unsupported version"),
        (header(version=255), "unsupported version"),
        (header(type_=4), "unknown frame type"),
        (header(type_=255), "unknown frame type"),
        (header(flags=0x10), "unknown flag bits"),
        (header(flags=0x8000 | 1), "unknown flag bits"),
        (header(type_=2, stream=1, flags=1), "ping or go away on a stream"),
        (header(type_=3, stream=5), "ping or go away on a stream"),
        (header(type_=2, flags=0, stream=0), "ping is neither request nor answer"),
        (header(type_=2, flags=3, stream=0), "ping is neither request nor answer"),
        (header(type_=2, flags=4, stream=0), "ping is neither request nor answer"),
        (header(type_=3, flags=1, stream=0), "flags on go away"),
        (header(type_=3, stream=0, length=3), "unknown go away code"),
        (header(type_=0, stream=0), "stream frame on the session id"),
        (header(type_=1, stream=0), "stream frame on the session id"),
    ],
)
def test_bad_headers_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        decode_header(raw)
    decoder = FrameDecoder()
    decoder.feed(raw + encode(Frame.ping(Flag.SYN, 1)))
    for _ in range(2):  # a broken decoder stays broken
        with pytest.raises(FrameError, match=reason):
            decoder.next_frame()


def test_data_longer_than_the_window_is_refused_at_the_header() -> None:
    decoder = FrameDecoder(max_data=100)
    decoder.feed(header(type_=0, length=101))  # no payload needed to judge it
    with pytest.raises(FrameError, match="larger than the receive window"):
        decoder.next_frame()
    assert decode_all([encode(Frame.data(1, b"x" * 100))], max_data=100)[0].length == 100
    # a window update's length is a delta, not a payload: no such limit
    assert decode_header(header(type_=1, length=2**32 - 1), max_data=100).length == 2**32 - 1


def test_short_header() -> None:
    with pytest.raises(FrameError, match="short header"):
        decode_header(b"\x00" * 11)


def test_pending_counts_a_frame_in_progress() -> None:
    decoder = FrameDecoder()
    wire = encode(Frame.data(1, b"abcdef"))
    decoder.feed(wire[:12])
    assert decoder.next_frame() is None
    assert decoder.pending == 12  # the header waits for its payload
    decoder.feed(wire[12:])
    assert decoder.next_frame() == Frame.data(1, b"abcdef")
    assert decoder.pending == 0


@pytest.mark.parametrize(
    "frame",
    [
        Frame(FrameType.DATA, Flag.NONE, 1, 3, b"ab"),  # length disagrees with payload
        Frame(FrameType.WINDOW_UPDATE, Flag.NONE, 1, 0, b"x"),  # payload on control frame
        Frame(FrameType.WINDOW_UPDATE, Flag.NONE, 1, 2**32),  # out of range
        Frame(FrameType.DATA, Flag.NONE, 2**32, 0),
        Frame(FrameType.DATA, Flag.NONE, 0, 0),
        Frame(FrameType.PING, Flag.SYN | Flag.ACK, 0, 1),
        Frame(FrameType.GO_AWAY, Flag.NONE, 0, 9),
        Frame(FrameType.GO_AWAY, Flag.NONE, 1, 0),
        Frame(FrameType.WINDOW_UPDATE, Flag(0x10), 1, 0),
    ],
)
def test_encode_refuses_what_a_peer_would_refuse(frame: Frame) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        encode(frame)


@PROPERTIES
@given(st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE))
def test_any_header_decodes_or_raises_frame_error(raw: bytes) -> None:
    try:
        frame = decode_header(raw)
    except FrameError:
        return
    if frame.type is FrameType.DATA:  # its payload would follow; the header still matches
        assert header(0, frame.type, frame.flags, frame.stream_id, frame.length) == raw
    else:
        assert encode(frame) == raw
