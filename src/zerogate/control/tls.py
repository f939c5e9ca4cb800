"""Client certificates over the control plane's HTTPS: what the TLS handshake proved.

uvicorn does not pass the peer certificate to the application, so this protocol subclass
adds it to each request's scope as the ASGI TLS extension (`extensions.tls.client_cert_chain`,
PEM). The handshake already verified it against the CA (client certificates are optional:
browsers have none); `client_certificate(request)` reads it back. Written against the pinned
uvicorn; `tests/integration/test_up.py` exercises it through a real handshake.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session
from starlette.requests import Request
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from zerogate.pki import CertKind, kind_of, x5t_s256
from zerogate.store.models import IssuedCertificateRecord


class ClientCertProtocol(HttpToolsProtocol):
    _peer_pem: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self._peer_pem = ssl.DER_cert_to_PEM_cert(der) if der else None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        chain = [self._peer_pem] if self._peer_pem else []
        self.scope["extensions"] = {"tls": {"client_cert_chain": chain}}


def client_certificate(request: Request) -> x509.Certificate | None:
    """The verified client certificate of this request's connection, if one was presented."""
    tls = request.scope.get("extensions", {}).get("tls", {})
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    return x509.load_pem_x509_certificate(str(chain[0]).encode())


def device_thumbprint(session: Session, cert: x509.Certificate | None, now: datetime) -> str | None:
    """RFC 8705 `x5t#S256` of a live device or service certificate we issued, else None.

    The handshake proved the key; this adds what only the database knows: the certificate is
    ours, of a kind that may hold bound tokens, and not revoked.
    """
    if live_certificate(session, cert, (CertKind.DEVICE, CertKind.SERVICE), now) is None:
        return None
    assert cert is not None
    return x5t_s256(cert.public_bytes(serialization.Encoding.PEM))


def live_certificate(
    session: Session,
    cert: x509.Certificate | None,
    kinds: tuple[CertKind, ...],
    now: datetime,
) -> IssuedCertificateRecord | None:
    """Our record of `cert` if it is of one of `kinds`, issued by us, unexpired and unrevoked."""
    if cert is None or kind_of(cert) not in kinds:
        return None
    row = session.get(IssuedCertificateRecord, format(cert.serial_number, "x"))
    if row is None or row.revoked_at is not None or row.not_after <= now:
        return None
    return row
