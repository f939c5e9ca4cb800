"""Access tokens: issue → verify of every claim, key rotation, time boundaries with leeway,
audiences, certificate binding with real CA certificates, the JWKS and PEM forms, what issuing
refuses, and property tests (claims round-trip; random input only ever raises TokenError)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from zerogate.core.tokens import (
    MAX_TOKEN_LENGTH,
    AccessClaims,
    SigningKey,
    TokenError,
    TokenRejection,
    TokenVerifier,
    issue_access_token,
    jwks,
    new_signing_key,
    new_token_id,
    public_jwk,
    signing_key_from_pem,
    signing_key_to_pem,
)
from zerogate.pki import CertificateAuthority, CertKind, generate_private_key, x5t_s256

NOW = datetime(2031, 7, 1, 9, 30, tzinfo=UTC)
ISSUER = "https://control.zerogate.test"
LEEWAY = timedelta(seconds=30)
KEY = new_signing_key(NOW)
VERIFIER = TokenVerifier(jwks([KEY]), issuer=ISSUER, leeway=LEEWAY)
CA = CertificateAuthority.create(name="zerogate token tests", now=NOW)


def device_thumbprint(name: str) -> str:
    cert = CA.issue(
        kind=CertKind.DEVICE,
        common_name=name,
        public_key=generate_private_key().public_key(),
        now=NOW,
    )
    return x5t_s256(cert.pem)


LAPTOP, OTHER_LAPTOP = device_thumbprint("laptop-1"), device_thumbprint("laptop-2")


def claims(**changes: object) -> AccessClaims:
    base = AccessClaims(
        issuer=ISSUER,
        subject="user:alice",
        audience="wiki",
        session_id="sess-1",
        principal_kind="person",
        username="alice",
        groups=("eng", "oncall"),
        auth_time=NOW - timedelta(minutes=5),
        mfa_time=NOW - timedelta(minutes=4),
        amr=("pwd", "otp", "mfa"),
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=10),
        token_id="jti-1",
        cnf_x5t_s256=None,
        device_id="dev-1",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def reason(call: Callable[[], object]) -> TokenRejection:
    with pytest.raises(TokenError) as caught:
        call()
    return caught.value.reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: object) -> str:
    return b64(json.dumps(value).encode())


def es256(key: ec.EllipticCurvePrivateKey, header: object, payload: object) -> str:
    """A token signed by hand (not through the code under test), for claims it would not write."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def payload_of(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def signed_payload(**changes: object) -> str:
    """A token of `claims()` with payload members replaced (None removes one), signed by KEY."""
    payload = payload_of(issue_access_token(KEY, claims()))
    for name, value in changes.items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    header = {"alg": "ES256", "kid": KEY.kid, "typ": "at+jwt"}
    return es256(KEY.private_key, header, payload)


# --- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"cnf_x5t_s256": LAPTOP},
        {"mfa_time": None, "device_id": None, "groups": (), "amr": ("fed",)},
        {"principal_kind": "service", "subject": "service:ci", "username": "ci", "device_id": None},
        {"audience": "zerogate-control"},
        {"department": "finance", "office": "paris", "identity_provider": "okta"},
        {"session_expires_at": NOW + timedelta(hours=12)},
    ],
)
def test_every_claim_round_trips(changes: dict[str, object]) -> None:
    original = claims(**changes)
    token = issue_access_token(KEY, original)
    got = VERIFIER.verify(
        token, audience=original.audience, now=NOW, client_cert_x5t_s256=original.cnf_x5t_s256
    )
    assert got == original
    assert got.auth_time.tzinfo is UTC and got.expires_at.tzinfo is UTC


def test_wire_names_are_standard_jwt_claims_plus_zg_prefix() -> None:
    token = issue_access_token(
        KEY,
        claims(
            cnf_x5t_s256=LAPTOP,
            department="hr",
            office="oslo",
            identity_provider="local",
            session_expires_at=NOW + timedelta(hours=1),
        ),
    )
    payload = payload_of(token)
    assert set(payload) == {
        "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "amr", "cnf",
        "zg_sid", "zg_kind", "zg_user", "zg_groups", "zg_mfa_time", "zg_device",
        "zg_dept", "zg_office", "zg_idp", "zg_sexp",
    }  # fmt: skip
    assert payload["cnf"] == {"x5t#S256": LAPTOP}
    assert payload["exp"] == int((NOW + timedelta(minutes=10)).timestamp())
    assert payload["zg_sexp"] == int((NOW + timedelta(hours=1)).timestamp())
    assert all(type(payload[name]) is int for name in ("exp", "iat", "nbf", "auth_time", "zg_sexp"))
    header_part = token.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(header_part + "=" * (-len(header_part) % 4)))
    assert header == {"alg": "ES256", "kid": KEY.kid, "typ": "at+jwt"}


