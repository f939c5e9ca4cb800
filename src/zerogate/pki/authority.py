"""The certificate authority: one ECDSA P-256 root that signs short-lived leaf certificates.

Where it sits: the control plane's PKI service loads the CA from the database (its key
encrypted with the KEK from `kek.py`), asks it to issue, renew and list revocations, and persists
what comes back. Gateways present SERVER/GATEWAY leaves; connectors, devices and service
identities present client leaves in mutual TLS; every party checks them against the CA
certificate and the CRL made here. This module keeps no state beyond the CA itself and reads no
clock, disk or environment: `now` is always an argument, so tests pin time.

How a certificate says what it is (`kind_of`): each kind has its own certificate-policy OID under
a private arc (2.25.<UUID>, X.667: ours without registration). A policy OID is a standard,
non-critical extension that every TLS stack carries and ignores, that `openssl x509 -text` shows,
and that holds an identifier rather than free text a requester could influence. The kind is also
believed only when the extended key usages, which TLS stacks do enforce, agree with it. The
subject's OU repeats the kind for people reading logs; nothing decides on it.

Invariants:
1. The CA private key leaves this object only encrypted with the KEK (`export`).
2. Every leaf carries exactly one kind policy OID and at least that kind's EKUs.
3. A leaf never starts before, nor ends after, the CA certificate.
4. The CA, never the requester, chooses subject and SANs: a CSR only proves possession of a key.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from zerogate.pki.errors import PkiError
from zerogate.pki.kek import check_kek
from zerogate.pki.kinds import (
    DEFAULT_LIFETIMES,
    KIND_BY_POLICY,
    KIND_POLICY_OIDS,
    USAGES,
    CertKind,
)
from zerogate.pki.names import LeafNames, check_common_name, leaf_names

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
Pem = bytes | str
_T = TypeVar("_T")

SKEW = timedelta(minutes=5)  # not_before is backdated so a peer with a slow clock accepts
ORGANIZATION = "zerogate"
_SERIAL = re.compile(r"[0-9a-fA-F]{1,40}\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """What the caller persists about a new leaf; `pem` is the certificate alone, no key."""

    serial: str  # lowercase hex, no 0x: the key for revocation and the CRL
    kind: CertKind
    common_name: str
    dns_names: tuple[str, ...]  # A-labels (punycode), as written in the certificate
    ip_addresses: tuple[str, ...]
    uris: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    pem: str
    fingerprint_sha256: str  # lowercase hex SHA-256 of the DER


# --- keys, CSRs and certificate facts --------------------------------------------------------


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    """A new P-256 key: the one curve every browser and TLS stack accepts for servers."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM of a *leaf* key, for a caller that writes it with mode 0600."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_csr(key: PrivateKey, common_name: str) -> bytes:
    """A PEM CSR proving possession of `key`; the CA will choose the names it certifies."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM)


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def x5t_s256(cert_pem: Pem) -> str:
    """RFC 8705 §3.1 `x5t#S256`: base64url SHA-256 of the DER certificate, no padding.

    Binds an access token to the device certificate it was issued for.
    """
    digest = _load_certificate(cert_pem).fingerprint(hashes.SHA256())
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def kind_of(cert: x509.Certificate) -> CertKind | None:
    """The kind recorded by this CA, or None for a certificate that does not carry exactly one.

    Read the signature first (`CertificateAuthority.verify`): any CA can write these OIDs.
    """
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):  # ValueError: malformed extensions
        return None
    kinds = {KIND_BY_POLICY.get(policy.policy_identifier) for policy in policies} - {None}
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    # A kind claiming a TLS role the certificate cannot play is not believed.
    return kind if kind is not None and USAGES[kind] <= set(usages) else None


def is_revoked(crl_pem: Pem, serial: str, *, issuer: x509.Certificate | None = None) -> bool:
    """Whether `serial` is listed; with `issuer`, first check the CRL's signature by it."""
    crl = _load_pem(crl_pem, "CRL", x509.load_pem_x509_crl)
    if issuer is not None and not _crl_signed_by(crl, issuer):
        raise PkiError("the CRL is not signed by the given CA")
    return crl.get_revoked_certificate_by_serial_number(_serial_number(serial)) is not None


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    return crl.issuer == issuer.subject and crl.is_signature_valid(key)


# --- input checks: everything a caller or requester supplies passes through here -------------


def _utc(moment: datetime) -> datetime:
    # Naive datetimes are a programming error, not bad input: comparing them with the aware
    # certificate times would raise TypeError much later, far from the cause.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("datetimes given to the CA must be timezone-aware")
    return moment.astimezone(UTC)


def _accepted_key(key: object) -> PublicKey:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        found = f"an EC {key.curve.name} key"
    elif isinstance(key, rsa.RSAPublicKey):
        found = f"an RSA-{key.key_size} key"
    else:
        found = f"a {type(key).__name__}"
    raise PkiError(f"only ECDSA P-256 and Ed25519 keys are accepted, not {found}")


