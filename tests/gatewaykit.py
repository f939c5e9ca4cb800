"""Helpers for gateway tests: a real upstream process, the gateway on its own event loop in a
thread, and a raw-socket client that sends exactly the bytes a test wrote."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httptools
import httpx
import pytest
import uvloop

from netkit import free_port
from zerogate.gateway.http import Gateway, Handler, Options
from zerogate.gateway.server import listen
from zgproc import Running, admin

TESTS = Path(__file__).parent


def wait_for_port(port: int, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    """The test upstream app (tests/upstream_app.py) on a free port, for a test module."""
    port = free_port()
    process = start_upstream(port)
    yield port
    process.terminate()
    process.wait(10)


def publish_app(up: Running, name: str, hostname: str, target: str, policy: Path) -> None:
    """An http app in the inventory and the policy in `policy` pushed, through the CLI."""
    assert up.token is not None
    created = admin(
        up, up.token, "app", "create", name, "--kind", "http", "--hostname", hostname,
        "--target", target,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    pushed = admin(up, up.token, "policy", "push", str(policy))
    assert pushed.returncode == 0, pushed.stderr


_GATEWAY_TOKENS: dict[tuple[Path, str], str] = {}


def gateway_token(up: Running, name: str) -> str:
    """A token for one more gateway of `up`, bound to its `--name` (made once per name)."""
    key = (up.data_dir, name)
    if key not in _GATEWAY_TOKENS:
        assert up.token is not None
        made = admin(up, up.token, "token", "create", name, "--scope", "gateway", "--gateway", name)
        assert made.returncode == 0, made.stderr
        _GATEWAY_TOKENS[key] = made.stdout.strip()
    return _GATEWAY_TOKENS[key]


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "upstream_app:app",
            "--app-dir",
            str(TESTS),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--ws",
            "websockets-sansio",
        ],
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return process


class GatewayThread:
    """The gateway listening on `port`, run by its own uvloop loop in a daemon thread."""

    def __init__(
        self,
        handler: Handler,
        port: int,
        options: Options | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.port = port
        self.tls = tls
        self.loop = uvloop.new_event_loop()
        self.gateway = Gateway(handler, options or Options(), self.loop)
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            listen(self.gateway, "127.0.0.1", self.port, tls=self.tls, reuse_port=False),
            self.loop,
        )
        self._server = future.result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        def stop() -> None:
            if self._server is not None:
                self._server.close()
            self.gateway.close()

        self.loop.call_soon_threadsafe(stop)
        time.sleep(0.05)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def call(self, action: Callable[[], object]) -> object:
        """Run `action` on the gateway's loop and return its result (for inspecting state)."""
        done: list[object] = []
        event = threading.Event()

        def run() -> None:
            done.append(action())
            event.set()

        self.loop.call_soon_threadsafe(run)
        event.wait(5)
        return done[0]


def raw(port: int, data: bytes, *, wait: float = 5.0, shut: bool = False) -> bytes:
    """Send `data`, then read until the gateway closes or `wait` seconds pass quietly."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


class _Responses:
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.found: list[tuple[int, bytes]] = []
        self._body = b""

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.found.append((self.parser.get_status_code(), self._body))
        self._body = b""


def split_responses(data: bytes) -> list[tuple[int, bytes]]:
    """The (status, body) of each response in a byte stream, in order."""
    reader = _Responses()
    reader.parser.feed_data(data)
    return reader.found


def wait_for_route(ca_file: Path, url: str, seconds: float = 15.0) -> None:
    """Until the gateway knows the app at `url` (it polls the snapshot): no longer a 404."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(ca_file), url],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if probe.stdout not in ("404", "503", "000"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the gateway never routed {url}")


@contextlib.contextmanager
def signed_in(control_url: str, ca_file: Path, password: str) -> Iterator[tuple[httpx.Client, str]]:
    """A portal client signed in as admin, and its CSRF value."""
    trust = ssl.create_default_context(cafile=str(ca_file))
    with httpx.Client(base_url=control_url, verify=trust, follow_redirects=False) as web:
        form = web.get("/portal/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf, form
        signed = web.post(
            "/portal/login",
            data={"username": "admin", "password": password, "csrf": csrf.group(1)},
        )
        assert signed.status_code == 303, signed.text
        yield web, csrf.group(1)


def app_token(control_url: str, ca_file: Path, password: str, app: str, back: str) -> str:
    """Sign in to the portal as admin and take the token `/portal/authorize` hands an app."""
    with signed_in(control_url, ca_file, password) as (web, _):
        sent = web.get("/portal/authorize", params={"app": app, "return": back})
        assert sent.status_code == 303, sent.text
        query = parse_qs(urlsplit(sent.headers["location"]).query)
        return query["token"][0]


def audience_token(control_url: str, ca_file: Path, password: str, audience: str) -> str:
    """Sign in to the portal as admin and mint a bearer token for `audience` (a TCP app)."""
    with signed_in(control_url, ca_file, password) as (web, csrf):
        minted = web.post("/portal/token", data={"audience": audience, "csrf": csrf})
        assert minted.status_code == 200, minted.text
        return str(minted.json()["access_token"])
