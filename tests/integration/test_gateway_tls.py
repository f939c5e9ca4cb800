"""The gateway's TLS: admin-supplied certificates chosen by SNI (wildcards too) and reloaded
without a restart, the built-in CA's certificate as the default, and plain HTTP redirected."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trustme

from gatewaykit import gateway_token, wait_for_port
from netkit import free_port
from zgproc import Running

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def install(ca: trustme.CA, directory: Path, *names: str) -> Path:
    """An admin's certificate pair in the certificates directory; the CA file to trust it."""
    issued = ca.issue_cert(*names)
    issued.private_key_pem.write_to_path(str(directory / "custom.key.tmp"))
    issued.cert_chain_pems[0].write_to_path(str(directory / "custom.pem.tmp"))
    os.replace(directory / "custom.key.tmp", directory / "custom.key")
    os.replace(directory / "custom.pem.tmp", directory / "custom.pem")
    trusted = directory.parent / f"trust-{id(ca)}.pem"
    ca.cert_pem.write_to_path(str(trusted))
    return trusted


def handshake(url: str, ca_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(ca_file), url],
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_certificates_by_sni_reload_and_http_redirect(up: Running, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    first_ca = trustme.CA()
    first = install(first_ca, certs, "*.custom.localhost")
    port, http_port = free_port(), free_port()
    tls = up.data_dir / "tls"
    command = [sys.executable, "-m", "zerogate", "gateway", "--control", up.url]
    command += ["--ca-cert", str(up.data_dir / "ca.pem"), "--cert", str(tls / "gateway.pem")]
    command += ["--key", str(tls / "gateway.key"), "--data-dir", str(tmp_path / "gw")]
    command += ["--port", str(port), "--http-port", str(http_port), "--workers", "1"]
    command += ["--certs-dir", str(certs), "--name", "custom"]
    token = gateway_token(up, "custom")
    gateway = subprocess.Popen(
        command, env={**os.environ, "ZEROGATE_TOKEN": token}, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        wait_for_port(http_port)
        custom = f"https://app.custom.localhost:{port}/"
        builtin = f"https://app.zerogate.localhost:{port}/"
        # An answer (any status) means the handshake verified against that CA.
        assert handshake(custom, first).stdout in ("404", "503")
        assert handshake(builtin, up.data_dir / "ca.pem").stdout in ("404", "503")
        assert handshake(builtin, first).stdout == "000"  # not the admin's certificate there

        second = install(trustme.CA(), certs, "*.custom.localhost")  # renewed by the admin
        deadline = time.monotonic() + 20
        while handshake(custom, second).stdout == "000" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert handshake(custom, second).stdout in ("404", "503")
        assert handshake(custom, first).stdout == "000"

        moved = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
             f"http://grafana.zerogate.localhost:{http_port}/a/b?c=1"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        assert moved.stdout == f"308 https://grafana.zerogate.localhost:{port}/a/b?c=1"
    finally:
        gateway.terminate()
        gateway.wait(15)
