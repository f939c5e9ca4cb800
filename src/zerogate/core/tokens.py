"""Access tokens: the control plane issues them, every gateway verifies them on every request.

Where it sits: step 1 of the life of a request ("Identify"). The control plane's login (or a
service identity's token exchange) builds `AccessClaims` and calls `issue_access_token`; the
gateway holds one `TokenVerifier` built from the control plane's JWKS and calls `verify` with the
presented token, the application's name as audience, the request's time and, for agents, the
thumbprint of the client certificate from the mutual-TLS handshake. A `TokenError` carries a
`TokenRejection`, the stable reason code the audit event and the deny page reuse.

Theory of operation:
- A token is a JWT (RFC 7519) signed as a compact JWS (RFC 7515 §7.1) with ES256 (RFC 7518
  §3.4) and typed `at+jwt` (RFC 9068 §2.1). Verification is local: no request waits on the
  control plane.
- ES256 only. The verifier never lets the token choose how it is checked: the algorithm is fixed
  here, not read from the header, and the header must say exactly "ES256" or the token is
  refused before any key is touched. This closes `alg: none`, and the classic confusion where an
  attacker signs HS256 with the *public* key's bytes as the HMAC secret (RS/ES keys must never
  be usable as MAC keys). One algorithm also means one code path to audit and measure.
- The header may only hold `alg`, `kid` and `typ`: `jku`, `jwk`, `x5u`, `x5c` would let a token
  name its own key, `crit` and `b64` (RFC 7797) change what the signature covers.
- Duplicate JSON member names are refused (RFC 7515 §4 and RFC 7519 §4 allow "reject" or
  "last wins"; two parsers picking different duplicates is an attack).
- `typ` must be `at+jwt`: the identity assertions the gateway sends upstream verify against the
  same JWKS, and an application must not be able to replay one as an access token (RFC 9068 §4).
- Keys are found by `kid`, the RFC 7638 thumbprint (`token_keys`); a kid not in the JWKS is
  refused, never "try every key".
- joserfc signs (`jwt.encode`), imports the JWKS (`jwk.ECKey`) and checks the ES256 signature
  (its RFC 7518 §3.4 algorithm, R || S to DER); the compact parsing and the claim rules are
  ours, because they are stricter than a general JOSE library and must name an exact reason.
- The payload is decoded only after the signature verifies; before that only the header (at
  most `MAX_HEADER_LENGTH` characters) is parsed, so unauthenticated input does little work.
- Sender constraint (RFC 8705 §3.1): an agent's token carries `cnf.x5t#S256`, the SHA-256
  thumbprint of its device certificate, and is accepted only over a TLS connection that presented
  that certificate. The thumbprints are compared with `hmac.compare_digest`: they are not
  secrets, but a security decision should not take a time that depends on where two values first
  differ, and the constant-time form costs nothing here.
- `amr` holds RFC 8176 §2 values ("pwd", "otp", "hwk", "mfa"), plus "fed" for single sign-on,
  which is ours: the RFC 8176 registry has no value for federated login.

Invariants:
1. `verify` raises only `TokenError` for any token text, and its message never holds the token
   or any value taken from it (they are attacker-chosen and end up in logs).
2. `verify` reads no clock and does no I/O; the JWKS is imported once, in `__init__`.
3. `issue_access_token` refuses claims that `verify` would refuse, so a bad token fails at the
   control plane, once, rather than at every gateway on every request.
"""

from __future__ import annotations

import enum
import hmac
import json
import math
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, TypeGuard

from joserfc import jwt
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode

from zerogate.core.inventory.schemas import PrincipalKind
from zerogate.core.token_keys import (
    ALGORITHM,
    SigningKey,
    jwks,
    new_signing_key,
    public_jwk,
    signer,
    signing_key_from_pem,
    signing_key_to_pem,
    verification_keys,
)

__all__ = [
    "MAX_TOKEN_LENGTH",
    "TOKEN_TYPE",
    "AccessClaims",
    "SigningKey",
    "TokenError",
    "TokenRejection",
    "TokenVerifier",
    "issue_access_token",
    "jwks",
    "new_signing_key",
    "new_token_id",
    "public_jwk",
    "signing_key_from_pem",
    "signing_key_to_pem",
]