def test_fractional_seconds_are_truncated() -> None:
    original = claims(issued_at=NOW + timedelta(microseconds=900_000))
    got = VERIFIER.verify(issue_access_token(KEY, original), audience="wiki", now=NOW)
    assert got.issued_at == NOW


def test_new_token_ids_are_distinct_and_urlsafe() -> None:
    ids = {new_token_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(jti) == 22 and "=" not in jti for jti in ids)


# --- keys and rotation -----------------------------------------------------------------------


def test_rotation_accepts_both_generations_then_drops_the_old_key() -> None:
    old, new = new_signing_key(NOW - timedelta(days=30)), new_signing_key(NOW)
    old_token, new_token = issue_access_token(old, claims()), issue_access_token(new, claims())
    during = TokenVerifier(jwks([old, new]), issuer=ISSUER)
    assert during.verify(old_token, audience="wiki", now=NOW) == claims()
    assert during.verify(new_token, audience="wiki", now=NOW) == claims()
    after = TokenVerifier(jwks([new]), issuer=ISSUER)
    assert after.verify(new_token, audience="wiki", now=NOW) == claims()
    assert reason(lambda: after.verify(old_token, audience="wiki", now=NOW)) is (
        TokenRejection.UNKNOWN_KEY
    )


def test_jwks_shape_and_kid_is_the_rfc7638_thumbprint() -> None:
    other = new_signing_key(NOW)
    published = jwks([KEY, other])
    assert list(published) == ["keys"]
    assert [entry["kid"] for entry in published["keys"]] == [KEY.kid, other.kid]
    for key, entry in zip([KEY, other], published["keys"], strict=True):
        assert set(entry) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert entry == public_jwk(key)
        assert (entry["kty"], entry["crv"], entry["alg"], entry["use"]) == (
            "EC", "P-256", "ES256", "sig",
        )  # fmt: skip
        numbers = key.private_key.public_key().public_numbers()
        assert entry["x"] == b64(numbers.x.to_bytes(32, "big"))
        assert entry["y"] == b64(numbers.y.to_bytes(32, "big"))
        # RFC 7638 §3.2, computed independently: required members, sorted, no whitespace.
        canonical = json.dumps(
            {m: entry[m] for m in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True
        )
        assert entry["kid"] == b64(hashlib.sha256(canonical.encode()).digest())
    assert json.loads(json.dumps(published)) == published


def test_pem_round_trip() -> None:
    pem = signing_key_to_pem(KEY)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    loaded = signing_key_from_pem(KEY.kid, pem, KEY.created_at)
    assert loaded == KEY
    assert VERIFIER.verify(issue_access_token(loaded, claims()), audience="wiki", now=NOW)


def test_pem_load_refusals() -> None:
    pem = signing_key_to_pem(KEY)
    with pytest.raises(ValueError, match="thumbprint"):
        signing_key_from_pem(new_signing_key(NOW).kid, pem, NOW)
    with pytest.raises(ValueError, match="PEM"):
        signing_key_from_pem(KEY.kid, b"not a pem", NOW)
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="P-256"):
        signing_key_from_pem(KEY.kid, p384, NOW)
    with pytest.raises(ValueError, match="timezone"):
        signing_key_from_pem(KEY.kid, pem, datetime(2031, 7, 1))


def test_signing_key_repr_hides_the_private_key() -> None:
    assert "private" not in repr(KEY)
    assert KEY.kid in repr(KEY)


def rsa_jwk() -> dict[str, object]:
    numbers = rsa.generate_private_key(65537, 2048).public_key().public_numbers()
    n = b64(numbers.n.to_bytes(256, "big"))
    return {"kty": "RSA", "n": n, "e": "AQAB", "kid": "r1", "alg": "RS256"}


