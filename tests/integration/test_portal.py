"""The login portal over HTTPS on SQLite and PostgreSQL: passwords, TOTP, recovery codes,
throttling, CSRF, sessions and sign-out everywhere — each step audited."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from fastapi.testclient import TestClient

from conftest import Control  # type: ignore[import-not-found]
from portalkit import PASSWORD, browser, csrf_of, events, login, make_user
from zerogate.core.tokens import TokenError, TokenRejection, TokenVerifier
from zerogate.store.models import utcnow


def test_password_login_creates_a_listed_session(control: Control) -> None:
    make_user(control)
    client = browser(control)
    response = login(client)
    assert response.status_code == 303 and response.headers["location"] == "/portal/"  # type: ignore[attr-defined]
    cookie = response.headers["set-cookie"]  # type: ignore[attr-defined]
    assert (
        "zg_session=" in cookie
        and "Secure" in cookie
        and "HttpOnly" in cookie
        and "SameSite=lax" in cookie
    )
    page = client.get("/portal/account")
    assert (
        page.status_code == 200
        and "Signed in as alice" in page.text
        and "this session" in page.text
    )
    sessions = control.client.get(
        "/api/v1/sessions", params={"username": "alice"}, headers=control.admin
    ).json()
    assert len(sessions) == 1 and sessions[0]["amr"] == ["pwd"]
    assert events(control, "login.success")[0]["target"] == "user/alice"


def test_wrong_password_and_unknown_user_look_the_same(control: Control) -> None:
    make_user(control)
    wrong = login(browser(control), password="not the password")
    unknown = login(browser(control), username="mallory")
    for response in (wrong, unknown):
        assert response.status_code == 401  # type: ignore[attr-defined]
        assert "Invalid username or password." in response.text  # type: ignore[attr-defined]
    failures = events(control, "login.failure")
    assert {e["target"] for e in failures} == {"user/alice", "user/mallory"}
    assert all(e["details"]["source"] and e["outcome"] == "failure" for e in failures)  # type: ignore[index]


def test_throttle_backs_off_after_repeated_failures(control: Control) -> None:
    make_user(control)
    client = browser(control)
    for _ in range(3):
        assert login(client, password="wrong wrong wrong").status_code == 401  # type: ignore[attr-defined]
    blocked = login(client)  # the right password, too soon after three failures
    assert blocked.status_code == 429 and "Too many attempts" in blocked.text  # type: ignore[attr-defined]
    assert events(control, "login.throttled")


def test_forms_without_the_csrf_token_are_refused(control: Control) -> None:
    make_user(control)
    client = browser(control)
    client.get("/portal/login")
    response = client.post(
        "/portal/login", data={"username": "alice", "password": PASSWORD, "csrf": "forged"}
    )
    assert response.status_code == 403 and "zg_session" not in response.headers.get(
        "set-cookie", ""
    )
    cross = client.post(
        "/portal/login",
        data={"username": "alice", "password": PASSWORD, "csrf": csrf_of(client)},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403


def _enable_totp(client: TestClient) -> tuple[str, list[str]]:
    page = client.post("/portal/account/totp", data={"csrf": csrf_of(client, "/portal/account")})
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    assert secret, page.text
    done = client.post(
        "/portal/account/totp/confirm",
        data={
            "code": pyotp.TOTP(secret.group(1)).now(),
            "csrf": csrf_of(client, "/portal/account"),
        },
    )
    assert done.status_code == 200, done.text
    return secret.group(1), re.findall(r"<code>([0-9a-f]{8}-[0-9a-f]{8})</code>", done.text)


def test_totp_enrollment_then_second_factor_and_recovery_codes(control: Control) -> None:
    make_user(control)
    client = browser(control)
    login(client)
    secret, codes = _enable_totp(client)
    assert len(codes) == 10
    assert "Authenticator app: on" in client.get("/portal/account").text

    second = browser(control)
    assert login(second).headers["location"] == "/portal/login/mfa"  # type: ignore[attr-defined]
    assert second.get("/portal/account").status_code == 303  # no session before the second factor
    bad = second.post(
        "/portal/login/mfa", data={"code": "000000", "csrf": csrf_of(second, "/portal/login/mfa")}
    )
    assert bad.status_code == 401
    # The code the enrollment used is spent; the next time step's code is good.
    code = pyotp.TOTP(secret).at(utcnow() + timedelta(seconds=30))
    ok = second.post(
        "/portal/login/mfa", data={"code": code, "csrf": csrf_of(second, "/portal/login/mfa")}
    )
    assert ok.status_code == 303 and "zg_session=" in ok.headers["set-cookie"]
    sessions = control.client.get(
        "/api/v1/sessions", params={"username": "alice"}, headers=control.admin
    ).json()
    assert sorted(s["amr"] for s in sessions)[-1] == ["pwd", "otp", "mfa"]

    third = browser(control)
    login(third)
    replay = third.post(
        "/portal/login/mfa", data={"code": code, "csrf": csrf_of(third, "/portal/login/mfa")}
    )
    assert replay.status_code == 401  # a used code cannot be replayed
    recovery = third.post(
        "/portal/login/mfa", data={"code": codes[0], "csrf": csrf_of(third, "/portal/login/mfa")}
    )
    assert recovery.status_code == 303
    fourth = browser(control)
    login(fourth)
    again = fourth.post(
        "/portal/login/mfa", data={"code": codes[0], "csrf": csrf_of(fourth, "/portal/login/mfa")}
    )
    assert again.status_code == 401  # recovery codes work once
    assert events(control, "login.recovery_code") and events(control, "login.mfa.failure")


def test_group_requiring_mfa_forces_enrollment(control: Control) -> None:
    c, h = control.client, control.admin
    assert (
        c.post(
            "/api/v1/groups", json={"name": "finance", "mfa_required": True}, headers=h
        ).status_code
        == 201
    )
    make_user(control, groups=["finance"])
    client = browser(control)
    assert login(client).headers["location"] == "/portal/login/enroll"  # type: ignore[attr-defined]
    page = client.get("/portal/login/enroll")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    assert secret and "requires a second factor" in page.text
    done = client.post(
        "/portal/login/enroll",
        data={
            "code": pyotp.TOTP(secret.group(1)).now(),
            "csrf": csrf_of(client, "/portal/login/enroll"),
        },
    )
    assert done.status_code == 200 and "zg_session=" in done.headers["set-cookie"]
    assert "Signed in as alice" in client.get("/portal/account").text


def test_logout_everywhere_and_admin_revocation(control: Control) -> None:
    make_user(control)
    laptop, phone = browser(control), browser(control)
    login(laptop)
    login(phone)
    assert phone.get("/portal/account").status_code == 200
    laptop.post("/portal/logout/everywhere", data={"csrf": csrf_of(laptop, "/portal/account")})
    assert laptop.get("/portal/account").status_code == 303
    assert phone.get("/portal/account").status_code == 303
    login(phone)
    revoked = control.client.post(
        "/api/v1/users/alice/sessions/revoke", headers=control.admin
    ).json()
    assert revoked == {"revoked": 1}
    assert phone.get("/portal/account").status_code == 303


def test_the_sign_out_page_an_app_links_to_asks_before_it_signs_out(control: Control) -> None:
    make_user(control)
    laptop = browser(control)
    assert "You are not signed in" in laptop.get("/portal/logout").text
    login(laptop)
    page = laptop.get("/portal/logout")
    assert page.status_code == 200 and "signed in as <strong>alice</strong>" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert laptop.get("/portal/account").status_code == 200  # opening it signed nobody out
    forged = laptop.post("/portal/logout", data={"csrf": "forged"})
    assert forged.status_code == 403
    assert laptop.get("/portal/account").status_code == 200
    laptop.post("/portal/logout", data={"csrf": csrf_of(laptop, "/portal/logout")})
    assert laptop.get("/portal/account").status_code == 303
    assert [e["actor"] for e in events(control, "session.logout")] == ["user:alice"]


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("https://grafana.corp.example/dashboards", "https://grafana.corp.example/dashboards"),
        ("https://evil.example/", "/portal/"),
        ("//evil.example/", "/portal/"),
        ("https://grafana.corp.example@evil.example/", "/portal/"),
        ("javascript:alert(1)", "/portal/"),
        ("/portal/account", "/portal/account"),
    ],
)
def test_next_redirect_only_to_known_app_hosts(
    control: Control, next_url: str, expected: str
) -> None:
    app = {
        "name": "grafana",
        "kind": "http",
        "hostname": "grafana.corp.example",
        "target": "http://10.0.0.1:3000",
    }
    assert control.client.post("/api/v1/apps", json=app, headers=control.admin).status_code == 201
    make_user(control)
    assert login(browser(control), next_url=next_url).headers["location"] == expected  # type: ignore[attr-defined]


def test_password_policy_is_enforced(control: Control) -> None:
    c, h = control.client, control.admin
    c.post("/api/v1/users", json={"username": "bob"}, headers=h)
    short = c.post("/api/v1/users/bob/password", json={"password": "short"}, headers=h)
    assert short.status_code == 422 and "at least 12" in short.json()["errors"][0]["msg"]
    assert (
        c.post("/api/v1/users/nobody/password", json={"password": PASSWORD}, headers=h).status_code
        == 404
    )


def test_session_mints_audience_bound_tokens_that_verify_across_rotation(control: Control) -> None:
    app = {
        "name": "grafana",
        "kind": "http",
        "hostname": "grafana.corp.example",
        "target": "http://10.0.0.1:3000",
    }
    assert control.client.post("/api/v1/apps", json=app, headers=control.admin).status_code == 201
    make_user(control, groups=[])
    client = browser(control)
    assert (
        client.post(
            "/portal/token", data={"audience": "grafana", "csrf": csrf_of(client)}
        ).status_code
        == 401
    )
    login(client)
    minted = client.post(
        "/portal/token", data={"audience": "grafana", "csrf": csrf_of(client, "/portal/account")}
    )
    assert minted.status_code == 200, minted.text
    token = minted.json()["access_token"]
    verifier = TokenVerifier(
        client.get("/.well-known/jwks.json").json(), issuer="https://portal.test"
    )
    claims = verifier.verify(token, audience="grafana", now=utcnow())
    assert claims.username == "alice" and claims.amr == ("pwd",) and claims.subject == "user:alice"
    with pytest.raises(TokenError) as wrong:
        verifier.verify(token, audience="wiki", now=utcnow())
    assert wrong.value.reason is TokenRejection.WRONG_AUDIENCE
    unknown = client.post(
        "/portal/token", data={"audience": "nope", "csrf": csrf_of(client, "/portal/account")}
    )
    assert unknown.status_code == 400

    rotated = control.client.post("/api/v1/signing-keys/rotate", headers=control.admin).json()[
        "kid"
    ]
    after = TokenVerifier(client.get("/.well-known/jwks.json").json(), issuer="https://portal.test")
    assert after.verify(token, audience="grafana", now=utcnow()).username == "alice"  # old key kept
    fresh = client.post(
        "/portal/token", data={"audience": "grafana", "csrf": csrf_of(client, "/portal/account")}
    )
    header = json.loads(base64.urlsafe_b64decode(fresh.json()["access_token"].split(".")[0] + "=="))
    assert header["kid"] == rotated


def test_authorize_hands_the_gateway_s_state_back_through_the_login(control: Control) -> None:
    """The gateway binds each sign-in round trip to the browser with a `state`; the portal
    must carry it through its login page and back to the app's callback unchanged."""
    c, h = control.client, control.admin
    app = {
        "name": "wiki",
        "kind": "http",
        "hostname": "wiki.apps.test",
        "target": "http://10.0.0.9",
    }
    assert c.post("/api/v1/apps", json=app, headers=h).status_code == 201
    make_user(control)
    client = browser(control)
    ask = {"app": "wiki", "return": "https://wiki.apps.test/page?x=1", "state": "s-TaTe_42"}
    first = client.get("/portal/authorize", params=ask)
    assert first.status_code == 303
    next_url = parse_qs(urlsplit(first.headers["location"]).query)["next"][0]
    assert parse_qs(urlsplit(next_url).query)["state"] == ["s-TaTe_42"]
    login(client, next_url=next_url)
    back = client.get(next_url)
    assert back.status_code == 303
    callback = urlsplit(back.headers["location"])
    assert (callback.hostname, callback.path) == ("wiki.apps.test", "/.zerogate/callback")
    query = parse_qs(callback.query)
    assert query["state"] == ["s-TaTe_42"] and query["return"] == ["/page?x=1"]
    assert client.get("/portal/authorize", params={**ask, "state": "no spaces"}).status_code == 422
