"""Signing keys for access tokens, and the JWKS that publishes their public halves.

Where it sits: the control plane makes a key with `new_signing_key`, stores
`signing_key_to_pem` encrypted at rest (the caller encrypts), signs tokens with it
(`tokens.issue_access_token`) and publishes `jwks(...)` of every key still in use. Each gateway
turns that JWKS into verification keys once (`verification_keys`, called by `TokenVerifier`) and
then verifies every request locally.

Rotation is a caller's schedule, made safe by the JWKS: publish the new key, start signing
with it once every gateway has the new JWKS, and drop the old key only after the longest token
lifetime (plus leeway) has passed. Tokens carry the `kid` of the key that signed them, so a
verifier holding both keys accepts both generations during the overlap.

Invariants:
1. Every key is ECDSA P-256 and is used for ES256 only (RFC 7518 §3.4); nothing else imports.
2. A key's `kid` is its RFC 7638 JWK thumbprint, checked when a `SigningKey` is built and when a
   JWKS is imported: a JWKS entry cannot claim another key's identifier.
3. No private member (`d`) ever enters or leaves through a JWKS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeyParameters

ALGORITHM = "ES256"  # RFC 7518 §3.4: ECDSA over P-256 with SHA-256
CURVE = "P-256"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private P-256 key and its `kid` (the RFC 7638 thumbprint of its public key)."""

    kid: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)
    created_at: datetime
    _jwk: ECKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            self.private_key.curve, ec.SECP256R1
        ):
            raise ValueError("a token signing key must be an ECDSA P-256 private key")
        if self.created_at.tzinfo is None or self.created_at.utcoffset() is None:
            raise ValueError("created_at must be timezone-aware")
        jwk = ECKey.import_key(self.private_key, _parameters(self.kid))
        if jwk.thumbprint() != self.kid:
            raise ValueError("kid is not the RFC 7638 thumbprint of this key")
        object.__setattr__(self, "_jwk", jwk)


def new_signing_key(now: datetime) -> SigningKey:
    """A fresh P-256 key; one of the two places in token handling that uses randomness."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(_thumbprint(private_key.public_key()), private_key, now)


def signing_key_to_pem(key: SigningKey) -> bytes:
    """Unencrypted PKCS#8 PEM: the caller encrypts it before it touches a disk or a database."""
    return key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def signing_key_from_pem(kid: str, pem: bytes, created_at: datetime) -> SigningKey:
    """The key `signing_key_to_pem` wrote; ValueError if it is not that P-256 key (kid checked)."""
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not an unencrypted PKCS#8 PEM private key") from None
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise ValueError("a token signing key must be an ECDSA P-256 private key")
    return SigningKey(kid, private_key, created_at)


def signer(key: SigningKey) -> ECKey:
    """The joserfc key that signs with `key` (built once, when the SigningKey was)."""
    return key._jwk


def public_jwk(key: SigningKey) -> dict[str, str]:
    """The public JWK (RFC 7517 §4, RFC 7518 §6.2.1) of `key`, as published in the JWKS."""
    public = key._jwk.as_dict(private=False)
    return {
        "kty": "EC",
        "crv": CURVE,
        "x": str(public["x"]),
        "y": str(public["y"]),
        "kid": key.kid,
        "alg": ALGORITHM,
        "use": "sig",
    }


def jwks(keys: Iterable[SigningKey]) -> dict[str, list[dict[str, str]]]:
    """A JWK Set (RFC 7517 §5) of the public halves of `keys`, in the order given."""
    return {"keys": [public_jwk(key) for key in keys]}


def verification_keys(key_set: Mapping[str, object]) -> dict[str, ECKey]:
    """The JWKS as {kid: public key}; ValueError for anything but P-256 ES256 signing keys."""
    entries = key_set.get("keys")
    if not isinstance(entries, list):
        raise ValueError('a JWKS is an object with a "keys" list')
    keys: dict[str, ECKey] = {}
    for entry in entries:
        kid, key = _verification_key(entry)
        if kid in keys:
            raise ValueError(f"the JWKS holds kid {kid!r} twice")
        keys[kid] = key
    return keys


def _verification_key(member: object) -> tuple[str, ECKey]:
    if not isinstance(member, Mapping):
        raise ValueError("a JWKS entry must be a JSON object")
    entry = cast("Mapping[str, object]", member)  # JSON objects have string keys
    if entry.get("kty") != "EC" or entry.get("crv") != CURVE:
        raise ValueError("only EC P-256 keys are accepted in a token JWKS")
    if "d" in entry:
        raise ValueError("a JWKS entry holds a private key; refusing it")
    if entry.get("alg", ALGORITHM) != ALGORITHM or entry.get("use", "sig") != "sig":
        raise ValueError("a token JWKS key must be for ES256 signatures")
    kid, x, y = entry.get("kid"), entry.get("x"), entry.get("y")
    if not (isinstance(kid, str) and isinstance(x, str) and isinstance(y, str)):
        raise ValueError("a JWKS entry needs string kid, x and y members")
    try:
        # Only the members this module understands are imported: key_ops, x5c and the like
        # could otherwise change how joserfc lets the key be used.
        key = ECKey.import_key({"kty": "EC", "crv": CURVE, "x": x, "y": y}, _parameters(kid))
    except (JoseError, ValueError, TypeError):
        raise ValueError(f"JWKS key {kid!r} is not a valid P-256 public key") from None
    if key.thumbprint() != kid:  # RFC 7638 §3: the kid must be what the key hashes to
        raise ValueError(f"JWKS key {kid!r}: kid is not the RFC 7638 thumbprint of the key")
    return kid, key


def _parameters(kid: str) -> KeyParameters:
    # alg and use pin the key: joserfc itself then refuses it for anything but ES256 signatures.
    return {"kid": kid, "alg": ALGORITHM, "use": "sig"}


def _thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    # RFC 7638 §3.2: SHA-256 over {"crv","kty","x","y"} in lexical order, no whitespace.
    return ECKey.import_key(public_key).thumbprint()