@pytest.mark.parametrize(
    ("key_set", "message"),
    [
        ({"keys": [rsa_jwk()]}, "only EC P-256"),
        ({"keys": [{**public_jwk(KEY), "crv": "P-384"}]}, "only EC P-256"),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}, "only EC P-256"),
        ({"keys": [{**public_jwk(KEY), "alg": "HS256"}]}, "ES256"),
        ({"keys": [{**public_jwk(KEY), "use": "enc"}]}, "ES256"),
        ({"keys": [{**public_jwk(KEY), "d": "AAAA"}]}, "private"),
        ({"keys": [{**public_jwk(KEY), "kid": "chosen-by-attacker"}]}, "thumbprint"),
        ({"keys": [{**public_jwk(KEY), "x": public_jwk(KEY)["y"]}]}, "P-256 public key"),
        ({"keys": [public_jwk(KEY), public_jwk(KEY)]}, "twice"),
        ({"keys": [{**public_jwk(KEY), "kid": 7}]}, "string kid"),
        ({"keys": ["not an object"]}, "JSON object"),
        ({"keys": {"kid": "x"}}, "keys"),
        ({}, "keys"),
    ],
)
def test_verifier_refuses_a_jwks_with_anything_but_p256_signing_keys(
    key_set: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TokenVerifier(key_set, issuer=ISSUER)


def test_verifier_arguments() -> None:
    with pytest.raises(ValueError, match="issuer"):
        TokenVerifier(jwks([KEY]), issuer="")
    with pytest.raises(ValueError, match="leeway"):
        TokenVerifier(jwks([KEY]), issuer=ISSUER, leeway=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="timezone"):
        VERIFIER.verify(
            issue_access_token(KEY, claims()), audience="wiki", now=datetime(2031, 1, 1)
        )
    empty = TokenVerifier({"keys": []}, issuer=ISSUER)
    token = issue_access_token(KEY, claims())
    assert reason(lambda: empty.verify(token, audience="wiki", now=NOW)) is (
        TokenRejection.UNKNOWN_KEY
    )
    assert KEY.kid in repr(VERIFIER)


# --- time ------------------------------------------------------------------------------------

EXPIRES = NOW + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (EXPIRES - timedelta(seconds=1), None),
        (EXPIRES + LEEWAY - timedelta(seconds=1), None),
        (EXPIRES + LEEWAY - timedelta(microseconds=1), None),
        (EXPIRES + LEEWAY, TokenRejection.EXPIRED),  # RFC 7519 §4.1.4: before exp, not at it
        (EXPIRES + timedelta(days=1), TokenRejection.EXPIRED),
        (NOW - LEEWAY, None),  # nbf = iat = NOW
        (NOW - LEEWAY - timedelta(microseconds=1), TokenRejection.NOT_YET_VALID),
        (NOW - timedelta(hours=1), TokenRejection.NOT_YET_VALID),
    ],
)
def test_expiry_and_not_before_with_leeway(now: datetime, expected: TokenRejection | None) -> None:
    token = issue_access_token(KEY, claims())
    if expected is None:
        assert VERIFIER.verify(token, audience="wiki", now=now) == claims()
    else:
        assert reason(lambda: VERIFIER.verify(token, audience="wiki", now=now)) is expected


def test_zero_leeway_is_exact() -> None:
    strict = TokenVerifier(jwks([KEY]), issuer=ISSUER, leeway=timedelta(0))
    token = issue_access_token(KEY, claims())
    assert strict.verify(token, audience="wiki", now=EXPIRES - timedelta(microseconds=1))
    assert reason(lambda: strict.verify(token, audience="wiki", now=EXPIRES)) is (
        TokenRejection.EXPIRED
    )
    assert reason(
        lambda: strict.verify(token, audience="wiki", now=NOW - timedelta(seconds=1))
    ) is (TokenRejection.NOT_YET_VALID)


def test_an_explicit_nbf_later_than_iat_is_honoured() -> None:
    later = int((NOW + timedelta(minutes=2)).timestamp())
    token = signed_payload(nbf=later)
    assert reason(lambda: VERIFIER.verify(token, audience="wiki", now=NOW)) is (
        TokenRejection.NOT_YET_VALID
    )
    assert VERIFIER.verify(token, audience="wiki", now=NOW + timedelta(minutes=2)) == claims()


def test_a_token_issued_in_the_future_is_not_yet_valid_even_without_nbf() -> None:
    token = signed_payload(nbf=None, iat=int((NOW + timedelta(minutes=1)).timestamp()))
    assert reason(lambda: VERIFIER.verify(token, audience="wiki", now=NOW)) is (
        TokenRejection.NOT_YET_VALID
    )


