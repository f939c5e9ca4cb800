"""The signed snapshot: round trip over random policies, and every way a forgery is refused."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from policykit import NOW, ctx
from policystrategies import EXAMPLES, apps, contexts, policies

from zerogate.core.policy.compile import compile_policy
from zerogate.core.policy.model import App, Policy, RequestContext, Rule, Subjects, Targets
from zerogate.core.policy.parse import parse_policy
from zerogate.core.policy.snapshot import (
    Snapshot,
    SnapshotError,
    SnapshotRejection,
    sign_snapshot,
    verify_snapshot,
)
from zerogate.core.token_keys import jwks, new_signing_key
from zerogate.core.tokens import AccessClaims, issue_access_token

KEY = new_signing_key(NOW)
ISSUER = "https://zerogate.example"
SOURCE = """\
cidr_lists:
  offices: [198.18.0.0/24, "2001:db8::/32"]
rules:
  - name: eng-grafana
    who: {groups: [eng]}
    what: {apps: [grafana], methods: [GET], paths: [/d/]}
    when:
      device: {enrolled: true, os: [macos], min_os_version: {macos: "14.2"}}
      auth: {mfa_max_age_minutes: 60}
      network: {source_in: [offices]}
      time: {weekdays: [mon, fri], hours: "08:00-18:00", time_zone: Europe/Paris}
      risk_below: 50
    mode: monitor
