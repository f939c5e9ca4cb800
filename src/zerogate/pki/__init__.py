"""The certificate authority: root key encrypted at rest, short-lived leaves, revocation lists.

Pure cryptography on `cryptography`: no database, no clock. The control plane persists what it
issues and decides who may have which certificate; everything else verifies against the CA
certificate and the CRL produced here.
"""

from zerogate.pki.authority import (
    SKEW,
    CertificateAuthority,
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
from zerogate.pki.kinds import DEFAULT_LIFETIMES, KIND_POLICY_OIDS, CertKind

__all__ = [
    "DEFAULT_LIFETIMES",
    "KIND_POLICY_OIDS",
    "SKEW",
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
