"""Connector enrollment, renewal, health and revocation against a real `zerogate up`."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from zerogate.connector.identity import EnrollmentError, load_or_enroll, renew_if_due
from zerogate.pki import CertKind, generate_private_key, kind_of, make_csr, private_key_pem
from zgproc import Running, admin

HEALTH = {
    "version": "0.1.0",
    "gateways": [
        {"gateway": "gw.example:8445", "sessions": 2, "streams": 3, "bytes_in": 10,
         "bytes_out": 20, "rtt_ms": 0.4},
    ],
}  # fmt: skip


def _snapshot_connectors(up: Running) -> list[dict[str, object]]:
    token = (up.data_dir / "gateway.token").read_text().strip()
    verify = ssl.create_default_context(cafile=up.data_dir / "ca.pem")
    with httpx.Client(base_url=up.url, verify=verify) as api:
        got = api.get("/api/v1/policy/snapshot", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200, got.text
    payload = got.text.split(".")[1]
    document = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return list(document["connectors"])


def test_enroll_renew_report_and_revoke(up: Running, tmp_path: Path) -> None:
    assert up.token is not None
    made = admin(up, up.token, "connector", "create", "dc1-a", "--group", "dc1")
    assert made.returncode == 0, made.stderr
    replaced = made.stdout.split()[0]
    again = admin(up, up.token, "connector", "token", "dc1-a")
    assert again.returncode == 0, again.stderr
    token = again.stdout.split()[0]
    assert token.startswith("zgc_")
    ca = up.data_dir / "ca.pem"
    plain = ssl.create_default_context(cafile=ca)
    key = generate_private_key()
    csr = make_csr(key, "ignored").decode()
    with httpx.Client(base_url=up.url, verify=plain) as api:
        for stale in ("zgc_nope", replaced):  # unknown, and replaced by a newer token
            wrong = api.post("/api/v1/connector/enroll", json={"token": stale, "csr_pem": csr})
            assert wrong.status_code == 401
        bad_csr = api.post("/api/v1/connector/enroll", json={"token": token, "csr_pem": "x"})
        assert bad_csr.status_code == 422
        # A CSR that does not parse leaves the token unused (nothing was issued).
        enrolled = api.post("/api/v1/connector/enroll", json={"token": token, "csr_pem": csr})
        assert enrolled.status_code == 201, enrolled.text
        reused = api.post("/api/v1/connector/enroll", json={"token": token, "csr_pem": csr})
        assert reused.status_code == 401
        assert api.post("/api/v1/connector/health", json=HEALTH).status_code == 401
    bundle = enrolled.json()
    cert = x509.load_pem_x509_certificate(bundle["certificate_pem"].encode())
    assert kind_of(cert) is CertKind.CONNECTOR
    assert bundle["connector"] == "dc1-a" and bundle["group"] == "dc1"
    first_serial = format(cert.serial_number, "x")
    (tmp_path / "c.pem").write_text(bundle["certificate_pem"])
    (tmp_path / "c.key").write_bytes(private_key_pem(key))
    (admitted,) = _snapshot_connectors(up)
    assert admitted == {"name": "dc1-a", "group": "dc1", "serials": [first_serial]}

    mutual = ssl.create_default_context(cafile=ca)
    mutual.load_cert_chain(tmp_path / "c.pem", tmp_path / "c.key")
    with httpx.Client(base_url=up.url, verify=mutual) as connector:
        assert connector.post("/api/v1/connector/health", json=HEALTH).status_code == 200
        odd = connector.post("/api/v1/connector/health", json={**HEALTH, "extra": 1})
        assert odd.status_code == 422
        renewed = connector.post("/api/v1/connector/renew")
        assert renewed.status_code == 201, renewed.text
    new_serial = format(
        x509.load_pem_x509_certificate(renewed.json()["certificate_pem"].encode()).serial_number,
        "x",
    )
    (admitted,) = _snapshot_connectors(up)
    assert sorted(admitted["serials"]) == sorted([first_serial, new_serial])  # type: ignore[call-overload]

    listed = admin(up, up.token, "connector", "list", "--json")
    (row,) = json.loads(listed.stdout)
    assert (row["status"], row["version"]) == ("online", "0.1.0")
    assert row["gateways"][0]["rtt_ms"] == 0.4
    table = admin(up, up.token, "connector", "list")
    assert "dc1-a" in table.stdout and "online" in table.stdout
    with httpx.Client(base_url=up.url, verify=plain) as api:
        headers = {"Authorization": f"Bearer {up.token}"}
        listed_gateways = api.get("/api/v1/status/gateways", headers=headers).json()
    # `zerogate up`'s own gateway reports its audit spool beside: it has no tunnels.
    (gateway,) = [g for g in listed_gateways if g["connectors"]]
    assert gateway == {
        "gateway": "gw.example:8445", "connectors": ["dc1-a"], "sessions": 2, "streams": 3,
        "rtt_ms": 0.4, "audit": [],
    }  # fmt: skip

    revoked = admin(up, up.token, "connector", "revoke", "dc1-a")
    assert revoked.returncode == 0, revoked.stderr
    assert _snapshot_connectors(up) == []
    with httpx.Client(base_url=up.url, verify=mutual) as connector:
        assert connector.post("/api/v1/connector/health", json=HEALTH).status_code == 401
        assert connector.post("/api/v1/connector/renew").status_code == 401
    (row,) = json.loads(admin(up, up.token, "connector", "list", "--json").stdout)
    assert row["status"] == "revoked" and row["gateways"] == []
    with httpx.Client(base_url=up.url, verify=plain) as api:
        rejected = api.get(
            "/api/v1/audit/events", params={"action": "connector.rejected"}, headers=headers
        ).json()
    assert len(rejected) == 6
    assert "zgc_" not in json.dumps(rejected)  # tokens never reach the audit log


def test_connector_enrolls_once_then_renews_over_mutual_tls(up: Running, tmp_path: Path) -> None:
    """`zerogate connector`'s own enrollment and renewal code, against a real control plane."""
    assert up.token is not None
    made = admin(up, up.token, "connector", "create", "dc2-a", "--group", "dc2")
    assert made.returncode == 0, made.stderr
    token = made.stdout.split()[0]
    state = tmp_path / "state"
    ca = up.data_dir / "ca.pem"
    with pytest.raises(EnrollmentError, match="enrollment token"):
        load_or_enroll(state, up.url, ca, None)
    with pytest.raises(EnrollmentError, match="refused \\(401\\)"):
        load_or_enroll(state, up.url, ca, "zgc_wrong")
    first = load_or_enroll(state, up.url, ca, token)
    assert (first.name, first.group) == ("dc2-a", "dc2")
    assert (state / "connector.key").stat().st_mode & 0o077 == 0
    assert load_or_enroll(state, up.url, ca, None) == first  # stored: no token needed again
    assert renew_if_due(first, up.url, now=first.not_before) is first  # not due yet
    before = x509.load_pem_x509_certificate(first.cert_file.read_bytes()).serial_number
    due = first.not_before + (first.not_after - first.not_before) * 0.7
    renewed = renew_if_due(first, up.url, now=due)
    after = x509.load_pem_x509_certificate(renewed.cert_file.read_bytes())  # replaced in place
    assert renewed.cert_file == first.cert_file and after.serial_number != before
    assert renewed.not_after >= first.not_after
    serials = _snapshot_connectors(up)[0]["serials"]
    assert isinstance(serials, list) and len(serials) == 2  # both live until the old expires
