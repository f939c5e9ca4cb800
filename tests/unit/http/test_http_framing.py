"""Request-head rules: every refusal with its exact status, and the smuggling classics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from zerogate.core.http.framing import (
    BodyFraming,
    HttpViolation,
    Limits,
    RequestHead,
    check_request_head,
)

HOST = (b"Host", b"app.example")
Header = tuple[bytes, bytes]


def check(
    headers: Sequence[Header] = (HOST,),
    *,
    method: bytes = b"GET",
    target: bytes = b"/",
    version: str = "1.1",
    limits: Limits = Limits(),
) -> RequestHead:
    return check_request_head(method, target, version, list(headers), limits)


def refused(headers: Sequence[Header] = (HOST,), **kwargs: Any) -> HttpViolation:
    with pytest.raises(HttpViolation) as caught:
        check(headers, **kwargs)
    return caught.value


# --- a plain request --------------------------------------------------------------------


def test_plain_get() -> None:
    head = check([HOST, (b"Accept", b"  */* \t")], target=b"/a/b?x=1&y=2")
    assert head == RequestHead(
        method="GET",
        path="/a/b",
        query="x=1&y=2",
        host="app.example",
        port=None,
        framing=BodyFraming.NONE,
        content_length=None,
        keep_alive=True,
        expect_continue=False,
        upgrade=None,
        headers=((b"host", b"app.example"), (b"accept", b"*/*")),
    )


def test_headers_keep_order_and_duplicates() -> None:
    head = check([HOST, (b"X-A", b"1"), (b"x-a", b"2"), (b"X-B", b"")])
    assert head.headers[1:] == ((b"x-a", b"1"), (b"x-a", b"2"), (b"x-b", b""))


def test_obs_text_and_htab_inside_values_are_kept() -> None:
    head = check([HOST, (b"X-Name", b"caf\xc3\xa9\tau lait")])
    assert head.headers[1] == (b"x-name", b"caf\xc3\xa9\tau lait")


@pytest.mark.parametrize("target", [b"/", b"/a", b"/?", b"/a?b?c", b"/%2e%2e/raw"])
def test_origin_form_paths_are_not_normalised_here(target: bytes) -> None:
    head = check(target=target)
    path, _, query = target.decode().partition("?")
    assert (head.path, head.query) == (path, query)


# --- version, limits -------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.0", "0.9", "1.2", "", "1.1 ", "HTTP/1.1"])
def test_unsupported_version_is_505(version: str) -> None:
    assert refused(version=version).status == 505


def test_too_many_headers_is_431() -> None:
    limits = Limits(max_headers=3)
    assert check([HOST, (b"a", b"1"), (b"b", b"2")], limits=limits).host == "app.example"
    extra = [HOST, (b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    assert refused(extra, limits=limits).status == 431


def test_header_bytes_over_limit_is_431() -> None:
    limits = Limits(max_header_bytes=len(b"Hostapp.example") + len(b"x") + 10)
    assert check([HOST, (b"x", b"0123456789")], limits=limits).host == "app.example"
    assert refused([HOST, (b"x", b"0123456789!")], limits=limits).status == 431


def test_default_header_limits_are_enforced() -> None:
    assert refused([HOST] + [(b"x", b"1")] * 100).status == 431
    assert refused([HOST, (b"x", b"y" * 16384)]).status == 431


# --- header syntax ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        b"",
        b"Transfer-Encoding ",
        b" Transfer-Encoding",
        b"Content Length",
        b"Host:",
        b"X:Y",
        b"X\r\nInjected",
        b"X\x00",
        b"caf\xc3\xa9",
        b"(comment)",
        b'a"b',
        b"a/b",
    ],
)
def test_header_name_not_a_token_is_400(name: bytes) -> None:
    violation = refused([HOST, (name, b"v")])
    assert (violation.status, violation.reason) == (400, "invalid header name")


@pytest.mark.parametrize(
    "value",
    [
        b"a\rb",
        b"a\nb",
        b"a\r\nX-Injected: 1",
        b"chunked\r\n\r\nGET /admin HTTP/1.1",
        b"a\x00b",
        b"\x0bchunked",
        b"a\x1b[31m",
        b"a\x7f",
        b"\r\n folded",  # obs-fold as a parser may leave it
    ],
)
def test_control_characters_in_values_are_400(value: bytes) -> None:
    violation = refused([HOST, (b"X-Value", value)])
    assert (violation.status, violation.reason) == (400, "invalid header value")


def test_reason_never_echoes_attacker_bytes() -> None:
    violation = refused([HOST, (b"X-Evil<script>", b"v")])
    assert "script" not in str(violation) and "<" not in violation.reason


# --- method ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", [b"", b"G T", b"GET\r\n", b"GE\x00T", b"G(E)T", b"\xc3\xa9"])
def test_method_not_a_token_is_400(method: bytes) -> None:
    assert refused(method=method).status == 400


@pytest.mark.parametrize("method", [b"TRACE", b"connect", b"Trace", b"Connect"])
def test_trace_and_lower_case_connect_are_405(method: bytes) -> None:
    assert refused(method=method).status == 405


# --- CONNECT, to a TCP app's own hostname ------------------------------------------------


def test_connect_to_the_named_host() -> None:
    head = check(
        [(b"Host", b"db.example:5432"), (b"Proxy-Authorization", b"Bearer t")],
        method=b"CONNECT",
        target=b"db.example:5432",
    )
    assert (head.method, head.host, head.port, head.path) == ("CONNECT", "db.example", 5432, "/")
    assert head.framing is BodyFraming.NONE and not head.keep_alive
    assert (b"proxy-authorization", b"Bearer t") in head.headers


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        (b"/", [(b"Host", b"db.example:5432")]),  # origin-form
        (b"db.example", [(b"Host", b"db.example")]),  # no port
        (b"db.example:5432", [(b"Host", b"other.example:5432")]),  # Host names another
        (b"db.example:5432", [(b"Host", b"db.example:5433")]),
        (b"db.example:5432", [(b"Host", b"db.example:5432"), (b"Content-Length", b"5")]),
        (b"db.example:5432", [(b"Host", b"db.example:5432"), (b"Transfer-Encoding", b"chunked")]),
        (b"db.example:5432", [(b"Host", b"db.example:5432"), (b"Host", b"db.example:5432")]),
        (b"http://db.example:5432/", [(b"Host", b"db.example:5432")]),
    ],
)
def test_connect_refusals(target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    assert refused(headers, method=b"CONNECT", target=target).status == 400


@pytest.mark.parametrize("method", [b"POST", b"PURGE", b"PROPFIND", b"M-SEARCH", b"get"])
def test_other_token_methods_pass(method: bytes) -> None:
    assert check(method=method).method == method.decode()


# --- request target ---------------------------------------------------------------------


def test_target_over_limit_is_414() -> None:
    limits = Limits(max_target_length=10)
    assert check(target=b"/123456789", limits=limits).path == "/123456789"
    assert refused(target=b"/1234567890", limits=limits).status == 414


@pytest.mark.parametrize(
    "target",
    [b"", b"/a b", b"/a\tb", b"/\x00", b"/a\r\n", b"/caf\xc3\xa9", b"/\x7f", b"/\x80"],
)
def test_target_bytes_outside_printable_ascii_are_400(target: bytes) -> None:
    assert refused(target=target).status == 400


@pytest.mark.parametrize("target", [b"/a#b", b"/#", b"/a?b#c", b"http://app.example/#x"])
def test_fragment_in_target_is_400(target: bytes) -> None:
    violation = refused(target=target)
    assert (violation.status, violation.reason) == (400, "fragment in request target")


def test_asterisk_only_for_options() -> None:
    head = check(method=b"OPTIONS", target=b"*")
    assert (head.path, head.query) == ("*", "")
    assert refused(method=b"GET", target=b"*").status == 400
    assert refused(method=b"OPTIONS", target=b"*x").status == 400


@pytest.mark.parametrize(
    "target",
    [
        b"a/b",
        b"?x",
        b"app.example:443",  # authority-form (CONNECT's)
        b"ftp://app.example/",
        b"javascript:alert(1)",
        b"http:/app.example/",
        b"\\admin",
    ],
)
def test_other_target_forms_are_400(target: bytes) -> None:
    assert refused(target=target).status == 400


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"http://app.example/a/b?q=1", "/a/b", "q=1"),
        (b"https://app.example/a", "/a", ""),
        (b"HTTP://APP.example/A", "/A", ""),
        (b"http://app.example", "/", ""),
        (b"http://app.example?q", "/", "q"),
        (b"http://app.example:80/x", "/x", ""),
        (b"https://app.example:443/x", "/x", ""),
    ],
)
def test_absolute_form_for_the_same_host_is_reduced(target: bytes, path: str, query: str) -> None:
    head = check(target=target)
    assert (head.path, head.query, head.host) == (path, query, "app.example")


@pytest.mark.parametrize(
    ("target", "host"),
    [
        (b"http://evil.example/admin", b"app.example"),
        (b"http://app.example.evil/", b"app.example"),
        (b"http://app.example:8080/", b"app.example"),
        (b"http://app.example/", b"app.example:8080"),
        (b"https://app.example/", b"app.example:80"),
        (b"http://127.0.0.1/", b"app.example"),
        (b"http://[::1]/", b"app.example"),
    ],
)
def test_absolute_form_for_another_host_is_400(target: bytes, host: bytes) -> None:
    violation = refused([(b"Host", host)], target=target)
    assert (violation.status, violation.reason) == (400, "absolute-form target names another host")


@pytest.mark.parametrize(
    "target",
    [
        b"http://user@app.example/",
        b"http://evil.example@app.example/",
        b"http:///admin",
        b"http://app.example:0/",
        b"http://app.example:99999/",
        b"http://app.example:/",
        b"http://%61pp.example/",
    ],
)
def test_absolute_form_with_a_bad_authority_is_400(target: bytes) -> None:
    assert refused(target=target).status == 400


def test_absolute_form_needs_a_host_header_even_in_http10() -> None:
    assert refused([], target=b"http://app.example/", version="1.0").status == 400


# --- Host -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        (b"app.example", "app.example", None),
        (b"App.EXAMPLE:8443", "app.example", 8443),
        (b"  app.example  ", "app.example", None),
        (b"10.0.0.1", "10.0.0.1", None),
        (b"10.0.0.1:1", "10.0.0.1", 1),
        (b"[::1]", "[::1]", None),
        (b"[2001:DB8::1]:65535", "[2001:db8::1]", 65535),
        (b"[::ffff:10.0.0.1]", "[::ffff:10.0.0.1]", None),
        (b"under_score.example", "under_score.example", None),
        (b"localhost", "localhost", None),
    ],
)
def test_valid_host_values(value: bytes, host: str, port: int | None) -> None:
    head = check([(b"Host", value)])
    assert (head.host, head.port) == (host, port)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"app.example:",
        b"app.example:0",
        b"app.example:65536",
        b"app.example:123456",
        b"app.example:-1",
        b"app.example:8a",
        b"app.example:80:80",
        b"user@app.example",
        b"app.example/path",
        b"app.example?x",
        b"app example",
        b"app.example,evil.example",
        b"%61pp.example",
        b"caf\xc3\xa9.example",
        b"[::1",
        b"::1",
        b"[not:an:ip]",
        b"[::1%25eth0]",
        b"[v1.fe]",
        b"[1.2.3.4]",
        b"app.example\\evil",
    ],
)
def test_invalid_host_values_are_400(value: bytes) -> None:
    violation = refused([(b"Host", value)])
    assert (violation.status, violation.reason) == (400, "invalid host")


def test_http11_needs_exactly_one_host() -> None:
    assert refused([]).status == 400
    assert refused([HOST, HOST]).status == 400
    assert refused([HOST, (b"HOST", b"evil.example")]).status == 400


def test_http10_may_omit_host_but_not_duplicate_it() -> None:
    head = check([], version="1.0")
    assert (head.host, head.port) == ("", None)
    assert check([HOST], version="1.0").host == "app.example"
    assert refused([HOST, HOST], version="1.0").status == 400


# --- body framing ------------------------------------------------------------------------


def test_no_length_no_coding_means_no_body() -> None:
    head = check(method=b"POST")
    assert (head.framing, head.content_length) == (BodyFraming.NONE, None)


@pytest.mark.parametrize(
    ("value", "length"), [(b"0", 0), (b"5", 5), (b"005", 5), (b" 42 ", 42), (b"9" * 13, 10**13 - 1)]
)
def test_content_length(value: bytes, length: int) -> None:
    head = check(
        [HOST, (b"Content-Length", value)], method=b"POST", limits=Limits(max_content_length=10**14)
    )
    assert (head.framing, head.content_length) == (BodyFraming.LENGTH, length)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"5, 5",
        b"5,5",
        b"5,",
        b"+5",
        b"-1",
        b"0x10",
        b"1e3",
        b"5 5",
        b"5.0",
        b"\xd9\xa3",
        b"1_0",
    ],
)
def test_malformed_content_length_is_400(value: bytes) -> None:
    violation = refused([HOST, (b"Content-Length", value)])
    assert (violation.status, violation.reason) == (400, "invalid Content-Length")


def test_content_length_longer_than_19_digits_is_400() -> None:
    huge = Limits(max_content_length=10**30)
    assert check([HOST, (b"Content-Length", b"1" * 19)], limits=huge).content_length == int(
        "1" * 19
    )
    assert refused([HOST, (b"Content-Length", b"1" * 20)], limits=huge).status == 400
    assert refused([HOST, (b"Content-Length", b"0" * 20)], limits=huge).status == 400


@pytest.mark.parametrize("values", [[b"5", b"5"], [b"5", b"6"], [b"0", b"0"]])
def test_duplicate_content_length_is_400_even_if_equal(values: list[bytes]) -> None:
    assert refused([HOST, *((b"Content-Length", v) for v in values)]).status == 400


def test_content_length_over_limit_is_413() -> None:
    limits = Limits(max_content_length=100)
    assert check([HOST, (b"Content-Length", b"100")], limits=limits).content_length == 100
    assert refused([HOST, (b"Content-Length", b"101")], limits=limits).status == 413
    assert refused([HOST, (b"Content-Length", str(1 << 41).encode())]).status == 413


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")],
        [(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"0")],
        [(b"content-length", b"5"), (b"TRANSFER-ENCODING", b"identity")],
        [(b"Content-Length", b"5"), (b"Transfer-Encoding", b"")],
    ],
)
def test_content_length_with_transfer_encoding_is_400(headers: list[Header]) -> None:
    violation = refused([HOST, *headers], method=b"POST")
    assert (violation.status, violation.reason) == (
        400,
        "both Content-Length and Transfer-Encoding",
    )


@pytest.mark.parametrize("value", [b"chunked", b"Chunked", b"CHUNKED", b" chunked", b"chunked\t"])
def test_single_chunked_is_chunked(value: bytes) -> None:
    head = check([HOST, (b"Transfer-Encoding", value)], method=b"POST")
    assert (head.framing, head.content_length) == (BodyFraming.CHUNKED, None)


@pytest.mark.parametrize(
    "value",
    [
        b"chunkedx",
        b"xchunked",
        b"chunked x",
        b"chunk",
        b"chunked;q=1",
        b"chu\tnked",
        b"",
        b",",
        b"chunked,",
        b"chunked, chunked",
        b"chunked,chunked",
        b"chunked, gzip",
        b"br, chunked",
        b'"chunked"',
    ],
)
def test_malformed_transfer_encoding_is_400(value: bytes) -> None:
    assert refused([HOST, (b"Transfer-Encoding", value)], method=b"POST").status == 400


@pytest.mark.parametrize(
    "value",
    [b"gzip", b"deflate", b"compress", b"identity", b"gzip, chunked", b"GZIP,chunked", b"x-gzip"],
)
def test_known_but_unsupported_transfer_coding_is_501(value: bytes) -> None:
    assert refused([HOST, (b"Transfer-Encoding", value)], method=b"POST").status == 501


@pytest.mark.parametrize(
    ("first", "second", "status"),
    [(b"chunked", b"chunked", 400), (b"gzip", b"chunked", 501), (b"chunked", b"x", 400)],
)
def test_transfer_encoding_over_two_lines_is_refused(
    first: bytes, second: bytes, status: int
) -> None:
    headers = [HOST, (b"Transfer-Encoding", first), (b"Transfer-Encoding", second)]
    assert refused(headers, method=b"POST").status == status


def test_transfer_encoding_in_http10_is_400() -> None:
    headers = [HOST, (b"Transfer-Encoding", b"chunked")]
    assert refused(headers, method=b"POST", version="1.0").status == 400


# --- Connection, Expect, Upgrade -------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("1.1", [], True),
        ("1.1", [b"keep-alive"], True),
        ("1.1", [b"close"], False),
        ("1.1", [b"Close"], False),
        ("1.1", [b"x-custom, CLOSE"], False),
        ("1.1", [b"x-custom", b"close"], False),
        ("1.1", [b"closed"], True),
        ("1.1", [b", ,keep-alive,"], True),
        ("1.0", [], False),
        ("1.0", [b"Keep-Alive"], True),
        ("1.0", [b"upgrade", b"keep-alive"], True),
        ("1.0", [b"keep-alive, close"], False),
        ("1.0", [b"keep-alive-ish"], False),
    ],
)
def test_keep_alive(version: str, connection: list[bytes], keep_alive: bool) -> None:
    head = check([HOST, *((b"Connection", v) for v in connection)], version=version)
    assert head.keep_alive is keep_alive


@pytest.mark.parametrize("value", [b"close keep-alive", b'"close"', b"a/b"])
def test_connection_elements_must_be_tokens(value: bytes) -> None:
    assert refused([HOST, (b"Connection", value)]).status == 400


@pytest.mark.parametrize("value", [b"100-continue", b"100-Continue", b" 100-CONTINUE "])
def test_expect_100_continue(value: bytes) -> None:
    assert check([HOST, (b"Expect", value)]).expect_continue is True
    assert check().expect_continue is False


def test_expect_100_continue_is_ignored_in_http10() -> None:
    assert check([HOST, (b"Expect", b"100-continue")], version="1.0").expect_continue is False


@pytest.mark.parametrize("value", [b"", b"200-ok", b"100-continue, x", b"100-continued", b"x=1"])
def test_other_expectations_are_417(value: bytes) -> None:
    assert refused([HOST, (b"Expect", value)]).status == 417
    assert refused([HOST, (b"Expect", b"100-continue"), (b"Expect", value)]).status == 417


@pytest.mark.parametrize(
    ("headers", "upgrade"),
    [
        ([(b"Connection", b"Upgrade"), (b"Upgrade", b"WebSocket")], "websocket"),
        ([(b"Connection", b"keep-alive, upgrade"), (b"Upgrade", b"websocket")], "websocket"),
        ([(b"Connection", b"upgrade"), (b"Upgrade", b"websocket, h2c")], "websocket"),
        # Only WebSocket is passed on, and only as the client's first choice; others are
        # ignored (h2c passed on would let HTTP/2 reach the app past every decision).
        ([(b"Connection", b"upgrade"), (b"Upgrade", b"h2c")], None),
        ([(b"Connection", b"upgrade"), (b"Upgrade", b"h2c, websocket")], None),
        ([(b"Connection", b"upgrade"), (b"Upgrade", b"Foo/2, websocket")], None),
        ([(b"Connection", b"upgrade"), (b"Upgrade", b"TLS/1.2")], None),
        ([(b"Upgrade", b"websocket")], None),
        ([(b"Connection", b"upgrade")], None),
        ([(b"Connection", b"upgrade"), (b"Upgrade", b"")], None),
        ([(b"Connection", b"upgraded"), (b"Upgrade", b"websocket")], None),
    ],
)
def test_upgrade(headers: list[Header], upgrade: str | None) -> None:
    assert check([HOST, *headers]).upgrade == upgrade


def test_upgrade_is_ignored_in_http10() -> None:
    headers = [HOST, (b"Connection", b"upgrade"), (b"Upgrade", b"websocket")]
    assert check(headers, version="1.0").upgrade is None


@pytest.mark.parametrize("framing", [(b"Content-Length", b"3"), (b"Transfer-Encoding", b"chunked")])
@pytest.mark.parametrize("offer", [b"h2c", b"", b",", b" , ,"])
def test_an_ignored_upgrade_with_a_body_is_400(framing: Header, offer: bytes) -> None:
    """The parser stops at the head of any request offering an upgrade, even one that names
    no protocol: a body after one the gateway ignores could not be told apart from the next
    request."""
    headers = [HOST, (b"Connection", b"upgrade"), (b"Upgrade", offer), framing]
    assert refused(headers, method=b"POST").status == 400
    websocket = [HOST, (b"Connection", b"upgrade"), (b"Upgrade", b"websocket"), framing]
    assert check(websocket, method=b"POST").upgrade == "websocket"


@pytest.mark.parametrize("value", [b"web socket", b"a/b/c", b"/13", b"ws;v=1"])
def test_malformed_upgrade_is_400(value: bytes) -> None:
    headers = [HOST, (b"Connection", b"upgrade"), (b"Upgrade", value)]
    assert refused(headers).status == 400


# --- assembled smuggling attempts --------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b"Content-Length", b"6"), (b"Transfer-Encoding", b"chunked")], 400),  # CL.TE
        ([(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"x")], 400),  # TE.TE
        ([(b"Transfer-Encoding", b"xchunked")], 400),
        ([(b"Transfer-Encoding ", b"chunked"), (b"Content-Length", b"4")], 400),
        ([(b"Content-Length", b"4"), (b"Content-Length", b"40")], 400),
        ([(b"Content-Length", b"4\r\nTransfer-Encoding: chunked")], 400),
        ([(b"X-Ignore", b"x\nTransfer-Encoding: chunked")], 400),
    ],
)
def test_smuggling_attempts(headers: list[Header], status: int) -> None:
    assert refused([HOST, *headers], method=b"POST").status == status


def test_transfer_encoding_with_underscore_is_just_another_header() -> None:
    # Not a smuggling vector on its own: only "transfer-encoding" frames a body here, and
    # the gateway forwards the head it was given, so the upstream sees no body either.
    head = check([HOST, (b"Transfer_Encoding", b"chunked")], method=b"POST")
    assert head.framing is BodyFraming.NONE
