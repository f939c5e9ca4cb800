"""The REST API end to end on SQLite and PostgreSQL: CRUD, auth, bad input, audit, import."""

from __future__ import annotations

import pytest
from cryptography import x509

from conftest import Control  # type: ignore[import-not-found]
from zerogate.pki import generate_private_key, is_revoked, make_csr

API = "/api/v1"
GRAFANA = {
    "name": "grafana",
    "kind": "http",
    "hostname": "grafana.corp.example",
    "target": "http://grafana.internal:3000",
    "tags": ["monitoring"],
}


def test_health_ready_metrics_openapi(control: Control) -> None:
    c = control.client
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").status_code == 200
    assert "zerogate_control_requests" in c.get("/metrics").text
    paths = c.get(f"{API}/openapi.json").json()["paths"]
    for plural in ("apps", "users", "groups", "departments", "offices", "connector-groups"):
        assert f"{API}/{plural}" in paths and f"{API}/{plural}/{{key}}" in paths


def test_full_crud_of_an_app(control: Control) -> None:
    c, h = control.client, control.admin
    assert c.post(f"{API}/connector-groups", json={"name": "dc1"}, headers=h).status_code == 201
    created = c.post(f"{API}/apps", json={**GRAFANA, "connector_group": "dc1"}, headers=h)
    assert created.status_code == 201, created.text
    assert created.json()["mode"] == "enforce"  # secure by default
    assert c.get(f"{API}/apps/grafana", headers=h).json()["connector_group"] == "dc1"
    patched = c.patch(
        f"{API}/apps/grafana", json={"mode": "monitor", "connector_group": None}, headers=h
    )
    assert patched.status_code == 200 and patched.json()["mode"] == "monitor"
    assert patched.json()["connector_group"] is None
    page = c.get(f"{API}/apps", headers=h).json()
    assert page["total"] == 1 and page["items"][0]["name"] == "grafana"
    assert c.delete(f"{API}/apps/grafana", headers=h).status_code == 204
    assert c.get(f"{API}/apps/grafana", headers=h).status_code == 404


def test_authentication_and_scopes(control: Control) -> None:
    c = control.client
    assert c.get(f"{API}/apps").status_code == 401
    assert (
        c.get(
            f"{API}/apps", headers={"Authorization": "Bearer zgt_0000000000000000_" + "A" * 43}
        ).status_code
        == 401
    )
    assert c.get(f"{API}/apps", headers={"Authorization": "Bearer garbage"}).status_code == 401
    assert c.get(f"{API}/apps", headers=control.auditor).status_code == 200
    denied = c.post(f"{API}/apps", json=GRAFANA, headers=control.auditor)
    assert denied.status_code == 403 and "read-only" in denied.json()["detail"]
    events = c.get(
        f"{API}/audit/events", params={"action": "token.rejected"}, headers=control.auditor
    ).json()
    assert len(events) == 2 and all(e["outcome"] == "failure" for e in events)


def test_token_lifecycle_through_the_api(control: Control) -> None:
    c, h = control.client, control.admin
    made = c.post(f"{API}/tokens", json={"name": "ci", "scope": "auditor"}, headers=h)
    assert made.status_code == 201
    token, token_id = made.json()["token"], made.json()["id"]
    listed = c.get(f"{API}/tokens", headers=h).json()
    assert all("token" not in row and "secret_hash" not in row for row in listed)
    auth = {"Authorization": f"Bearer {token}"}
    assert c.get(f"{API}/apps", headers=auth).status_code == 200
    assert c.post(f"{API}/tokens/{token_id}/revoke", headers=h).json()["revoked_at"]
    assert c.get(f"{API}/apps", headers=auth).status_code == 401


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**GRAFANA, "colour": "red"}, "colour", "unknown field"),
        ({**GRAFANA, "kind": "ftp"}, "kind", "'http' or 'tcp'"),
        ({**GRAFANA, "tags": "monitoring"}, "tags", "valid list"),
        ({**GRAFANA, "hostname": "not a host"}, "hostname", "not a valid DNS name"),
        ({**GRAFANA, "kind": "tcp", "target": "db:99999"}, "target", "from 1 to 65535"),
        ({**GRAFANA, "description": "nul\x00byte"}, "description", "control characters"),
        (
            {**GRAFANA, "connector_group": "ghost"},
            "connector_group",
            "unknown connector group 'ghost'",
        ),
    ],
)
def test_bad_input_gets_a_precise_4xx(
    control: Control, body: dict[str, object], field: str, message: str
) -> None:
    response = control.client.post(f"{API}/apps", json=body, headers=control.admin)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(e["loc"][-1] == field and message in e["msg"] for e in errors), errors


def test_malformed_json_and_conflicts(control: Control) -> None:
    c, h = control.client, control.admin
    broken = c.post(
        f"{API}/apps", content=b'{"name": "x",', headers={**h, "Content-Type": "application/json"}
    )
    assert broken.status_code == 422 and broken.json()["errors"][0]["msg"].startswith(
        "JSON decode error"
    )
    assert c.post(f"{API}/apps", json=GRAFANA, headers=h).status_code == 201
    duplicate = c.post(f"{API}/apps", json=GRAFANA, headers=h)
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["detail"]
    same_host = c.post(f"{API}/apps", json={**GRAFANA, "name": "other"}, headers=h)
    assert same_host.status_code == 409 and "hostname" in same_host.json()["detail"]
    c.post(f"{API}/departments", json={"name": "eng"}, headers=h)
    c.post(f"{API}/users", json={"username": "alice", "department": "eng"}, headers=h)
    in_use = c.delete(f"{API}/departments/eng", headers=h)
    assert in_use.status_code == 409 and "still used by 1 users" in in_use.json()["detail"]
    rename_clash = c.patch(f"{API}/departments/eng", json={"name": "eng"}, headers=h)
    assert rename_clash.status_code == 200


