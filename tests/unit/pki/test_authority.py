"""The certificate authority: the root at rest, each kind of leaf, CSRs, renewal, CRLs, verify,
a real mutual-TLS handshake through OpenSSL, and property tests that bad names only ever raise
PkiError."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID
from hypothesis import given, settings
from hypothesis import strategies as st

from zerogate.pki import (
    DEFAULT_LIFETIMES,
    KIND_POLICY_OIDS,
    SKEW,
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

NOW = datetime(2031, 7, 1, 9, 30, tzinfo=UTC)  # whole seconds, as certificates store time
KEK = b"k" * 32
E = TypeVar("E", bound=x509.ExtensionType)
SERVER_AUTH, CLIENT_AUTH = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
EXPECTED_EKU = {
    CertKind.SERVER: {SERVER_AUTH},
    CertKind.GATEWAY: {SERVER_AUTH, CLIENT_AUTH},
    CertKind.CONNECTOR: {CLIENT_AUTH},
    CertKind.DEVICE: {CLIENT_AUTH},
    CertKind.SERVICE: {CLIENT_AUTH},
}


CA = CertificateAuthority.create(name="zerogate unit root", now=NOW)
# The same name as CA on purpose: only the signature may tell them apart.
IMPOSTOR = CertificateAuthority.create(name="zerogate unit root", now=NOW)
KEY = generate_private_key()


def cert_of(issued: IssuedCertificate) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued.pem.encode())


def extension(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def device(ca: CertificateAuthority = CA, now: datetime = NOW) -> IssuedCertificate:
    return ca.issue(
        kind=CertKind.DEVICE,
        common_name="laptop-7",
        public_key=KEY.public_key(),
        now=now,
        uris=["spiffe://zerogate/device/7"],
    )


def reencode(der: bytes, label: str) -> bytes:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


# --- the CA and its key at rest --------------------------------------------------------------


def test_root_is_a_p256_ca_limited_to_signing_leaves() -> None:
    cert = CA.certificate
    cert.verify_directly_issued_by(cert)  # self-signed
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    constraints = extension(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value == x509.BasicConstraints(True, 0)
    usage = extension(cert, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert extension(cert, x509.SubjectKeyIdentifier).value.digest
    assert cert.not_valid_before_utc == NOW - SKEW
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)
    assert (
        CA.fingerprint_sha256
        == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    )
    assert CA.cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")


def test_export_then_load_gives_the_same_signing_ca() -> None:
    cert_pem, key_pem = CA.export(KEK)
    loaded = CertificateAuthority.load(cert_pem, key_pem, KEK)
    assert loaded.certificate == CA.certificate
    assert CA.verify(device(loaded).pem.encode(), now=NOW)  # the loaded key is the CA's


def test_export_never_contains_the_key_in_clear() -> None:
    _cert_pem, key_pem = CA.export(KEK)
    assert key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert b"BEGIN PRIVATE KEY" not in key_pem and b"BEGIN EC PRIVATE KEY" not in key_pem
    with pytest.raises(TypeError):  # it really needs a password
        serialization.load_pem_private_key(key_pem, password=None)
    assert KEK not in key_pem
    assert "PRIVATE" not in repr(CA)


def test_wrong_kek_is_refused_without_echoing_it() -> None:
    cert_pem, key_pem = CA.export(KEK)
    wrong = b"w" * 32
    with pytest.raises(
        PkiError, match="cannot decrypt the CA key: wrong key-encryption key"
    ) as caught:
        CertificateAuthority.load(cert_pem, key_pem, wrong)
    assert "w" * 8 not in str(caught.value) and caught.value.__cause__ is None


@pytest.mark.parametrize("kek", [b"", b"short"])
def test_short_kek_is_refused(kek: bytes) -> None:
    with pytest.raises(PkiError, match="at least 32 bytes"):
        CA.export(kek)
    cert_pem, key_pem = CA.export(KEK)
    with pytest.raises(PkiError, match="at least 32 bytes"):
        CertificateAuthority.load(cert_pem, key_pem, kek)


def test_load_refuses_a_clear_key_a_foreign_key_and_garbage() -> None:
    cert_pem, _ = CA.export(KEK)
    with pytest.raises(PkiError, match="refusing a clear key"):
        CertificateAuthority.load(cert_pem, private_key_pem(generate_private_key()), KEK)
    _, foreign_key = IMPOSTOR.export(KEK)
    with pytest.raises(PkiError, match="does not match the CA certificate"):
        CertificateAuthority.load(cert_pem, foreign_key, KEK)
    with pytest.raises(PkiError, match="not PEM"):
        CertificateAuthority.load(b"garbage", foreign_key, KEK)


def test_load_refuses_a_leaf_posing_as_the_ca() -> None:
    leaf = device().pem.encode()
    encrypted = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEK),
    )
    with pytest.raises(PkiError, match="not a CA certificate"):
        CertificateAuthority.load(leaf, encrypted, KEK)


def test_create_checks_its_inputs() -> None:
    with pytest.raises(PkiError, match="positive"):
        CertificateAuthority.create(name="x", now=NOW, lifetime=timedelta(0))
    with pytest.raises(PkiError, match="common name"):
        CertificateAuthority.create(name="bad\x00name", now=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        CertificateAuthority.create(name="x", now=NOW.replace(tzinfo=None))


# --- issuing each kind -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(CertKind))
def test_each_kind_carries_its_usage_names_and_validity(kind: CertKind) -> None:
    issued = CA.issue(
        kind=kind,
        common_name=f"{kind} one",
        public_key=KEY.public_key(),
        now=NOW,
        dns_names=["svc.example.com"],
        ip_addresses=["198.18.0.7"],
        uris=["spiffe://zerogate/x"],
    )
    cert = cert_of(issued)
    assert set(extension(cert, x509.ExtendedKeyUsage).value) == EXPECTED_EKU[kind]
    assert kind_of(cert) is kind and issued.kind is kind
    policies = extension(cert, x509.CertificatePolicies).value
    assert [p.policy_identifier for p in policies] == [KIND_POLICY_OIDS[kind]]
    names = extension(cert, x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["svc.example.com"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["198.18.0.7"]
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://zerogate/x"]
    assert (issued.dns_names, issued.ip_addresses, issued.uris) == (
        ("svc.example.com",),
        ("198.18.0.7",),
        ("spiffe://zerogate/x",),
    )
    assert issued.not_before == cert.not_valid_before_utc == NOW - SKEW
    assert issued.not_after == cert.not_valid_after_utc == NOW + DEFAULT_LIFETIMES[kind]
    assert issued.not_before.tzinfo is not None
    assert CA.verify(issued.pem.encode(), now=NOW) == cert


def test_leaf_structure() -> None:
    issued = device()
    cert = cert_of(issued)
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert issued.serial == format(cert.serial_number, "x") == issued.serial.lower()
    assert not issued.serial.startswith("0x") and 0 < cert.serial_number < 2**159
    constraints = extension(cert, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = extension(cert, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    ca_ski = extension(CA.certificate, x509.SubjectKeyIdentifier).value.digest
    assert extension(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "laptop-7"
    assert issued.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert cert.public_key() == KEY.public_key()


def test_serials_are_random() -> None:
    assert len({device().serial for _ in range(20)}) == 20


def test_x5t_s256_is_unpadded_base64url_of_the_der_hash() -> None:
    issued = device()
    thumbprint = x5t_s256(issued.pem)
    assert "=" not in thumbprint and len(thumbprint) == 43
    assert base64.urlsafe_b64decode(thumbprint + "=").hex() == issued.fingerprint_sha256
    assert x5t_s256(issued.pem.encode()) == thumbprint


@pytest.mark.parametrize("kind", [CertKind.SERVER, CertKind.GATEWAY])
def test_serving_certificates_need_a_subject_alternative_name(kind: CertKind) -> None:
    with pytest.raises(PkiError, match="at least one DNS name or IP address"):
        CA.issue(kind=kind, common_name="gw", public_key=KEY.public_key(), now=NOW)


def test_client_certificate_without_names_has_no_san_extension() -> None:
    issued = CA.issue(kind=CertKind.SERVICE, common_name="ci", public_key=KEY.public_key(), now=NOW)
    with pytest.raises(x509.ExtensionNotFound):
        extension(cert_of(issued), x509.SubjectAlternativeName)


def test_names_are_normalised() -> None:
    issued = CA.issue(
        kind=CertKind.SERVER,
        common_name="Bücher shop",
        public_key=KEY.public_key(),
        now=NOW,
        dns_names=["Bücher.Example", "xn--bcher-kva.example", "*.Apps.Example.com", "localhost"],
        ip_addresses=["::0001", "127.0.0.1", "::1"],
    )
    assert issued.dns_names == ("xn--bcher-kva.example", "*.apps.example.com", "localhost")
    assert issued.ip_addresses == ("::1", "127.0.0.1")
    assert issued.common_name == "Bücher shop"


@pytest.mark.parametrize(
    ("field_name", "value", "message"),
    [
        ("common_name", "", "common name"),
        ("common_name", "   ", "common name"),
        ("common_name", "line\nbreak", "common name"),
        ("common_name", "gnp.\u202eexe", "common name"),  # right-to-left override
        ("common_name", "x" * 65, "64 bytes"),
        ("dns_names", "-lead.example", "not a valid DNS name"),
        ("dns_names", "a..b", "not a valid DNS name"),
        ("dns_names", "under_score.example", "not a valid DNS name"),
        ("dns_names", "x" * 64 + ".example", "not a valid DNS name"),
        ("dns_names", "dot.example.", "not a valid DNS name"),
        ("dns_names", "", "not a valid DNS name"),
        ("dns_names", "198.18.0.1", "looks like an IP address"),
        ("dns_names", "*.example", "at least two labels"),
        ("dns_names", "a.*.example.com", "not a valid DNS name"),
        ("dns_names", "*", "not a valid DNS name"),
        ("ip_addresses", "198.18.0.256", "not a valid IP address"),
        ("ip_addresses", "localhost", "not a valid IP address"),
        ("ip_addresses", "fe80::1%eth0", "zone"),
        ("uris", "no scheme", "not an absolute URI"),
        ("uris", "spiffe://zérogate/x", "not an absolute URI"),
    ],
)
def test_bad_names_are_refused_with_a_precise_message(
    field_name: str,
    value: str,
    message: str,
) -> None:
    names: dict[str, list[str]] = {"dns_names": ["ok.example"], "ip_addresses": [], "uris": []}
    common_name = value if field_name == "common_name" else "fine"
    if field_name != "common_name":
        names[field_name] = [value]
    with pytest.raises(PkiError, match=message):
        CA.issue(
            kind=CertKind.SERVER,
            common_name=common_name,
            public_key=KEY.public_key(),
            now=NOW,
            dns_names=names["dns_names"],
            ip_addresses=names["ip_addresses"],
            uris=names["uris"],
        )


@pytest.mark.parametrize("kind", [CertKind.CONNECTOR, CertKind.DEVICE, CertKind.SERVICE])
def test_wildcards_only_for_serving_kinds(kind: CertKind) -> None:
    with pytest.raises(PkiError, match="wildcard"):
        CA.issue(
            kind=kind,
            common_name="c",
            public_key=KEY.public_key(),
            now=NOW,
            dns_names=["*.apps.example.com"],
        )


def test_lifetimes() -> None:
    def issue(lifetime: timedelta, now: datetime = NOW) -> IssuedCertificate:
        return CA.issue(
            kind=CertKind.SERVICE,
            common_name="job",
            public_key=KEY.public_key(),
            now=now,
            lifetime=lifetime,
        )

    assert issue(timedelta(minutes=10)).not_after == NOW + timedelta(minutes=10)
    for bad in (timedelta(0), timedelta(seconds=-1)):
        with pytest.raises(PkiError, match="positive"):
            issue(bad)
    with pytest.raises(PkiError, match="would outlive the CA"):
        issue(timedelta(days=3651))
    with pytest.raises(PkiError, match="CA is not valid before"):
        issue(timedelta(hours=1), now=NOW - timedelta(days=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        issue(timedelta(hours=1), now=NOW.replace(tzinfo=None))


def test_leaf_never_starts_before_its_ca() -> None:
    issued = device(now=NOW - timedelta(minutes=2))  # CA starts at NOW - 5 min
    assert issued.not_before == CA.certificate.not_valid_before_utc


def test_only_p256_and_ed25519_keys() -> None:
    edwards = ed25519.Ed25519PrivateKey.generate().public_key()
    issued = CA.issue(kind=CertKind.DEVICE, common_name="ed", public_key=edwards, now=NOW)
    assert cert_of(issued).public_key() == edwards
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(PkiError, match="not an EC secp384r1 key"):
        CA.issue(kind=CertKind.DEVICE, common_name="p384", public_key=p384, now=NOW)


# --- CSRs ------------------------------------------------------------------------------------


def test_csr_proves_the_key_and_the_ca_decides_the_names() -> None:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "root")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bank.example")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(KEY, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    issued = CA.issue_from_csr(csr, kind=CertKind.CONNECTOR, common_name="connector-a", now=NOW)
    cert = cert_of(issued)
    assert cert.public_key() == KEY.public_key()
    assert issued.common_name == "connector-a" and issued.dns_names == ()
    assert not extension(cert, x509.BasicConstraints).value.ca
    with pytest.raises(x509.ExtensionNotFound):
        extension(cert, x509.SubjectAlternativeName)


def test_ed25519_csr_is_accepted() -> None:
    csr = make_csr(ed25519.Ed25519PrivateKey.generate(), "phone")
    issued = CA.issue_from_csr(csr.decode(), kind=CertKind.DEVICE, common_name="phone", now=NOW)  # type: ignore[arg-type]
    assert kind_of(cert_of(issued)) is CertKind.DEVICE


def test_tampered_csr_is_refused() -> None:
    der = bytearray(
        x509.load_pem_x509_csr(make_csr(KEY, "x")).public_bytes(serialization.Encoding.DER)
    )
    der[-1] ^= 0x01  # the last byte of the signature's s value
    with pytest.raises(PkiError, match="signature does not verify"):
        CA.issue_from_csr(
            reencode(bytes(der), "CERTIFICATE REQUEST"),
            kind=CertKind.DEVICE,
            common_name="x",
            now=NOW,
        )


def test_csr_with_a_swapped_public_key_is_refused() -> None:
    # Someone else's key under a signature made with ours: possession not proven.
    mine = x509.load_pem_x509_csr(make_csr(KEY, "x")).public_bytes(serialization.Encoding.DER)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    theirs = generate_private_key().public_key().public_bytes(*spki)
    swapped = mine.replace(KEY.public_key().public_bytes(*spki), theirs)
    assert swapped != mine
    with pytest.raises(PkiError, match="signature does not verify"):
        CA.issue_from_csr(
            reencode(swapped, "CERTIFICATE REQUEST"), kind=CertKind.DEVICE, common_name="x", now=NOW
        )


@pytest.mark.parametrize(
    ("make_key", "message"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSA-2048"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "secp384r1"),
    ],
    ids=["rsa", "p384"],
)
def test_csr_with_an_unaccepted_key_type_is_refused(make_key: object, message: str) -> None:
    private = make_key()  # type: ignore[operator]
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k")]))
        .sign(private, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(
        PkiError, match=f"only ECDSA P-256 and Ed25519 keys are accepted.*{message}"
    ):
        CA.issue_from_csr(csr, kind=CertKind.DEVICE, common_name="k", now=NOW)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not PEM"),
        (b"\x00\xff garbage", "not PEM"),
        (
            b"-----BEGIN CERTIFICATE REQUEST-----\nnot base64!\n-----END CERTIFICATE REQUEST-----\n",
            "does not hold a valid",
        ),
        (reencode(b"\x30\x03\x02\x01\x01", "CERTIFICATE REQUEST"), "does not hold a valid"),
    ],
)
def test_malformed_csr_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(PkiError, match=message):
        CA.issue_from_csr(data, kind=CertKind.DEVICE, common_name="x", now=NOW)


def test_a_certificate_is_not_a_csr() -> None:
    with pytest.raises(PkiError, match="does not hold a valid certificate signing request"):
        CA.issue_from_csr(CA.cert_pem, kind=CertKind.DEVICE, common_name="x", now=NOW)


# --- renewal ---------------------------------------------------------------------------------


def test_renew_keeps_key_kind_subject_and_names() -> None:
    first = CA.issue(
        kind=CertKind.GATEWAY,
        common_name="gw-eu-1",
        public_key=KEY.public_key(),
        now=NOW,
        dns_names=["gw.example.com", "*.gw.example.com"],
        ip_addresses=["198.18.1.1"],
        uris=["spiffe://zerogate/gateway/eu-1"],
    )
    later = NOW + timedelta(days=5)
    for old in (first.pem, first.pem.encode(), cert_of(first)):
        renewed = CA.renew(old, now=later)
        before, after = cert_of(first), cert_of(renewed)
        assert renewed.serial != first.serial
        assert after.public_key() == before.public_key() and after.subject == before.subject
        assert (renewed.kind, renewed.common_name) == (first.kind, first.common_name)
        assert (renewed.dns_names, renewed.ip_addresses, renewed.uris) == (
            first.dns_names,
            first.ip_addresses,
            first.uris,
        )
        assert renewed.not_before == later - SKEW
        assert renewed.not_after == later + DEFAULT_LIFETIMES[CertKind.GATEWAY]
    assert CA.renew(
        first.pem, now=later, lifetime=timedelta(hours=2)
    ).not_after == later + timedelta(hours=2)


def test_renew_refuses_foreign_and_kindless_certificates() -> None:
    with pytest.raises(PkiError, match="not issued by this CA"):
        CA.renew(device(IMPOSTOR).pem, now=NOW)
    with pytest.raises(PkiError, match="CA certificate itself"):
        CA.renew(CA.cert_pem, now=NOW)
    with pytest.raises(PkiError, match="not PEM"):
        CA.renew(b"nonsense", now=NOW)


# --- revocation ------------------------------------------------------------------------------


def test_crl_lists_revoked_serials_and_is_signed_by_the_ca() -> None:
    gone, also_gone, kept = (device() for _ in range(3))
    when = NOW - timedelta(hours=3)
    pem = CA.crl([(gone.serial, when), (also_gone.serial.upper(), NOW)], now=NOW)
    crl = x509.load_pem_x509_crl(pem)
    assert crl.is_signature_valid(CA.certificate.public_key())  # type: ignore[arg-type]
    assert not crl.is_signature_valid(IMPOSTOR.certificate.public_key())  # type: ignore[arg-type]
    assert crl.issuer == CA.certificate.subject
    assert {format(entry.serial_number, "x") for entry in crl} == {gone.serial, also_gone.serial}
    entry = crl.get_revoked_certificate_by_serial_number(int(gone.serial, 16))
    assert entry is not None and entry.revocation_date_utc == when
    assert crl.next_update_utc == NOW + timedelta(hours=1)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > 0
    assert is_revoked(pem, gone.serial) and is_revoked(pem.decode(), also_gone.serial)
    assert not is_revoked(pem, kept.serial)
    assert is_revoked(pem, gone.serial, issuer=CA.certificate)
    with pytest.raises(PkiError, match="not signed by the given CA"):
        is_revoked(pem, gone.serial, issuer=IMPOSTOR.certificate)


def test_crl_numbers_grow_and_an_empty_crl_is_fine() -> None:
    def number(now: datetime) -> int:
        crl = x509.load_pem_x509_crl(CA.crl([], now=now))
        assert len(crl) == 0
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number

    assert number(NOW) < number(NOW + timedelta(seconds=1))


@pytest.mark.parametrize("serial", ["", "0", "0x1f", "xyz", "f" * 41, "-1"])
def test_crl_refuses_bad_serials(serial: str) -> None:
    with pytest.raises(PkiError, match="not a certificate serial"):
        CA.crl([(serial, NOW)], now=NOW)


def test_crl_input_checks() -> None:
    with pytest.raises(PkiError, match="future"):
        CA.crl([], now=NOW, next_update=timedelta(0))
    with pytest.raises(PkiError, match="not PEM"):
        is_revoked(b"nope", "1f")


# --- verify ----------------------------------------------------------------------------------


def test_verify_checks_signature_and_validity() -> None:
    pem = device().pem.encode()
    assert (
        CA.verify(pem, now=NOW).serial_number == x509.load_pem_x509_certificate(pem).serial_number
    )
    end = NOW + DEFAULT_LIFETIMES[CertKind.DEVICE]
    assert CA.verify(pem, now=end)  # RFC 5280: the notAfter second itself is inside
    with pytest.raises(PkiError, match=re.escape(f"certificate expired at {end.isoformat()}")):
        CA.verify(pem, now=end + timedelta(seconds=1))
    with pytest.raises(PkiError, match="not valid before"):
        CA.verify(pem, now=NOW - timedelta(minutes=6))
    with pytest.raises(PkiError, match="not issued by this CA"):
        CA.verify(device(IMPOSTOR).pem.encode(), now=NOW)
    with pytest.raises(PkiError, match="CA certificate itself"):
        CA.verify(CA.cert_pem, now=NOW)
    with pytest.raises(PkiError, match="not PEM"):
        CA.verify(b"", now=NOW)


def test_kind_of_reads_nothing_from_foreign_certificates() -> None:
    # A certificate whose OU says "device" but that lacks our policy OID has no kind.
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "device")])
    plain = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(KEY.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(KEY, hashes.SHA256())
    )
    assert kind_of(plain) is None
    assert kind_of(CA.certificate) is None


def test_kind_of_disbelieves_a_kind_the_eku_contradicts() -> None:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "odd")])
    odd = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(KEY.public_key())
        .serial_number(2)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([CLIENT_AUTH]), False)
        .add_extension(
            x509.CertificatePolicies(
                [x509.PolicyInformation(KIND_POLICY_OIDS[CertKind.SERVER], None)]
            ),
            False,
        )
        .sign(KEY, hashes.SHA256())
    )
    assert kind_of(odd) is None


# --- a real TLS 1.3 handshake through OpenSSL --------------------------------------------------


@dataclass
class ServerOutcome:
    peer: x509.Certificate | None = None
    error: BaseException | None = None


def _serve_once(listener: socket.socket, context: ssl.SSLContext, outcome: ServerOutcome) -> None:
    try:
        conn, _ = listener.accept()
        conn.settimeout(5)
        with context.wrap_socket(conn, server_side=True) as tls:
            peer = tls.getpeercert(binary_form=True)
            outcome.peer = x509.load_der_x509_certificate(peer) if peer else None
            tls.sendall(b"hello")
    except (OSError, ssl.SSLError) as exc:
        outcome.error = exc


def _handshake(
    server: ssl.SSLContext, client: ssl.SSLContext
) -> tuple[bytes | BaseException, ServerOutcome]:
    outcome = ServerOutcome()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)
        thread = threading.Thread(target=_serve_once, args=(listener, server, outcome), daemon=True)
        thread.start()
        received: bytes | BaseException
        try:
            with (
                socket.create_connection(listener.getsockname()[:2], timeout=5) as raw,
                client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                assert tls.version() == "TLSv1.3"
                received = tls.recv(5)
        except (OSError, ssl.SSLError) as exc:
            received = exc
        thread.join(timeout=10)
        assert not thread.is_alive()
    return received, outcome


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    device_cert: Path
    device_key: Path
    device_serial: str
    authority: CertificateAuthority


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@pytest.fixture(params=["p256", "ed25519"])
def tls_files(request: pytest.FixtureRequest, tmp_path: Path) -> TlsFiles:
    now = datetime.now(UTC)  # OpenSSL checks validity against the real clock
    authority = CertificateAuthority.create(name="zerogate tls test root", now=now)
    server_key = generate_private_key()
    server = authority.issue(
        kind=CertKind.SERVER,
        common_name="control",
        public_key=server_key.public_key(),
        now=now,
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
    )
    laptop_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = (
        generate_private_key() if request.param == "p256" else ed25519.Ed25519PrivateKey.generate()
    )
    laptop = authority.issue_from_csr(
        make_csr(laptop_key, "laptop"), kind=CertKind.DEVICE, common_name="laptop-42", now=now
    )
    return TlsFiles(
        ca=_write(tmp_path / "ca.pem", authority.cert_pem),
        server_cert=_write(tmp_path / "server.pem", server.pem.encode()),
        server_key=_write(tmp_path / "server.key", private_key_pem(server_key)),
        device_cert=_write(tmp_path / "device.pem", laptop.pem.encode()),
        device_key=_write(tmp_path / "device.key", private_key_pem(laptop_key)),
        device_serial=laptop.serial,
        authority=authority,
    )


def _server_context(files: TlsFiles, crl: Path | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_cert_chain(files.server_cert, files.server_key)
    context.load_verify_locations(cafile=files.ca)
    if crl is not None:
        context.load_verify_locations(cafile=crl)  # OpenSSL reads CRLs from a CA file too
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def _client_context(files: TlsFiles, trusted_ca: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_verify_locations(cafile=trusted_ca)
    context.load_cert_chain(files.device_cert, files.device_key)
    return context


def test_mutual_tls_handshake(tls_files: TlsFiles) -> None:
    received, server = _handshake(
        _server_context(tls_files), _client_context(tls_files, tls_files.ca)
    )
    assert received == b"hello", received
    assert server.error is None, server.error
    assert server.peer is not None and kind_of(server.peer) is CertKind.DEVICE
    assert server.peer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "laptop-42"


def test_handshake_fails_when_the_client_trusts_another_ca(
    tls_files: TlsFiles, tmp_path: Path
) -> None:
    stranger = CertificateAuthority.create(name="zerogate tls test root", now=datetime.now(UTC))
    trusted = _write(tmp_path / "stranger.pem", stranger.cert_pem)
    received, server = _handshake(_server_context(tls_files), _client_context(tls_files, trusted))
    assert isinstance(received, ssl.SSLCertVerificationError), received
    assert server.error is not None


@pytest.mark.parametrize("revoked", [False, True])
def test_openssl_honours_the_crl(tls_files: TlsFiles, tmp_path: Path, revoked: bool) -> None:
    now = datetime.now(UTC)
    listed = [(tls_files.device_serial, now)] if revoked else []
    crl = _write(tmp_path / "crl.pem", tls_files.authority.crl(listed, now=now))
    received, server = _handshake(
        _server_context(tls_files, crl), _client_context(tls_files, tls_files.ca)
    )
    if revoked:
        assert "revoked" in str(server.error), server.error
        assert received != b"hello"
    else:
        assert server.error is None, server.error
        assert received == b"hello"


# --- properties: bad input raises PkiError and nothing else ------------------------------------

# Mostly plausible input, so that both outcomes are common, with arbitrary text mixed in.
LABEL = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True),
    st.sampled_from(["*", "Bücher", "xn--bcher-kva", "straße", "UPPER", "-x", "a_b", "0", ""]),
    st.from_regex(r"[a-zA-Z0-9*_.-]{0,70}", fullmatch=True),
    st.text(max_size=70),
)
COMMON_NAME = st.one_of(st.from_regex(r"[ -~]{1,70}", fullmatch=True), st.text(max_size=70))


@settings(max_examples=300, deadline=None)
@given(
    common_name=COMMON_NAME,
    labels=st.lists(LABEL, min_size=1, max_size=5),
    kind=st.sampled_from(CertKind),
)
def test_random_names_issue_or_raise_pki_error(
    common_name: str,
    labels: list[str],
    kind: CertKind,
) -> None:
    name = ".".join(labels)
    try:
        issued = CA.issue(
            kind=kind,
            common_name=common_name,
            public_key=KEY.public_key(),
            now=NOW,
            dns_names=[name],
        )
    except PkiError:
        return
    cert = cert_of(issued)
    assert kind_of(cert) is kind and issued.common_name == common_name
    sans = extension(cert, x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert tuple(sans) == issued.dns_names and all(n.isascii() and n == n.lower() for n in sans)


@settings(max_examples=200, deadline=None)
@given(
    ips=st.lists(st.one_of(st.ip_addresses().map(str), st.text(max_size=40)), max_size=3),
    uris=st.lists(
        st.one_of(st.from_regex(r"[a-z]+:[!-~]{1,30}", fullmatch=True), st.text()), max_size=3
    ),
)
def test_random_addresses_issue_or_raise_pki_error(ips: list[str], uris: list[str]) -> None:
    try:
        issued = CA.issue(
            kind=CertKind.SERVICE,
            common_name="w",
            public_key=KEY.public_key(),
            now=NOW,
            ip_addresses=ips,
            uris=uris,
        )
    except PkiError:
        return
    assert CA.verify(issued.pem, now=NOW)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600), flip=st.integers(min_value=0, max_value=10_000))
def test_random_or_mutated_pem_raises_only_pki_error(data: bytes, flip: int) -> None:
    csr = bytearray(make_csr(KEY, "fuzz"))
    csr[flip % len(csr)] ^= 0x01
    for candidate in (data, b"-----BEGIN CERTIFICATE REQUEST-----\n" + data, bytes(csr)):
        with contextlib.suppress(PkiError):
            CA.issue_from_csr(candidate, kind=CertKind.DEVICE, common_name="f", now=NOW)
        with contextlib.suppress(PkiError):
            CA.verify(candidate, now=NOW)
        with contextlib.suppress(PkiError):
            CA.renew(candidate, now=NOW)
        with contextlib.suppress(PkiError):
            is_revoked(candidate, "1f")
