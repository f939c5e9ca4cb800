"""Property-based: random traffic through the real gateway, both ways.

Three properties; the first two run over plain TCP and over TLS. Random requests (below)
to the real upstream; random answers from a
scripted app (`test_random_answers_reach_the_client_exactly`); and a client that vanishes at
a random point (`test_a_client_that_vanishes_anywhere_leaves_one_outcome_per_decision`).

Requests: hypothesis writes a pipeline of valid requests (methods, headers in any case, spoofed identity
headers, bodies by length or in chunks with extensions and trailers, `Expect: 100-continue`,
`Connection: close` at the end), sometimes with one malformed request somewhere in it, and
sends it on one connection cut at random points. An independent parser (h11, not the
httptools the gateway uses) reads the answers. What must hold, whatever the pipeline:

- every answer is well-formed HTTP/1.1, and they come in the order of the requests;
- each valid request before the malformed one reaches the app exactly as it was sent (method,
  path, query, body, its own headers in order) and never with a client's identity header;
- the malformed one gets its 400 and the connection closes after it, and nothing from it or
  after it reaches the app;
- each forwarded request ends with exactly one outcome (its audit event), with its body size.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import h11
import httpx
import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewaykit import GatewayThread
from netkit import free_port
from zerogate.gateway.http import (
    HOP_BY_HOP,
    IDENTITY_HEADERS,
    Forward,
    Outcome,
    Reply,
    Request,
    status_page,
)
from zerogate.gateway.upstream import Upstream

HOST = b"app.test"
ASSERTION = b"from-the-gateway"
SPOOF = "spoofed-identity"
RESERVED = HOP_BY_HOP | IDENTITY_HEADERS | {b"host", b"cookie"}
IDENTITY_SPOOFS = [
    b"X-Forwarded-User",
    b"x-forwarded-email",
    b"X_Forwarded_Groups",
    b"X-Zerogate-User",
    b"X-Zerogate-Assertion",
    b"Forwarded",
    b"X-Forwarded-For",
    b"X-Real-IP",
    b"Remote-User",
]
# Each is refused with 400 by the gateway's request checks; {path} is where it would go.
MALFORMED = {
    "content-length and transfer-encoding": (
        b"POST {path} HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "two different content-lengths": (
        b"POST {path} HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\nContent-Length: 7\r\n\r\n"
    ),
    "content-length list": b"POST {path} HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0, 7\r\n\r\n",
    "content-length not a number": (
        b"POST {path} HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1x\r\n\r\n"
    ),
    "invalid chunk size": (
        b"POST {path} HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    ),
    "obsolete line folding": b"GET {path} HTTP/1.1\r\nHost: app.test\r\nX-A: 1\r\n  folded\r\n\r\n",
    "NUL in a header value": b"GET {path} HTTP/1.1\r\nHost: app.test\r\nX-A: a\x00b\r\n\r\n",
    "space before the colon": b"GET {path} HTTP/1.1\r\nHost: app.test\r\nX-A : 1\r\n\r\n",
    "bad character in a header name": b"GET {path} HTTP/1.1\r\nHost: app.test\r\nX(A): 1\r\n\r\n",
    "bare LF": b"GET {path} HTTP/1.1\nHost: app.test\n\n",
    "two hosts": b"GET {path} HTTP/1.1\r\nHost: app.test\r\nHost: other.test\r\n\r\n",
    "no host": b"GET {path} HTTP/1.1\r\n\r\n",
    "absolute-form for another host": b"GET http://other.test{path} HTTP/1.1\r\nHost: app.test\r\n\r\n",
}


@dataclass(frozen=True)
class Sent:
    """One valid request as the test wrote it, and the bytes that carry it."""

    method: bytes
    path: bytes
    query: bytes
    headers: tuple[tuple[bytes, bytes], ...]  # the request's own, as the app must see them
    body: bytes
    wire: bytes
    close: bool


@dataclass
class Pipeline:
    requests: list[Sent]
    malformed: tuple[int, str] | None  # (position, name in MALFORMED)
    cuts: list[int]


_ids = itertools.count()


def examples(count: int) -> settings:
    """The same `count` examples on every run (no database): CI sees what a developer saw.
    A module fixture serves them all, so hypothesis's per-function fixture check is moot."""
    return settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