def test_changes_are_audited_and_chain_verifies(control: Control) -> None:
    c, h = control.client, control.admin
    c.post(f"{API}/groups", json={"name": "eng"}, headers=h)
    c.patch(f"{API}/groups/eng", json={"description": "engineering"}, headers=h)
    events = c.get(
        f"{API}/audit/events", params={"target": "group/eng"}, headers=control.auditor
    ).json()
    assert [e["action"] for e in events] == ["inventory.update", "inventory.create"]
    assert events[0]["actor"].startswith("token:test-admin:")
    assert events[0]["details"]["after"]["description"] == "engineering"
    assert c.get(f"{API}/audit/verify", headers=h).json() == {
        "intact": True,
        "first_broken_seq": None,
    }


def test_import_reports_every_problem_and_writes_nothing(control: Control) -> None:
    c, h = control.client, control.admin
    document = {
        "groups": [{"name": "eng"}, {"name": "eng"}],
        "users": [
            {"username": "bob", "groups": ["eng", "ghosts"]},
            {"username": "eve", "office": "mars"},
        ],
        "apps": [{"name": "db", "kind": "tcp", "target": "db:0"}],
    }
    response = c.post(f"{API}/import", json=document, headers=h)
    assert response.status_code == 422
    locs = {tuple(e["loc"]) for e in response.json()["errors"]}
    assert {
        ("groups", 1, "name"),
        ("users", 0, "groups", 1),
        ("users", 1, "office"),
        ("apps", 0, "target"),
    } <= locs
    assert c.get(f"{API}/users", headers=h).json()["total"] == 0


def test_import_then_export_round_trip(control: Control) -> None:
    c, h = control.client, control.admin
    document = {
        "departments": [{"name": "eng", "description": "Engineering"}],
        "offices": [{"name": "berlin", "location": "Berlin, DE"}],
        "groups": [{"name": "sre"}],
        "connector_groups": [{"name": "dc1", "region": "eu"}],
        "connectors": [{"name": "dc1-a", "connector_group": "dc1"}],
        "gateways": [{"name": "gw-eu", "region": "eu", "public_address": "gw.example.test:443"}],
        "users": [
            {
                "username": "alice",
                "email": "alice@example.test",
                "department": "eng",
                "office": "berlin",
                "groups": ["sre"],
            }
        ],
        "apps": [
            {**GRAFANA, "connector_group": "dc1"},
            {"name": "pg", "kind": "tcp", "target": "pg.internal:5432"},
        ],
    }
    response = c.post(f"{API}/import", json=document, headers=h)
    assert response.status_code == 200
    lines = response.text.strip().splitlines()
    assert lines[0] == '{"total": 9}' and '"result"' in lines[-1]
    exported = c.get(f"{API}/export", headers=control.auditor).json()
    for section, items in document.items():
        assert len(exported[section]) == len(items)
        for item, out in zip(
            sorted(items, key=lambda i: str(i.get("name", i.get("username")))),
            exported[section],
            strict=True,
        ):
            assert {k: out[k] for k in item} == item
    again = c.post(f"{API}/import", json=exported, headers=h)
    assert '"created": 0' in again.text and '"updated": 0' in again.text


def test_pki_issue_revoke_and_crl(control: Control) -> None:
    c, h = control.client, control.admin
    ca = x509.load_pem_x509_certificate(c.get(f"{API}/pki/ca.pem").content)
    key = generate_private_key()
    body = {
        "csr_pem": make_csr(key, "laptop-1").decode(),
        "kind": "device",
        "common_name": "laptop-1",
    }
    issued = c.post(f"{API}/pki/certificates", json=body, headers=h)
    assert issued.status_code == 201, issued.text
    serial = issued.json()["serial"]
    cert = x509.load_pem_x509_certificate(issued.json()["pem"].encode())
    cert.verify_directly_issued_by(ca)
    assert (
        c.post(
            f"{API}/pki/certificates", json={**body, "csr_pem": "garbage"}, headers=h
        ).status_code
        == 422
    )
    renewed = c.post(f"{API}/pki/certificates/{serial}/renew", headers=h)
    assert renewed.status_code == 201 and renewed.json()["serial"] != serial
    assert (
        c.post(
            f"{API}/pki/certificates/{serial}/revoke", json={"reason": "lost laptop"}, headers=h
        ).status_code
        == 200
    )
    crl = c.get(f"{API}/pki/crl.pem").content
    assert is_revoked(crl, serial) and not is_revoked(crl, renewed.json()["serial"])
    assert c.post(f"{API}/pki/certificates/{serial}/renew", headers=h).status_code == 409
    assert c.post(f"{API}/pki/certificates/abc123/revoke", json={}, headers=h).status_code == 404
