"""Browser tests: Playwright driving Debian's Chromium (no browser download) against a real
`zerogate up`. The browser trusts exactly the server's key (SPKI pin), not "any certificate"."""

from __future__ import annotations

import base64
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Browser, Playwright, sync_playwright

from gatewaykit import upstream  # noqa: F401 - a fixture for every test here
from zgproc import Running

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def spki_pin(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


# Module scope: sync_playwright keeps an event loop running while open, which would break
# async tests in other modules that run after it.
@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "Chromium is not installed (scripts/install-test-deps.sh installs Debian's chromium)"
        )
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser(playwright_driver: Playwright, up: Running) -> Iterator[Browser]:
    tls = up.data_dir / "tls"
    pin = ",".join(spki_pin((tls / name).read_bytes()) for name in ("control.pem", "gateway.pem"))
    launched = playwright_driver.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--ignore-certificate-errors-spki-list={pin}",
        ],
    )
    yield launched
    launched.close()
