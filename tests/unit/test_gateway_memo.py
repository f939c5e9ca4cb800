"""The gateway remembers checked heads, normalised paths and forwarded header blocks: the
answers are those of the pure functions, refusals are never remembered, memory is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from zerogate.core.http.framing import HttpViolation, check_request_head
from zerogate.core.http.paths import PathError, normalise_path
from zerogate.gateway import http
from zerogate.gateway.http import Forward, Gateway, Options, Reply
from zerogate.gateway.upstream import Upstream

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


def test_remembered_heads_stay_within_their_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "_MEMO_BYTES", 10_000)
    loop = asyncio.new_event_loop()
    gateway = Gateway(lambda request: Reply(404), Options(), loop)
    loop.close()
    for n in range(1000):
        gateway.check_head(b"GET", f"/{n}".encode(), "1.1", HEADERS)
        gateway.forwarded_headers(((f"x-{n}".encode(), b"x"), (b"host", b"h")))
    assert len(gateway._heads) < 200 and len(gateway._header_blocks) < 1000


def test_normalised_paths_are_remembered_but_refusals_are_not(gateway: Gateway) -> None:
    assert gateway.normalise("/a/./b/../c") == normalise_path("/a/./b/../c") == "/a/c"
    assert gateway._paths.get("/a/./b/../c") == "/a/c"
    for _ in range(2):
        with pytest.raises(PathError):
            gateway.normalise("/a%2fb")
    long = "/" + "x" * 2000
    assert gateway.normalise(long) == long and long not in gateway._paths


def test_a_remembered_upstream_request_is_the_built_one(gateway: Gateway) -> None:
    head = gateway.check_head(b"GET", b"/a?b=c", "1.1", [*HEADERS, (b"X-Forwarded-User", b"x")])
    upstream = Upstream("127.0.0.1", 8080, None, None)
    forward = Forward(upstream, headers=((b"x-zerogate-assertion", b"t1"),), path_prefix="/w")
    first = gateway.upstream_request(head, "/a", forward, "198.18.0.1")
    assert first == http._upstream_request(gateway, head, "/a", forward, "198.18.0.1")
    assert first.startswith(b"GET /w/a?b=c HTTP/1.1\r\n") and b"x-forwarded-user" not in first
    assert b"x-zerogate-assertion: t1\r\n" in first
    assert gateway.upstream_request(head, "/a", forward, "198.18.0.1") is first
    # Anything else that goes into it makes another: the client, the token, the head.
    other_client = gateway.upstream_request(head, "/a", forward, "198.18.0.2")
    assert b"x-forwarded-for: 198.18.0.2\r\n" in other_client
    other_token = Forward(upstream, headers=((b"x-zerogate-assertion", b"t2"),), path_prefix="/w")
    assert b"t2" in gateway.upstream_request(head, "/a", other_token, "198.18.0.1")
    copy = check_request_head(b"GET", b"/a?b=c", "1.1", [*HEADERS, (b"X-Forwarded-User", b"x")])
    assert gateway.upstream_request(copy, "/a", forward, "198.18.0.1") == first
