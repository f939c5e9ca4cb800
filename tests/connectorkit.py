"""Helpers for connector tests: enroll and run real `zerogate connector` processes."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from zgproc import ZEROGATE, Running, admin


def new_connector(up: Running, name: str, group: str) -> str:
    """Create connector `name` in `group` through the admin CLI; return its enrollment token."""
    assert up.token is not None
    made = admin(up, up.token, "connector", "create", name, "--group", group)
    assert made.returncode == 0, made.stderr
    return made.stdout.split()[0]


def start_connector(
    up: Running,
    state_dir: Path,
    token: str | None,
    gateways: Sequence[str],
    allow: Sequence[str],
    *,
    wrap: Sequence[str] = (),
    control_url: str | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """A connector process (`wrap` runs it elsewhere, e.g. `ip netns exec NAME`)."""
    command = [
        *wrap, ZEROGATE, "connector", "--control", control_url or up.url,
        "--ca-cert", str(up.data_dir / "ca.pem"), "--state-dir", str(state_dir),
        "--health-seconds", "1", "--drain-seconds", "5",
    ]  # fmt: skip
    for gateway in gateways:
        command += ["--gateway", gateway]
    for entry in allow:
        command += ["--allow", entry]
    env = {**os.environ}
    if token:
        env["ZEROGATE_ENROLL_TOKEN"] = token
    if log is None:
        return subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def connector_status(up: Running) -> dict[str, dict[str, object]]:
    assert up.token is not None
    listed = admin(up, up.token, "connector", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return {row["name"]: row for row in json.loads(listed.stdout)}


def wait_for_sessions(up: Running, name: str, sessions: int, seconds: float = 30.0) -> None:
    """Until connector `name` reports `sessions` live tunnels in total (its health report)."""
    deadline = time.monotonic() + seconds
    row: dict[str, object] = {}
    while time.monotonic() < deadline:
        row = connector_status(up).get(name, {})
        links = row.get("gateways") or []
        assert isinstance(links, list)
        if row.get("status") == "online" and sum(link["sessions"] for link in links) == sessions:
            return
        time.sleep(0.3)
    raise TimeoutError(f"connector {name} never reported {sessions} tunnels: {row}")


def connect_tcp(
    address: str, port: int, hostname: str, target_port: int, token: str, ca: Path
) -> ssl.SSLSocket:
    """A TCP app through the gateway: TLS to it, `CONNECT hostname:port`, then raw bytes."""
    context = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection((address, port), timeout=10)
    sock = context.wrap_socket(raw, server_hostname=hostname)
    authority = f"{hostname}:{target_port}"
    sock.sendall(
        f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        f"Proxy-Authorization: Bearer {token}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    status = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"000"
    if status != b"200":
        sock.close()
        raise ConnectionRefusedError(f"CONNECT answered {head[:200]!r}")
    assert head.endswith(b"\r\n\r\n"), head  # nothing of the tunnel came with the answer
    return sock


class EchoServer:
    """A TCP echo service on a thread (a real socket server, for tests on loopback). It speaks
    first, as SSH, SMTP and MySQL servers do: a greeting line, then the echo."""

    GREETING = b"echo ready\n"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.server = socketserver.ThreadingTCPServer((host, 0), _Echo)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(EchoServer.GREETING)
        while data := self.request.recv(65536):
            self.request.sendall(data)