MAX_TOKEN_LENGTH: Final = 8192  # characters; a cookie or header beyond this is not ours
MAX_HEADER_LENGTH: Final = 512  # ours is ~110 characters; this bounds pre-signature parsing
TOKEN_TYPE: Final = "at+jwt"  # RFC 9068 §2.1
_TYPES = frozenset({TOKEN_TYPE, "application/at+jwt"})
_HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
_SIGNATURE_BYTES = 64  # RFC 7518 §3.4: R || S, 32 octets each for P-256
_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime holds
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url SHA-256, no padding
_KINDS: Final = {kind.value: kind for kind in PrincipalKind}
_REGISTRY = JWSRegistry(algorithms=[ALGORITHM])
_ES256 = _REGISTRY.get_alg(ALGORITHM)


class TokenRejection(enum.StrEnum):
    """Why a token was refused. Audit events store these values: never rename or reuse one."""

    MALFORMED = "malformed"
    BAD_ALGORITHM = "bad_algorithm"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    MISSING_CLAIM = "missing_claim"
    BINDING_MISMATCH = "binding_mismatch"
    BINDING_REQUIRED = "binding_required"


class TokenError(Exception):
    """A refused token: `reason` for audit and metrics, `detail` for operators (no token text)."""

    def __init__(self, reason: TokenRejection, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified token says. Times are whole seconds (JWT NumericDate), timezone-aware."""

    issuer: str  # iss
    subject: str  # sub: "user:alice", "service:ci"
    audience: str  # aud: an application's name, or "zerogate-control"
    session_id: str  # zg_sid: revoking the session revokes its tokens
    principal_kind: str  # zg_kind: PrincipalKind value, "person" or "service"
    username: str  # zg_user
    groups: tuple[str, ...]  # zg_groups
    auth_time: datetime  # when the principal last authenticated (OIDC Core §2)
    mfa_time: datetime | None  # zg_mfa_time: when a second factor last succeeded
    amr: tuple[str, ...]  # RFC 8176 §2 authentication method references
    issued_at: datetime  # iat
    expires_at: datetime  # exp
    token_id: str  # jti
    cnf_x5t_s256: str | None  # RFC 8705 §3.1 cnf.x5t#S256: the certificate the token is bound to
    device_id: str | None = None  # zg_device
    # Directory attributes policy rules can name (`who: {departments, offices}`), like groups.
    department: str | None = None  # zg_dept
    office: str | None = None  # zg_office
    identity_provider: str | None = None  # zg_idp: how the session signed in ("local", an IdP)
    # zg_sexp: when the session ends at the latest. A token never outlives it, but a
    # long-lived connection opened with it does unless it is cut then (see the gateway).
    session_expires_at: datetime | None = None


# --- issuing ---------------------------------------------------------------------------------


def new_token_id() -> str:
    """A fresh `jti` (128 random bits): the only randomness in issuing, so callers pass it in."""
    return secrets.token_urlsafe(16)


def issue_access_token(key: SigningKey, claims: AccessClaims) -> str:
    """A compact ES256 JWT for `claims`, signed by `key`; ValueError for claims verify refuses.

    Times are truncated to whole seconds. `claims.token_id` must be fresh (`new_token_id`).
    """
    payload = _payload(claims)
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": TOKEN_TYPE}
    try:
        token = jwt.encode(header, payload, signer(key), registry=_REGISTRY)
    except UnicodeEncodeError:
        raise ValueError("claims hold text that is not valid Unicode (lone surrogates)") from None
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError(f"the token would be {len(token)} characters, over {MAX_TOKEN_LENGTH}")
    return token


def _payload(claims: AccessClaims) -> dict[str, object]:
    texts = (claims.issuer, claims.subject, claims.audience, claims.session_id, claims.username)
    if not all(texts) or not claims.token_id:
        raise ValueError("issuer, subject, audience, session_id, username, token_id: not empty")
    if claims.principal_kind not in _KINDS:
        raise ValueError("principal_kind must be 'person' or 'service'")
    issued_at, expires_at = _numeric_date(claims.issued_at), _numeric_date(claims.expires_at)
    if expires_at <= issued_at:
        raise ValueError("expires_at must be after issued_at (in whole seconds)")
    if claims.cnf_x5t_s256 is not None and not _THUMBPRINT.fullmatch(claims.cnf_x5t_s256):
        raise ValueError("cnf_x5t_s256 must be a base64url SHA-256 thumbprint (pki.x5t_s256)")
    if "" in (claims.device_id, claims.department, claims.office, claims.identity_provider):
        raise ValueError("device_id, department, office, identity_provider: None or non-empty")
    payload: dict[str, object] = {
        "iss": claims.issuer,
        "sub": claims.subject,
        "aud": claims.audience,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": expires_at,
        "jti": claims.token_id,
        "auth_time": _numeric_date(claims.auth_time),
        "amr": list(claims.amr),
        "zg_sid": claims.session_id,
        "zg_kind": str(claims.principal_kind),
        "zg_user": claims.username,
        "zg_groups": list(claims.groups),
    }
    dates = {"zg_mfa_time": claims.mfa_time, "zg_sexp": claims.session_expires_at}
    payload.update((name, _numeric_date(when)) for name, when in dates.items() if when is not None)
    optional = {
        "zg_device": claims.device_id,
        "zg_dept": claims.department,
        "zg_office": claims.office,
        "zg_idp": claims.identity_provider,
    }
    payload.update((name, value) for name, value in optional.items() if value is not None)
    if claims.cnf_x5t_s256 is not None:
        payload["cnf"] = {"x5t#S256": claims.cnf_x5t_s256}
    return payload


def _numeric_date(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("token times must be timezone-aware datetimes")
    seconds = math.floor(moment.timestamp())  # RFC 7519 §2 NumericDate, whole seconds
    if not 0 <= seconds <= _MAX_SECONDS:
        raise ValueError("token times must lie between 1970 and 9999")
    return seconds


# --- verifying -------------------------------------------------------------------------------


class TokenVerifier:
    """Verifies access tokens against one JWKS snapshot; build a new one when the JWKS changes."""

    __slots__ = ("_issuer", "_keys", "_leeway")

    def __init__(
        self,
        jwks: Mapping[str, object],
        *,
        issuer: str,
        leeway: timedelta = timedelta(seconds=30),
    ) -> None:
        if not issuer:
            raise ValueError("the expected issuer must not be empty")
        if leeway < timedelta(0):
            raise ValueError("leeway must not be negative")
        self._keys: dict[str, ECKey] = verification_keys(jwks)
        for key in self._keys.values():
            _ES256.check_key(key)  # once here, so verify need not
        self._issuer = issuer
        self._leeway = leeway.total_seconds()

    def __repr__(self) -> str:
        return f"TokenVerifier(issuer={self._issuer!r}, kids={sorted(self._keys)!r})"

    def verify(
        self,
        token: str,
        *,
        audience: str,
        now: datetime,
        client_cert_x5t_s256: str | None = None,
        require_binding: bool = False,
    ) -> AccessClaims:
        """The claims of a valid token for `audience` at `now`, else TokenError with a reason.

        `client_cert_x5t_s256` is `pki.x5t_s256` of the certificate the client presented in
        mutual TLS, or None. `require_binding` refuses tokens that are not certificate-bound.
        """
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be a timezone-aware datetime")
        header_segment, payload_segment, signature_segment = _split(token)
        key = self._key_for(_json_object(header_segment, "header"))
        signature = _signature(signature_segment)
        signing_input = header_segment + b"." + payload_segment
        if not _ES256.verify(signing_input, signature, key):
            raise TokenError(TokenRejection.BAD_SIGNATURE, "the signature does not verify")
        claims = _json_object(payload_segment, "payload")
        self._check_issuer_and_audience(claims, audience)
        issued_at, expires_at = self._check_times(claims, now.timestamp())
        bound_to = _check_binding(claims, client_cert_x5t_s256, require_binding)
        return _access_claims(claims, self._issuer, audience, issued_at, expires_at, bound_to)

    def _key_for(self, header: dict[str, object]) -> ECKey:
        # The algorithm is checked first and compared, never looked up: the token does not
        # get to choose how it is verified.
        if header.get("alg") != ALGORITHM:
            raise TokenError(TokenRejection.BAD_ALGORITHM, "only ES256 tokens are accepted")
        if not header.keys() <= _HEADER_MEMBERS:
            raise TokenError(TokenRejection.MALFORMED, "the header holds parameters we refuse")
        if header.get("typ") not in _TYPES:
            raise TokenError(TokenRejection.MALFORMED, "the header typ is not at+jwt")
        kid = header.get("kid")
        if kid is None:
            raise TokenError(TokenRejection.UNKNOWN_KEY, "the header names no key")
        if not isinstance(kid, str):
            raise TokenError(TokenRejection.MALFORMED, "the header kid is not a string")
        key = self._keys.get(kid)
        if key is None:
            raise TokenError(TokenRejection.UNKNOWN_KEY, "the signing key is not in the JWKS")
        return key

    def _check_issuer_and_audience(self, claims: Mapping[str, object], audience: str) -> None:
        if _text(claims, "iss") != self._issuer:
            raise TokenError(TokenRejection.WRONG_ISSUER, "the token is from another issuer")
        aud = claims.get("aud")  # RFC 7519 §4.1.3: one string, or an array of them
        if isinstance(aud, str):
            accepted = aud == audience
        elif isinstance(aud, list) and aud and _all_text(aud):
            accepted = audience in aud
        else:
            raise _missing("aud")
        if not accepted:
            raise TokenError(TokenRejection.WRONG_AUDIENCE, "the token is for another audience")

    def _check_times(self, claims: Mapping[str, object], now: float) -> tuple[int, int]:
        expires_at, issued_at = _seconds(claims, "exp"), _seconds(claims, "iat")
        if now >= expires_at + self._leeway:  # RFC 7519 §4.1.4: valid only *before* exp
            raise TokenError(TokenRejection.EXPIRED, "the token has expired")
        if "nbf" in claims and now + self._leeway < _seconds(claims, "nbf"):  # RFC 7519 §4.1.5
            raise TokenError(TokenRejection.NOT_YET_VALID, "the token is not valid yet")
        if now + self._leeway < issued_at:  # minted "later" than now: not ours to accept yet
            raise TokenError(TokenRejection.NOT_YET_VALID, "the token was issued in the future")
        return issued_at, expires_at


def _check_binding(
    claims: Mapping[str, object], presented: str | None, require_binding: bool
) -> str | None:
    """RFC 8705 §3.1: a token with cnf.x5t#S256 is valid only with that certificate."""
    if "cnf" not in claims:
        if require_binding:
            raise TokenError(TokenRejection.BINDING_REQUIRED, "the token is not bound to a cert")
        return None
    cnf = claims["cnf"]
    if not isinstance(cnf, dict):
        raise _missing("cnf")
    bound_to = cnf.get("x5t#S256")
    if not isinstance(bound_to, str) or not _THUMBPRINT.fullmatch(bound_to):
        raise _missing("cnf.x5t#S256")
    if len(cnf) != 1:
        # cnf (RFC 7800 §3) with a method we cannot check must not pass as merely "unbound".
        raise TokenError(TokenRejection.BINDING_MISMATCH, "the token has an unknown cnf method")
    if presented is None or not hmac.compare_digest(bound_to.encode(), presented.encode()):
        raise TokenError(TokenRejection.BINDING_MISMATCH, "the token is bound to another cert")
    return bound_to


def _access_claims(
    claims: Mapping[str, object],
    issuer: str,
    audience: str,
    issued_at: int,
    expires_at: int,
    bound_to: str | None,
) -> AccessClaims:
    kind = _text(claims, "zg_kind")
    if kind not in _KINDS:
        raise _missing("zg_kind")
    return AccessClaims(
        issuer=issuer,
        subject=_text(claims, "sub"),
        audience=audience,
        session_id=_text(claims, "zg_sid"),
        principal_kind=_KINDS[kind],
        username=_text(claims, "zg_user"),
        groups=_texts(claims, "zg_groups"),
        auth_time=_date(_seconds(claims, "auth_time")),
        mfa_time=_optional_date(claims, "zg_mfa_time"),
        amr=_texts(claims, "amr"),
        issued_at=_date(issued_at),
        expires_at=_date(expires_at),
        token_id=_text(claims, "jti"),
        cnf_x5t_s256=bound_to,
        device_id=_optional_text(claims, "zg_device"),
        department=_optional_text(claims, "zg_dept"),
        office=_optional_text(claims, "zg_office"),
        identity_provider=_optional_text(claims, "zg_idp"),
        session_expires_at=_optional_date(claims, "zg_sexp"),
    )


# --- parsing: everything here sees attacker-chosen bytes --------------------------------------


def _split(token: object) -> tuple[bytes, bytes, bytes]:
    """The three segments of a compact JWS (RFC 7515 §7.1), still base64url-encoded."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise TokenError(TokenRejection.MALFORMED, "not a compact JWS of acceptable size")
    parts = token.encode("ascii").split(b".")
    if len(parts) != 3:
        raise TokenError(TokenRejection.MALFORMED, "a compact JWS has exactly three parts")
    if len(parts[0]) > MAX_HEADER_LENGTH:
        raise TokenError(TokenRejection.MALFORMED, "the header is too long")
    return parts[0], parts[1], parts[2]


def _signature(segment: bytes) -> bytes:
    # Read after the header's alg was checked, so that `alg: none` (empty signature) or HS256
    # (32 bytes) are reported as the wrong algorithm rather than as a malformed signature.
    signature = _b64(segment, "signature")
    if len(signature) != _SIGNATURE_BYTES:
        raise TokenError(TokenRejection.MALFORMED, "an ES256 signature is 64 bytes")
    return signature


def _b64(segment: bytes, what: str) -> bytes:
    try:
        return urlsafe_b64decode(segment)  # strict: no padding, no +/, canonical final bits
    except ValueError:  # binascii.Error is a ValueError
        raise TokenError(TokenRejection.MALFORMED, f"the {what} is not base64url") from None


def _json_object(segment: bytes, what: str) -> dict[str, object]:
    try:
        # RFC 7515 §5.2 step 3: UTF-8 JSON; decode it ourselves rather than let json guess.
        value: object = _JSON.decode(_b64(segment, what).decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        raise TokenError(TokenRejection.MALFORMED, f"the {what} is not a JSON object") from None
    if not isinstance(value, dict):
        raise TokenError(TokenRejection.MALFORMED, f"the {what} is not a JSON object")
    return value


def _unique_members(pairs: list[tuple[str, object]]) -> dict[str, object]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member name")
    return members


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


_JSON: Final = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_no_constant)


def _missing(name: str) -> TokenError:
    return TokenError(TokenRejection.MISSING_CLAIM, f"claim {name} is missing or mistyped")


def _text(claims: Mapping[str, object], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise _missing(name)
    return value


def _optional_text(claims: Mapping[str, object], name: str) -> str | None:
    """A claim a token may leave out; if it is there, a non-empty string."""
    return _text(claims, name) if name in claims else None


def _optional_date(claims: Mapping[str, object], name: str) -> datetime | None:
    """A time claim a token may leave out; if it is there, a NumericDate."""
    return _date(_seconds(claims, name)) if name in claims else None


def _texts(claims: Mapping[str, object], name: str) -> tuple[str, ...]:
    """A list of texts, each interned: every token of a person names the same groups (and
    each of a company's people many of the same), and a gateway keeps thousands of verified
    tokens; without this each kept its own copy of every name (12 kB for 200 groups)."""
    value = claims.get(name)
    if not isinstance(value, list) or not _all_text(value):
        raise _missing(name)
    return tuple(map(sys.intern, value))


def _all_text(items: list[object]) -> TypeGuard[list[str]]:
    return all(isinstance(item, str) for item in items)


def _seconds(claims: Mapping[str, object], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SECONDS:
        raise _missing(name)
    return value


def _date(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
