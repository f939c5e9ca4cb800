"""The gateway's HTTP/1.1 data plane against a real upstream (uvicorn in its own process),
driven by raw sockets, httpx and a WebSocket client: forwarding, keep-alive, pipelining,
bodies both ways, 100-continue, upgrades, timeouts, limits and the smuggling classics."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from websockets.sync.client import connect as websocket_connect

from gatewaykit import GatewayThread, raw, split_responses, status_of
from netkit import free_port
from zerogate.gateway.http import Forward, Options, Outcome, Reply, Request, status_page
from zerogate.gateway.upstream import Upstream

HOST = "app.test"


def handler_for(upstream_port: int):  # type: ignore[no-untyped-def]
    target = Upstream("127.0.0.1", upstream_port)

    def handle(request: Request) -> Forward | Reply:
        if request.head.host == HOST:
            return Forward(target, headers=((b"x-zerogate-assertion", b"from-the-gateway"),))
        return status_page(404, "no such application")

    return handle


@pytest.fixture
def gateway(upstream: int) -> Iterator[GatewayThread]:
    with GatewayThread(handler_for(upstream), free_port()) as running:
        yield running


def client(gateway: GatewayThread) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", headers={"host": HOST})


def seen(upstream: int) -> list[str]:
    return list(httpx.get(f"http://127.0.0.1:{upstream}/seen").json()["seen"])


def body_of(response: bytes) -> dict[str, object]:
    return dict(json.loads(response.split(b"\r\n\r\n", 1)[1]))


def test_forwards_with_gateway_headers_and_strips_spoofed_identity(gateway: GatewayThread) -> None:
    with client(gateway) as http:
        response = http.get(
            "/echo?x=1",
            headers={
                "x-forwarded-user": "mallory",
                "x-zerogate-assertion": "forged",
                "x-zerogate-user": "mallory",
                "forwarded": "for=1.2.3.4",
                "x-real-ip": "1.2.3.4",
                "x_forwarded_user": "mallory",
                "x-custom": "kept",
                "connection": "host, x-custom",
            },
        )
    assert response.status_code == 200
    echoed = response.json()
    headers = dict(echoed["headers"])
    assert (echoed["method"], echoed["path"], echoed["query"]) == ("GET", "/echo", "x=1")
    assert headers["x-zerogate-assertion"] == "from-the-gateway"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-host"] == HOST
    assert "x-custom" not in headers  # the client declared it hop-by-hop
    assert headers["host"] == HOST  # but Host cannot be declared away
    assert "x_forwarded_user" not in headers
    assert "x-forwarded-user" not in headers and "x-zerogate-user" not in headers
    assert "forwarded" not in headers and "x-real-ip" not in headers
    assert [v for k, v in echoed["headers"] if k == "x-zerogate-assertion"] == ["from-the-gateway"]


def test_unknown_host_gets_the_404_page(gateway: GatewayThread) -> None:
    response = httpx.get(f"http://127.0.0.1:{gateway.port}/", headers={"host": "nope.test"})
    assert response.status_code == 404 and "no such application" in response.text


def test_keep_alive_and_pipelining_answer_in_order(gateway: GatewayThread, upstream: int) -> None:
    request = b"GET /echo?n=%d HTTP/1.1\r\nHost: app.test\r\n\r\n"
    pipelined = b"".join(request % n for n in range(5))
    last = b"GET /echo?n=5 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
    response = raw(gateway.port, pipelined + last)
    answers = split_responses(response)
    assert [status for status, _ in answers] == [200] * 6
    assert [json.loads(body)["query"] for _, body in answers] == [f"n={n}" for n in range(6)]


def test_request_bodies_stream_with_length_and_chunked(gateway: GatewayThread) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    with client(gateway) as http:
        fixed = http.post("/echo", content=payload).json()
        chunked = http.post("/echo", content=iter([payload[:1000], payload[1000:]])).json()
    for echoed in (fixed, chunked):
        assert echoed["body_size"] == len(payload)
    assert fixed["body_sha256"] == chunked["body_sha256"]


def test_responses_stream_with_length_and_chunked(gateway: GatewayThread) -> None:
    size = 8 * 1024 * 1024 + 5
    with client(gateway) as http:
        for route in ("/fixed", "/stream"):
            with http.stream("GET", route, params={"size": size}) as response:
                received = sum(len(chunk) for chunk in response.iter_raw())
            assert response.status_code == 200 and received == size


def test_head_has_no_body_and_the_connection_stays_usable(gateway: GatewayThread) -> None:
    request = b"HEAD /fixed?size=10 HTTP/1.1\r\nHost: app.test\r\n\r\n"
    follow = b"GET /fixed?size=3 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
    response = raw(gateway.port, request + follow)
    assert response.count(b"HTTP/1.1 200") == 2
    assert response.endswith(b"\r\n\r\nzzz")


def test_expect_100_continue_is_answered_before_the_body(gateway: GatewayThread) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"hello")
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    assert status_of(rest) == 200 and body_of(rest)["body_size"] == 5


def test_websocket_echo_through_the_gateway(gateway: GatewayThread) -> None:
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    with websocket_connect(f"ws://{HOST}/ws", sock=sock, open_timeout=5) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00\x01" * 50_000)
        assert ws.recv(timeout=5) == b"\x00\x01" * 50_000


def test_an_unreachable_upstream_is_a_502() -> None:
    dead = free_port()
    with GatewayThread(handler_for(dead), free_port()) as gateway:
        response = httpx.get(f"http://127.0.0.1:{gateway.port}/", headers={"host": HOST})
    assert response.status_code == 502


def test_a_slow_upstream_is_a_504(upstream: int) -> None:
    options = Options(response_timeout=0.5)
    with GatewayThread(handler_for(upstream), free_port(), options) as gateway:
        response = httpx.get(
            f"http://127.0.0.1:{gateway.port}/slow?seconds=3", headers={"host": HOST}
        )
    assert response.status_code == 504


def test_a_slow_answer_after_a_quick_one_on_the_same_connection_is_a_504(upstream: int) -> None:
    """One timer serves every answer of a connection: the quick answer's deadline has passed
    when it fires, and the slow request that came later is still cut at its own."""
    options = Options(response_timeout=0.5)
    with (
        GatewayThread(handler_for(upstream), free_port(), options) as gateway,
        httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", headers={"host": HOST}) as web,
    ):
        assert web.get("/").status_code == 200
        time.sleep(0.3)  # the first answer's deadline is now due before the second's
        slow = web.get("/slow?seconds=3")
        assert web.get("/").status_code == 200  # a new connection: the 504 closed that one
    assert slow.status_code == 504


def test_an_upload_slower_than_the_response_timeout_is_not_cut(upstream: int) -> None:
    """The response timeout counts from the request's last byte: an upload that keeps coming
    for longer than it (a large file on a slow link) is not answered 504 halfway."""
    options = Options(response_timeout=1)
    with (
        GatewayThread(handler_for(upstream), free_port(), options) as gw,
        socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock,
    ):
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 40\r\n"
            b"Connection: close\r\n\r\n"
        )
        for _ in range(8):  # 2.8 s of upload
            time.sleep(0.35)
            sock.sendall(b"x" * 5)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert status_of(response) == 200, response[:200]
    assert body_of(response)["body_size"] == 40


def test_an_app_that_stops_midway_through_its_answer_is_cut(upstream: int) -> None:
    """An app that sent its head and half its body, then nothing: the client's connection is
    cut after the response timeout (no status can be sent any more, so the cut is what tells
    it the answer is incomplete), and the decision's event says what happened. Without this,
    the client, its connection and the app's connection wait for ever."""
    outcomes: list[Outcome] = []
    target = Upstream("127.0.0.1", upstream)

    def handle(request: Request) -> Forward | Reply:
        return Forward(target, done=outcomes.append)

    with (
        GatewayThread(handle, free_port(), Options(response_timeout=1)) as gateway,
        socket.create_connection(("127.0.0.1", gateway.port), timeout=15) as sock,
    ):
        sock.sendall(b"GET /stall?size=1000&seconds=5 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        response = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):  # a socket timeout here: never cut
                response += chunk
        recorded = gateway.call(lambda: list(outcomes))
    head, body = response.split(b"\r\n\r\n", 1)
    assert status_of(response) == 200 and b"content-length: 2000" in head.lower()
    assert body == b"a" * 1000  # the half that came, and the connection's end
    assert isinstance(recorded, list) and len(recorded) == 1
    (outcome,) = recorded
    assert (outcome.status, outcome.bytes_out) == (200, 1000)
    assert outcome.error == "the application stopped sending its answer"


def test_an_answer_that_keeps_coming_slowly_is_not_cut(upstream: int) -> None:
    """Only silence counts: an answer that takes longer than the response timeout in all,
    a piece at a time, arrives whole."""
    with GatewayThread(handler_for(upstream), free_port(), Options(response_timeout=1)) as gw:
        response = raw(
            gw.port,
            b"GET /drip?pieces=6&every=0.4 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
            wait=15,
        )
    assert status_of(response) == 200
    assert response.split(b"\r\n\r\n", 1)[1] == b"0;1;2;3;4;5;"  # its end: the close


def test_a_client_that_reads_slowly_is_not_cut_for_its_app_s_silence(upstream: int) -> None:
    """While the client does not read, its answer backs up and the app is not read either:
    that silence is the client's (its own stall timer, the idle timeout, governs it), so a
    client that pauses for longer than the response timeout still gets its whole answer."""
    size = 32 * 1024 * 1024  # more than the sockets between here and the app can hold
    with GatewayThread(handler_for(upstream), free_port(), Options(response_timeout=1)) as gw:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(15)
        with sock:
            sock.connect(("127.0.0.1", gw.port))
            sock.sendall(
                b"GET /fixed?size=%d HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n" % size
            )
            time.sleep(3)  # three response timeouts without reading
            received = 0
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
    assert received > size  # the head and every byte of the body


def test_an_upload_that_stops_gets_408_not_504(upstream: int) -> None:
    """A body that stops arriving is the client's delay, not the app's."""
    with GatewayThread(handler_for(upstream), free_port(), Options(response_timeout=1)) as gw:
        response = raw(
            gw.port,
            b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 40\r\n\r\nhello",
            wait=5,
        )
    assert status_of(response) == 408, response[:200]
    assert b"connection: close" in response.lower()


def test_slowloris_gets_408_and_is_cut(upstream: int) -> None:
    options = Options(header_timeout=0.5)
    with GatewayThread(handler_for(upstream), free_port(), options) as gateway:
        response = raw(gateway.port, b"GET / HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r\n", wait=5)
        assert status_of(response) == 408  # the head timer fired: the client never finished
        idle = raw(gateway.port, b"", wait=5)  # a connection that never speaks is closed
        assert idle == b""


def test_connections_per_client_are_limited(upstream: int) -> None:
    options = Options(max_connections_per_client=3)
    with GatewayThread(handler_for(upstream), free_port(), options) as gateway:
        held = [socket.create_connection(("127.0.0.1", gateway.port)) for _ in range(3)]
        try:
            time.sleep(0.2)
            refused = raw(gateway.port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
            assert status_of(refused) == 503
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.2)
        again = httpx.get(f"http://127.0.0.1:{gateway.port}/echo", headers={"host": HOST})
        assert again.status_code == 200


SMUGGLING = {
    "content-length and transfer-encoding": (
        b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 44\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n"
    ),
    "duplicate content-length": (
        b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n"
        b"GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n"
    ),
    "content-length list": (
        b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0, 44\r\n\r\n"
        b"GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n"
    ),
    "invalid chunk size": (
        b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n0\r\n\r\n"
    ),
    "transfer-encoding obfuscated": (
        b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\n"
        b"Content-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n"
    ),
    "obsolete line folding": (
        b"GET /echo HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n"
    ),
    "bad header characters": b"GET /echo HTTP/1.1\r\nHost: app.test\r\nX-A: a\x00b\r\n\r\n",
    "space before colon": b"GET /echo HTTP/1.1\r\nHost: app.test\r\nX-A : 1\r\n\r\n",
    "absolute-form for another host": (
        b"GET http://other.test/smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n"
    ),
    "two hosts": b"GET /smuggled HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n",
    "no host": b"GET /smuggled HTTP/1.1\r\n\r\n",
    "bare LF": b"GET /smuggled HTTP/1.1\nHost: app.test\n\n",
}


@pytest.mark.parametrize("attack", sorted(SMUGGLING))
def test_smuggling_is_refused_and_never_reaches_the_upstream(
    gateway: GatewayThread, upstream: int, attack: str
) -> None:
    before = seen(upstream)
    response = raw(gateway.port, SMUGGLING[attack])
    assert status_of(response) == 400, response[:200]
    assert b"connection: close" in response.lower()
    after = seen(upstream)
    new = after[len(before) + 1 :]  # the /seen call itself is one entry
    assert "/smuggled" not in new and all(p != "/echo" for p in new), new


@pytest.mark.parametrize("attack", ["two hosts", "invalid chunk size", "bare LF"])
def test_whole_requests_before_a_malformed_one_get_their_own_answers_first(
    gateway: GatewayThread, upstream: int, attack: str
) -> None:
    """Pipelined in one write: a valid request, then a malformed one. The first is answered
    as if the second had not come (a client pairs answers with requests by their order:
    a 400 in its place would be taken for its own answer, while the app acted on it)."""
    first = b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello"
    response = raw(gateway.port, first + SMUGGLING[attack])
    answers = split_responses(response)
    assert [status for status, _ in answers] == [200, 400], response[:300]
    assert json.loads(answers[0][1])["body_size"] == 5
    assert b"connection: close" in response.lower()
    assert "/smuggled" not in seen(upstream)


def test_a_request_cut_by_its_malformed_body_keeps_its_audit_event(upstream: int) -> None:
    """An allowed request whose head has already reached the app, cut when its chunked body
    turns malformed: the client gets 400, and the decision still gets its one event, which
    says what happened (the app saw the head, so the trail must show the request)."""
    outcomes: list[Outcome] = []
    target = Upstream("127.0.0.1", upstream)

    def handle(request: Request) -> Forward | Reply:
        return Forward(target, done=outcomes.append)

    with GatewayThread(handle, free_port()) as gateway:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
            sock.sendall(
                b"POST /cut-midway HTTP/1.1\r\nHost: app.test\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
            )
            deadline = time.monotonic() + 10
            while "/cut-midway" not in seen(upstream):
                assert time.monotonic() < deadline, "the head never reached the upstream"
                time.sleep(0.02)
            sock.sendall(b"zz\r\n")  # not a chunk size
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        recorded = gateway.call(lambda: list(outcomes))
    assert status_of(response) == 400
    assert isinstance(recorded, list) and len(recorded) == 1
    (outcome,) = recorded
    assert outcome.status == 400 and outcome.bytes_in == 5
    assert outcome.error is not None and outcome.error.startswith("cut: ")


@pytest.mark.parametrize(
    ("path", "forwarded"),
    [
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%2E%2E/admin", "/admin"),
        ("//admin", "/admin"),
        ("/a/./b/../../admin", "/admin"),
        ("/%61dmin", "/admin"),
    ],
)
def test_the_upstream_gets_the_path_policy_matched(
    gateway: GatewayThread, path: str, forwarded: str
) -> None:
    response = raw(
        gateway.port,
        b"GET %b HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n" % path.encode(),
    )
    assert status_of(response) == 200
    assert body_of(response)["path"] == forwarded


def test_an_app_s_base_path_goes_before_the_path_but_not_before_an_asterisk(
    upstream: int,
) -> None:
    def handle(request: Request) -> Forward | Reply:
        return Forward(Upstream("127.0.0.1", upstream), path_prefix="/base")

    with GatewayThread(handle, free_port()) as gw:
        for target, arrived in [(b"/echo?q=1", "/base/echo"), (b"*", "*")]:
            method = b"OPTIONS" if target == b"*" else b"GET"
            response = raw(
                gw.port,
                b"%b %b HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n" % (method, target),
            )
            assert status_of(response) == 200
            assert body_of(response)["path"] == arrived


@pytest.mark.parametrize("path", ["/public/..%2fadmin", "/a%00b", "/a\\b"])
def test_ambiguous_paths_are_refused(gateway: GatewayThread, path: str) -> None:
    response = raw(
        gateway.port,
        b"GET %b HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n" % path.encode(),
    )
    assert status_of(response) == 400


def test_pipelining_is_bounded_and_the_queued_requests_are_answered_first(
    gateway: GatewayThread, upstream: int
) -> None:
    """150 requests in one write: the gateway parses no more than 100 ahead of their answers
    (a read of tiny pipelined requests would otherwise hold megabytes); those are answered,
    in order, then 429 and the close; the app never sees the rest."""
    wire = b"".join(b"GET /echo/deep/%d HTTP/1.1\r\nHost: app.test\r\n\r\n" % n for n in range(150))
    answers = split_responses(raw(gateway.port, wire))
    assert [status for status, _ in answers] == [200] * 100 + [429]
    assert [json.loads(body)["path"] for _, body in answers[:100]] == [
        f"/echo/deep/{n}" for n in range(100)
    ]
    assert sorted(p for p in seen(upstream) if p.startswith("/echo/deep/")) == sorted(
        f"/echo/deep/{n}" for n in range(100)
    )


def test_oversized_heads_get_431(gateway: GatewayThread) -> None:
    many = b"".join(b"X-%d: 1\r\n" % n for n in range(200))
    response = raw(gateway.port, b"GET / HTTP/1.1\r\nHost: app.test\r\n" + many + b"\r\n")
    assert status_of(response) == 431


def _upload_while_reading(port: int, answer_size: int, body_size: int) -> bytes:
    """POST `body_size` bytes to an app path that answers `answer_size` bytes at once,
    without reading the body; keep sending it while reading the answer slowly. All read."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /fixed?size=%d HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n"
            % (answer_size, body_size)
        )

        def pump() -> None:
            block = b"x" * 65536
            with contextlib.suppress(OSError):  # the gateway closes once it has answered
                for _ in range(body_size // len(block)):
                    sock.sendall(block)

        sender = threading.Thread(target=pump, daemon=True)
        sender.start()
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
                time.sleep(0.001)  # a client slower than the loopback
        sender.join(10)
    return answer


def test_an_answer_that_comes_before_the_upload_ends_reaches_the_client_whole(
    gateway: GatewayThread,
) -> None:
    """The app answers 3 MB at once and never reads the 50 MB upload. The gateway ends that
    connection after the answer, but must not close it while the client still sends: the
    kernel would reset it and drop the answer's unsent part (it used to arrive truncated)."""
    answer = _upload_while_reading(gateway.port, 3_000_000, 50_000_000)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status_of(head) == 200
    assert b"connection: close" in head.lower()
    assert len(body) == 3_000_000, len(body)


def test_an_app_that_answers_before_the_upload_ends_is_not_handed_the_next_request(
    upstream: int,
) -> None:
    """Its connection still waits for the rest of that body: pooled, it would read the next
    request (another client's) as part of it, a desync (the next client got a 504 or the
    app's 400). It must not go back to the pool."""
    with GatewayThread(handler_for(upstream), free_port(), Options(response_timeout=5)) as gw:
        early = _upload_while_reading(gw.port, 10, 10_000_000)
        assert status_of(early) == 200
        for _ in range(3):
            with client(gw) as http:
                response = http.get("/echo", params={"after": "early"})
            assert response.status_code == 200, response.text[:200]
            assert response.json()["path"] == "/echo"


def test_a_client_that_sends_but_never_reads_is_not_read_from_either() -> None:
    """Requests that are answered at once (404s), sent without end, their answers never
    read: once the answers back up, the gateway stops reading, so they do not pile up in
    its memory (they did: hundreds of MB in seconds)."""
    deny = lambda _: status_page(404, "no such application")  # noqa: E731
    options = Options(max_pipelined=1 << 20)  # this is about answers backing up, not depth
    with (
        GatewayThread(deny, free_port(), options) as gw,
        socket.create_connection(("127.0.0.1", gw.port)) as sock,
    ):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(1)
        flood = b"GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n" * 1000
        deadline = time.monotonic() + 5
        blocked = False
        while not blocked and time.monotonic() < deadline:
            try:
                sock.send(flood)
            except TimeoutError:
                blocked = True  # the gateway stopped taking requests
        waiting = gw.call(
            lambda: sum(c.transport.get_write_buffer_size() for c in gw.gateway.connections)
        )
    assert blocked, "the gateway kept reading requests whose answers nobody read"
    assert isinstance(waiting, int) and waiting < 8 << 20, waiting


def test_a_client_that_stops_reading_is_cut_after_the_idle_timeout(upstream: int) -> None:
    """A reader that stopped (a slow-read attack) would hold its connection, its answer and
    an app connection forever: cut once it has taken nothing for the idle timeout."""
    options = Options(idle_timeout=1)
    with (
        GatewayThread(handler_for(upstream), free_port(), options) as gw,
        socket.create_connection(("127.0.0.1", gw.port)) as sock,
    ):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /fixed?size=50000000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        assert sock.recv(12) == b"HTTP/1.1 200"  # the answer has begun; then no more reading
        deadline = time.monotonic() + 15
        while gw.call(lambda: len(gw.gateway.connections)) != 0:
            assert time.monotonic() < deadline, "the stalled reader is still connected"
            time.sleep(0.1)


def _send_endless(port: int, start: bytes, megabytes: int) -> bytes:
    """Send `start`, then up to `megabytes` MB of 'a' (no newline), then read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(start)
        with contextlib.suppress(OSError):  # the gateway answers and stops listening
            for _ in range(megabytes * 16):
                sock.sendall(b"a" * 65536)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def test_large_reads_of_a_body_are_not_taken_for_an_endless_head(gateway: GatewayThread) -> None:
    """The unparsed-bytes limit clears with every piece of body parsed: an upload arriving in
    reads far larger than the limit is not refused (it was, for a while, with 431)."""
    body = bytes(range(256)) * (16 * 1024)  # 4 MiB
    with client(gateway) as http:
        response = http.post("/echo", content=body)
    assert response.status_code == 200, response.text[:200]
    assert response.json()["body_size"] == len(body)


@pytest.mark.parametrize(
    "start",
    [
        b"GET /echo HTTP/1.1\r\nHost: app.test\r\nX-Endless: ",
        b"POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\nx\r\n0\r\nX-Endless-Trailer: ",
    ],
    ids=["header", "trailer"],
)
def test_one_endless_header_value_is_refused_early(start: bytes, upstream: int) -> None:
    """httptools collects a value whole before the header limits can see it: the gateway
    counts what it has received unparsed, and refuses at 64 KiB, not at the head's timeout
    (by then, gigabytes of it on a fast link)."""
    with GatewayThread(handler_for(upstream), free_port(), Options(header_timeout=30)) as gw:
        answer = _send_endless(gw.port, start, 8)
    assert status_of(answer) == 431, answer[:200]


@contextlib.contextmanager
def raw_app(serve: Callable[[socket.socket], None]) -> Iterator[Upstream]:
    """An app that is a plain socket: `serve` gets each connection, on its own thread (for
    apps that misbehave in ways no framework would let them)."""
    app = socket.create_server(("127.0.0.1", 0))

    def one(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            serve(conn)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                threading.Thread(target=one, args=(app.accept()[0],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield Upstream("127.0.0.1", app.getsockname()[1])
    finally:
        app.close()


def test_an_app_s_endless_response_head_is_a_502() -> None:
    """An app that sends a head without end does not fill the gateway's memory either."""

    def serve(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        for _ in range(64):  # 4 MB of one header value, and the head still open
            conn.sendall(b"a" * 65536)
        time.sleep(10)

    options = Options(response_timeout=5)  # the answer without the limit: 504, after 5 s
    with (
        raw_app(serve) as target,
        GatewayThread(lambda _: Forward(target), free_port(), options) as gw,
    ):
        answer = raw(gw.port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n", wait=8)
    assert status_of(answer) == 502, answer[:200]


def test_an_app_that_sends_more_than_its_answer_fails_only_its_own_connection() -> None:
    """A 204 with a body (a common app bug): the bytes after the answer break that app
    connection. The next request, pipelined behind it (or another client's), used to take
    the connection from the pool within the same read, and got the 502 for it."""

    def serve(conn: socket.socket) -> None:
        while data := conn.recv(65536):
            if b"/bad" in data:
                conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with raw_app(serve) as target, GatewayThread(lambda _: Forward(target), free_port()) as gw:
        for _ in range(3):
            answer = raw(
                gw.port,
                b"GET /bad HTTP/1.1\r\nHost: app.test\r\n\r\n"
                b"GET /good HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
            )
            assert split_responses(answer) == [(204, b""), (200, b"ok")]


def test_the_gateway_survives_a_client_that_vanishes_mid_response(
    gateway: GatewayThread,
) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(b"GET /stream?size=50000000 HTTP/1.1\r\nHost: app.test\r\n\r\n")
        sock.recv(1000)
    with client(gateway) as http:
        assert http.get("/echo").status_code == 200
    open_connections = gateway.call(lambda: len(gateway.gateway.connections))
    assert isinstance(open_connections, int)


def test_upstream_process_stays_alive(upstream: int) -> None:
    # Guard for the module fixture: if the upstream died, the tests above lied.
    assert httpx.get(f"http://127.0.0.1:{upstream}/seen").status_code == 200


def test_a_reply_header_with_a_line_break_is_never_sent() -> None:
    """Defence in depth: whatever a handler puts in a header of its own answer, a client's
    bytes cannot split it; the answer becomes a 500 and the connection stays sound."""

    def handle(request: Request) -> Forward | Reply:
        planted = request.head.query.replace("%0D%0A", "\r\n").encode()
        return Reply(303, b"", ((b"location", b"/" + planted),))

    first = b"GET /x?a%0D%0Aset-cookie:%20planted=1 HTTP/1.1\r\nHost: app.test\r\n\r\n"
    second = b"GET /y?fine HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
    with GatewayThread(handle, free_port()) as gw:
        response = raw(gw.port, first + second)
    assert [status for status, _ in split_responses(response)] == [500, 303]
    assert b"planted" not in response and b"location: /fine\r\n" in response


def decided_through(serve: Callable[[socket.socket], None], wire: bytes) -> tuple[bytes, list[str]]:
    """`wire` through a gateway that forwards every request for HOST to a plain-socket app
    (`serve`) and answers any other host with a 404: what the client got back, and the paths
    the gateway decided."""
    decided: list[str] = []
    with raw_app(serve) as target:

        def handle(request: Request) -> Forward | Reply:
            decided.append(request.path)
            if request.head.host != HOST:
                return status_page(404, "no such application")
            return Forward(target)

        with GatewayThread(handle, free_port()) as gw:
            return raw(gw.port, wire), decided


@pytest.mark.parametrize("protocol", [b"h2c", b"TLS/1.2", b"foo"])
def test_only_websocket_upgrades_pass_and_others_are_ignored(protocol: bytes) -> None:
    """h2c smuggling: an app that accepts `Upgrade: h2c` would then take HTTP/2 straight from
    the client over the tunnel, every later request past the gateway's decisions. The gateway
    passes only WebSocket upgrades; any other Upgrade it ignores (RFC 9110 §7.8): the app gets
    a plain request, and what follows on the connection is HTTP/1.1 the gateway decides."""
    heads: list[bytes] = []

    def serve(conn: socket.socket) -> None:
        while data := conn.recv(65536):
            heads.append(data)
            if b"upgrade:" in data.lower():  # an app that takes any upgrade it is offered
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")
                while more := conn.recv(65536):
                    heads.append(b"TUNNELLED " + more)
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    answer, decided = decided_through(
        serve,
        b"GET /public HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: " + protocol + b"\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        b"GET /admin HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    assert split_responses(answer) == [(200, b"ok"), (200, b"ok")]
    assert decided == ["/public", "/admin"]  # the second request was decided on its own
    seen = b"".join(heads).lower()
    assert b"upgrade" not in seen and b"http2-settings" not in seen and b"tunnelled" not in seen


def test_an_app_that_switches_protocols_unasked_gets_no_tunnel() -> None:
    """A 101 to a request that asked for no upgrade is a 502: relayed, it would make the
    connection a tunnel, and the client's next requests would reach the app undecided."""
    heads: list[bytes] = []

    def serve(conn: socket.socket) -> None:
        while data := conn.recv(65536):
            heads.append(data)
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")

    answer, decided = decided_through(
        serve,
        b"GET /public HTTP/1.1\r\nHost: app.test\r\n\r\n"
        b"GET /admin HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    # The 502 ends the connection; what the client sent after it reached nobody.
    assert [status for status, _ in split_responses(answer)] == [502]
    assert decided == ["/public"]
    assert b"/admin" not in b"".join(heads)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def answered_by(answer: bytes, heads: list[bytes] | None = None) -> Callable[[socket.socket], None]:
    """A plain-socket app that answers every read with `answer`, keeping what it read in
    `heads` if given."""

    def serve(conn: socket.socket) -> None:
        while data := conn.recv(65536):
            if heads is not None:
                heads.append(data)
            conn.sendall(answer)

    return serve


SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: app.test\r\n\r\n"


@pytest.mark.parametrize("offer", [b",", b"", b" , ,"])
def test_an_upgrade_offer_naming_no_protocol_may_not_carry_a_body(offer: bytes) -> None:
    """llhttp stops at the head of any request with `Connection: upgrade` and an Upgrade
    header, whatever the header holds, and never reads the body. Taken for a plain request,
    its body would be read as the next request: sent to the app undecided, or eaten by the
    app as the body the gateway promised it. An offer that names no protocol is an upgrade
    the gateway ignores, and with a body a 400, as `Upgrade: h2c` with a body is."""
    heads: list[bytes] = []
    answer, decided = decided_through(
        answered_by(OK, heads),
        b"POST /public HTTP/1.1\r\nHost: app.test\r\nConnection: upgrade\r\nUpgrade: "
        + offer
        + b"\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
        + SMUGGLED,
    )
    assert [status for status, _ in split_responses(answer)] == [400]
    assert decided == []
    assert b"/admin" not in b"".join(heads)


@pytest.mark.parametrize(
    "body",
    [
        b"Content-Length: 5\r\n\r\nhello",
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
    ],
    ids=["length", "chunked", "100-continue"],
)
def test_nothing_after_an_answer_that_ends_the_connection_is_decided(body: bytes) -> None:
    """An answer given before the request's body was read ends the connection. Whatever
    arrived with it in the same read, a pipelined request included, is dropped unread: it
    used to be decided and forwarded to the app after the answer that said
    `Connection: close`, its own answer then written after the end of the stream."""
    heads: list[bytes] = []
    answer, decided = decided_through(
        answered_by(OK, heads), b"POST /x HTTP/1.1\r\nHost: nope.test\r\n" + body + SMUGGLED
    )
    assert [status for status, _ in split_responses(answer)] == [404]
    assert b"connection: close\r\n" in answer.lower()
    assert decided == ["/x"]
    assert heads == []


def test_a_websocket_upgrade_the_gateway_answers_itself_gets_one_answer() -> None:
    """A refused upgrade is answered once, and the connection ends: the parser stopped at
    its head, and what follows could be WebSocket frames, not HTTP. (It used to get its 404,
    then a second, unasked-for 400.)"""
    heads: list[bytes] = []
    answer, decided = decided_through(
        answered_by(OK, heads),
        b"GET /chat HTTP/1.1\r\nHost: nope.test\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n" + SMUGGLED,
    )
    assert [status for status, _ in split_responses(answer)] == [404]
    assert b"connection: close\r\n" in answer.lower()
    assert decided == ["/chat"]
    assert heads == []


def test_an_ignored_upgrade_the_gateway_answers_itself_leaves_http_going_on() -> None:
    """An upgrade the gateway does not pass on (h2c) has no body, so after the gateway's own
    answer to it the connection goes on in HTTP/1.1: one answer for each request."""
    heads: list[bytes] = []
    answer, decided = decided_through(
        answered_by(OK, heads),
        b"GET /a HTTP/1.1\r\nHost: nope.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        b"GET /public HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    assert split_responses(answer) == [
        (404, status_page(404, "no such application").body),
        (200, b"ok"),
    ]
    assert decided == ["/a", "/public"]


@pytest.mark.parametrize(
    "answer",
    [
        # The gateway asks for no transfer coding; relayed without its label, gzip bytes
        # would reach the client as plain ones.
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nhello",
        b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["gzip-chunked", "gzip", "status-099"],
)
def test_an_answer_no_client_could_read_as_the_app_meant_is_a_502(answer: bytes) -> None:
    response, decided = decided_through(
        answered_by(answer), b"GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
    )
    assert [status for status, _ in split_responses(response)] == [502]
    assert decided == ["/x"]


def test_an_app_s_reason_phrase_with_a_control_character_is_replaced() -> None:
    response, _ = decided_through(
        answered_by(b"HTTP/1.1 200 Fine\x01\x1b[31m\r\nContent-Length: 2\r\n\r\nok"),
        b"GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert split_responses(response) == [(200, b"ok")]


def test_an_http10_client_that_keeps_its_connection_is_told_so() -> None:
    """HTTP/1.0 ends a connection after each answer unless the answer says otherwise: a
    kept connection that does not say so leaves the client waiting for the close."""
    keep = b"GET /a HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n"
    response, decided = decided_through(
        answered_by(OK),
        keep + b"GET /nope HTTP/1.0\r\nHost: nope.test\r\nConnection: keep-alive\r\n\r\n"
        b"GET /b HTTP/1.0\r\nHost: app.test\r\n\r\n",
    )
    heads = [part.split(b"\r\n\r\n")[0].lower() for part in response.split(b"HTTP/1.1 ")[1:]]
    assert [status for status, _ in split_responses(response)] == [200, 404, 200]
    assert [b"connection: keep-alive" in head for head in heads] == [True, True, False]
    assert b"connection: close" in heads[2]
    assert decided == ["/a", "/nope", "/b"]
