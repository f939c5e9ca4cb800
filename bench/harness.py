"""Shared by the benchmarks: start a real `zerogate up` and find its one-time token."""

from __future__ import annotations

import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

ZEROGATE = str(Path(sys.executable).parent / "zerogate")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], str | None]:
    """Start `zerogate up`; return once it has printed its announcement (token or not)."""
    proc = subprocess.Popen(
        [ZEROGATE, "up", "--data-dir", str(data_dir), "--control-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    out = ""
    for line in proc.stdout:
        out += line
        if "zerogate admin app list" in line:
            break
    match = re.search(r"ZEROGATE_TOKEN=(zgt_\S+)", out)
    _wait_healthy(data_dir, port)
    return proc, match.group(1) if match else None


def _wait_healthy(data_dir: Path, port: int) -> None:
    ctx = ssl.create_default_context(cafile=data_dir / "ca.pem")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if (
                httpx.get(f"https://localhost:{port}/healthz", verify=ctx, timeout=2).status_code
                == 200
            ):
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("zerogate up did not become healthy within 30 s")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    if proc.stdout:
        proc.stdout.close()