_name = st.from_regex(rb"\A[A-Za-z][A-Za-z0-9-]{0,14}\Z").filter(
    lambda n: n.lower() not in RESERVED and not n.lower().startswith((b"x-zerogate", b"x_"))
)
_value = st.from_regex(rb"\A([!-~]([ -~]{0,28}[!-~])?)?\Z")


@st.composite
def valid_request(draw: st.DrawFn, path: bytes, last: bool) -> Sent:
    method = draw(st.sampled_from([b"GET", b"HEAD", b"OPTIONS", b"POST", b"PUT", b"PATCH"]))
    query = draw(
        st.from_regex(rb"\A([a-z0-9]{1,6}=[a-z0-9]{0,6}(&[a-z0-9]{1,6}=[a-z0-9]{0,6})*)?\Z")
    )
    own = draw(st.lists(st.tuples(_name, _value), max_size=5))
    spoofs = draw(st.lists(st.sampled_from(IDENTITY_SPOOFS), max_size=3, unique=True))
    has_body = method in (b"POST", b"PUT", b"PATCH")
    body = draw(st.binary(max_size=3000)) if has_body else b""
    chunked = has_body and draw(st.booleans())
    expect = has_body and draw(st.booleans())
    close = last and draw(st.booleans())
    lines = [method + b" " + path + (b"?" + query if query else b"") + b" HTTP/1.1"]
    host_at = draw(st.integers(0, len(own)))
    headers = [(n, v) for n, v in own]
    headers.insert(host_at, (draw(st.sampled_from([b"Host", b"host", b"HOST"])), HOST))
    for spoof in spoofs:
        headers.insert(draw(st.integers(0, len(headers))), (spoof, SPOOF.encode()))
    if chunked:
        headers.append((b"Transfer-Encoding", b"chunked"))
    elif has_body:
        headers.append((b"Content-Length", b"%d" % len(body)))
    if expect:
        headers.append((b"Expect", b"100-continue"))
    if close:
        headers.append((b"Connection", b"close"))
    lines += [n + b": " + v for n, v in headers]
    wire = b"\r\n".join(lines) + b"\r\n\r\n"
    if chunked:
        wire += draw(chunks(body))
    else:
        wire += body
    mine = tuple((n.lower(), v) for n, v in own)
    return Sent(method, path, query, mine, body, wire, close)


@st.composite
def chunks(draw: st.DrawFn, body: bytes) -> bytes:
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(body) - 1)), max_size=4)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    out = b""
    for piece in pieces:
        if not piece:
            continue
        size = b"%x" % len(piece)
        if draw(st.booleans()):
            size = size.upper()
        extension = draw(st.sampled_from([b"", b";name=value", b';q="quoted"']))
        out += size + extension + b"\r\n" + piece + b"\r\n"
    trailer = draw(st.sampled_from([b"", b"X-Checksum: abc\r\n"]))
    return out + b"0\r\n" + trailer + b"\r\n"


@st.composite
def pipelines(draw: st.DrawFn) -> Pipeline:
    run = next(_ids)
    count = draw(st.integers(1, 5))
    malformed = None
    if draw(st.booleans()):
        malformed = (draw(st.integers(0, count)), draw(st.sampled_from(sorted(MALFORMED))))
    # Connection: close only ends a pipeline that has no malformed request (which it would hide).
    requests = [
        draw(valid_request(b"/echo/r%d/%d" % (run, n), last=n == count - 1 and not malformed))
        for n in range(count)
    ]
    size = len(wire_of(Pipeline(requests, malformed, [])))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, size - 1)), max_size=6)))
    return Pipeline(requests, malformed, cuts)


def run_of(pipeline: Pipeline) -> str:
    return pipeline.requests[0].path.decode().split("/")[2]  # "r17", from /echo/r17/0


def smuggled_path(pipeline: Pipeline) -> bytes:
    return b"/smuggled/" + run_of(pipeline).encode()


def wire_of(pipeline: Pipeline) -> bytes:
    parts = [r.wire for r in pipeline.requests]
    if pipeline.malformed is not None:
        at, name = pipeline.malformed
        parts.insert(at, MALFORMED[name].replace(b"{path}", smuggled_path(pipeline)))
    return b"".join(parts)


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def read_answers(
    sock: socket.socket, expected: list[str], *, wait_for_end: bool = True
) -> tuple[list[Answer], bool]:
    """The answers to requests of methods `expected`, read with h11; and whether the gateway
    closed the connection after the last of them (with nothing more on it), if asked to
    wait for that."""
    conn = h11.Connection(h11.CLIENT)
    answers: list[Answer] = []
    for method in expected:
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "app.test")]))
        conn.send(h11.EndOfMessage())
        answer = _one_answer(conn, sock)
        if answer is None:
            break
        answers.append(answer)
        if conn.their_state is h11.MUST_CLOSE:
            break
        conn.start_next_cycle()
    closed = conn.their_state is h11.MUST_CLOSE and wait_for_end and _ends(conn, sock)
    return answers, closed


