"""Attacks on access tokens, one named test each, every one asserting the exact rejection code
that the audit log will record. Forged tokens are built by hand here, never through the code
under test, so a bug in issuing cannot hide a bug in verifying."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from zerogate.core.tokens import (
    MAX_TOKEN_LENGTH,
    AccessClaims,
    TokenError,
    TokenRejection,
    TokenVerifier,
    issue_access_token,
    jwks,
    new_signing_key,
    public_jwk,
)
from zerogate.pki import CertificateAuthority, CertKind, generate_private_key, x5t_s256

NOW = datetime(2031, 7, 1, 9, 30, tzinfo=UTC)
ISSUER = "https://control.zerogate.test"
KEY = new_signing_key(NOW)
VERIFIER = TokenVerifier(jwks([KEY]), issuer=ISSUER)
CA = CertificateAuthority.create(name="zerogate token attack tests", now=NOW)
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def device_thumbprint(name: str) -> str:
    public_key = generate_private_key().public_key()
    cert = CA.issue(kind=CertKind.DEVICE, common_name=name, public_key=public_key, now=NOW)
    return x5t_s256(cert.pem)


LAPTOP, STOLEN_TO = device_thumbprint("victim-laptop"), device_thumbprint("attacker-laptop")

CLAIMS = AccessClaims(
    issuer=ISSUER,
    subject="user:alice",
    audience="wiki",
    session_id="sess-1",
    principal_kind="person",
    username="alice",
    groups=("eng",),
    auth_time=NOW,
    mfa_time=None,
    amr=("pwd",),
    issued_at=NOW,
    expires_at=NOW + timedelta(minutes=10),
    token_id="jti-1",
    cnf_x5t_s256=None,
)
TOKEN = issue_access_token(KEY, CLAIMS)
HEADER = {"alg": "ES256", "kid": KEY.kid, "typ": "at+jwt"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def segment(value: object) -> str:
    return value if isinstance(value, str) else b64(json.dumps(value).encode())


def payload() -> dict[str, object]:
    decoded: dict[str, object] = json.loads(unb64(TOKEN.split(".")[1]))
    return decoded


def es256(key: ec.EllipticCurvePrivateKey, header: object, body: object) -> str:
    """Sign with ES256 by hand; `header`/`body` are JSON values or ready-made segments."""
    signing_input = f"{segment(header)}.{segment(body)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def hs256(secret: bytes, header: object, body: object) -> str:
    signing_input = f"{segment(header)}.{segment(body)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def rejected(
    token: str, *, audience: str = "wiki", now: datetime = NOW, cert: str | None = None
) -> TokenRejection:
    with pytest.raises(TokenError) as caught:
        VERIFIER.verify(token, audience=audience, now=now, client_cert_x5t_s256=cert)
    assert TOKEN not in str(caught.value)
    return caught.value.reason


def test_the_genuine_token_is_accepted() -> None:
    assert VERIFIER.verify(TOKEN, audience="wiki", now=NOW) == CLAIMS


# --- tampering -------------------------------------------------------------------------------


def test_changed_payload_with_the_original_signature() -> None:
    header, _, signature = TOKEN.split(".")
    forged = segment({**payload(), "sub": "user:admin", "zg_groups": ["admins"]})
    assert rejected(f"{header}.{forged}.{signature}") is TokenRejection.BAD_SIGNATURE


def test_one_changed_payload_character() -> None:
    header, body, signature = TOKEN.split(".")
    middle = len(body) // 2
    flipped = body[:middle] + ("A" if body[middle] != "A" else "B") + body[middle + 1 :]
    assert rejected(f"{header}.{flipped}.{signature}") is TokenRejection.BAD_SIGNATURE


def test_changed_header_with_the_original_signature() -> None:
    _, body, signature = TOKEN.split(".")
    header = segment({"typ": "at+jwt", "alg": "ES256", "kid": KEY.kid})  # same members, reordered
    assert rejected(f"{header}.{body}.{signature}") is TokenRejection.BAD_SIGNATURE


def test_malleated_signature_still_names_the_same_token() -> None:
    # ECDSA's (r, s) and (r, n - s) both verify. Harmless because nothing keys on the token
    # text: revocation and replay tracking use jti and the session id, which cannot change.
    header, body, signature = TOKEN.split(".")
    raw = unb64(signature)
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    twin = f"{header}.{body}.{b64(r + (P256_ORDER - s).to_bytes(32, 'big'))}"
    assert twin != TOKEN
    assert VERIFIER.verify(twin, audience="wiki", now=NOW).token_id == CLAIMS.token_id


# --- algorithm confusion ---------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_with_empty_signature(alg: str) -> None:
    forged = f"{segment({**HEADER, 'alg': alg})}.{segment(payload())}."
    assert rejected(forged) is TokenRejection.BAD_ALGORITHM


def test_alg_none_without_any_header_key() -> None:
    forged = f"{segment({'alg': 'none'})}.{segment(payload())}."
    assert rejected(forged) is TokenRejection.BAD_ALGORITHM


def test_hs256_signed_with_the_public_key_pem_as_hmac_secret() -> None:
    pem = KEY.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {**HEADER, "alg": "HS256"}
    for secret in (pem, pem.strip()):
        assert rejected(hs256(secret, header, payload())) is TokenRejection.BAD_ALGORITHM


def test_hs256_signed_with_the_public_jwk_json_as_hmac_secret() -> None:
    jwk = public_jwk(KEY)
    header = {**HEADER, "alg": "HS256"}
    for secret in (
        json.dumps(jwk).encode(),
        json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode(),
        json.dumps(jwks([KEY])).encode(),
    ):
        assert rejected(hs256(secret, header, payload())) is TokenRejection.BAD_ALGORITHM


def test_rs256_header_signed_with_an_attacker_rsa_key() -> None:
    rsa_key = rsa.generate_private_key(65537, 2048)
    signing_input = f"{segment({**HEADER, 'alg': 'RS256'})}.{segment(payload())}"
    signature = rsa_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    assert rejected(f"{signing_input}.{b64(signature)}") is TokenRejection.BAD_ALGORITHM


@pytest.mark.parametrize(
    "alg", ["es256", "ES384", "ES512", "ES256K", "EdDSA", "PS256", "", None, 1]
)
def test_other_algorithms_and_lookalikes(alg: object) -> None:
    assert rejected(es256(KEY.private_key, {**HEADER, "alg": alg}, payload())) is (
        TokenRejection.BAD_ALGORITHM
    )


# --- keys ------------------------------------------------------------------------------------


def test_signed_by_an_unknown_key_with_a_kid_copied_from_the_real_jwks() -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    copied_kid = jwks([KEY])["keys"][0]["kid"]
    forged = es256(attacker, {**HEADER, "kid": copied_kid}, payload())
    assert rejected(forged) is TokenRejection.BAD_SIGNATURE


def test_signed_by_an_unknown_key_under_its_own_kid() -> None:
    attacker = new_signing_key(NOW)
    assert rejected(issue_access_token(attacker, CLAIMS)) is TokenRejection.UNKNOWN_KEY


def test_no_kid_at_all() -> None:
    header = {"alg": "ES256", "typ": "at+jwt"}
    assert rejected(es256(KEY.private_key, header, payload())) is TokenRejection.UNKNOWN_KEY


@pytest.mark.parametrize(
    "extra",
    [
        {"jwk": public_jwk(new_signing_key(NOW))},  # "verify me with the key I carry"
        {"jku": "https://evil.test/jwks.json"},
        {"x5u": "https://evil.test/cert.pem"},
        {"x5c": ["MIIB..."]},
    ],
)
def test_header_that_names_its_own_key(extra: dict[str, object]) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    forged = es256(attacker, {**HEADER, **extra}, payload())
    assert rejected(forged) is TokenRejection.MALFORMED


def test_kid_that_is_not_a_string() -> None:
    for kid in ([KEY.kid], {"kid": KEY.kid}, 0):
        forged = es256(KEY.private_key, {**HEADER, "kid": kid}, payload())
        assert rejected(forged) is TokenRejection.MALFORMED


# --- claims ----------------------------------------------------------------------------------


def test_expired_token() -> None:
    late = NOW + timedelta(minutes=10, seconds=30)
    assert rejected(TOKEN, now=late) is TokenRejection.EXPIRED


def test_token_for_another_audience() -> None:
    assert rejected(TOKEN, audience="payroll") is TokenRejection.WRONG_AUDIENCE
    assert rejected(TOKEN, audience="zerogate-control") is TokenRejection.WRONG_AUDIENCE


def test_token_from_another_issuer() -> None:
    # Signed with our own key: only the issuer claim is wrong.
    forged = es256(KEY.private_key, HEADER, {**payload(), "iss": "https://other.test"})
    assert rejected(forged) is TokenRejection.WRONG_ISSUER


def test_identity_assertion_replayed_as_an_access_token() -> None:
    # What an upstream app receives from the gateway is signed by the same JWKS but typed JWT.
    for typ in ("JWT", "jwt", "at+JWT", None):
        header = {**HEADER, "typ": typ} if typ else {"alg": "ES256", "kid": KEY.kid}
        assert rejected(es256(KEY.private_key, header, payload())) is TokenRejection.MALFORMED


# --- binding ---------------------------------------------------------------------------------


def test_bound_token_replayed_with_another_certificate() -> None:
    bound = issue_access_token(KEY, dataclasses.replace(CLAIMS, cnf_x5t_s256=LAPTOP))
    assert VERIFIER.verify(bound, audience="wiki", now=NOW, client_cert_x5t_s256=LAPTOP)
    assert rejected(bound, cert=STOLEN_TO) is TokenRejection.BINDING_MISMATCH
    assert rejected(bound, cert=None) is TokenRejection.BINDING_MISMATCH


def test_binding_stripped_from_a_bound_token() -> None:
    bound = issue_access_token(KEY, dataclasses.replace(CLAIMS, cnf_x5t_s256=LAPTOP))
    header, _, signature = bound.split(".")
    unbound = {key: value for key, value in payload().items() if key != "cnf"}
    assert rejected(f"{header}.{segment(unbound)}.{signature}") is TokenRejection.BAD_SIGNATURE


# --- structure -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cut",
    [
        lambda t: t[: len(t) - 10],  # inside the signature
        lambda t: t[: t.rindex(".") + 1],  # signature removed, dot kept
        lambda t: t[: t.rindex(".")],  # two parts
        lambda t: t[: len(t) // 3],  # inside the payload
        lambda t: t[: t.index(".")],  # the header alone
        lambda t: "",
    ],
)
def test_truncated_token(cut: Callable[[str], str]) -> None:
    assert rejected(cut(TOKEN)) is TokenRejection.MALFORMED


@pytest.mark.parametrize(
    "header",
    [
        '{"alg":"ES256","kid":"%s","typ":"at+jwt","alg":"none"}',
        '{"alg":"none","kid":"%s","typ":"at+jwt","alg":"ES256"}',
        '{"alg":"ES256","kid":"%s","typ":"at+jwt","kid":"other"}',
    ],
)
def test_duplicate_header_fields(header: str) -> None:
    raw = b64((header % KEY.kid).encode())
    assert rejected(es256(KEY.private_key, raw, payload())) is TokenRejection.MALFORMED


@pytest.mark.parametrize(
    "extra",
    [{"foo": "bar"}, {"crit": ["exp"]}, {"b64": False}, {"cty": "JWT"}, {"zip": "DEF"}],
)
def test_garbage_header_fields(extra: dict[str, object]) -> None:
    forged = es256(KEY.private_key, {**HEADER, **extra}, payload())
    assert rejected(forged) is TokenRejection.MALFORMED


@pytest.mark.parametrize(
    "header",
    [
        b64(b"not json"),
        b64(b'["ES256"]'),
        b64(b'{"alg":"ES256"'),
        b64(b'\xef\xbb\xbf{"alg":"ES256"}'),  # a UTF-8 byte-order mark
        b64('{"alg":"ES256"}'.encode("utf-16")),
        b64(b'{"alg":NaN}'),
        b64(b"[" * 150 + b"]" * 150),
        "eyJhbGciOiJFUzI1NiJ9=",  # padded
        "eyJhbGciOiJFUzI1NiJ9+",  # standard alphabet
        "e yJhbGciOiJFUzI1NiJ9",
        "eyJhbGciOiJFUzI1NiJ" + "9" * 600,  # longer than any header of ours
    ],
)
def test_garbage_header_encoding(header: str) -> None:
    assert rejected(f"{header}.{segment(payload())}.{TOKEN.split('.')[2]}") is (
        TokenRejection.MALFORMED
    )


def test_duplicate_payload_claims() -> None:
    body = json.dumps(payload())[:-1] + ', "sub": "user:admin"}'
    forged = es256(KEY.private_key, HEADER, b64(body.encode()))
    assert rejected(forged) is TokenRejection.MALFORMED


def test_non_canonical_base64_in_the_signature() -> None:
    header, body, signature = TOKEN.split(".")
    # 64 bytes leave 4 unused bits in the last character; setting one is another encoding of
    # the same bytes, which a strict decoder refuses (RFC 4648 §3.5).
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    changed = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]
    assert unb64(changed) == unb64(signature)
    assert rejected(f"{header}.{body}.{changed}") is TokenRejection.MALFORMED


def test_signature_of_the_wrong_length() -> None:
    header, body, signature = TOKEN.split(".")
    raw = unb64(signature)
    for wrong in (raw[:63], raw + b"\x00", b"\x00" + raw, b""):
        assert rejected(f"{header}.{body}.{b64(wrong)}") is TokenRejection.MALFORMED


def test_oversized_token() -> None:
    huge = {**payload(), "zg_groups": [f"group-{n:05}" for n in range(800)]}
    forged = es256(KEY.private_key, HEADER, huge)  # validly signed, just too big
    assert len(forged) > MAX_TOKEN_LENGTH
    assert rejected(forged) is TokenRejection.MALFORMED
    assert rejected(TOKEN + "A" * MAX_TOKEN_LENGTH) is TokenRejection.MALFORMED


def test_non_ascii_and_non_text_tokens() -> None:
    assert rejected(TOKEN.replace("e", "\u0435", 1)) is TokenRejection.MALFORMED  # Cyrillic
    assert rejected(TOKEN + "\x00") is TokenRejection.MALFORMED
    assert rejected(TOKEN.encode()) is TokenRejection.MALFORMED  # type: ignore[arg-type]
    assert rejected(f" {TOKEN}") is TokenRejection.MALFORMED
    assert rejected(f"Bearer {TOKEN}") is TokenRejection.MALFORMED


def test_json_web_encryption_shaped_token() -> None:
    five_parts = ".".join([segment({"alg": "dir", "enc": "A256GCM"}), "", "AAAA", "AAAA", "AAAA"])
    assert rejected(five_parts) is TokenRejection.MALFORMED
