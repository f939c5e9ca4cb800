"""A minimal session authorizer, the do-it-yourself half of an nginx/Caddy "zero-trust" set-up.

`bench/http.py` puts it behind nginx `auth_request` (scenario c) and Caddy `forward_auth`
(scenario d). It is what a careful team would write without a framework: asyncio on uvloop,
httptools to parse HTTP/1.1 with keep-alive (and pipelining), one process.

Every request is answered by its headers alone. The session is the cookie `zg_session=<token>`
or `Authorization: Bearer <token>`; the token is an ES256 JWT verified with joserfc against the
public key given with `--jwk` (a JWK JSON file). A verified token is cached by its text together
with its `sub` and expiry, so each token's signature is checked once, as a production authorizer
would do; a cached token is refused again once it expires. Answers: 200 with `X-User: <sub>`, or
401. Run: `.venv/bin/python bench/http_authorizer.py --port N --jwk FILE`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Final, cast

import httptools
import uvloop
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

CACHE_LIMIT: Final = 100_000  # tokens; the cache is dropped whole when it grows past this
COOKIE: Final = b"zg_session="
BEARER: Final = b"bearer "
DENIED: Final = (
    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nWWW-Authenticate: Bearer\r\n\r\n"
)


class Verifier:
    """ES256 JWT verification with a cache of verified tokens: {token: (sub, expiry)}."""

    def __init__(self, key: ECKey) -> None:
        self._key = key
        self._cache: dict[bytes, tuple[str, float]] = {}

    def subject(self, token: bytes) -> str | None:
        """The `sub` of a valid, unexpired token, else None."""
        now = time.time()
        cached = self._cache.get(token)
        if cached is None:
            cached = self._verify(token, int(now))
            if cached is None:
                return None
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[token] = cached
        sub, expires_at = cached
        if now >= expires_at:
            del self._cache[token]
            return None
        return sub

    def _verify(self, token: bytes, now: int) -> tuple[str, float] | None:
        try:
            claims = jwt.decode(token, self._key, algorithms=["ES256"]).claims
            registry = jwt.JWTClaimsRegistry(
                now=now, exp={"essential": True}, sub={"essential": True}
            )
            registry.validate(claims)
        except (JoseError, ValueError, TypeError, KeyError):
            return None
        return str(claims["sub"]), float(claims["exp"])


def session_token(cookie: bytes | None, authorization: bytes | None) -> bytes | None:
    """The token from `Cookie: zg_session=...` or `Authorization: Bearer ...`, if any."""
    if cookie:
        for part in cookie.split(b";"):
            part = part.strip()
            if part.startswith(COOKIE):
                return part[len(COOKIE) :] or None
    if authorization and authorization[: len(BEARER)].lower() == BEARER:
        return authorization[len(BEARER) :].strip() or None
    return None


def allowed(sub: str) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-User: " + sub.encode("utf-8") + b"\r\n\r\n"


class AuthProtocol(asyncio.Protocol):
    """One client connection: parse requests as they arrive, answer each in order."""

    def __init__(self, verifier: Verifier) -> None:
        self._verifier = verifier
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._cookie: bytes | None = None
        self._authorization: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)  # uvloop's does not subclass it

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                self._transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._cookie = self._authorization = None

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"cookie":
            self._cookie = value if self._cookie is None else self._cookie + b"; " + value
        elif lowered == b"authorization":
            self._authorization = value

    def on_message_complete(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        token = session_token(self._cookie, self._authorization)
        sub = self._verifier.subject(token) if token is not None else None
        transport.write(DENIED if sub is None else allowed(sub))
        if not self._parser.should_keep_alive():
            transport.close()


async def serve(port: int, verifier: Verifier) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: AuthProtocol(verifier), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="listen on 127.0.0.1:PORT")
    parser.add_argument("--jwk", type=Path, required=True, help="public EC P-256 JWK (JSON)")
    args = parser.parse_args()
    key = ECKey.import_key(json.loads(args.jwk.read_text()))
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.port, Verifier(key)))


if __name__ == "__main__":
    main()
