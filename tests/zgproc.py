"""A real `zerogate up` process for tests: start it, wait until healthy, drive it, stop it.

Shared by the integration and browser tests (tests/ is on sys.path via tests/conftest.py).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from netkit import free_port
from zerogate.control.portal.web import PortalConfig
from zerogate.pki.sealing import Sealer

ZEROGATE = str(Path(sys.executable).parent / "zerogate")
TOKEN_RE = re.compile(r"ZEROGATE_TOKEN=(zgt_\S+)")
PASSWORD_RE = re.compile(r"Portal sign-in: user admin, password (\S+)")


@dataclass
class Running:
    process: subprocess.Popen[str]
    port: int
    data_dir: Path
    token: str | None
    output: str
    gateway_port: int = 0
    tunnel_port: int = 0
    host: str = "localhost"  # where this test process reaches the control plane

    @property
    def admin_password(self) -> str | None:
        match = PASSWORD_RE.search(self.output)
        return match.group(1) if match else None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def env(self, token: str) -> dict[str, str]:
        return {
            **os.environ,
            "ZEROGATE_URL": self.url,
            "ZEROGATE_TOKEN": token,
            "ZEROGATE_CA_CERT": str(self.data_dir / "ca.pem"),
            "COLUMNS": "200",
        }


def start(
    data_dir: Path,
    port: int,
    *extra: str,
    wrap: Sequence[str] = (),
    host: str = "localhost",
    env: dict[str, str] | None = None,
) -> Running:
    """`zerogate up` (`wrap` runs it elsewhere, e.g. `ip netns exec NAME`, reached at `host`)."""
    gateway_port, tunnel_port = free_port(), free_port()
    command = [*wrap, ZEROGATE, "up", "--data-dir", str(data_dir), "--control-port", str(port)]
    command += ["--gateway-port", str(gateway_port), "--tunnel-port", str(tunnel_port), *extra]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    assert process.stdout is not None
    output = ""
    for line in process.stdout:  # the announcement ends with the CLI hint
        output += line
        if "zerogate admin app list" in line:
            break
    match = TOKEN_RE.search(output)
    running = Running(
        process,
        port,
        data_dir,
        match.group(1) if match else None,
        output,
        gateway_port,
        tunnel_port,
        host,
    )
    wait_healthy(running)
    return running


def curl(running: Running, path: str) -> subprocess.CompletedProcess[str]:
    command = [
        "curl",
        "-sS",
        "--max-time",
        "5",
        "--cacert",
        str(running.data_dir / "ca.pem"),
        running.url + path,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=10)


def wait_healthy(running: Running) -> None:
    deadline = time.monotonic() + 30  # generous: this bounds the wait, it measures nothing
    while time.monotonic() < deadline:
        if curl(running, "/healthz").stdout == '{"status":"ok"}':
            return
        time.sleep(0.1)
    running.process.kill()
    stop(running)
    pytest.fail(f"zerogate up never became healthy:\n{running.output}")


def stop(running: Running) -> int:
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGTERM)
    try:
        return running.process.wait(timeout=20)
    finally:
        if running.process.stdout:
            running.process.stdout.close()


def admin(running: Running, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ZEROGATE, "admin", *args],
        capture_output=True,
        text=True,
        env=running.env(token),
        timeout=60,
    )


def portal_config() -> PortalConfig:
    """Portal settings for an in-process app, with a fresh key-encryption key."""
    kek = secrets.token_bytes(32)
    return PortalConfig(sealer=Sealer(kek, "totp"), signing_sealer=Sealer(kek, "token-signing"))
