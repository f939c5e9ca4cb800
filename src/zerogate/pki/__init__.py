"""The certificate authority: root key protected at rest, short-lived leaves, revocation."""

from zerogate.pki.authority import (
    DEFAULT_LIFETIMES,
    CertificateAuthority,
    CertKind,
    IssuedCertificate,
    fingerprint,
    generate_private_key,
    is_revoked,
    kind_of,
    make_csr,
    private_key_pem,
    x5t_s256,
)
from zerogate.pki.errors import PkiError
from zerogate.pki.kek import load_or_create_kek

__all__ = [
    "DEFAULT_LIFETIMES",
    "CertKind",
    "CertificateAuthority",
    "IssuedCertificate",
    "PkiError",
    "fingerprint",
    "generate_private_key",
    "is_revoked",
    "kind_of",
    "load_or_create_kek",
    "make_csr",
    "private_key_pem",
    "x5t_s256",
]
