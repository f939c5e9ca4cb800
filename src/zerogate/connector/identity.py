"""The connector's identity: enroll once with a one-time token, then renew before expiry.

Where it sits: `connector.run` calls `load_or_enroll` at start and `renew_if_due` from its
health loop. The private key is made here and never leaves the state directory (0600); the
control plane sees only a CSR. After enrollment the certificate is the connector's only
credential: renewal and health reports go over mutual TLS with it.

Files in the state directory: `connector.key`, `connector.pem`, `ca.pem`, `identity.json`
(name, group, control URL). Each is replaced atomically (write, fsync, rename), so a crash
mid-renewal leaves the old, still valid pair.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography import x509

from zerogate.pki import generate_private_key, make_csr, private_key_pem

RENEW_AT = 2 / 3  # of the certificate's lifetime


class EnrollmentError(Exception):
    """Enrollment or renewal failed; the message says why, never the token."""


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    group: str
    cert_file: Path
    key_file: Path
    ca_file: Path
    not_before: datetime
    not_after: datetime

    def client_context(self) -> ssl.SSLContext:
        """TLS 1.3 with this certificate, trusting only the zerogate CA."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def renewal_due(self, now: datetime) -> bool:
        return now >= self.not_before + (self.not_after - self.not_before) * RENEW_AT


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    temporary.replace(path)


def _identity(state_dir: Path) -> Identity:
    meta = json.loads((state_dir / "identity.json").read_text())
    cert_file = state_dir / "connector.pem"
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return Identity(
        meta["name"],
        meta["group"],
        cert_file,
        state_dir / "connector.key",
        state_dir / "ca.pem",
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
    )


def _store(state_dir: Path, bundle: dict[str, str]) -> None:
    _write(state_dir / "ca.pem", bundle["ca_pem"].encode())
    _write(state_dir / "connector.pem", bundle["certificate_pem"].encode())
    meta = {"name": bundle["connector"], "group": bundle["group"]}
    _write(state_dir / "identity.json", json.dumps(meta).encode())


def load_or_enroll(
    state_dir: Path, control_url: str, ca_file: Path | None, token: str | None
) -> Identity:
    """The stored identity; or, the first time, a new one from the enrollment `token`."""
    if (state_dir / "identity.json").is_file():
        return _identity(state_dir)
    if not token:
        raise EnrollmentError(
            f"{state_dir} holds no identity yet: give a one-time enrollment token "
            "(--enroll-token or ZEROGATE_ENROLL_TOKEN; `zerogate admin connector token NAME`)"
        )
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = generate_private_key()
    verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    body = {"token": token, "csr_pem": make_csr(key, "connector").decode()}
    try:
        response = httpx.post(
            f"{control_url}/api/v1/connector/enroll", json=body, verify=verify, timeout=30
        )
    except httpx.HTTPError as exc:
        raise EnrollmentError(f"cannot reach the control plane at {control_url}: {exc}") from None
    if response.status_code != 201:
        raise EnrollmentError(f"enrollment refused ({response.status_code}): {_detail(response)}")
    _write(state_dir / "connector.key", private_key_pem(key), 0o600)
    _store(state_dir, response.json())
    return _identity(state_dir)


def renew_if_due(identity: Identity, control_url: str, now: datetime | None = None) -> Identity:
    """A renewed identity once two thirds of the certificate's life have passed, else the same."""
    if not identity.renewal_due(now or datetime.now(UTC)):
        return identity
    try:
        response = httpx.post(
            f"{control_url}/api/v1/connector/renew", verify=identity.client_context(), timeout=30
        )
    except httpx.HTTPError as exc:
        raise EnrollmentError(f"cannot reach the control plane to renew: {exc}") from None
    if response.status_code != 201:
        raise EnrollmentError(f"renewal refused ({response.status_code}): {_detail(response)}")
    state_dir = identity.cert_file.parent
    _store(state_dir, response.json())
    return _identity(state_dir)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))[:300]
    except ValueError:
        return response.text[:300]
