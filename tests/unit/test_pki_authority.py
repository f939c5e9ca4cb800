"""The certificate authority: key at rest, what each kind of leaf carries, CSRs, CRLs, and TLS."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from zerogate.pki import (
    DEFAULT_LIFETIMES,
    CertificateAuthority,
    CertKind,
    IssuedCertificate,
    PkiError,
    generate_private_key,
    is_revoked,
    kind_of,
    make_csr,
    private_key_pem,
    x5t_s256,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)  # whole seconds: certificates keep no more
KEK = bytes(range(32))
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(name="zerogate test CA", now=NOW)


@pytest.fixture(scope="module")
def other_ca() -> CertificateAuthority:
    # Same subject as `ca`: only the signature tells them apart.
    return CertificateAuthority.create(name="zerogate test CA", now=NOW)


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return generate_private_key()


def parse(issued: IssuedCertificate) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued.pem.encode())


def eku(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def san(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def issue(
    ca: CertificateAuthority, kind: CertKind, key: ec.EllipticCurvePrivateKey, **kw: object
) -> IssuedCertificate:
    kw.setdefault("now", NOW)
    if kind in (CertKind.SERVER, CertKind.GATEWAY):
        kw.setdefault("dns_names", ["gw.example.com"])
    return ca.issue(kind=kind, common_name=f"{kind}-1", public_key=key.public_key(), **kw)  # type: ignore[arg-type]


def pem_of_der(der: bytes, label: str) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"\n".join([f"-----BEGIN {label}-----".encode(), *lines, f"-----END {label}-----".encode()]) + b"\n"


# --- the CA itself ---------------------------------------------------------------------------


def test_ca_certificate(ca: CertificateAuthority) -> None:
    cert = ca.certificate
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca is True
    assert constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "zerogate test CA"
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)  # self-signed
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert ca.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()


def test_export_and_load_round_trip(ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey) -> None:
    cert_pem, key_pem = ca.export(KEK)
    assert cert_pem == ca.cert_pem
    loaded = CertificateAuthority.load(cert_pem, key_pem, KEK)
    assert loaded.fingerprint_sha256 == ca.fingerprint_sha256
    # the loaded key really is the CA key: what it signs, the original accepts
    issued = issue(loaded, CertKind.DEVICE, key)
    assert ca.verify(issued.pem.encode(), now=NOW).serial_number == int(issued.serial, 16)


def test_exported_key_is_encrypted(ca: CertificateAuthority) -> None:
    _, key_pem = ca.export(KEK)
    assert key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert b"-----BEGIN PRIVATE KEY-----" not in key_pem
    with pytest.raises(TypeError):  # it cannot be read without a password
        serialization.load_pem_private_key(key_pem, password=None)


def test_wrong_kek_is_refused(ca: CertificateAuthority) -> None:
    cert_pem, key_pem = ca.export(KEK)
    with pytest.raises(PkiError, match="wrong key-encryption key"):
        CertificateAuthority.load(cert_pem, key_pem, bytes(32))


def test_load_refuses_key_of_another_ca(
    ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    _, other_key = other_ca.export(KEK)
    with pytest.raises(PkiError, match="does not match"):
        CertificateAuthority.load(ca.cert_pem, other_key, KEK)


def test_load_refuses_garbage(ca: CertificateAuthority) -> None:
    cert_pem, key_pem = ca.export(KEK)
    with pytest.raises(PkiError, match="not valid PEM"):
        CertificateAuthority.load(b"garbage", key_pem, KEK)
    with pytest.raises(PkiError):
        CertificateAuthority.load(cert_pem, b"garbage", KEK)
    with pytest.raises(PkiError):  # an unencrypted key is not what the store holds
        CertificateAuthority.load(cert_pem, private_key_pem(generate_private_key()), KEK)


# --- what each kind of certificate carries ---------------------------------------------------

_EXPECTED_EKU = {
    CertKind.SERVER: {SERVER_AUTH},
    CertKind.GATEWAY: {SERVER_AUTH, CLIENT_AUTH},
    CertKind.CONNECTOR: {CLIENT_AUTH},
    CertKind.DEVICE: {CLIENT_AUTH},
    CertKind.SERVICE: {CLIENT_AUTH},
}
_EXPECTED_LIFETIME = {
    CertKind.SERVER: timedelta(days=30),
    CertKind.GATEWAY: timedelta(days=7),
    CertKind.CONNECTOR: timedelta(days=7),
    CertKind.DEVICE: timedelta(days=7),
    CertKind.SERVICE: timedelta(days=1),
}


def test_default_lifetimes_table() -> None:
    assert dict(DEFAULT_LIFETIMES) == _EXPECTED_LIFETIME


@pytest.mark.parametrize("kind", list(CertKind))
def test_issue_each_kind(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, kind: CertKind
) -> None:
    issued = ca.issue(
        kind=kind,
        common_name=f"{kind}-1",
        public_key=key.public_key(),
        now=NOW,
        dns_names=["Host.Example.com"],
        ip_addresses=["10.0.0.1", "2001:db8::1"],
        uris=["spiffe://zerogate/x"],
    )
    cert = parse(issued)
    assert issued.kind is kind
    assert kind_of(cert) is kind
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == kind
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"{kind}-1"
    assert cert.issuer == ca.certificate.subject
    assert eku(cert) == _EXPECTED_EKU[kind]
    names = san(cert)
    assert names.get_values_for_type(x509.DNSName) == ["host.example.com"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.1"),
        ipaddress.ip_address("2001:db8::1"),
    ]
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://zerogate/x"]
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + _EXPECTED_LIFETIME[kind]
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert cert.public_key() == key.public_key()
    cert.verify_directly_issued_by(ca.certificate)
    # the summary says what the certificate says
    assert issued.serial == format(cert.serial_number, "x")
    assert issued.common_name == f"{kind}-1"
    assert issued.dns_names == ("host.example.com",)
    assert issued.ip_addresses == ("10.0.0.1", "2001:db8::1")
    assert issued.uris == ("spiffe://zerogate/x",)
    assert (issued.not_before, issued.not_after) == (
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
    )
    assert issued.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()


def test_client_certificate_without_names_has_no_san(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    issued = issue(ca, CertKind.DEVICE, key)
    cert = parse(issued)
    with pytest.raises(x509.ExtensionNotFound):
        san(cert)
    assert (issued.dns_names, issued.ip_addresses, issued.uris) == ((), (), ())


def test_serials_are_unique(ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey) -> None:
    serials = {issue(ca, CertKind.SERVICE, key).serial for _ in range(20)}
    assert len(serials) == 20


def test_explicit_lifetime(ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey) -> None:
    issued = issue(ca, CertKind.SERVICE, key, lifetime=timedelta(minutes=15))
    assert issued.not_after == NOW + timedelta(minutes=15)


def test_ed25519_public_key(ca: CertificateAuthority) -> None:
    ed_key = ed25519.Ed25519PrivateKey.generate()
    issued = ca.issue(
        kind=CertKind.SERVICE, common_name="svc", public_key=ed_key.public_key(), now=NOW
    )
    assert parse(issued).public_key() == ed_key.public_key()


def test_kind_of_foreign_certificate(ca: CertificateAuthority) -> None:
    assert kind_of(ca.certificate) is None  # no OU at all


@pytest.mark.parametrize("kind", [CertKind.SERVER, CertKind.GATEWAY])
def test_wildcard_allowed_for_servers(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, kind: CertKind
) -> None:
    issued = issue(ca, kind, key, dns_names=["*.apps.example.com"])
    assert issued.dns_names == ("*.apps.example.com",)


@pytest.mark.parametrize("kind", [CertKind.CONNECTOR, CertKind.DEVICE, CertKind.SERVICE])
def test_wildcard_refused_for_clients(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, kind: CertKind
) -> None:
    with pytest.raises(PkiError, match="wildcard"):
        issue(ca, kind, key, dns_names=["*.apps.example.com"])


@pytest.mark.parametrize("kind", [CertKind.SERVER, CertKind.GATEWAY])
def test_server_certificate_needs_a_name(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, kind: CertKind
) -> None:
    with pytest.raises(PkiError, match="at least one DNS name or IP address"):
        issue(ca, kind, key, dns_names=[])
    assert issue(ca, kind, key, dns_names=[], ip_addresses=["127.0.0.1"]).ip_addresses == (
        "127.0.0.1",
    )


@pytest.mark.parametrize(
    "names",
    [
        ["bad_name.example.com"],
        ["-a.example.com"],
        ["a..example.com"],
        ["*"],
        ["a.*.example.com"],
        ["a.example.com\x00"],
        ["exa mple.com"],
        ["é.example.com"],
        ["x" * 64 + ".com"],
        [("a" * 60 + ".") * 5 + "com"],
    ],
)
def test_invalid_dns_names_refused(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, names: list[str]
) -> None:
    with pytest.raises(PkiError, match="not a valid DNS name"):
        issue(ca, CertKind.SERVER, key, dns_names=names)


@pytest.mark.xfail(
    strict=True,
    reason="authority.py _DNS ends in `$`, which matches before a final newline, so "
    "'a.example.com\\n' goes into the certificate's SAN",
)
def test_dns_name_with_trailing_newline_refused(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(PkiError):
        issue(ca, CertKind.SERVER, key, dns_names=["a.example.com\n"])


@pytest.mark.parametrize("ip", ["10.0.0", "localhost", "::g", "1.2.3.4/32", ""])
def test_invalid_ip_refused(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, ip: str
) -> None:
    with pytest.raises(PkiError, match="not a valid IP address"):
        issue(ca, CertKind.SERVER, key, ip_addresses=[ip])


@pytest.mark.parametrize("common_name", ["", "x" * 65, "dev\n1", "dev\x00", "dev\x7f"])
def test_invalid_common_name_refused(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, common_name: str
) -> None:
    with pytest.raises(PkiError, match="common name"):
        ca.issue(kind=CertKind.DEVICE, common_name=common_name, public_key=key.public_key(), now=NOW)


def test_negative_lifetime_refused(ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(PkiError, match="positive"):
        issue(ca, CertKind.DEVICE, key, lifetime=timedelta(seconds=-1))


@pytest.mark.xfail(
    strict=True,
    reason="authority.py issue(): `lifetime or DEFAULT_LIFETIMES[kind]` treats timedelta(0) as "
    "'not given', so a zero lifetime silently becomes the default instead of PkiError",
)
def test_zero_lifetime_refused(ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(PkiError, match="positive"):
        issue(ca, CertKind.DEVICE, key, lifetime=timedelta(0))


def test_lifetime_beyond_the_ca_refused(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    ca_end = ca.certificate.not_valid_after_utc
    with pytest.raises(PkiError, match="outlive the CA"):
        issue(ca, CertKind.DEVICE, key, lifetime=ca_end - NOW + timedelta(seconds=1))
    with pytest.raises(PkiError, match="outlive the CA"):
        issue(ca, CertKind.SERVER, key, now=ca_end - timedelta(days=29))  # default 30 days
    exact = issue(ca, CertKind.DEVICE, key, lifetime=ca_end - NOW)
    assert exact.not_after == ca_end


# --- certificate signing requests ------------------------------------------------------------


def test_issue_from_csr(ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey) -> None:
    csr = make_csr(key, "device-1")
    issued = ca.issue_from_csr(csr, kind=CertKind.DEVICE, common_name="laptop-7", now=NOW)
    cert = parse(issued)
    assert cert.public_key() == key.public_key()
    assert issued.common_name == "laptop-7"  # the CA's choice, not the CSR's
    assert kind_of(cert) is CertKind.DEVICE


def test_csr_names_are_ignored(ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey) -> None:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil")]))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("bank.example.com"), x509.IPAddress(ipaddress.ip_address("1.1.1.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    device = parse(ca.issue_from_csr(csr, kind=CertKind.DEVICE, common_name="d1", now=NOW))
    with pytest.raises(x509.ExtensionNotFound):
        san(device)
    assert eku(device) == {CLIENT_AUTH}
    server = ca.issue_from_csr(
        csr, kind=CertKind.SERVER, common_name="srv", now=NOW, dns_names=["srv.example.com"]
    )
    assert server.dns_names == ("srv.example.com",)
    assert server.ip_addresses == ()
    assert server.common_name == "srv"


def test_tampered_csr_refused(ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey) -> None:
    der = x509.load_pem_x509_csr(make_csr(key, "device-1")).public_bytes(serialization.Encoding.DER)
    assert der.count(b"device-1") == 1
    tampered = pem_of_der(der.replace(b"device-1", b"device-2"), "CERTIFICATE REQUEST")
    parsed = x509.load_pem_x509_csr(tampered)  # still a well-formed request
    assert parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "device-2"
    assert not parsed.is_signature_valid
    with pytest.raises(PkiError, match="signature does not verify"):
        ca.issue_from_csr(tampered, kind=CertKind.DEVICE, common_name="d", now=NOW)


def test_csr_with_swapped_public_key_refused(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    """Signed by one key but naming another: the classic way to get a cert for someone's key."""
    victim = generate_private_key().public_key()

    def spki(public: ec.EllipticCurvePublicKey) -> bytes:
        return public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    der = x509.load_pem_x509_csr(make_csr(key, "device-1")).public_bytes(serialization.Encoding.DER)
    assert der.count(spki(key.public_key())) == 1
    swapped = pem_of_der(der.replace(spki(key.public_key()), spki(victim)), "CERTIFICATE REQUEST")
    assert x509.load_pem_x509_csr(swapped).public_key() == victim
    with pytest.raises(PkiError, match="signature does not verify"):
        ca.issue_from_csr(swapped, kind=CertKind.DEVICE, common_name="d", now=NOW)