def _one_answer(conn: h11.Connection, sock: socket.socket) -> Answer | None:
    status, headers, body = 0, [], b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.InformationalResponse):
            assert event.status_code == 100, event  # only 100-continue is ever asked for
        elif isinstance(event, h11.Response):
            status, headers = event.status_code, list(event.headers)
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return Answer(status, headers, body)
        elif isinstance(event, h11.ConnectionClosed):
            return None


def _ends(conn: h11.Connection, sock: socket.socket) -> bool:
    """True when the server sends nothing more and closes."""
    extra = conn.trailing_data[0]
    while chunk := sock.recv(65536):
        extra += chunk
    return extra == b""


def send_in_pieces(sock: socket.socket, wire: bytes, cuts: list[int]) -> None:
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        sock.sendall(wire[start:end])
        time.sleep(0.002)  # give each piece its own read, most of the time


class Recorder:
    """The handler: every request for app.test forwarded, each outcome kept with its path."""

    def __init__(self, upstream: int) -> None:
        self.target = Upstream("127.0.0.1", upstream)
        self.outcomes: list[tuple[str, Outcome]] = []
        self.decided: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Forward | Reply:
        if request.head.host != HOST.decode():
            return status_page(404, "no such application")
        with self.lock:
            self.decided.append(request.path)
        return Forward(
            self.target,
            headers=((b"x-zerogate-assertion", ASSERTION),),
            done=lambda outcome, path=request.path: self._keep(path, outcome),
        )

    def _keep(self, path: str, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append((path, outcome))

    def for_paths(self, prefix: str) -> list[tuple[str, Outcome]]:
        with self.lock:
            return [(p, o) for p, o in self.outcomes if p.startswith(prefix)]

    def decided_for(self, prefix: str) -> list[str]:
        with self.lock:
            return [p for p in self.decided if p.startswith(prefix)]


@dataclass
class Through:
    """The gateway in front of the real upstream, over plain TCP or TLS."""

    gateway: GatewayThread
    recorder: Recorder
    tls: ssl.SSLContext | None  # the client's, when the gateway speaks TLS

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.gateway.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is None:
            return sock
        return self.tls.wrap_socket(sock, server_hostname=HOST.decode())


@pytest.fixture(scope="module", params=["plain", "tls"])
def through(upstream: int, request: pytest.FixtureRequest) -> Iterator[Through]:
    recorder = Recorder(upstream)
    server, client = None, None
    if request.param == "tls":
        authority = trustme.CA()
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        authority.issue_cert(HOST.decode()).configure_cert(server)
        client = ssl.create_default_context()
        authority.configure_trust(client)
    with GatewayThread(recorder, free_port(), tls=server) as gateway:
        yield Through(gateway, recorder, client)


def seen_by_app(upstream: int, prefix: str) -> list[str]:
    seen = httpx.get(f"http://127.0.0.1:{upstream}/seen").json()["seen"]
    return [path for path in seen if path.startswith(prefix)]


def check_echo(sent: Sent, answer: Answer) -> None:
    assert answer.status == 200, (sent.wire[:300], answer)
    if sent.method == b"HEAD":
        assert answer.body == b""
        return
    echo = json.loads(answer.body)
    assert echo["method"] == sent.method.decode()
    assert echo["path"] == sent.path.decode()
    assert echo["query"] == sent.query.decode()
    assert echo["body_size"] == len(sent.body)
    assert echo["body_sha256"] == hashlib.sha256(sent.body).hexdigest()
    arrived = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in echo["headers"]]
    assert all(SPOOF.encode() not in v for _, v in arrived), arrived
    assert arrived.count((b"x-zerogate-assertion", ASSERTION)) == 1
    assert (b"x-forwarded-for", b"127.0.0.1") in arrived
    own = iter(arrived)  # the request's own headers arrive, in their order
    assert all(header in own for header in sent.headers), (sent.headers, arrived)