"""


def snapshot(policy: Policy, inventory: tuple[App, ...] = ()) -> Snapshot:
    return Snapshot(ISSUER, 7, 3, NOW, policy, inventory)


def segments(text: str) -> list[str]:
    return text.split(".")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_parsed_policy_survives_the_round_trip() -> None:
    policy = parse_policy(SOURCE, "p.yaml")
    original = snapshot(policy, (App("grafana", frozenset({"obs"})),))
    signed = sign_snapshot(KEY, original)
    assert verify_snapshot(signed, jwks([KEY]), issuer=ISSUER) == original


@EXAMPLES
@given(policies, st.lists(apps, max_size=4).map(tuple), contexts)
def test_random_snapshots_round_trip_and_decide_alike(
    policy: Policy, inventory: tuple[App, ...], request: RequestContext
) -> None:
    original = snapshot(policy, inventory)
    received = verify_snapshot(sign_snapshot(KEY, original), jwks([KEY]), issuer=ISSUER)
    assert received == original
    expected = compile_policy(policy, inventory).decide(request)
    assert compile_policy(received.policy, received.apps).decide(request) == expected


def test_a_changed_payload_breaks_the_signature() -> None:
    header, payload, signature = segments(sign_snapshot(KEY, snapshot(Policy())))
    document = json.loads(base64.urlsafe_b64decode(payload + "=="))
    document["policy_version"] = 99
    forged = ".".join((header, b64(json.dumps(document).encode()), signature))
    with pytest.raises(SnapshotError) as caught:
        verify_snapshot(forged, jwks([KEY]), issuer=ISSUER)
    assert caught.value.reason is SnapshotRejection.BAD_SIGNATURE


def test_a_key_outside_the_jwks_is_refused() -> None:
    other = new_signing_key(NOW)
    with pytest.raises(SnapshotError) as caught:
        verify_snapshot(sign_snapshot(other, snapshot(Policy())), jwks([KEY]), issuer=ISSUER)
    assert caught.value.reason is SnapshotRejection.UNKNOWN_KEY


def test_another_issuer_is_refused() -> None:
    with pytest.raises(SnapshotError) as caught:
        verify_snapshot(sign_snapshot(KEY, snapshot(Policy())), jwks([KEY]), issuer="https://other")
    assert caught.value.reason is SnapshotRejection.WRONG_ISSUER


def test_an_access_token_is_not_a_snapshot() -> None:
    claims = AccessClaims(
        issuer=ISSUER,
        subject="user:alice",
        audience="grafana",
        session_id="s1",
        principal_kind="person",
        username="alice",
        groups=(),
        auth_time=NOW,
        mfa_time=None,
        amr=("pwd",),
        issued_at=NOW,
        expires_at=NOW.replace(hour=NOW.hour + 1),
        token_id="t1",
        cnf_x5t_s256=None,
    )
    with pytest.raises(SnapshotError) as caught:
        verify_snapshot(issue_access_token(KEY, claims), jwks([KEY]), issuer=ISSUER)
    assert caught.value.reason is SnapshotRejection.MALFORMED


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"alg": "none", "typ": "zg-snapshot+json"}, SnapshotRejection.BAD_ALGORITHM),
        (
            {"alg": "HS256", "kid": KEY.kid, "typ": "zg-snapshot+json"},
            SnapshotRejection.BAD_ALGORITHM,
        ),
        (
            {"alg": "ES256", "kid": KEY.kid, "typ": "zg-snapshot+json", "jku": "https://x"},
            SnapshotRejection.MALFORMED,
        ),
        ({"alg": "ES256", "typ": "zg-snapshot+json"}, SnapshotRejection.UNKNOWN_KEY),
    ],
)
def test_headers_do_not_choose_how_a_snapshot_is_verified(
    header: dict[str, str], reason: SnapshotRejection
) -> None:
    _, payload, signature = segments(sign_snapshot(KEY, snapshot(Policy())))
    forged = ".".join((b64(json.dumps(header).encode()), payload, signature))
    with pytest.raises(SnapshotError) as caught:
        verify_snapshot(forged, jwks([KEY]), issuer=ISSUER)
    assert caught.value.reason is reason


@pytest.mark.parametrize("text", ["", "a.b", "a.b.c.d", "é.b.c", "!!!.b.c"])
def test_garbage_is_malformed(text: str) -> None:
    with pytest.raises(SnapshotError) as caught:
        verify_snapshot(text, jwks([KEY]), issuer=ISSUER)
    assert caught.value.reason is SnapshotRejection.MALFORMED


def test_validly_signed_nonsense_is_invalid_content() -> None:
    from joserfc import jws

    from zerogate.core.token_keys import signer

    header = {"alg": "ES256", "kid": KEY.kid, "typ": "zg-snapshot+json"}
    body = json.dumps({"issuer": ISSUER, "serial": "many"}).encode()
    signed = jws.serialize_compact(header, body, signer(KEY))
    with pytest.raises(SnapshotError) as caught:
        verify_snapshot(signed, jwks([KEY]), issuer=ISSUER)
    assert caught.value.reason is SnapshotRejection.INVALID_CONTENT
    assert "serial" in caught.value.detail


def test_the_request_fixture_is_decided_identically_after_transport() -> None:
    policy = parse_policy(SOURCE.replace("mode: monitor", "mode: enforce"), "p.yaml")
    inventory = (App("grafana"),)
    received = verify_snapshot(
        sign_snapshot(KEY, snapshot(policy, inventory)), jwks([KEY]), issuer=ISSUER
    )
    request = ctx(app=App("grafana"), method="GET", path="/d/1")
    assert compile_policy(received.policy, inventory).decide(request) == compile_policy(
        policy, inventory
    ).decide(request)


def test_a_large_organisation_fits() -> None:
    """Thousands of rules and apps: far over the 128 kB JWS payloads libraries default to."""
    rules = tuple(
        Rule(f"r{i}", Subjects(groups=frozenset({f"g{i}"})), Targets(apps=frozenset({f"a{i}"})))
        for i in range(3000)
    )
    inventory = tuple(App(f"a{i}", frozenset({"t"})) for i in range(3000))
    original = snapshot(Policy(rules), inventory)
    signed = sign_snapshot(KEY, original)
    assert len(signed) > 500_000
    assert verify_snapshot(signed, jwks([KEY]), issuer=ISSUER) == original