def test_rsa_csr_refused(ca: CertificateAuthority) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa")]))
        .sign(rsa_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(PkiError, match="only ECDSA P-256 and Ed25519"):
        ca.issue_from_csr(csr, kind=CertKind.DEVICE, common_name="d", now=NOW)


def test_p384_csr_refused(ca: CertificateAuthority) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p384")]))
        .sign(p384, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(PkiError, match="only ECDSA P-256 and Ed25519"):
        ca.issue_from_csr(csr, kind=CertKind.DEVICE, common_name="d", now=NOW)


def test_ed25519_csr_accepted(ca: CertificateAuthority) -> None:
    ed_key = ed25519.Ed25519PrivateKey.generate()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed")]))
        .sign(ed_key, None)
        .public_bytes(serialization.Encoding.PEM)
    )
    issued = ca.issue_from_csr(csr, kind=CertKind.SERVICE, common_name="svc", now=NOW)
    assert parse(issued).public_key() == ed_key.public_key()


@pytest.mark.parametrize(
    "csr",
    [
        b"",
        b"garbage",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ],
)
def test_garbage_csr_refused(ca: CertificateAuthority, csr: bytes) -> None:
    with pytest.raises(PkiError, match="not a valid PEM certificate signing request"):
        ca.issue_from_csr(csr, kind=CertKind.DEVICE, common_name="d", now=NOW)


def test_certificate_is_not_a_csr(ca: CertificateAuthority) -> None:
    with pytest.raises(PkiError):
        ca.issue_from_csr(ca.cert_pem, kind=CertKind.DEVICE, common_name="d", now=NOW)


# --- renewal ---------------------------------------------------------------------------------


@pytest.mark.parametrize("as_pem", [True, False])
def test_renew_keeps_key_kind_and_names(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, as_pem: bool
) -> None:
    old = ca.issue(
        kind=CertKind.GATEWAY,
        common_name="gw-eu",
        public_key=key.public_key(),
        now=NOW,
        dns_names=["gw.example.com", "*.apps.example.com"],
        ip_addresses=["192.0.2.7"],
        uris=["spiffe://zerogate/gateway/gw-eu"],
    )
    later = NOW + timedelta(days=6)
    old_cert = parse(old)
    renewed = ca.renew(old.pem.encode() if as_pem else old_cert, now=later)
    new_cert = parse(renewed)
    assert renewed.serial != old.serial
    assert new_cert.public_key() == key.public_key()
    assert renewed.kind is CertKind.GATEWAY
    assert renewed.common_name == "gw-eu"
    assert renewed.dns_names == old.dns_names
    assert renewed.ip_addresses == ("192.0.2.7",)
    assert renewed.uris == old.uris
    assert eku(new_cert) == eku(old_cert)
    assert renewed.not_before == later - timedelta(minutes=5)
    assert renewed.not_after == later + timedelta(days=7)


def test_renew_client_without_names(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    renewed = ca.renew(issue(ca, CertKind.DEVICE, key).pem.encode(), now=NOW)
    assert (renewed.kind, renewed.dns_names) == (CertKind.DEVICE, ())


def test_renew_with_lifetime(ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey) -> None:
    old = issue(ca, CertKind.DEVICE, key)
    renewed = ca.renew(old.pem.encode(), now=NOW, lifetime=timedelta(hours=2))
    assert renewed.not_after == NOW + timedelta(hours=2)


def test_renew_refuses_certificate_of_another_ca(
    ca: CertificateAuthority, other_ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    foreign = issue(other_ca, CertKind.DEVICE, key)
    with pytest.raises(PkiError, match="not issued by this CA"):
        ca.renew(foreign.pem.encode(), now=NOW)


def test_renew_refuses_certificate_without_kind(ca: CertificateAuthority) -> None:
    with pytest.raises(PkiError, match="no zerogate kind"):
        ca.renew(ca.cert_pem, now=NOW)  # the CA cert is signed by the CA but has no OU


# --- revocation ------------------------------------------------------------------------------


def test_crl(ca: CertificateAuthority, other_ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey) -> None:
    first, second, kept = (issue(ca, CertKind.DEVICE, key) for _ in range(3))
    when = NOW - timedelta(hours=1)
    crl_pem = ca.crl([(first.serial, when), (second.serial, NOW)], now=NOW)
    crl = x509.load_pem_x509_crl(crl_pem)
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert not crl.is_signature_valid(other_ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl.issuer == ca.certificate.subject
    assert {entry.serial_number for entry in crl} == {int(first.serial, 16), int(second.serial, 16)}
    entry = crl.get_revoked_certificate_by_serial_number(int(first.serial, 16))
    assert entry is not None
    assert entry.revocation_date_utc == when
    assert crl.last_update_utc == NOW - timedelta(minutes=5)
    assert crl.next_update_utc == NOW + timedelta(hours=1)
    assert is_revoked(crl_pem, first.serial)
    assert is_revoked(crl_pem, second.serial)
    assert not is_revoked(crl_pem, kept.serial)


def test_empty_crl(ca: CertificateAuthority) -> None:
    crl_pem = ca.crl([], now=NOW, next_update=timedelta(minutes=10))
    crl = x509.load_pem_x509_crl(crl_pem)
    assert len(crl) == 0
    assert crl.next_update_utc == NOW + timedelta(minutes=10)
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert not is_revoked(crl_pem, "1")


# --- verification ----------------------------------------------------------------------------


def test_verify_accepts_a_valid_certificate(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    issued = issue(ca, CertKind.DEVICE, key)
    assert ca.verify(issued.pem.encode(), now=NOW).serial_number == int(issued.serial, 16)
    # the backdated start accepts a client whose clock is a little behind
    assert ca.verify(issued.pem.encode(), now=NOW - timedelta(minutes=5))
    assert ca.verify(issued.pem.encode(), now=issued.not_after - timedelta(seconds=1))


def test_verify_refuses_expired(ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey) -> None:
    issued = issue(ca, CertKind.DEVICE, key)
    with pytest.raises(PkiError, match="expired"):
        ca.verify(issued.pem.encode(), now=issued.not_after + timedelta(seconds=1))
    with pytest.raises(PkiError, match="expired"):
        ca.verify(issued.pem.encode(), now=NOW + timedelta(days=30))


def test_verify_refuses_not_yet_valid(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    issued = issue(ca, CertKind.DEVICE, key)
    with pytest.raises(PkiError, match="not valid before"):
        ca.verify(issued.pem.encode(), now=NOW - timedelta(minutes=5, seconds=1))


def test_verify_refuses_other_ca(
    ca: CertificateAuthority, other_ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    foreign = issue(other_ca, CertKind.DEVICE, key)
    assert parse(foreign).issuer == ca.certificate.subject  # same name, different key
    with pytest.raises(PkiError, match="not issued by this CA"):
        ca.verify(foreign.pem.encode(), now=NOW)


def test_verify_refuses_garbage(ca: CertificateAuthority) -> None:
    with pytest.raises(PkiError, match="not a valid PEM certificate"):
        ca.verify(b"nope", now=NOW)


# --- helpers ---------------------------------------------------------------------------------


def test_x5t_s256(ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey) -> None:
    issued = issue(ca, CertKind.DEVICE, key)
    der = parse(issued).public_bytes(serialization.Encoding.DER)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    thumb = x5t_s256(issued.pem.encode())
    assert thumb == expected
    assert len(thumb) == 43
    assert "=" not in thumb


def test_private_key_pem_and_make_csr(key: ec.EllipticCurvePrivateKey) -> None:
    pem = private_key_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    assert loaded.public_key() == key.public_key()
    csr = x509.load_pem_x509_csr(make_csr(key, "dev"))
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dev"


# --- one real TLS handshake ------------------------------------------------------------------

TIMEOUT = 5.0


def write_pem(path: Path, data: bytes | str) -> str:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def serve_once(server_ctx: ssl.SSLContext) -> tuple[int, Callable[[], dict[str, object]]]:
    """Accept one TLS connection on a loopback port; report what the server saw."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(TIMEOUT)
    seen: dict[str, object] = {}

    def run() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    seen["peer"] = tls.getpeercert()
                    seen["version"] = tls.version()
                    tls.sendall(b"hello")
        except Exception as exc:  # reported to the test, never raised in the thread
            seen["error"] = exc
        finally:
            listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result() -> dict[str, object]:
        thread.join(TIMEOUT * 2)
        assert not thread.is_alive()
        return seen

    return listener.getsockname()[1], result


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, str]:
    now = datetime.now(UTC)
    ca = CertificateAuthority.create(name="tls test CA", now=now)
    other = CertificateAuthority.create(name="tls test CA", now=now)
    server_key, device_key = generate_private_key(), generate_private_key()
    server = ca.issue(
        kind=CertKind.SERVER,
        common_name="control",
        public_key=server_key.public_key(),
        now=now,
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
    )
    device = ca.issue(
        kind=CertKind.DEVICE, common_name="laptop-42", public_key=device_key.public_key(), now=now
    )
    foreign_device = other.issue(
        kind=CertKind.DEVICE, common_name="intruder", public_key=device_key.public_key(), now=now
    )
    return {
        "ca": write_pem(tmp_path / "ca.pem", ca.cert_pem),
        "other_ca": write_pem(tmp_path / "other-ca.pem", other.cert_pem),
        "server_cert": write_pem(tmp_path / "server.pem", server.pem),
        "server_key": write_pem(tmp_path / "server.key", private_key_pem(server_key)),
        "device_cert": write_pem(tmp_path / "device.pem", device.pem),
        "foreign_device_cert": write_pem(tmp_path / "foreign.pem", foreign_device.pem),
        "device_key": write_pem(tmp_path / "device.key", private_key_pem(device_key)),
    }


def server_context(files: dict[str, str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files["server_cert"], files["server_key"])
    ctx.load_verify_locations(files["ca"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(files: dict[str, str], trust: str, cert: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=files[trust])
    ctx.load_cert_chain(files[cert], files["device_key"])
    return ctx


def test_mutual_tls_handshake(tls_files: dict[str, str]) -> None:
    port, result = serve_once(server_context(tls_files))
    client_ctx = client_context(tls_files, "ca", "device_cert")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        client_ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() == "TLSv1.3"
        server_cert = tls.getpeercert()
        assert ("commonName", "control") in [rdn[0] for rdn in server_cert["subject"]]
        assert tls.recv(5) == b"hello"
    seen = result()
    assert "error" not in seen, seen.get("error")
    assert seen["version"] == "TLSv1.3"
    subject = dict(rdn[0] for rdn in seen["peer"]["subject"])  # type: ignore[index]
    assert subject["commonName"] == "laptop-42"
    assert subject["organizationalUnitName"] == "device"


def test_mutual_tls_by_ip_address(tls_files: dict[str, str]) -> None:
    port, result = serve_once(server_context(tls_files))
    client_ctx = client_context(tls_files, "ca", "device_cert")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.recv(5) == b"hello"
    assert "error" not in result()


def test_client_trusting_another_ca_refuses_the_server(tls_files: dict[str, str]) -> None:
    port, result = serve_once(server_context(tls_files))
    client_ctx = client_context(tls_files, "other_ca", "device_cert")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            client_ctx.wrap_socket(raw, server_hostname="localhost")
    seen = result()
    assert isinstance(seen.get("error"), ssl.SSLError)
    assert "peer" not in seen


def test_server_refuses_a_client_of_another_ca(tls_files: dict[str, str]) -> None:
    port, result = serve_once(server_context(tls_files))
    client_ctx = client_context(tls_files, "ca", "foreign_device_cert")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        # TLS 1.3: the client finishes first; the refusal arrives as an alert on first read
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls = client_ctx.wrap_socket(raw, server_hostname="localhost")
            try:
                tls.recv(5)
            finally:
                tls.close()
    seen = result()
    assert isinstance(seen.get("error"), ssl.SSLCertVerificationError)
    assert "peer" not in seen
