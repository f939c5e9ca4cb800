"""The gateway's TLS: admin-supplied certificates chosen by SNI (wildcards too) and reloaded
without a restart, the built-in CA's certificate as the default, plain HTTP redirected, and a
request for another host than its connection was opened for refused."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
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


def status(url: str, *options: str) -> str:
    """The status curl got for `url` (000: no answer), with its extra options."""
    done = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *options, url],
        capture_output=True,
        text=True,
        timeout=20,
    )
    return done.stdout


def handshake(url: str, ca_file: Path) -> str:
    """The status for `url` trusting only `ca_file`: 000 if the handshake did not verify."""
    return status(url, "--cacert", str(ca_file))


@contextlib.contextmanager
def custom_gateway(up: Running, tmp_path: Path, certs: Path) -> Iterator[tuple[int, int]]:
    """A second gateway of `up`, with the admin's certificates in `certs`: (https, http) ports."""
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
        yield port, http_port
    finally:
        gateway.terminate()
        gateway.wait(15)


def test_certificates_by_sni_reload_and_http_redirect(up: Running, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    first_ca = trustme.CA()
    first = install(first_ca, certs, "*.custom.localhost")
    with custom_gateway(up, tmp_path, certs) as (port, http_port):
        custom = f"https://app.custom.localhost:{port}/"
        builtin = f"https://app.zerogate.localhost:{port}/"
        # An answer (any status) means the handshake verified against that CA.
        assert handshake(custom, first) in ("404", "503")
        assert handshake(builtin, up.data_dir / "ca.pem") in ("404", "503")
        assert handshake(builtin, first) == "000"  # not the admin's certificate there

        second = install(trustme.CA(), certs, "*.custom.localhost")  # renewed by the admin
        deadline = time.monotonic() + 20
        while handshake(custom, second) == "000" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert handshake(custom, second) in ("404", "503")
        assert handshake(custom, first) == "000"

        moved = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
             f"http://grafana.zerogate.localhost:{http_port}/a/b?c=1"],
            capture_output=True, text=True, timeout=20,
        ).stdout  # fmt: skip
        assert moved == f"308 https://grafana.zerogate.localhost:{port}/a/b?c=1"


def test_a_request_for_another_host_than_its_connection_s_gets_421(
    up: Running, tmp_path: Path
) -> None:
    """Domain fronting: the handshake names one host (and gets its certificate), the request
    another. The request is refused before any app is looked up, so a name the policy lets
    a client open cannot carry requests for another."""
    certs = tmp_path / "certs"
    certs.mkdir()
    trusted = install(trustme.CA(), certs, "*.custom.localhost")
    builtin = up.data_dir / "ca.pem"
    with custom_gateway(up, tmp_path, certs) as (port, _):
        outer = f"https://app.custom.localhost:{port}/"
        assert status(outer, "--cacert", str(trusted)) in ("404", "503")  # the name it opened
        for inner in ("other.custom.localhost", "app.zerogate.localhost", "localhost"):
            assert status(outer, "--cacert", str(trusted), "-H", f"Host: {inner}") == "421"
        # The same host in another spelling is that host.
        for same in (f"APP.Custom.localhost:{port}", "app.custom.localhost."):
            assert status(outer, "--cacert", str(trusted), "-H", f"Host: {same}") in ("404", "503")
        assert status(f"https://grafana.zerogate.localhost:{port}/", "--cacert", str(builtin),
                      "-H", "Host: app.custom.localhost") == "421"  # fmt: skip
        # A client that named no host (curl sends no SNI to an address) is not refused,
        direct = f"https://127.0.0.1:{port}/"
        assert status(direct, "--insecure", "-H", "Host: app.custom.localhost") in ("404", "503")
        # nor one that named an address there, which names no host (wrk does that).
        assert openssl_status(port, "127.0.0.1", "app.custom.localhost") in ("404", "503")
        assert openssl_status(port, "app.custom.localhost", "app.custom.localhost") != "421"
        assert openssl_status(port, "app.custom.localhost", "other.custom.localhost") == "421"


def openssl_status(port: int, server_name: str, host: str) -> str:
    """The status of one request with exactly this SNI, sent by `openssl s_client`."""
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    done = subprocess.run(
        ["openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{port}",
         "-servername", server_name],
        input=request, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    return done.stdout.split(" ", 2)[1] if done.stdout.startswith("HTTP/1.1 ") else done.stdout