@given(pipeline=pipelines())
@examples(60)
def test_random_pipelines_are_forwarded_exactly_or_cut_cleanly(
    through: Through, upstream: int, pipeline: Pipeline
) -> None:
    recorder = through.recorder
    requests = pipeline.requests
    valid = requests if pipeline.malformed is None else requests[: pipeline.malformed[0]]
    methods = [r.method.decode() for r in valid]
    if pipeline.malformed is not None:
        methods.append("GET")
    with through.connect() as sock:
        send_in_pieces(sock, wire_of(pipeline), pipeline.cuts)
        # Over TLS the gateway cannot half-close after a closing answer: it lingers, and a
        # client ends on `Connection: close` (checked below) instead of waiting for the end.
        answers, closed = read_answers(sock, methods, wait_for_end=through.tls is None)

    assert len(answers) == len(methods), (answers, wire_of(pipeline)[:500])
    for sent, answer in zip(valid, answers, strict=False):
        check_echo(sent, answer)
    if pipeline.malformed is not None:
        refusal = answers[-1]
        assert refusal.status == 400, (pipeline.malformed, refusal)
        assert (b"connection", b"close") in refusal.headers
        assert closed or through.tls, "the connection stayed open after a malformed request"
    elif requests[-1].close:
        assert (b"connection", b"close") in answers[-1].headers
        assert closed or through.tls, "Connection: close was not honoured"
    # The app saw the valid requests before the refusal, each once, and nothing else.
    mine = f"/echo/{run_of(pipeline)}/"
    assert sorted(seen_by_app(upstream, mine)) == sorted(r.path.decode() for r in valid)
    assert not seen_by_app(upstream, smuggled_path(pipeline).decode())
    # One outcome per forwarded request, with the body the client sent.
    deadline = time.monotonic() + 5
    while len(recorder.for_paths(mine)) < len(valid):
        assert time.monotonic() < deadline, "an outcome is missing"
        time.sleep(0.01)
    time.sleep(0.05)  # and no second one for any of them
    outcomes = recorder.for_paths(mine)
    assert [p for p, _ in outcomes] == [r.path.decode() for r in valid]
    assert [o.bytes_in for _, o in outcomes] == [len(r.body) for r in valid]
    assert all(o.status == 200 and o.error is None for _, o in outcomes)


@given(pipeline=pipelines(), share=st.floats(0, 1), reset=st.booleans())
@examples(40)
def test_a_client_that_vanishes_anywhere_leaves_one_outcome_per_decision(
    through: Through,
    upstream: int,
    pipeline: Pipeline,
    share: float,
    reset: bool,
) -> None:
    """The client sends part of a pipeline, then closes (FIN) or resets: every request the
    gateway decided still gets exactly one outcome (its audit event), the app saw none that
    was not decided, and the gateway lets go of the connection."""
    gateway, recorder = through.gateway, through.recorder
    wire = wire_of(pipeline)
    sent = wire[: round(len(wire) * share)]
    with through.connect() as sock:
        send_in_pieces(sock, sent, [cut for cut in pipeline.cuts if cut < len(sent)])
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    mine = f"/echo/{run_of(pipeline)}/"
    deadline = time.monotonic() + 10
    while True:
        decided = recorder.decided_for(mine)
        reported = [p for p, _ in recorder.for_paths(mine)]
        open_now = gateway.call(lambda: len(gateway.gateway.connections))
        if sorted(decided) == sorted(reported) and open_now == 0:
            break
        assert time.monotonic() < deadline, (decided, reported, open_now)
        time.sleep(0.01)
    time.sleep(0.05)  # and no second outcome comes later
    reported = [p for p, _ in recorder.for_paths(mine)]
    assert sorted(reported) == sorted(set(reported)) == sorted(decided)
    assert set(seen_by_app(upstream, mine)) <= set(decided)


# --- the other direction: random answers from the app --------------------------------------


