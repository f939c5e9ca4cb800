"""Open requests and replies survive any split of the stream, and bad ones are refused."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerogate.core.tunnel.opening import (
    Hello,
    OpenError,
    OpeningReader,
    OpeningViolation,
    OpenReply,
    decode_reply,
    decode_request,
    encode_hello,
    encode_reply,
    encode_request,
)


def _read(wire: bytes, cuts: list[int]) -> tuple[bytes, bytes]:
    reader = OpeningReader()
    got = None
    start = 0
    for cut in [*sorted(set(cuts)), len(wire)]:
        if got is None and cut >= start:
            got = reader.feed(wire[start:cut])
            start = cut
    assert got is not None
    body, rest = got
    return body, rest + wire[start:]


@given(st.text(max_size=1000), st.binary(max_size=100), st.lists(st.integers(0, 1200)))
def test_request_in_any_split(grant: str, after: bytes, cuts: list[int]) -> None:
    wire = encode_request(grant) + after
    body, rest = _read(wire, [c for c in cuts if c <= len(wire)])
    assert decode_request(body) == grant and rest == after


@pytest.mark.parametrize(
    "reply", [OpenReply(True), *(OpenReply(False, code, "why") for code in OpenError)]
)
def test_replies_round_trip(reply: OpenReply) -> None:
    body, rest = _read(encode_reply(reply), [])
    assert decode_reply(body) == reply and rest == b""


@pytest.mark.parametrize(
    "body",
    [b"[]", b"{}", b'{"grant": 1}', b'{"grant": "x", "more": 1}', b"\xff", b'{"ok": "yes"}'],
)
def test_malformed_messages(body: bytes) -> None:
    with pytest.raises(OpeningViolation):
        decode_request(body)
    with pytest.raises(OpeningViolation):
        decode_reply(body)


def test_unknown_error_code_and_oversize() -> None:
    with pytest.raises(OpeningViolation, match="unknown"):
        decode_reply(b'{"ok": false, "error": "nope"}')
    with pytest.raises(OpeningViolation, match="too long"):
        OpeningReader().feed(struct.pack(">H", 9000))


def test_hello_round_trip_and_limits() -> None:
    body, _ = _read(encode_hello(Hello("gw-1", 1, 4)), [])
    assert decode_request(body) == Hello("gw-1", 1, 4)
    for bad in (Hello("gw", 4, 4), Hello("gw", -1, 2), Hello("gw", 0, 300)):
        body, _ = _read(encode_hello(bad), [])
        with pytest.raises(OpeningViolation):
            decode_request(body)
    with pytest.raises(OpeningViolation):
        decode_request(b'{"hello": {"gateway": "g", "worker": true, "workers": 2}}')