def test_times_in_another_timezone_are_the_same_instant() -> None:
    token = issue_access_token(KEY, claims())
    elsewhere = (EXPIRES + LEEWAY).astimezone(timezone(timedelta(hours=-7)))
    assert VERIFIER.verify(token, audience="wiki", now=elsewhere - timedelta(seconds=1))
    assert reason(lambda: VERIFIER.verify(token, audience="wiki", now=elsewhere)) is (
        TokenRejection.EXPIRED
    )


# --- audience --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aud", "expected"),
    [
        (["wiki"], None),
        (["grafana", "wiki"], None),
        (["grafana"], TokenRejection.WRONG_AUDIENCE),
        (["Wiki"], TokenRejection.WRONG_AUDIENCE),  # exact match, no case folding
        ("wiki ", TokenRejection.WRONG_AUDIENCE),
        ([], TokenRejection.MISSING_CLAIM),
        (["wiki", 3], TokenRejection.MISSING_CLAIM),
        ({"wiki": True}, TokenRejection.MISSING_CLAIM),
    ],
)
def test_audience_string_or_list(aud: object, expected: TokenRejection | None) -> None:
    token = signed_payload(aud=aud)
    if expected is None:
        assert VERIFIER.verify(token, audience="wiki", now=NOW).audience == "wiki"
    else:
        assert reason(lambda: VERIFIER.verify(token, audience="wiki", now=NOW)) is expected


# --- certificate binding (RFC 8705 §3.1) -----------------------------------------------------


def test_bound_token_accepted_with_its_certificate() -> None:
    token = issue_access_token(KEY, claims(cnf_x5t_s256=LAPTOP))
    got = VERIFIER.verify(token, audience="wiki", now=NOW, client_cert_x5t_s256=LAPTOP)
    assert got.cnf_x5t_s256 == LAPTOP
    assert VERIFIER.verify(
        token, audience="wiki", now=NOW, client_cert_x5t_s256=LAPTOP, require_binding=True
    )


@pytest.mark.parametrize("presented", [OTHER_LAPTOP, None, "", LAPTOP[:-1], LAPTOP.lower()])
def test_bound_token_refused_without_its_certificate(presented: str | None) -> None:
    token = issue_access_token(KEY, claims(cnf_x5t_s256=LAPTOP))
    for require_binding in (False, True):
        assert reason(
            lambda: VERIFIER.verify(
                token,
                audience="wiki",
                now=NOW,
                client_cert_x5t_s256=presented,
                require_binding=require_binding,  # noqa: B023
            )
        ) is (TokenRejection.BINDING_MISMATCH)


def test_require_binding_refuses_an_unbound_token() -> None:
    token = issue_access_token(KEY, claims())
    assert VERIFIER.verify(token, audience="wiki", now=NOW, client_cert_x5t_s256=LAPTOP)
    assert reason(
        lambda: VERIFIER.verify(
            token, audience="wiki", now=NOW, client_cert_x5t_s256=LAPTOP, require_binding=True
        )
    ) is (TokenRejection.BINDING_REQUIRED)


@pytest.mark.parametrize(
    ("cnf", "expected"),
    [
        ({"x5t#S256": LAPTOP, "jkt": "x" * 43}, TokenRejection.BINDING_MISMATCH),
        ({"jkt": "x" * 43}, TokenRejection.MISSING_CLAIM),
        ({"x5t#S256": 5}, TokenRejection.MISSING_CLAIM),
        ({"x5t#S256": "ab" * 32}, TokenRejection.MISSING_CLAIM),  # hex, not base64url
        ("x5t", TokenRejection.MISSING_CLAIM),
    ],
)
def test_confirmation_we_cannot_check_is_refused(cnf: object, expected: TokenRejection) -> None:
    token = signed_payload(cnf=cnf)
    check = lambda: VERIFIER.verify(token, audience="wiki", now=NOW, client_cert_x5t_s256=LAPTOP)  # noqa: E731
    assert reason(check) is expected


# --- claims presence and types ---------------------------------------------------------------

REQUIRED = ["iss", "sub", "aud", "exp", "iat", "jti", "auth_time", "amr"]
REQUIRED += ["zg_sid", "zg_kind", "zg_user", "zg_groups"]


