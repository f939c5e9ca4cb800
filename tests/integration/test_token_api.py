"""A person's access token on the admin API: admins act, others are refused, and every
forged, stretched or misdirected token is refused with its reason in the audit log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from conftest import Control  # type: ignore[import-not-found]
from portalkit import browser, csrf_of, events, login, make_user
from zerogate.core.tokens import AccessClaims, issue_access_token, new_signing_key, new_token_id
from zerogate.store import signing_keys
from zerogate.store.models import Session, utcnow


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _mint(client: TestClient, audience: str = "zerogate-control") -> str:
    response = client.post(
        "/portal/token", data={"audience": audience, "csrf": csrf_of(client, "/portal/account")}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _signed_in(control: Control, username: str, groups: list[str]) -> TestClient:
    make_user(control, username, groups=groups)
    client = browser(control)
    login(client, username)
    return client


def _api(control: Control) -> TestClient:
    """The admin API on the portal's host: tokens name it as their issuer."""
    return TestClient(control.app, base_url="https://portal.test")


def _call(control: Control, token: str) -> int:
    return (
        _api(control).get("/api/v1/apps", headers={"Authorization": f"Bearer {token}"}).status_code
    )


def test_admins_use_their_access_token_and_others_are_refused(control: Control) -> None:
    control.client.post("/api/v1/groups", json={"name": "admins"}, headers=control.admin)
    admin = _signed_in(control, "alice", ["admins"])
    token = _mint(admin)
    created = _api(control).post(
        "/api/v1/groups", json={"name": "eng"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert created.status_code == 201
    actor = events(control, "inventory.create")[0]["actor"]
    assert str(actor).startswith("user:alice:")
    plain = _signed_in(control, "bob", [])
    assert _call(control, _mint(plain)) == 403
    admin.post("/portal/logout", data={"csrf": csrf_of(admin, "/portal/account")})
    assert _call(control, token) == 401  # the session behind the token has ended


def test_a_token_carries_the_department_office_and_provider_rules_can_name(
    control: Control,
) -> None:
    """Policy rules may name departments, offices and identity providers; a gateway decides
    from the token alone, so the token must say them (and no department or office for a
    person with none)."""
    c, h = control.client, control.admin
    assert c.post("/api/v1/departments", json={"name": "finance"}, headers=h).status_code == 201
    assert c.post("/api/v1/offices", json={"name": "paris"}, headers=h).status_code == 201
    placed = _signed_in(control, "fiona", [])
    c.patch("/api/v1/users/fiona", json={"department": "finance", "office": "paris"}, headers=h)
    claims = _payload(_mint(placed))
    assert (claims["zg_dept"], claims["zg_office"]) == ("finance", "paris")
    assert claims["zg_idp"] == "local"  # signed in with a password, not through an IdP
    unplaced = _payload(_mint(_signed_in(control, "uma", [])))
    assert "zg_dept" not in unplaced and "zg_office" not in unplaced


def test_a_token_never_outlives_its_session_and_says_when_it_ends(control: Control) -> None:
    """A token minted five minutes before its session ends expires then, not ten minutes
    later; and it names the session's end (`zg_sexp`), which a gateway needs to cut a
    WebSocket opened with it."""
    client = _signed_in(control, "sam", [])
    fresh = _payload(_mint(client))
    with control.db.transaction() as db:
        row = db.scalars(select(Session).where(Session.handle == fresh["zg_sid"])).one()
        session_ends = row.expires_at
        assert fresh["zg_sexp"] == int(session_ends.timestamp())
        assert fresh["exp"] == fresh["iat"] + 600  # a whole token life is left
        row.expires_at = utcnow() + timedelta(minutes=5)
        ends = int(row.expires_at.timestamp())
    response = client.post(
        "/portal/token",
        data={"audience": "zerogate-control", "csrf": csrf_of(client, "/portal/account")},
    )
    late = _payload(str(response.json()["access_token"]))
    assert late["exp"] == late["zg_sexp"] == ends
    assert 290 <= response.json()["expires_in"] <= 300


def _payload(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_attacks_are_refused_and_audited_with_their_reason(control: Control) -> None:
    control.client.post("/api/v1/groups", json={"name": "admins"}, headers=control.admin)
    control.client.post(
        "/api/v1/apps",
        json={
            "name": "wiki",
            "kind": "http",
            "hostname": "wiki.corp.example",
            "target": "http://10.0.0.2",
        },
        headers=control.admin,
    )
    client = _signed_in(control, "alice", ["admins"])
    good = _mint(client)
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    jwks = client.get("/.well-known/jwks.json").json()

    forged_payload = _b64(json.dumps({**claims, "zg_user": "mallory"}).encode())
    none_header = _b64(
        json.dumps({"alg": "none", "typ": "at+jwt", "kid": jwks["keys"][0]["kid"]}).encode()
    )
    hs_header = _b64(
        json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": jwks["keys"][0]["kid"]}).encode()
    )
    hs_input = f"{hs_header}.{payload}".encode()
    hs_token = f"{hs_header}.{payload}.{_b64(hmac.new(json.dumps(jwks['keys'][0]).encode(), hs_input, hashlib.sha256).digest())}"
    now = utcnow()
    stranger = new_signing_key(now)
    foreign = issue_access_token(
        stranger,
        AccessClaims(
            issuer="https://portal.test",
            subject="user:alice",
            audience="zerogate-control",
            session_id="0" * 16,
            principal_kind="person",
            username="alice",
            groups=("admins",),
            auth_time=now,
            mfa_time=None,
            amr=("pwd",),
            issued_at=now - timedelta(hours=2),
            expires_at=now - timedelta(hours=1),
            token_id=new_token_id(),
            cnf_x5t_s256=None,
        ),
    )
    attacks = {
        "bad_signature": f"{header}.{forged_payload}.{signature}",
        "bad_algorithm": f"{none_header}.{payload}.",
        "unknown_key": foreign,
        "wrong_audience": _mint(client, "wiki"),
    }
    for expected, token in attacks.items():
        response = _api(control).get("/api/v1/apps", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401 and expected in response.json()["detail"], (
            expected,
            response.text,
        )
    hs = _api(control).get("/api/v1/apps", headers={"Authorization": f"Bearer {hs_token}"})
    assert hs.status_code == 401 and "bad_algorithm" in hs.json()["detail"]
    reasons = [e["details"]["reason"] for e in events(control, "token.rejected")]  # type: ignore[index]
    assert sorted(reasons) == sorted([*attacks, "bad_algorithm"])
    assert _call(control, good) == 200  # the real token still works


def test_bound_token_without_its_certificate_is_refused_and_audited(control: Control) -> None:
    control.client.post("/api/v1/groups", json={"name": "admins"}, headers=control.admin)
    _signed_in(control, "alice", ["admins"])
    handle = control.client.get(
        "/api/v1/sessions", params={"username": "alice"}, headers=control.admin
    ).json()[0]["handle"]
    now = utcnow()
    with control.db.transaction() as session:
        key = signing_keys.current(session, control.app.state.portal.signing_sealer, now)
    bound = issue_access_token(
        key,
        AccessClaims(
            issuer="https://portal.test",
            subject="user:alice",
            audience="zerogate-control",
            session_id=handle,
            principal_kind="person",
            username="alice",
            groups=("admins",),
            auth_time=now,
            mfa_time=None,
            amr=("pwd",),
            issued_at=now,
            expires_at=now + timedelta(minutes=5),
            token_id=new_token_id(),
            cnf_x5t_s256=_b64(hashlib.sha256(b"the laptop's certificate").digest()),
        ),
    )
    response = _api(control).get("/api/v1/apps", headers={"Authorization": f"Bearer {bound}"})
    assert response.status_code == 401 and "binding_mismatch" in response.json()["detail"]
    assert [e["details"]["reason"] for e in events(control, "token.rejected")] == [
        "binding_mismatch"
    ]  # type: ignore[index]
