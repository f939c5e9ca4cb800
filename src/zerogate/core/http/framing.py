"""Request-head rules (RFC 9110/9112): one meaning for every request, or a refusal.

Where it sits: the gateway's protocol code parses the bytes (httptools) and hands the pieces
to `check_request_head` before anything is routed, authorised or forwarded. Everything that
could make the gateway and an upstream server read the same bytes differently — request
smuggling through Content-Length/Transfer-Encoding, a Host that disagrees with the target,
header values carrying line breaks — is refused here with the status to answer.

Invariants of a returned `RequestHead`:
- exactly one body framing: NONE, LENGTH (with its length) or CHUNKED, never two candidates;
- `host` is a syntactically valid host (lower-case) and an absolute-form target named it too;
- `path` is origin-form ("/..."), or "*" for OPTIONS; it is *not* normalised (see `paths`);
- every header name is a token and every value is free of control characters, OWS trimmed.
`HttpViolation.reason` is a fixed phrase, never an echo of the client's bytes.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

Headers = tuple[tuple[bytes, bytes], ...]
_Named = tuple[str, str, int | None]  # (scheme, host, port) of an absolute-form target

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_BYTE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # controls and DEL; HTAB allowed
_OWS = b" \t"
_TARGET = re.compile(rb"[\x21-\x7e]*")
_ABSOLUTE = re.compile(r"(?P<scheme>https?)://(?P<authority>[^/?]*)(?P<rest>.*)", re.IGNORECASE)
# DNS-style reg-name or bracketed IPv6; sub-delims, user-info and %-escapes are refused.
_AUTHORITY = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?")
PASSED_UPGRADES = frozenset({"websocket"})
_PROTOCOL = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:/[!#$%&'*+\-.^_`|~0-9A-Za-z]+)?")
_CONTENT_LENGTH = re.compile(rb"[0-9]{1,19}")
_DEFAULT_PORT = {"http": 80, "https": 443}
# Codings we know but do not decode: refusing them is "not implemented", not a bad request.
_KNOWN_CODINGS = frozenset(
    {"chunked", "gzip", "x-gzip", "deflate", "compress", "x-compress", "identity"}
)
# Reflected headers (TRACE) are never offered; CONNECT only as exactly "CONNECT", to a TCP
# app's own hostname (see `_connect_head`): never a tunnel to anywhere else.
_REFUSED_METHODS = frozenset({"CONNECT", "TRACE"})
# The headers whose meaning is checked here, gathered by name in the one pass over the head.
_FRAMING_HEADERS = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade"}
)
_Gathered = dict[bytes, list[bytes]]


def is_header_name(name: str) -> bool:
    """Whether `name` is an HTTP field name (a token, RFC 9110 §5.1), as an admin types it."""
    return name.isascii() and _TOKEN.fullmatch(name.encode()) is not None


class BodyFraming(enum.Enum):
    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"


@dataclass(frozen=True, slots=True)
class Limits:
    max_headers: int = 100
    max_header_bytes: int = 16384  # sum of len(name) + len(value) over all headers
    max_target_length: int = 8192
    max_content_length: int = 1 << 40


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    path: str  # origin-form path before '?', not normalised; "*" for OPTIONS *
    query: str  # after '?', without it; "" if none
    host: str  # lower-case; an IPv6 literal keeps its brackets; "" only for HTTP/1.0
    port: int | None
    framing: BodyFraming
    content_length: int | None  # set exactly when framing is LENGTH
    keep_alive: bool
    expect_continue: bool
    upgrade: str | None  # lower-case first Upgrade protocol, only with Connection: upgrade
    headers: Headers  # in order; names lower-cased, values OWS-trimmed


class HttpViolation(Exception):
    """A request the gateway refuses; `status` is the response code, `reason` safe to show."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def check_request_head(
    method: bytes,
    target: bytes,
    http_version: str,
    headers: Sequence[tuple[bytes, bytes]],
    limits: Limits = Limits(),
) -> RequestHead:
    if http_version not in ("1.1", "1.0"):
        raise HttpViolation(505, "HTTP version not supported")
    http10 = http_version == "1.0"
    _check_limits(headers, limits)
    if method == b"CONNECT" and not http10:
        return _connect_head(target, headers, limits)
    name = _check_method(method)
    path, query, named = _split_target(name, target, limits)
    cleaned, gathered = _clean_headers(headers)
    host, port = _host(gathered, http10)
    if named is not None and not _same_authority(named, (host, port)):
        raise HttpViolation(400, "absolute-form target names another host")
    framing, length = _body_framing(gathered, http10, limits)
    connection = _list_values(gathered.get(b"connection", ()))
    return RequestHead(
        method=name,
        path=path,
        query=query,
        host=host,
        port=port,
        framing=framing,
        content_length=length,
        keep_alive="close" not in connection and (not http10 or "keep-alive" in connection),
        expect_continue=_expect_continue(gathered.get(b"expect", ()), http10),
        upgrade=_passed_upgrade(gathered, connection, http10, framing),
        headers=cleaned,
    )


