"""`zerogate gateway` refuses bad start-up arguments with a clear message and exit status 2,
before it touches the network, and never echoes its token."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from zgproc import ZEROGATE

TOKEN = "zgt_not-a-real-token-but-secret-all-the-same"


def start(tmp_path: Path, *extra: str, missing: str = "") -> subprocess.CompletedProcess[str]:
    files = {}
    for name in ("ca.pem", "gateway.pem", "gateway.key"):
        files[name] = tmp_path / name
        if name != missing:
            files[name].write_text("not read before the arguments are checked\n")
    command = [
        ZEROGATE, "gateway", "--control", "https://127.0.0.1:9", "--token", TOKEN,
        "--ca-cert", str(files["ca.pem"]), "--cert", str(files["gateway.pem"]),
        "--key", str(files["gateway.key"]), "--data-dir", str(tmp_path / "data"),
        "--workers", "1", *extra,
    ]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    ("extra", "missing", "message"),
    [
        ((), "gateway.key", "gateway.key is not a readable file"),
        (("--name", "gw eu/1"), "", "--name 'gw eu/1': use 1 to 64 letters"),
        (
            ("--strip-header", "X-User: root"),
            "",
            "--strip-header 'X-User: root' is not a header name",
        ),
        (("--strip-header", "X-WEBAUTH-USER", "--strip-header", ""), "", "--strip-header '' is"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    tmp_path: Path, extra: tuple[str, ...], missing: str, message: str
) -> None:
    done = start(tmp_path, *extra, missing=missing)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot start: " in done.stderr and message in done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert not (tmp_path / "data").exists()  # nothing was written