def _serial_number(serial: str) -> int:
    number = int(serial, 16) if _SERIAL.match(serial) else 0
    if not 0 < number < 2**159:  # RFC 5280 §4.1.2.2: positive, at most 20 octets
        raise PkiError(f"{serial[:48]!r} is not a certificate serial number in hex")
    return number


# --- parsing untrusted PEM -------------------------------------------------------------------


def _load_pem(data: Pem, what: str, loader: Callable[[bytes], _T]) -> _T:
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    if b"-----BEGIN " not in raw:
        raise PkiError(f"the {what} is not PEM: no '-----BEGIN' line")
    try:
        return loader(raw)
    except (ValueError, UnsupportedAlgorithm):
        raise PkiError(f"the {what} PEM does not hold a valid {what}") from None


def _load_certificate(data: Pem) -> x509.Certificate:
    return _load_pem(data, "certificate", x509.load_pem_x509_certificate)


def _csr_public_key(data: Pem) -> PublicKey:
    csr = _load_pem(data, "certificate signing request", x509.load_pem_x509_csr)
    try:
        key, signed = csr.public_key(), csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        raise PkiError("the certificate signing request uses an unsupported algorithm") from None
    if not signed:
        raise PkiError("the certificate signing request's signature does not verify (tampered?)")
    return _accepted_key(key)


def _names_of(cert: x509.Certificate) -> tuple[str, list[str], list[str], list[str]]:
    """Common name and SANs of a certificate, as strings `issue` accepts again."""
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(common_names) != 1:
        raise PkiError("the certificate must have exactly one common name")
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    return (
        str(common_names[0].value),
        sans.get_values_for_type(x509.DNSName),
        [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)],
        sans.get_values_for_type(x509.UniformResourceIdentifier),
    )


def _issued(cert: x509.Certificate, kind: CertKind, names: LeafNames) -> IssuedCertificate:
    return IssuedCertificate(
        serial=format(cert.serial_number, "x"),
        kind=kind,
        common_name=names.common_name,
        dns_names=names.dns,
        ip_addresses=tuple(str(ip) for ip in names.ips),
        uris=names.uris,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        fingerprint_sha256=fingerprint(cert),
    )


def _subject(common_name: str, unit: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)]
    if unit is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _key_usage(*, leaf: bool) -> x509.KeyUsage:
    # EC and Ed25519 keys sign in TLS 1.3 and never encipher, so leaves need digitalSignature only.
    return x509.KeyUsage(
        digital_signature=leaf,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not leaf,
        crl_sign=not leaf,
        encipher_only=False,
        decipher_only=False,
    )


# --- the authority ---------------------------------------------------------------------------


