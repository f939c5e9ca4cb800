"""What a certificate is for: its kind, lifetime, key usages and the policy OID that says so.

Stable data: certificates in the field carry these OIDs, so they are never renumbered.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import timedelta

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

_ARC = "2.25.230597795063392143452726009705712147638"  # UUID ad7b8515-b0da-4123-bd70-5cb85c655cb6


class CertKind(enum.StrEnum):
    SERVER = "server"
    GATEWAY = "gateway"
    CONNECTOR = "connector"
    DEVICE = "device"
    SERVICE = "service"  # a workload identity's client certificate


DEFAULT_LIFETIMES: Mapping[CertKind, timedelta] = {
    CertKind.SERVER: timedelta(days=30),
    CertKind.GATEWAY: timedelta(days=7),
    CertKind.CONNECTOR: timedelta(days=7),
    CertKind.DEVICE: timedelta(days=7),
    CertKind.SERVICE: timedelta(days=1),
}
SERVING = frozenset({CertKind.SERVER, CertKind.GATEWAY})  # browsers need a SAN; wildcards ok
USAGES: Mapping[CertKind, frozenset[x509.ObjectIdentifier]] = {
    CertKind.SERVER: frozenset({ExtendedKeyUsageOID.SERVER_AUTH}),
    CertKind.GATEWAY: frozenset({ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}),
    CertKind.CONNECTOR: frozenset({ExtendedKeyUsageOID.CLIENT_AUTH}),
    CertKind.DEVICE: frozenset({ExtendedKeyUsageOID.CLIENT_AUTH}),
    CertKind.SERVICE: frozenset({ExtendedKeyUsageOID.CLIENT_AUTH}),
}
# Stable identifiers: certificates in the field carry them, so never renumber.
KIND_POLICY_OIDS: Mapping[CertKind, x509.ObjectIdentifier] = {
    CertKind.SERVER: x509.ObjectIdentifier(f"{_ARC}.1.1"),
    CertKind.GATEWAY: x509.ObjectIdentifier(f"{_ARC}.1.2"),
    CertKind.CONNECTOR: x509.ObjectIdentifier(f"{_ARC}.1.3"),
    CertKind.DEVICE: x509.ObjectIdentifier(f"{_ARC}.1.4"),
    CertKind.SERVICE: x509.ObjectIdentifier(f"{_ARC}.1.5"),
}
KIND_BY_POLICY = {oid: kind for kind, oid in KIND_POLICY_OIDS.items()}
