"""The gateway remembers checked heads, normalised paths and forwarded header blocks: the
answers are those of the pure functions, refusals are never remembered, memory is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from zerogate.core.http.framing import HttpViolation, check_request_head
from zerogate.core.http.paths import PathError, normalise_path
from zerogate.gateway import http
from zerogate.gateway.http import Gateway, Options, Reply

HEADERS = [(b"Host", b"app.example.com"), (b"Cookie", b"a=b")]


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    loop = asyncio.new_event_loop()
    try:
        yield Gateway(lambda request: Reply(404), Options(), loop)
    finally:
        loop.close()


def test_a_remembered_head_is_the_checked_head(gateway: Gateway) -> None:
    first = gateway.check_head(b"GET", b"/a?b=c", "1.1", HEADERS)
    assert first == check_request_head(b"GET", b"/a?b=c", "1.1", HEADERS)
    assert gateway.check_head(b"GET", b"/a?b=c", "1.1", list(HEADERS)) is first
    other = gateway.check_head(b"GET", b"/a?b=c", "1.0", HEADERS)  # every input is the key
    assert other.keep_alive is False and first.keep_alive is True


def test_a_refused_head_is_refused_every_time(gateway: Gateway) -> None:
    smuggled = [*HEADERS, (b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")]
    for _ in range(2):
        with pytest.raises(HttpViolation):
            gateway.check_head(b"POST", b"/", "1.1", smuggled)


def test_remembered_heads_stay_within_their_memory(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "_HEADER_BLOCK_BYTES", 10_000)
    for n in range(1000):
        gateway.check_head(b"GET", f"/{n}".encode(), "1.1", HEADERS)
        gateway.forwarded_headers(((f"x-{n}".encode(), b"x"), (b"host", b"h")))
    assert len(gateway._heads) < 200 and len(gateway._header_blocks) < 1000


def test_normalised_paths_are_remembered_but_refusals_are_not(gateway: Gateway) -> None:
    assert gateway.normalise("/a/./b/../c") == normalise_path("/a/./b/../c") == "/a/c"
    assert gateway._paths["/a/./b/../c"] == "/a/c"
    for _ in range(2):
        with pytest.raises(PathError):
            gateway.normalise("/a%2fb")
    long = "/" + "x" * 2000
    assert gateway.normalise(long) == long and long not in gateway._paths