@pytest.mark.parametrize("name", REQUIRED)
def test_every_required_claim_must_be_present(name: str) -> None:
    token = signed_payload(**{name: None})
    assert reason(lambda: VERIFIER.verify(token, audience="wiki", now=NOW)) is (
        TokenRejection.MISSING_CLAIM
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": 1},
        {"sub": ""},
        {"sub": ["user:alice"]},
        {"exp": "2031-07-01"},
        {"exp": True},
        {"exp": 1.5e9},
        {"exp": 10**20},
        {"iat": -1},
        {"nbf": "0"},
        {"auth_time": None},
        {"zg_mfa_time": "soon"},
        {"amr": "pwd"},
        {"zg_groups": ["eng", None]},
        {"zg_kind": "robot"},
        {"zg_device": 7},
        {"zg_device": ""},
        {"zg_dept": ["finance"]},
        {"zg_office": ""},
        {"zg_idp": 1},
        {"zg_sexp": "tomorrow"},
        {"zg_sexp": -5},
        {"jti": 12},
    ],
)
def test_mistyped_claims_are_refused(changes: dict[str, object]) -> None:
    token = signed_payload(**changes)
    assert reason(lambda: VERIFIER.verify(token, audience="wiki", now=NOW)) is (
        TokenRejection.MISSING_CLAIM
    )


def test_unknown_extra_claims_are_ignored() -> None:
    token = signed_payload(zg_future="something", scope="read")
    assert VERIFIER.verify(token, audience="wiki", now=NOW) == claims()


def test_issuer_is_matched_exactly() -> None:
    for other in (ISSUER + "/", ISSUER.upper(), "https://evil.test"):
        token = signed_payload(iss=other)
        assert reason(lambda: VERIFIER.verify(token, audience="wiki", now=NOW)) is (  # noqa: B023
            TokenRejection.WRONG_ISSUER
        )