def _connect_head(
    target: bytes, headers: Sequence[tuple[bytes, bytes]], limits: Limits
) -> RequestHead:
    """CONNECT host:port (RFC 9110 §9.3.6): the authority-form target must be what Host
    says, and the request has no content (a body would be the tunnel's first bytes)."""
    if len(target) > limits.max_target_length or not _TARGET.fullmatch(target):
        raise HttpViolation(400, "invalid request target")
    try:
        named = _parse_authority(target.decode("ascii"))
    except HttpViolation:
        raise HttpViolation(400, "CONNECT needs an authority-form target (host:port)") from None
    cleaned, gathered = _clean_headers(headers)
    host = _host(gathered, http10=False)
    if named[1] is None or named != host:
        raise HttpViolation(400, "CONNECT target and Host differ")
    if gathered.get(b"content-length") or gathered.get(b"transfer-encoding"):
        raise HttpViolation(400, "a CONNECT request has no content")
    return RequestHead(
        method="CONNECT",
        path="/",
        query="",
        host=host[0],
        port=host[1],
        framing=BodyFraming.NONE,
        content_length=None,
        keep_alive=False,  # the connection becomes the tunnel
        expect_continue=False,
        upgrade=None,
        headers=cleaned,
    )


def _check_limits(headers: Sequence[tuple[bytes, bytes]], limits: Limits) -> None:
    if len(headers) > limits.max_headers:
        raise HttpViolation(431, "too many header fields")
    if sum(len(n) + len(v) for n, v in headers) > limits.max_header_bytes:
        raise HttpViolation(431, "header fields too large")


def _clean_headers(headers: Sequence[tuple[bytes, bytes]]) -> tuple[Headers, _Gathered]:
    """The headers checked, lower-cased and trimmed; and the framing headers' values by name
    (one pass: this runs for every request)."""
    cleaned = []
    gathered: _Gathered = {}
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise HttpViolation(400, "invalid header name")
        # CR/LF/NUL in a value would let the forwarded head say something else upstream.
        if _BAD_VALUE_BYTE.search(value):
            raise HttpViolation(400, "invalid header value")
        lowered, trimmed = name.lower(), value.strip(_OWS)
        cleaned.append((lowered, trimmed))
        if lowered in _FRAMING_HEADERS:
            gathered.setdefault(lowered, []).append(trimmed)
    return tuple(cleaned), gathered


def _check_method(method: bytes) -> str:
    if not _TOKEN.fullmatch(method):
        raise HttpViolation(400, "invalid method")
    name = method.decode("ascii")
    # Methods are case-sensitive, but some servers are not: refuse "connect" as well.
    if name.upper() in _REFUSED_METHODS:
        raise HttpViolation(405, "method not allowed")
    return name


def _split_target(method: str, target: bytes, limits: Limits) -> tuple[str, str, _Named | None]:
    """(path, query, authority named by an absolute-form target, if it was one)."""
    if len(target) > limits.max_target_length:
        raise HttpViolation(414, "request target too long")
    if not target or not _TARGET.fullmatch(target):
        raise HttpViolation(400, "invalid request target")
    text = target.decode("ascii")
    if "#" in text:
        raise HttpViolation(400, "fragment in request target")
    if text == "*":
        if method != "OPTIONS":
            raise HttpViolation(400, "asterisk target is only for OPTIONS")
        return "*", "", None
    named = None
    absolute = _ABSOLUTE.fullmatch(text)
    if absolute:
        named = _named_authority(absolute)
        # Reduced to origin-form: an empty path means "/" (RFC 9112 §3.2.2).
        text = absolute["rest"] if absolute["rest"].startswith("/") else "/" + absolute["rest"]
    if not text.startswith("/"):
        raise HttpViolation(400, "invalid request target")
    path, _, query = text.partition("?")
    return path, query, named


def _named_authority(absolute: re.Match[str]) -> _Named:
    try:
        host, port = _parse_authority(absolute["authority"])
    except HttpViolation:
        raise HttpViolation(400, "invalid authority in request target") from None
    return absolute["scheme"].lower(), host, port


def _same_authority(named: _Named, host: tuple[str, int | None]) -> bool:
    # Effective ports: "http://a/" with "Host: a:8080" names two different servers.
    scheme, target_host, target_port = named
    default = _DEFAULT_PORT[scheme]
    return (target_host, target_port or default) == (host[0], host[1] or default)


def _parse_authority(text: str) -> tuple[str, int | None]:
    """`host[:port]` as (lower-case host, port); brackets kept on IPv6 literals."""
    if len(text) <= 262:  # a DNS name and a port: remembered, so a long one cannot fill memory
        return _parse_short_authority(text)
    return _parse_authority_now(text)


@functools.lru_cache(maxsize=4096)  # the same few Host values, request after request
def _parse_short_authority(text: str) -> tuple[str, int | None]:
    return _parse_authority_now(text)


