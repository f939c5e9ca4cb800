"""RFC 8628 device login: the CLI polls, the person approves in the portal, the CLI gets an
access token for the control plane tied to a new session; every refusal path is exact."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import update

from conftest import Control  # type: ignore[import-not-found]
from portalkit import browser, csrf_of, events, login, make_user
from zerogate.store.models import DeviceAuthorization

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _device(control: Control) -> TestClient:
    return TestClient(control.app, base_url="https://portal.test")


def _start(device: TestClient) -> dict[str, object]:
    response = device.post("/oauth/device_authorization", data={"client_id": "zerogate-cli"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _poll(device: TestClient, device_code: object) -> tuple[int, dict[str, object]]:
    response = device.post(
        "/oauth/token",
        data={"grant_type": GRANT, "device_code": device_code, "client_id": "zerogate-cli"},
    )
    return response.status_code, dict(response.json())


def _let_time_pass(control: Control) -> None:
    """Pretend the polling interval has passed (no sleeping in tests)."""
    with control.db.transaction() as session:
        session.execute(update(DeviceAuthorization).values(last_poll_at=None))


def test_device_login_end_to_end(control: Control) -> None:
    control.client.post("/api/v1/groups", json={"name": "admins"}, headers=control.admin)
    make_user(control, groups=["admins"])
    device = _device(control)
    grant = _start(device)
    assert str(grant["user_code"])[4] == "-" and grant["interval"] == 5
    assert grant["verification_uri"] == "https://portal.test/portal/device"
    assert _poll(device, grant["device_code"]) == (400, {"error": "authorization_pending"})
    assert _poll(device, grant["device_code"]) == (400, {"error": "slow_down"})

    person = browser(control)
    assert (
        person.get(f"/portal/device?user_code={grant['user_code']}")
        .headers["location"]
        .startswith("/portal/login?next=/portal/device")
    )
    login(person)
    page = person.get(f"/portal/device?user_code={grant['user_code']}")
    assert page.status_code == 200 and "Approve" in page.text
    done = person.post(
        "/portal/device",
        data={
            "user_code": grant["user_code"],
            "decision": "approve",
            "csrf": csrf_of(person, "/portal/device"),
        },
    )
    assert done.status_code == 200 and "return to your terminal" in done.text

    _let_time_pass(control)
    status, body = _poll(device, grant["device_code"])
    assert status == 200 and body["token_type"] == "Bearer"
    api = device.get("/api/v1/apps", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert api.status_code == 200
    _let_time_pass(control)
    assert _poll(device, grant["device_code"]) == (400, {"error": "expired_token"})  # one use only
    sessions = control.client.get(
        "/api/v1/sessions", params={"username": "alice"}, headers=control.admin
    ).json()
    assert {s["provider"] for s in sessions} == {"local", "device:zerogate-cli"}
    assert events(control, "login.device.approve")


def test_denied_unknown_and_foreign_client(control: Control) -> None:
    make_user(control)
    device = _device(control)
    grant = _start(device)
    person = browser(control)
    login(person)
    wrong = person.post(
        "/portal/device",
        data={
            "user_code": "BBBB-BBBB",
            "decision": "approve",
            "csrf": csrf_of(person, "/portal/device"),
        },
    )
    assert wrong.status_code == 400 and "not valid" in wrong.text
    person.post(
        "/portal/device",
        data={
            "user_code": grant["user_code"],
            "decision": "deny",
            "csrf": csrf_of(person, "/portal/device"),
        },
    )
    _let_time_pass(control)
    assert _poll(device, grant["device_code"]) == (400, {"error": "access_denied"})
    assert device.post("/oauth/device_authorization", data={"client_id": "evil"}).status_code == 401
    other = _start(device)
    stolen = device.post(
        "/oauth/token",
        data={
            "grant_type": GRANT,
            "device_code": other["device_code"],
            "client_id": "zerogate-agent",
        },
    )
    # The agent client must present its device certificate before anything else is looked at.
    assert stolen.status_code == 401 and stolen.json() == {"error": "invalid_client"}
    bad_grant = device.post(
        "/oauth/token",
        data={"grant_type": "password", "device_code": "x", "client_id": "zerogate-cli"},
    )
    assert bad_grant.json() == {"error": "unsupported_grant_type"}
    assert events(control, "login.device.deny")