# --- what issuing refuses --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject": ""}, "not empty"),
        ({"token_id": ""}, "not empty"),
        ({"principal_kind": "robot"}, "principal_kind"),
        ({"expires_at": NOW}, "after issued_at"),
        ({"issued_at": datetime(2031, 7, 1)}, "timezone"),
        ({"auth_time": datetime(1969, 12, 31, tzinfo=UTC)}, "1970"),
        ({"cnf_x5t_s256": "ab" * 32}, "base64url SHA-256"),  # the hex fingerprint, a likely slip
        ({"device_id": ""}, "device_id"),
        ({"username": "\ud800"}, "Unicode"),
        ({"groups": tuple(f"group-{n:05}" for n in range(700))}, "over 8192"),
    ],
)
def test_issue_refuses_what_verify_would_refuse(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        issue_access_token(KEY, claims(**changes))


def test_signing_key_checks_its_own_kid() -> None:
    with pytest.raises(ValueError, match="thumbprint"):
        SigningKey("not-the-thumbprint", KEY.private_key, NOW)
    with pytest.raises(ValueError, match="P-256"):
        SigningKey(KEY.kid, ec.generate_private_key(ec.SECP384R1()), NOW)


# --- errors ----------------------------------------------------------------------------------


def test_rejection_codes_are_stable() -> None:
    assert {member.name: member.value for member in TokenRejection} == {
        "MALFORMED": "malformed",
        "BAD_ALGORITHM": "bad_algorithm",
        "UNKNOWN_KEY": "unknown_key",
        "BAD_SIGNATURE": "bad_signature",
        "EXPIRED": "expired",
        "NOT_YET_VALID": "not_yet_valid",
        "WRONG_ISSUER": "wrong_issuer",
        "WRONG_AUDIENCE": "wrong_audience",
        "MISSING_CLAIM": "missing_claim",
        "BINDING_MISMATCH": "binding_mismatch",
        "BINDING_REQUIRED": "binding_required",
    }


def test_error_messages_never_hold_the_token_or_its_values() -> None:
    token = signed_payload(iss="https://evil.test/SECRET-MARKER")
    with pytest.raises(TokenError) as caught:
        VERIFIER.verify(token, audience="wiki", now=NOW)
    text = str(caught.value) + caught.value.detail + repr(caught.value)
    assert "SECRET-MARKER" not in text
    assert all(part not in text for part in token.split("."))
    assert str(caught.value).startswith("wrong_issuer: ")


# --- properties ------------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=24)
SECONDS = st.integers(0, 2**33)
THUMBPRINTS = st.binary(min_size=32, max_size=32).map(b64)


@st.composite
def access_claims(draw: st.DrawFn) -> AccessClaims:
    issued = draw(SECONDS)
    return AccessClaims(
        issuer=ISSUER,
        subject=draw(TEXT),
        audience=draw(TEXT),
        session_id=draw(TEXT),
        principal_kind=draw(st.sampled_from(["person", "service"])),
        username=draw(TEXT),
        groups=tuple(draw(st.lists(st.text(max_size=24), max_size=8))),
        auth_time=datetime.fromtimestamp(draw(SECONDS), UTC),
        mfa_time=draw(st.none() | SECONDS.map(lambda s: datetime.fromtimestamp(s, UTC))),
        amr=tuple(draw(st.lists(st.sampled_from(["pwd", "otp", "hwk", "mfa", "fed"])))),
        issued_at=datetime.fromtimestamp(issued, UTC),
        expires_at=datetime.fromtimestamp(issued + draw(st.integers(1, 10**6)), UTC),
        token_id=draw(TEXT),
        cnf_x5t_s256=draw(st.none() | THUMBPRINTS),
        device_id=draw(st.none() | TEXT),
    )


@given(access_claims())
@settings(max_examples=150, deadline=None)
def test_property_random_claims_round_trip(original: AccessClaims) -> None:
    token = issue_access_token(KEY, original)
    got = VERIFIER.verify(
        token,
        audience=original.audience,
        now=original.issued_at,
        client_cert_x5t_s256=original.cnf_x5t_s256,
    )
    assert got == original


VALID = issue_access_token(KEY, claims(cnf_x5t_s256=LAPTOP))


def verify_any(token: str) -> None:
    VERIFIER.verify(token, audience="wiki", now=NOW, client_cert_x5t_s256=LAPTOP)


@given(st.binary(max_size=2048))
@settings(max_examples=300)
def test_property_random_bytes_only_raise_token_error(data: bytes) -> None:
    with pytest.raises(TokenError):
        verify_any(data.decode("latin-1"))


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="))
@settings(max_examples=300)
def test_property_random_base64url_text_only_raises_token_error(text: str) -> None:
    with pytest.raises(TokenError):
        verify_any(text)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
# Header members and values that are close to acceptable, so the fuzzing gets past the first check.
HEADER_NAMES = st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jwk", "jku", "x5c"]) | TEXT
HEADER_VALUES = st.sampled_from(["ES256", KEY.kid, "at+jwt", "none", "HS256"]) | JSON_VALUES
PAYLOAD_NAMES = st.sampled_from([*REQUIRED, "nbf", "cnf", "zg_mfa_time", "zg_device"]) | TEXT


@given(
    st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=5),
    st.dictionaries(PAYLOAD_NAMES, JSON_VALUES, max_size=16),
    st.binary(max_size=80) | st.binary(min_size=64, max_size=64),
)
@settings(max_examples=300)
def test_property_random_json_segments_only_raise_token_error(
    header: dict[str, object], payload: dict[str, object], signature: bytes
) -> None:
    with pytest.raises(TokenError):
        verify_any(f"{segment(header)}.{segment(payload)}.{b64(signature)}")


MUTATION_ALPHABET = "AQgwBZaz09-_.=+/ \x00é"


@given(st.data())
@settings(max_examples=400)
def test_property_any_change_to_a_valid_token_is_refused(data: st.DataObject) -> None:
    verify_any(VALID)  # the unmutated token is accepted
    index = data.draw(st.integers(0, len(VALID)))
    kind = data.draw(st.sampled_from(["replace", "insert", "delete", "cut"]))
    char = data.draw(st.sampled_from(MUTATION_ALPHABET))
    if kind == "replace" and index < len(VALID):
        mutated = VALID[:index] + char + VALID[index + 1 :]
    elif kind == "insert":
        mutated = VALID[:index] + char + VALID[index:]
    elif kind == "delete":
        mutated = VALID[:index] + VALID[index + 1 :]
    else:
        mutated = VALID[:index]
    assume(mutated != VALID)
    with pytest.raises(TokenError):
        verify_any(mutated)


def test_max_token_length_is_8_kib() -> None:
    assert MAX_TOKEN_LENGTH == 8192