class CertificateAuthority:
    """A loaded CA. Build one with `create` or `load`; the key never leaves in clear."""

    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self._cert = certificate
        self._key = key

    def __repr__(self) -> str:
        return f"CertificateAuthority({self._cert.subject.rfc4514_string()!r})"

    @classmethod
    def create(
        cls, *, name: str, now: datetime, lifetime: timedelta = timedelta(days=3650)
    ) -> CertificateAuthority:
        """A new self-signed root (a fresh P-256 key) valid from `now` for `lifetime`."""
        if lifetime <= timedelta(0):
            raise PkiError("the CA lifetime must be positive")
        now, key = _utc(now), generate_private_key()
        subject = _subject(check_common_name(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - SKEW)
            .not_valid_after(now + lifetime)
            # path_length=0: this root signs leaves only, so a stolen leaf key cannot mint more.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(leaf=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, cert_pem: bytes, encrypted_key_pem: bytes, kek: bytes) -> CertificateAuthority:
        """The CA as `export` stored it; refuses a clear key, a wrong KEK or a mismatched pair."""
        check_kek(kek)
        cert = _load_pem(cert_pem, "CA certificate", x509.load_pem_x509_certificate)
        if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in encrypted_key_pem:
            raise PkiError("the stored CA key is not an encrypted PKCS#8 PEM; refusing a clear key")
        try:
            key = serialization.load_pem_private_key(encrypted_key_pem, password=kek)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise PkiError(
                "cannot decrypt the CA key: wrong key-encryption key "
                "(check ZEROGATE_CA_KEY or the key file)"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise PkiError("the CA key does not match the CA certificate")
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except (x509.ExtensionNotFound, ValueError):
            is_ca = False
        if not is_ca:
            raise PkiError("the stored CA certificate is not a CA certificate")
        return cls(cert, key)

    def export(self, kek: bytes) -> tuple[bytes, bytes]:
        """(certificate PEM, PKCS#8 PEM of the key encrypted with the KEK) for the caller to store."""
        check_kek(kek)
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
        """Sign a leaf of `kind` for `public_key`, valid from `now` for `lifetime` (or the default).

        Names are validated and normalised (DNS names to lowercase A-labels, IPs to canonical
        text, duplicates dropped); anything unacceptable raises PkiError naming the culprit.
        """
        names = leaf_names(kind, common_name, dns_names, ip_addresses, uris)
        return self._issue(kind, names, public_key, now, lifetime)

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
        """Issue for the key in a verified CSR. Its subject, SANs and extensions are ignored:
        a CSR is untrusted input that only proves the requester holds the private key."""
        public_key = _csr_public_key(csr_pem)
        names = leaf_names(kind, common_name, dns_names, ip_addresses, uris)
        return self._issue(kind, names, public_key, now, lifetime)

    def renew(
        self, old: x509.Certificate | Pem, *, now: datetime, lifetime: timedelta | None = None
    ) -> IssuedCertificate:
        """A new certificate (new serial and validity) for the same key, kind, subject and SANs.

        Whether the old one may still be renewed (revoked? long expired?) is the caller's policy.
        """
        cert = old if isinstance(old, x509.Certificate) else _load_certificate(old)
        self._check_issued_by_me(cert)
        kind = kind_of(cert)
        if kind is None:
            raise PkiError("the certificate records no zerogate kind, so it cannot be renewed")
        names = leaf_names(kind, *_names_of(cert))  # re-validated: the rules may have tightened
        return self._issue(kind, names, cert.public_key(), now, lifetime)

    def crl(
        self,
        revoked: Iterable[tuple[str, datetime]],
        *,
        now: datetime,
        next_update: timedelta = timedelta(hours=1),
    ) -> bytes:
        """A PEM CRL listing `(serial hex, revoked at)` pairs, valid until `now + next_update`."""
        if next_update <= timedelta(0):
            raise PkiError("the CRL's next update must be in the future")
        now = _utc(now)
        entries = {_serial_number(serial): _utc(when) for serial, when in revoked}
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._cert.subject)
            .last_update(now - SKEW)
            .next_update(now + next_update)
            # RFC 5280 §5.2.3 wants a number that grows with each CRL; time in microseconds grows
            # without storing a counter (replicas' clocks only need to be roughly in step).
            .add_extension(x509.CRLNumber((now - _EPOCH) // timedelta(microseconds=1)), False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        for number, when in sorted(entries.items()):
            entry = x509.RevokedCertificateBuilder().serial_number(number).revocation_date(when)
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def verify(self, cert_pem: Pem, *, now: datetime) -> x509.Certificate:
        """The certificate, if this CA signed it and it is valid at `now`; else PkiError.

        Revocation is not checked here: the caller holds the revocation list.
        """
        cert = _load_certificate(cert_pem)
        self._check_issued_by_me(cert)
        now = _utc(now)
        if now < cert.not_valid_before_utc:
            raise PkiError(
                f"certificate is not valid before {cert.not_valid_before_utc.isoformat()}"
            )
        if now > cert.not_valid_after_utc:  # RFC 5280 §4.1.2.5: notAfter itself is still valid
            raise PkiError(f"certificate expired at {cert.not_valid_after_utc.isoformat()}")
        return cert

    def _issue(
        self, kind: CertKind, names: LeafNames, key: object, now: datetime, life: timedelta | None
    ) -> IssuedCertificate:
        not_before, not_after = self._validity(kind, _utc(now), life)
        cert = self._sign_leaf(kind, names, _accepted_key(key), not_before, not_after)
        return _issued(cert, kind, names)

    def _validity(
        self, kind: CertKind, now: datetime, lifetime: timedelta | None
    ) -> tuple[datetime, datetime]:
        life = DEFAULT_LIFETIMES[kind] if lifetime is None else lifetime
        if life <= timedelta(0):
            raise PkiError("the certificate lifetime must be positive")
        ca_start, ca_end = self._cert.not_valid_before_utc, self._cert.not_valid_after_utc
        if now < ca_start:
            raise PkiError(f"the CA is not valid before {ca_start.isoformat()}")
        if now + life > ca_end:
            raise PkiError(
                f"a certificate valid until {(now + life).isoformat()} would outlive the CA, "
                f"which expires at {ca_end.isoformat()}: use a shorter lifetime or rotate the CA"
            )
        return max(now - SKEW, ca_start), now + life

    def _sign_leaf(
        self,
        kind: CertKind,
        names: LeafNames,
        public_key: PublicKey,
        not_before: datetime,
        not_after: datetime,
    ) -> x509.Certificate:
        subject = _subject(names.common_name, unit=str(kind))  # the OU is for people only
        policy = x509.PolicyInformation(KIND_POLICY_OIDS[kind], None)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(leaf=True), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(sorted(USAGES[kind], key=lambda oid: oid.dotted_string)),
                critical=False,
            )
            .add_extension(x509.CertificatePolicies([policy]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        if general_names := names.general_names():  # an empty SAN is invalid DER: omit it
            builder = builder.add_extension(x509.SubjectAlternativeName(general_names), False)
        return builder.sign(self._key, hashes.SHA256())

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        ski = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    def _check_issued_by_me(self, cert: x509.Certificate) -> None:
        if cert == self._cert:
            raise PkiError("this is the CA certificate itself, not one it issued")
        try:
            cert.verify_directly_issued_by(self._cert)  # issuer name and signature
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            raise PkiError("the certificate was not issued by this CA") from None
