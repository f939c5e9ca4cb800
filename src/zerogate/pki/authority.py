"""The certificate authority: an ECDSA P-256 root that issues short-lived leaf certificates.

Servers (control plane, gateways) get serverAuth certificates; connectors, devices and
service identities get clientAuth ones for mutual TLS. The kind is written in the subject's
OU, where it is visible to people and to every TLS stack. `now` is always passed in: this
module reads no clock, so tests pin time.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from zerogate.pki.errors import PkiError

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
SKEW = timedelta(minutes=5)  # not_before is backdated so a slightly slow clock still accepts
_DNS = re.compile(r"^(\*\.)?(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class CertKind(enum.StrEnum):
    SERVER = "server"
    GATEWAY = "gateway"
    CONNECTOR = "connector"
    DEVICE = "device"
    SERVICE = "service"


DEFAULT_LIFETIMES: Mapping[CertKind, timedelta] = {
    CertKind.SERVER: timedelta(days=30),
    CertKind.GATEWAY: timedelta(days=7),
    CertKind.CONNECTOR: timedelta(days=7),
    CertKind.DEVICE: timedelta(days=7),
    CertKind.SERVICE: timedelta(days=1),
}
_USAGES: Mapping[CertKind, tuple[x509.ObjectIdentifier, ...]] = {
    CertKind.SERVER: (ExtendedKeyUsageOID.SERVER_AUTH,),
    CertKind.GATEWAY: (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    CertKind.CONNECTOR: (ExtendedKeyUsageOID.CLIENT_AUTH,),
    CertKind.DEVICE: (ExtendedKeyUsageOID.CLIENT_AUTH,),
    CertKind.SERVICE: (ExtendedKeyUsageOID.CLIENT_AUTH,),
}


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    serial: str
    kind: CertKind
    common_name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    uris: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    pem: str
    fingerprint_sha256: str


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def x5t_s256(cert_pem: bytes) -> str:
    """RFC 8705 §3.1 `x5t#S256`: base64url SHA-256 of the DER certificate, no padding."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def kind_of(cert: x509.Certificate) -> CertKind | None:
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    try:
        return CertKind(str(units[0].value)) if units else None
    except ValueError:
        return None


def is_revoked(crl_pem: bytes, serial: str) -> bool:
    crl = x509.load_pem_x509_crl(crl_pem)
    return crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None


def _check_names(
    kind: CertKind, common_name: str, dns_names: Sequence[str], ips: Sequence[str]
) -> None:
    if not common_name or len(common_name) > 64 or _CONTROL.search(common_name):
        raise PkiError("common name must be 1 to 64 characters without control characters")
    for name in dns_names:
        if not _DNS.match(name) or len(name) > 253:
            raise PkiError(f"{name!r} is not a valid DNS name")
        if name.startswith("*.") and kind not in (CertKind.SERVER, CertKind.GATEWAY):
            raise PkiError("wildcard names are only for server and gateway certificates")
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise PkiError(f"{ip!r} is not a valid IP address") from None
    if kind in (CertKind.SERVER, CertKind.GATEWAY) and not (dns_names or ips):
        raise PkiError(f"a {kind} certificate needs at least one DNS name or IP address")


