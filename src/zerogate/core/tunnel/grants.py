"""The gateway's signed grant: "open a connection to this target for this app, now".

Where it sits: for each new stream the gateway signs a `Grant` with its TLS key; the connector
verifies it with the public key of the certificate the gateway presented in the tunnel's
mutual TLS handshake, so a grant cannot be replayed through another gateway, and it expires
within seconds, so a recorded stream cannot be replayed later. The grant says what the policy
decided; the connector's own allow-list still bounds what any grant can reach.

Format: JWS compact serialization (RFC 7515 §7.1), ES256, header
`{"alg": "ES256", "typ": "zg-grant+json"}`, payload the JSON form of `Grant` (times as Unix
seconds).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry

from zerogate.core.token_keys import ALGORITHM

GRANT_TYPE: Final = "zg-grant+json"
GRANT_SECONDS: Final = 30.0  # long enough for a slow connect, short enough not to matter
MAX_GRANT_BYTES: Final = 4096
CLOCK_LEEWAY: Final = 5.0  # gateway and connector clocks disagree a little
_REGISTRY = JWSRegistry(algorithms=[ALGORITHM])


@dataclass(frozen=True, slots=True)
class Grant:
    app: str
    target: str  # host:port, resolved by the connector
    group: str  # the connector group the app is routed through
    gateway: str  # the gateway's name, for the connector's log
    principal: str  # who asked (audit only; the connector does not decide)
    issued_at: float  # Unix seconds
    expires_at: float


class GrantError(Exception):
    """A grant that must not be honoured; the message says why (safe to log and to answer)."""


def sign_grant(key: ec.EllipticCurvePrivateKey, grant: Grant) -> str:
    header = {"alg": ALGORITHM, "typ": GRANT_TYPE}
    payload = json.dumps(asdict(grant), separators=(",", ":")).encode()
    return jws.serialize_compact(header, payload, ECKey.import_key(key), registry=_REGISTRY)


def verify_grant(
    text: str, public_key: ec.EllipticCurvePublicKey, *, group: str, now: float
) -> Grant:
    """The grant `text` holds, if `public_key` signed it, for `group`, and it is current."""
    if len(text) > MAX_GRANT_BYTES or not text.isascii() or text.count(".") != 2:
        raise GrantError("the grant is not a compact JWS of acceptable size")
    try:
        header = jws.extract_compact(text.encode(), registry=_REGISTRY).headers()
        if header != {"alg": ALGORITHM, "typ": GRANT_TYPE}:
            raise GrantError("the grant's header is not a zerogate grant's")
        payload = jws.deserialize_compact(
            text, ECKey.import_key(public_key), registry=_REGISTRY
        ).payload
    except (JoseError, ValueError):
        raise GrantError("the grant's signature does not verify") from None
    grant = _decode(payload)
    if grant.group != group:
        raise GrantError(f"the grant is for connector group {grant.group!r}")
    if not grant.issued_at - CLOCK_LEEWAY <= now < grant.expires_at + CLOCK_LEEWAY:
        raise GrantError("the grant has expired")
    return grant


def _decode(payload: bytes) -> Grant:
    try:
        data = json.loads(payload)
        fields = Grant.__dataclass_fields__
        if not isinstance(data, dict) or data.keys() != fields.keys():
            raise TypeError
        for name in ("app", "target", "group", "gateway", "principal"):
            if not isinstance(data[name], str):
                raise TypeError
        for name in ("issued_at", "expires_at"):
            if isinstance(data[name], bool) or not isinstance(data[name], int | float):
                raise TypeError
        return Grant(**data)
    except (ValueError, TypeError):
        raise GrantError("the grant's payload is malformed") from None