@dataclass(frozen=True)
class Scripted:
    """One answer the app will give, as bytes, and what the client must see of it."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]  # end-to-end: the client must see them, in order
    private: tuple[bytes, ...]  # hop-by-hop names: the client must see none of them
    body: bytes  # what the client must receive (nothing for HEAD, 204 and 304)
    wire: bytes
    cuts: tuple[int, ...]
    closes: bool  # the app closes its connection after it (a body ended by the close)


_status = st.sampled_from([200, 201, 202, 203, 204, 206, 301, 302, 304, 400, 403, 404, 500, 503])


@st.composite
def scripted(draw: st.DrawFn, head_request: bool) -> Scripted:
    status = draw(_status)
    own = draw(st.lists(st.tuples(_name, _value), max_size=5))
    bodiless = head_request or status in (204, 304)
    body = b"" if status in (204, 304) else draw(st.binary(max_size=3000))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if status in (204, 304):
        framing = "none"
    headers = list(own)
    private: list[bytes] = []
    if draw(st.booleans()):  # hop-by-hop by declaration, and the usual ones
        headers += [(b"Connection", b"X-Private"), (b"X-Private", b"internal")]
        private.append(b"x-private")
    if draw(st.booleans()):
        headers.append((b"Keep-Alive", b"timeout=5"))
        private.append(b"keep-alive")
    if framing == "length":
        headers.append((b"Content-Length", b"%d" % len(body)))
    elif framing == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
    elif framing == "close":
        headers.append((b"Connection", b"close"))
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    wire = interim if draw(st.booleans()) else b""
    wire += b"HTTP/1.1 %d Whatever\r\n" % status
    wire += b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"
    if not bodiless:
        wire += draw(chunks(body)) if framing == "chunked" else body
    cuts = tuple(sorted(draw(st.sets(st.integers(1, max(1, len(wire) - 1)), max_size=4))))
    mine = tuple((n.lower(), v) for n, v in own)
    return Scripted(
        status, mine, tuple(private), b"" if bodiless else body, wire, cuts, framing == "close"
    )


class ScriptedApp:
    """An app that answers `/r/N` with script N, written in its pieces; on its own thread."""

    def __init__(self) -> None:
        self.scripts: dict[int, Scripted] = {}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)  # requests here have no body
                number = int(head.split(b" ", 2)[1].rsplit(b"/", 1)[1])
                script = self.scripts[number]
                send_in_pieces(sock, script.wire, list(script.cuts))
                if script.closes:
                    return

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def scripted_app() -> Iterator[tuple[GatewayThread, ScriptedApp, Recorder]]:
    app = ScriptedApp()
    recorder = Recorder(app.port)
    with GatewayThread(recorder, free_port()) as gateway:
        yield gateway, app, recorder
    app.close()


_numbers = itertools.count()


@given(data=st.data())
@examples(60)
def test_random_answers_reach_the_client_exactly(
    scripted_app: tuple[GatewayThread, ScriptedApp, Recorder], data: st.DataObject
) -> None:
    """Whatever the app answers (framed by length, in chunks with extensions and trailers, or
    by its close; with an interim 103, hop-by-hop headers, cut anywhere), each client sees
    the same status, its end-to-end headers in order, none of the hop-by-hop ones and the
    body exactly, on one keep-alive connection; and each answer has one outcome."""
    gateway, app, recorder = scripted_app
    methods = data.draw(st.lists(st.sampled_from(["GET", "HEAD"]), min_size=1, max_size=4))
    numbers = [next(_numbers) for _ in methods]
    for method, number in zip(methods, numbers, strict=True):
        app.scripts[number] = data.draw(scripted(head_request=method == "HEAD"))
    conn = h11.Connection(h11.CLIENT)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        for method, number in zip(methods, numbers, strict=True):
            target = f"/r/{number}"
            wire = conn.send(
                h11.Request(method=method, target=target, headers=[("Host", "app.test")])
            )
            assert wire is not None
            sock.sendall(wire + (conn.send(h11.EndOfMessage()) or b""))
            answer = _one_answer(conn, sock)
            assert answer is not None, "the gateway closed instead of answering"
            script = app.scripts[number]
            assert answer.status == script.status
            assert answer.body == script.body
            names = [n for n, _ in answer.headers]
            assert not set(names) & set(script.private), answer.headers
            arrived = iter(answer.headers)
            assert all(h in arrived for h in script.headers), (script.headers, answer.headers)
            assert conn.their_state is h11.DONE, "the gateway ended a keep-alive connection"
            conn.start_next_cycle()
    paths = [f"/r/{n}" for n in numbers]
    deadline = time.monotonic() + 5
    while len([o for p, o in recorder.for_paths("/r/") if p in paths]) < len(paths):
        assert time.monotonic() < deadline, "an outcome is missing"
        time.sleep(0.01)
    outcomes = {p: o for p, o in recorder.for_paths("/r/") if p in paths}
    for path, number in zip(paths, numbers, strict=True):
        script = app.scripts[number]
        assert outcomes[path].status == script.status
        assert outcomes[path].bytes_out == len(script.body)