class CertificateAuthority:
    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self._cert = certificate
        self._key = key

    @classmethod
    def create(
        cls, *, name: str, now: datetime, lifetime: timedelta = timedelta(days=3650)
    ) -> CertificateAuthority:
        key = generate_private_key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "zerogate"),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - SKEW)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, cert_pem: bytes, encrypted_key_pem: bytes, kek: bytes) -> CertificateAuthority:
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            raise PkiError("the stored CA certificate is not valid PEM") from None
        try:
            key = serialization.load_pem_private_key(encrypted_key_pem, password=kek)
        except (ValueError, TypeError):
            raise PkiError(
                "cannot decrypt the CA key: wrong key-encryption key (ZEROGATE_CA_KEY or key file)"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise PkiError("the CA key does not match the CA certificate")
        return cls(cert, key)

    def export(self, kek: bytes) -> tuple[bytes, bytes]:
        """The certificate, and the key encrypted with the KEK; never the key in clear."""
        key_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(kek),
        )
        return self.cert_pem, key_pem

    @property
    def certificate(self) -> x509.Certificate:
        return self._cert

    @property
    def cert_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint_sha256(self) -> str:
        return fingerprint(self._cert)

    def issue(
        self,
        *,
        kind: CertKind,
        common_name: str,
        public_key: PublicKey,
        now: datetime,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        uris: Sequence[str] = (),
        lifetime: timedelta | None = None,
    ) -> IssuedCertificate:
        dns = tuple(name.lower() for name in dns_names)
        _check_names(kind, common_name, dns, ip_addresses)
        life = lifetime or DEFAULT_LIFETIMES[kind]
        if life <= timedelta(0):
            raise PkiError("lifetime must be positive")
        if now + life > self._cert.not_valid_after_utc:
            raise PkiError("the certificate would outlive the CA; renew the CA first")
        cert = self._build(kind, common_name, public_key, now, life, dns, ip_addresses, uris)
        return _issued(cert, kind)

    def _build(
        self,
        kind: CertKind,
        common_name: str,
        public_key: PublicKey,
        now: datetime,
        life: timedelta,
        dns: Sequence[str],
        ips: Sequence[str],
        uris: Sequence[str],
    ) -> x509.Certificate:
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "zerogate"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, str(kind)),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        names += [x509.UniformResourceIdentifier(uri) for uri in uris]
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - SKEW)
            .not_valid_after(now + life)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(list(_USAGES[kind])), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def issue_from_csr(
        self,
        csr_pem: bytes,
        *,
        kind: CertKind,
        common_name: str,
        now: datetime,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        uris: Sequence[str] = (),
        lifetime: timedelta | None = None,
    ) -> IssuedCertificate:
        """Issue for the CSR's key; the CA, not the CSR, decides the names (CSRs are untrusted)."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError:
            raise PkiError("the CSR is not a valid PEM certificate signing request") from None
        if not csr.is_signature_valid:
            raise PkiError("the CSR's signature does not verify (tampered, or wrong key)")
        key = csr.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            public: PublicKey = key
        elif isinstance(key, ed25519.Ed25519PublicKey):
            public = key
        else:
            raise PkiError("only ECDSA P-256 and Ed25519 keys are accepted")
        return self.issue(
            kind=kind,
            common_name=common_name,
            public_key=public,
            now=now,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            uris=uris,
            lifetime=lifetime,
        )

    def renew(
        self, old: x509.Certificate | bytes, *, now: datetime, lifetime: timedelta | None = None
    ) -> IssuedCertificate:
        cert = x509.load_pem_x509_certificate(old) if isinstance(old, bytes) else old
        self._check_signed_by_me(cert)
        kind = kind_of(cert)
        if kind is None:
            raise PkiError("the certificate carries no zerogate kind; it was not issued here")
        public = cert.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise PkiError("unsupported key type")
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            sans = x509.SubjectAlternativeName([])
        cn = str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
        return self.issue(
            kind=kind,
            common_name=cn,
            public_key=public,
            now=now,
            dns_names=sans.get_values_for_type(x509.DNSName),
            ip_addresses=[str(ip) for ip in sans.get_values_for_type(x509.IPAddress)],
            uris=sans.get_values_for_type(x509.UniformResourceIdentifier),
            lifetime=lifetime,
        )

    def crl(
        self,
        revoked: Iterable[tuple[str, datetime]],
        *,
        now: datetime,
        next_update: timedelta = timedelta(hours=1),
    ) -> bytes:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._cert.subject)
            .last_update(now - SKEW)
            .next_update(now + next_update)
        )
        for serial, when in revoked:
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(int(serial, 16))
                .revocation_date(when)
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def verify(self, cert_pem: bytes, *, now: datetime) -> x509.Certificate:
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            raise PkiError("not a valid PEM certificate") from None
        self._check_signed_by_me(cert)
        if now < cert.not_valid_before_utc:
            raise PkiError(f"certificate not valid before {cert.not_valid_before_utc.isoformat()}")
        if now >= cert.not_valid_after_utc:
            raise PkiError(f"certificate expired at {cert.not_valid_after_utc.isoformat()}")
        return cert

    def _check_signed_by_me(self, cert: x509.Certificate) -> None:
        try:
            cert.verify_directly_issued_by(self._cert)
        except (ValueError, TypeError, InvalidSignature):
            raise PkiError("the certificate was not issued by this CA") from None


def _issued(cert: x509.Certificate, kind: CertKind) -> IssuedCertificate:
    sans = (
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if _has_san(cert)
        else None
    )
    return IssuedCertificate(
        serial=format(cert.serial_number, "x"),
        kind=kind,
        common_name=str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value),
        dns_names=tuple(sans.get_values_for_type(x509.DNSName)) if sans else (),
        ip_addresses=tuple(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))
        if sans
        else (),
        uris=tuple(sans.get_values_for_type(x509.UniformResourceIdentifier)) if sans else (),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        fingerprint_sha256=fingerprint(cert),
    )


def _has_san(cert: x509.Certificate) -> bool:
    try:
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    return True
