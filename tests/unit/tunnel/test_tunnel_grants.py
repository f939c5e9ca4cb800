"""Grants: only the gateway's key, only for the group, only while current; never a crash."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from zerogate.core.tunnel.grants import Grant, GrantError, sign_grant, verify_grant

KEY = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())
GRANT = Grant("wiki", "10.0.0.5:80", "dc1", "gw-1", "alice", 1000.0, 1030.0)


def test_round_trip() -> None:
    text = sign_grant(KEY, GRANT)
    assert verify_grant(text, KEY.public_key(), group="dc1", now=1001.0) == GRANT


@pytest.mark.parametrize(
    ("key", "group", "now", "why"),
    [
        (OTHER, "dc1", 1001.0, "signature"),
        (KEY, "dc2", 1001.0, "connector group"),
        (KEY, "dc1", 1036.0, "expired"),
        (KEY, "dc1", 990.0, "expired"),  # issued in the future, beyond the clock leeway
    ],
)
def test_refusals(key: ec.EllipticCurvePrivateKey, group: str, now: float, why: str) -> None:
    with pytest.raises(GrantError, match=why):
        verify_grant(sign_grant(KEY, GRANT), key.public_key(), group=group, now=now)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_changed_payload_does_not_verify() -> None:
    header, _, signature = sign_grant(KEY, GRANT).split(".")
    changed = replace(GRANT, target="10.9.9.9:22")
    payload = _b64(
        json.dumps({f: getattr(changed, f) for f in Grant.__dataclass_fields__}).encode()
    )
    with pytest.raises(GrantError, match="signature"):
        verify_grant(f"{header}.{payload}.{signature}", KEY.public_key(), group="dc1", now=1001.0)


def test_another_token_type_is_refused() -> None:
    from joserfc import jws
    from joserfc.jwk import ECKey

    payload = json.dumps({f: getattr(GRANT, f) for f in Grant.__dataclass_fields__}).encode()
    other = jws.serialize_compact(
        {"alg": "ES256", "typ": "zg-snapshot+json"}, payload, ECKey.import_key(KEY)
    )
    with pytest.raises(GrantError, match="header"):
        verify_grant(other, KEY.public_key(), group="dc1", now=1001.0)


@given(st.text(max_size=300))
def test_garbage_is_a_grant_error(text: str) -> None:
    with pytest.raises(GrantError):
        verify_grant(text, KEY.public_key(), group="dc1", now=1001.0)
