"""A test upstream (an application behind the gateway), served by uvicorn in its own process.

Routes: /echo (what arrived: method, path, query, headers, body size and hash), /fixed and
/stream (N bytes with and without Content-Length), /slow (answers after S seconds), /stall
(half of its answer, then S seconds of silence), /drip (P pieces, one every S seconds), /seen
(every request path this process received, to prove a smuggled request never arrived, and in
`whole` those whose body /echo read to its end, with its method and size), /ws
(WebSocket echo). Written as a bare ASGI app so nothing between the socket and the test's
assertions rewrites what the gateway sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SEEN: list[str] = []
WHOLE: list[list[object]] = []  # [path, method, body size] of each request read to its end
CHUNK = 64 * 1024


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            event = (await receive())["type"]
            await send({"type": f"{event}.complete"})  # lifespan.startup / lifespan.shutdown
            if event == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await _websocket_echo(receive, send)
        return
    SEEN.append(scope["raw_path"].decode("latin-1"))
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    if path == "/fixed":
        await _bytes(send, int(query.get("size", "0")), fixed=True)
    elif path == "/stream":
        await _bytes(send, int(query.get("size", "0")), fixed=False)
    elif path == "/slow":
        await asyncio.sleep(float(query.get("seconds", "1")))
        await _json(send, {"slept": True})
    elif path == "/stall":
        await _stall(send, int(query.get("size", "1000")), float(query.get("seconds", "30")))
    elif path == "/drip":
        await _drip(send, int(query.get("pieces", "5")), float(query.get("every", "0.5")))
    elif path == "/seen":
        await _json(send, {"seen": SEEN, "whole": WHOLE})
    else:
        await _echo(scope, receive, send)


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    digest, size = hashlib.sha256(), 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return  # the request never came whole: nothing to run
        body = message.get("body", b"")
        digest.update(body)
        size += len(body)
        if not message.get("more_body"):
            break
    WHOLE.append([scope["raw_path"].decode("latin-1"), scope["method"], size])
    await _json(
        send,
        {
            "method": scope["method"],
            "path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body_size": size,
            "body_sha256": digest.hexdigest(),
        },
    )


async def _json(send: Send, document: object) -> None:
    body = json.dumps(document).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _bytes(send: Send, size: int, *, fixed: bool) -> None:
    headers = [(b"content-type", b"application/octet-stream")]
    if fixed:
        headers.append((b"content-length", b"%d" % size))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    block = b"z" * CHUNK
    left = size
    while left > 0:
        part = block[: min(CHUNK, left)]
        left -= len(part)
        await send({"type": "http.response.body", "body": part, "more_body": left > 0})
    if size == 0:
        await send({"type": "http.response.body", "body": b""})


async def _stall(send: Send, size: int, seconds: float) -> None:
    headers = [(b"content-length", b"%d" % (2 * size))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"a" * size, "more_body": True})
    await asyncio.sleep(seconds)
    await send({"type": "http.response.body", "body": b"b" * size})


async def _drip(send: Send, pieces: int, every: float) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})  # chunked
    for n in range(pieces):
        await asyncio.sleep(every)
        await send({"type": "http.response.body", "body": b"%d;" % n, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _websocket_echo(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            reply: Message = {"type": "websocket.send"}
            if message.get("text") is not None:
                reply["text"] = message["text"]
            else:
                reply["bytes"] = message["bytes"]
            await send(reply)
        else:
            return
