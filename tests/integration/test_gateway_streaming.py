"""1 GiB up and 1 GiB down through the gateway, with curl, while its memory stays flat: the
bodies stream with back-pressure and are never gathered."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatewaykit import TESTS, start_upstream
from netkit import free_port

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")

GIB = 1024**3
ALLOWED_GROWTH_KIB = 64 * 1024  # peak RSS may grow by buffers, never by the body


@pytest.fixture
def gateway() -> Iterator[tuple[int, int]]:
    upstream_port, port = free_port(), free_port()
    upstream = start_upstream(upstream_port)
    process = subprocess.Popen(
        [sys.executable, str(TESTS / "gateway_static.py"), str(port), str(upstream_port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    yield port, process.pid
    process.terminate()
    process.wait(10)
    process.stdout.close()
    upstream.terminate()
    upstream.wait(10)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def test_one_gib_each_way_with_flat_memory(gateway: tuple[int, int]) -> None:
    port, pid = gateway
    base = f"http://127.0.0.1:{port}"
    warm = subprocess.run(["curl", "-sS", "-o", "/dev/null", f"{base}/fixed?size=1000"], check=True)
    assert warm.returncode == 0
    before = peak_rss_kib(pid)

    down = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
         f"{base}/stream?size={GIB}"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert down.stdout == f"200 {GIB}", down.stdout + down.stderr

    zeros = subprocess.Popen(["head", "-c", str(GIB), "/dev/zero"], stdout=subprocess.PIPE)
    up = subprocess.run(
        ["curl", "-sS", "-T", "-", "-H", "content-type: application/octet-stream", f"{base}/echo"],
        stdin=zeros.stdout, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert zeros.stdout is not None
    zeros.stdout.close()
    zeros.wait(10)
    assert '"body_size": 1073741824' in up.stdout, up.stdout + up.stderr
    # sha256 of 1 GiB of zero bytes
    assert "49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14" in up.stdout

    growth = peak_rss_kib(pid) - before
    assert growth < ALLOWED_GROWTH_KIB, f"peak RSS grew by {growth} KiB"
