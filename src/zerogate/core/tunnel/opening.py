"""The first bytes of each tunnel stream: the gateway's open request and the connector's reply.

Each is a 2-byte big-endian length and that many bytes of UTF-8 JSON. The request is
`{"grant": "<JWS>"}` (see `grants.py`); the reply `{"ok": true}` or
`{"ok": false, "error": "<code>", "detail": "<text>"}`. After the reply, the stream carries the
application's bytes untouched, both ways. `OpeningReader` takes bytes in any split and hands
back the message and whatever application bytes followed it in the same read.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass
from typing import Final

MAX_OPENING_BYTES: Final = 8192


class OpenError(enum.StrEnum):
    """Why a connector refused a stream; stable values, logged and counted by both sides."""

    BAD_REQUEST = "bad_request"
    BAD_GRANT = "bad_grant"
    NOT_ALLOWED = "not_allowed"  # outside the connector's allow-list
    UNRESOLVED = "unresolved"
    UNREACHABLE = "unreachable"  # refused, timed out or unroutable
    DRAINING = "draining"


class OpeningViolation(ValueError):
    """The peer broke the opening format; the stream must be reset."""


@dataclass(frozen=True, slots=True)
class Hello:
    """The gateway's first stream on a new tunnel: which of its worker processes took it.

    Worker processes share the tunnel port, so a connector keeps dialling until it holds a
    tunnel to each of the `workers`; every worker can then reach it.
    """

    gateway: str
    worker: int
    workers: int


@dataclass(frozen=True, slots=True)
class OpenReply:
    ok: bool
    error: OpenError | None = None
    detail: str = ""


def _frame(message: dict[str, object]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_OPENING_BYTES:
        raise ValueError("an opening message must fit in 8 KiB")
    return struct.pack(">H", len(body)) + body


def encode_request(grant: str) -> bytes:
    return _frame({"grant": grant})


def encode_hello(hello: Hello) -> bytes:
    return _frame(
        {"hello": {"gateway": hello.gateway, "worker": hello.worker, "workers": hello.workers}}
    )


def encode_reply(reply: OpenReply) -> bytes:
    if reply.ok:
        return _frame({"ok": True})
    assert reply.error is not None
    return _frame({"ok": False, "error": reply.error.value, "detail": reply.detail[:500]})


class OpeningReader:
    """Collects one opening message from a stream's first bytes."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> tuple[bytes, bytes] | None:
        """(message body, bytes after it) once complete, else None; raises OpeningViolation."""
        self._buffer += data
        if len(self._buffer) < 2:
            return None
        (length,) = struct.unpack_from(">H", self._buffer)
        if length > MAX_OPENING_BYTES:
            raise OpeningViolation(f"an opening message of {length} bytes is too long")
        if len(self._buffer) < 2 + length:
            return None
        body, rest = self._buffer[2 : 2 + length], self._buffer[2 + length :]
        self._buffer = b""
        return body, rest


def decode_request(body: bytes) -> str | Hello:
    """The grant of an open request, or the gateway's hello."""
    data = _object(body)
    if data.keys() == {"hello"}:
        return _hello(data["hello"])
    grant = data.get("grant")
    if data.keys() != {"grant"} or not isinstance(grant, str):
        raise OpeningViolation('an open request is {"grant": string}')
    return grant


def _hello(data: object) -> Hello:
    if not isinstance(data, dict) or data.keys() != {"gateway", "worker", "workers"}:
        raise OpeningViolation("a hello names the gateway, its worker and how many it has")
    gateway, worker, workers = data["gateway"], data["worker"], data["workers"]
    if (
        not isinstance(gateway, str)
        or type(worker) is not int
        or type(workers) is not int
        or not 0 <= worker < workers <= 256
    ):
        raise OpeningViolation("a hello's worker must be below its count of workers (<= 256)")
    return Hello(gateway[:200], worker, workers)


def decode_reply(body: bytes) -> OpenReply:
    data = _object(body)
    if data == {"ok": True}:
        return OpenReply(True)
    error, detail = data.get("error"), data.get("detail", "")
    if data.get("ok") is not False or not isinstance(error, str) or not isinstance(detail, str):
        raise OpeningViolation('an open reply is {"ok": true} or ok false with an error')
    try:
        code = OpenError(error)
    except ValueError:
        raise OpeningViolation(f"unknown open error {error!r}") from None
    return OpenReply(False, code, detail[:500])


def _object(body: bytes) -> dict[str, object]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise OpeningViolation("an opening message is JSON") from None
    if not isinstance(data, dict):
        raise OpeningViolation("an opening message is a JSON object")
    return data