def _parse_authority_now(text: str) -> tuple[str, int | None]:
    match = _AUTHORITY.fullmatch(text)
    if not match:
        raise HttpViolation(400, "invalid host")
    host = match["host"].lower()
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise HttpViolation(400, "invalid host") from None
    port = None if match["port"] is None else int(match["port"])
    if port is not None and not 1 <= port <= 65535:
        raise HttpViolation(400, "invalid host")
    return host, port


def _host(gathered: _Gathered, http10: bool) -> tuple[str, int | None]:
    values = gathered.get(b"host", ())
    if http10 and not values:
        return "", None
    if len(values) != 1:
        raise HttpViolation(400, "exactly one Host header is required")
    return _parse_authority(values[0].decode("latin-1"))


def _body_framing(
    gathered: _Gathered, http10: bool, limits: Limits
) -> tuple[BodyFraming, int | None]:
    lengths = gathered.get(b"content-length", [])
    codings = gathered.get(b"transfer-encoding", [])
    # Two candidate framings is the classic smuggling vector: refuse rather than choose.
    if lengths and codings:
        raise HttpViolation(400, "both Content-Length and Transfer-Encoding")
    if codings:
        if http10:
            raise HttpViolation(400, "Transfer-Encoding in an HTTP/1.0 request")
        _check_transfer_coding(codings)
        return BodyFraming.CHUNKED, None
    if lengths:
        return BodyFraming.LENGTH, _content_length(lengths, limits)
    return BodyFraming.NONE, None


def _check_transfer_coding(values: list[bytes]) -> None:
    """Accept a single `Transfer-Encoding: chunked`; explain why anything else is refused."""
    if len(values) == 1 and values[0].lower() == b"chunked":
        return
    codings = [c.strip(_OWS).lower() for v in values for c in v.split(b",")]
    if not all(_TOKEN.fullmatch(c) for c in codings):
        raise HttpViolation(400, "invalid Transfer-Encoding")
    names = [c.decode("ascii") for c in codings]
    if not set(names) <= _KNOWN_CODINGS:
        raise HttpViolation(400, "unknown transfer coding")
    # chunked twice, or not last, leaves the body length undefined (RFC 9112 §6.3).
    if names.count("chunked") > 1 or ("chunked" in names and names[-1] != "chunked"):
        raise HttpViolation(400, "invalid Transfer-Encoding")
    raise HttpViolation(501, "transfer coding not implemented")


def _content_length(values: list[bytes], limits: Limits) -> int:
    # Even equal duplicates are refused: some servers take the first, some the sum.
    if len(values) != 1 or not _CONTENT_LENGTH.fullmatch(values[0]):
        raise HttpViolation(400, "invalid Content-Length")
    length = int(values[0])
    if length > limits.max_content_length:
        raise HttpViolation(413, "content too large")
    return length


def _list_values(values: Sequence[bytes]) -> frozenset[str]:
    """The lower-case tokens of a comma-separated list header, over all its lines."""
    if not values:
        return frozenset()
    items = [i.strip(_OWS) for v in values for i in v.split(b",")]
    items = [i for i in items if i]  # empty list elements are legal (RFC 9110 §5.6.1)
    if not all(_TOKEN.fullmatch(i) for i in items):
        raise HttpViolation(400, "invalid list header")
    return frozenset(i.decode("ascii").lower() for i in items)


def _expect_continue(values: Sequence[bytes], http10: bool) -> bool:
    if any(v.lower() != b"100-continue" for v in values):
        raise HttpViolation(417, "expectation not supported")
    # An HTTP/1.0 client cannot know 100 Continue: RFC 9110 §10.1.1 says ignore it.
    return bool(values) and not http10


def _passed_upgrade(
    gathered: _Gathered, connection: frozenset[str], http10: bool, framing: BodyFraming
) -> str | None:
    """The upgrade the gateway passes on: WebSocket only. Any other it ignores (RFC 9110
    §7.8 lets a server): `Upgrade: h2c` passed on would let a client speak HTTP/2 straight to
    an app that accepts it, every later request past the gateway's decisions (h2c smuggling).
    An ignored upgrade must not carry a body: the parser stops at the head of any request that
    offers one, so the body could not be told from the next request. An Upgrade header that
    names no protocol (`Upgrade: ,`) is an offer too: the parser stops at it all the same."""
    if "upgrade" not in connection or b"upgrade" not in gathered:
        return None
    offered = _upgrade(gathered)
    if offered is not None and offered in PASSED_UPGRADES and not http10:
        return offered
    if framing is not BodyFraming.NONE:
        raise HttpViolation(400, "an Upgrade the gateway does not pass on, with a body")
    return None


def _upgrade(gathered: _Gathered) -> str | None:
    values = gathered.get(b"upgrade", [])
    protocols = [p.strip(_OWS) for v in values for p in v.split(b",")]
    protocols = [p for p in protocols if p]
    if not all(_PROTOCOL.fullmatch(p) for p in protocols):
        raise HttpViolation(400, "invalid Upgrade")
    return protocols[0].decode("ascii").lower() if protocols else None
