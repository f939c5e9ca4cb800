"""`zerogate up` as a user runs it: a real process, real curl, the real admin CLI."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import shutil
import ssl
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from zerogate.core.policy.compile import compile_policy
from zerogate.core.policy.model import App, RequestContext
from zerogate.core.policy.replay import access_event
from zerogate.pki import generate_private_key, make_csr, private_key_pem, x5t_s256
from zerogate.store import audit, policies
from zerogate.store.db import open_database
from zgproc import ZEROGATE, Running, admin, curl, start, stop

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def create_grafana(up: Running, token: str) -> subprocess.CompletedProcess[str]:
    return admin(
        up,
        token,
        "app",
        "create",
        "grafana",
        "--kind",
        "http",
        "--hostname",
        "grafana.zerogate.localhost",
        "--target",
        "http://127.0.0.1:3000",
    )


def test_up_serves_https_and_the_printed_token_drives_the_cli(up: Running) -> None:
    assert up.token is not None, up.output
    assert curl(up, "/readyz").stdout == '{"status":"ready"}'
    assert re.search(r"Portal sign-in: user admin, password \S{20}", up.output)
    created = create_grafana(up, up.token)
    assert created.returncode == 0, created.stderr
    listed = admin(up, up.token, "app", "list", "--json")
    assert [app["name"] for app in json.loads(listed.stdout)] == ["grafana"]
    table = admin(up, up.token, "app", "list")
    assert "grafana.zerogate.localhost" in table.stdout
    wrong = admin(up, "zgt_0123456789abcdef_" + "x" * 43, "app", "list")
    assert wrong.returncode == 1 and "401" in wrong.stderr
    bad = admin(up, up.token, "app", "create", "db", "--kind", "tcp", "--target", "db.internal")
    assert bad.returncode == 1 and "must be host:port" in bad.stderr


def test_tokens_scopes_and_audit_through_the_cli(up: Running) -> None:
    assert up.token is not None
    made = admin(up, up.token, "token", "create", "reader", "--scope", "auditor")
    reader = made.stdout.strip()
    assert made.returncode == 0 and reader.startswith("zgt_")
    assert admin(up, reader, "app", "list").returncode == 0
    refused = admin(up, reader, "group", "create", "x")
    assert refused.returncode == 1 and "403" in refused.stderr
    tokens = json.loads(admin(up, up.token, "token", "list", "--json").stdout)
    reader_id = next(t["id"] for t in tokens if t["name"] == "reader")
    assert admin(up, up.token, "token", "revoke", reader_id).returncode == 0
    assert admin(up, reader, "app", "list").returncode == 1
    events = json.loads(
        admin(up, up.token, "audit", "list", "--json", "--action", "token.revoke").stdout
    )
    assert [e["target"] for e in events] == [f"token/{reader_id}"]
    verified = admin(up, up.token, "audit", "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout


def test_second_up_reuses_the_data_directory(up: Running) -> None:
    assert up.token is not None
    ca_before = (up.data_dir / "ca.pem").read_bytes()
    admin(up, up.token, "group", "create", "eng")
    assert stop(up) == 0  # SIGTERM: a clean shutdown
    again = start(up.data_dir, up.port)
    try:
        assert again.token is None  # no second bootstrap token
        assert (up.data_dir / "ca.pem").read_bytes() == ca_before
        listed = admin(again, up.token, "group", "list", "--json")
        assert sorted(g["name"] for g in json.loads(listed.stdout)) == ["admins", "eng"]
    finally:
        stop(again)


def test_broken_config_names_file_line_and_key(tmp_path: Path) -> None:
    config = tmp_path / "zerogate.toml"
    config.write_text('log_level = "info"\n\ncontrol_port = 70000\n')
    data_dir = tmp_path / "untouched"
    result = subprocess.run(
        [ZEROGATE, "up", "--config", str(config), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{config}:3: control_port:" in result.stderr.replace("\n", "")
    assert not data_dir.exists()


INVENTORY = """\
departments:
  - name: eng
groups:
  - name: sre
users:
  - username: alice
    department: eng
    groups: [sre]
  - username: bob
    department: marketing
    groups: [sre, ghosts]
apps:
  - name: pg
    kind: tcp
    target: pg.internal:70000
"""


def test_import_reports_problems_by_line_then_round_trips(up: Running, tmp_path: Path) -> None:
    assert up.token is not None
    bad = tmp_path / "inventory.yaml"
    bad.write_text(INVENTORY)
    result = admin(up, up.token, "import", str(bad))
    assert result.returncode == 1
    errors = result.stderr.replace("\n", " ")
    assert f"{bad}:10: users[1].department: unknown department 'marketing'" in errors
    assert f"{bad}:11: users[1].groups[1]: unknown group 'ghosts'" in errors
    assert f"{bad}:15: apps[0].target:" in errors
    assert (
        json.loads(admin(up, up.token, "user", "list", "--json").stdout)[0]["username"] == "admin"
    )

    good = tmp_path / "good.yaml"
    good.write_text(
        INVENTORY.replace("marketing", "eng").replace(", ghosts", "").replace("70000", "5432")
    )
    imported = admin(up, up.token, "import", str(good))
    assert imported.returncode == 0, imported.stderr
    exported = tmp_path / "export.yaml"
    assert admin(up, up.token, "export", "-o", str(exported)).returncode == 0
    document = yaml.safe_load(exported.read_text())
    assert {u["username"] for u in document["users"]} == {"admin", "alice", "bob"}
    assert document["apps"][0]["target"] == "pg.internal:5432"
    again = admin(up, up.token, "import", str(exported))
    assert again.returncode == 0 and "unchanged" in again.stdout


def _portal_approve(up: Running, user_code: str) -> None:
    """The person's side of `zerogate login`: sign in to the portal, approve the code."""
    ctx = ssl.create_default_context(cafile=up.data_dir / "ca.pem")
    with httpx.Client(base_url=up.url, verify=ctx, follow_redirects=False) as web:
        form = web.get("/portal/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf and up.admin_password
        signed = web.post(
            "/portal/login",
            data={"username": "admin", "password": up.admin_password, "csrf": csrf.group(1)},
        )
        assert signed.status_code == 303, signed.text
        page = web.get(f"/portal/device?user_code={user_code}").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf, page
        done = web.post(
            "/portal/device",
            data={"user_code": user_code, "decision": "approve", "csrf": csrf.group(1)},
        )
        assert done.status_code == 200, done.text


def test_zerogate_login_device_flow_then_admin_without_a_token(up: Running, tmp_path: Path) -> None:
    env = {**up.env("unused"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    del env["ZEROGATE_TOKEN"]
    process = subprocess.Popen(
        [ZEROGATE, "login"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    seen, code = "", None
    try:
        for line in process.stdout:
            seen += line
            if code := re.search(r"\b([B-Z]{4}-[B-Z]{4})\b", line):
                break
        assert code, seen
        _portal_approve(up, code.group(1))
        out, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert process.returncode == 0, errors
    assert "Signed in" in out
    credentials = tmp_path / "config" / "zerogate" / "credentials.json"
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"
    listed = subprocess.run(
        [ZEROGATE, "admin", "group", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert [g["name"] for g in json.loads(listed.stdout)] == ["admins"]


def test_agent_device_login_gives_a_token_bound_to_its_certificate(
    up: Running, tmp_path: Path
) -> None:
    """RFC 8705 over a real mutual-TLS handshake: the agent's token works only with its cert."""
    ca = up.data_dir / "ca.pem"
    key = generate_private_key()
    admin_headers = {"Authorization": f"Bearer {up.token}"}
    plain = ssl.create_default_context(cafile=ca)
    with httpx.Client(base_url=up.url, verify=plain) as api:
        body = {
            "csr_pem": make_csr(key, "laptop-7").decode(),
            "kind": "device",
            "common_name": "laptop-7",
        }
        issued = api.post("/api/v1/pki/certificates", json=body, headers=admin_headers).json()
        refused = api.post("/oauth/device_authorization", data={"client_id": "zerogate-agent"})
        assert refused.status_code == 401  # no device certificate, no agent login
    (tmp_path / "device.pem").write_text(issued["pem"])
    (tmp_path / "device.key").write_bytes(private_key_pem(key))
    mutual = ssl.create_default_context(cafile=ca)
    mutual.load_cert_chain(tmp_path / "device.pem", tmp_path / "device.key")
    with httpx.Client(base_url=up.url, verify=mutual) as agent:
        grant = agent.post(
            "/oauth/device_authorization", data={"client_id": "zerogate-agent"}
        ).json()
        _portal_approve(up, grant["user_code"])
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": grant["device_code"],
            "client_id": "zerogate-agent",
        }
        token = agent.post("/oauth/token", data=form).json()["access_token"]
        payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        assert payload["cnf"] == {"x5t#S256": x5t_s256(issued["pem"].encode())}
        bearer = {"Authorization": f"Bearer {token}"}
        assert agent.get("/api/v1/apps", headers=bearer).status_code == 200
        with httpx.Client(base_url=up.url, verify=plain) as thief:
            stolen = thief.get("/api/v1/apps", headers=bearer)
        assert stolen.status_code == 401 and "binding_mismatch" in stolen.json()["detail"]
        with httpx.Client(base_url=up.url, verify=plain) as api:
            revoked = api.post(
                f"/api/v1/pki/certificates/{issued['serial']}/revoke",
                json={"reason": "lost"},
                headers=admin_headers,
            )
        assert revoked.status_code == 200, revoked.text
        assert agent.get("/api/v1/apps", headers=bearer).status_code == 401  # revoked device


POLICY = """\
rules:
  - name: admins-everything
    who: {groups: [admins]}
    what: {globs: ["*"]}
"""

POLICY_TESTS = """\
- name: the admin reaches grafana
  user: admin
  app: grafana
  from: 198.18.0.7
  expect: allow
- name: nobody else does
  user: bob
  app: grafana
  expect: deny
"""


def test_policy_as_code_through_the_cli(up: Running, tmp_path: Path) -> None:
    assert up.token is not None
    admin(up, up.token, "user", "create", "bob")
    create_grafana(up, up.token)
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "policy_test.yaml").write_text(POLICY_TESTS)
    candidate = admin(
        up,
        up.token,
        "policy",
        "test",
        str(tmp_path / "policy_test.yaml"),
        "--policy",
        str(tmp_path / "policy.yaml"),
    )
    assert candidate.returncode == 0, candidate.stdout + candidate.stderr
    in_force = admin(up, up.token, "policy", "test", str(tmp_path / "policy_test.yaml"))
    assert (
        in_force.returncode == 1 and "1 passed, 1 failed" in in_force.stdout
    )  # nothing pushed yet
    pushed = admin(
        up, up.token, "policy", "push", str(tmp_path / "policy.yaml"), "-m", "admins first"
    )
    assert pushed.returncode == 0 and "policy version 1" in pushed.stdout
    verdict = admin(
        up, up.token, "policy", "check", "--user", "admin", "--app", "grafana", "--json"
    )
    assert json.loads(verdict.stdout)["rule"] == "admins-everything"
    (tmp_path / "bad.yaml").write_text(POLICY.replace("admins]", "ghosts]"))
    refused = admin(up, up.token, "policy", "push", str(tmp_path / "bad.yaml"))
    assert refused.returncode == 1 and "source.3." in refused.stderr.replace(" ", "")
    listed = admin(up, up.token, "policy", "list", "--json")
    assert [v["version"] for v in json.loads(listed.stdout)] == [1]
    reach = admin(up, up.token, "policy", "access", "--user", "admin", "--json")
    assert [a["app"] for a in json.loads(reach.stdout)["apps"]] == ["grafana"]
    table = admin(up, up.token, "policy", "access", "--app", "grafana")
    assert "admins-everything" in table.stdout and "groups:admins" in table.stdout

    # A gateway's recorded decisions (written here as the gateway's spool will write them),
    # replayed by `policy impact` against a candidate that drops the admins' rule.
    db = open_database(f"sqlite:///{up.data_dir / 'zerogate.db'}")
    try:
        with db.transaction() as session:
            version, policy = policies.current_policy(session)
            request = RequestContext(
                user="admin",
                app=App("grafana"),
                now=datetime.now(UTC),
                source_ip=ipaddress.ip_address("198.18.0.7"),
                groups=frozenset({"admins"}),
            )
            decision = compile_policy(policy, [request.app]).decide(request)
            event = access_event(
                request, decision, policy_version=version, gateway="gw", event_id="e-1"
            )
            audit.append(session, [event])
    finally:
        db.close()
    (tmp_path / "none.yaml").write_text("rules: []\n")
    impact = admin(up, up.token, "policy", "impact", str(tmp_path / "none.yaml"))
    assert impact.returncode == 0, impact.stderr
    assert "1 decisions replayed" in impact.stdout and "1 (user, app) outcomes" in impact.stdout
    assert "no rule grants access" in impact.stdout


DEVICE_POLICY = """\
rules:
  - name: admins-healthy-laptops
    who: {groups: [admins]}
    what: {apps: [grafana]}
    when:
      device: {enrolled: true, approved: true, disk_encrypted: true, posture_max_age_seconds: 300}
"""

POSTURE = {
    "os_family": "macos",
    "os_version": "15.1",
    "disk_encrypted": True,
    "firewall": True,
    "screen_lock": True,
    "processes": ["osqueryd"],
    "agent_version": "1.0.0",
}


def test_posture_over_mutual_tls_feeds_the_what_if(up: Running, tmp_path: Path) -> None:
    assert up.token is not None
    create_grafana(up, up.token)
    device = admin(
        up, up.token, "device", "create", "laptop-7", "--user", "admin", "--status", "approved"
    )
    assert device.returncode == 0, device.stderr
    (tmp_path / "policy.yaml").write_text(DEVICE_POLICY)
    assert admin(up, up.token, "policy", "push", str(tmp_path / "policy.yaml")).returncode == 0

    def verdict() -> dict[str, object]:
        done = admin(
            up, up.token, "policy", "check", "--user", "admin", "--app", "grafana",
            "--device", "laptop-7", "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def reach() -> dict[str, object]:
        done = admin(up, up.token, "policy", "access", "--device", "laptop-7", "--json")
        assert done.returncode == 0, done.stderr
        (grant,) = json.loads(done.stdout)["apps"]
        return dict(grant)

    unready = reach()
    assert unready["app"] == "grafana" and not unready["device_ready"]
    assert "rule 'admins-healthy-laptops': device not enrolled" in unready["device_reasons"]  # type: ignore[operator]
    before = verdict()
    texts = [reason["text"] for reason in before["reasons"]]  # type: ignore[attr-defined]
    assert before["effect"] == "deny"
    assert "device not enrolled" in texts and "no posture report" in texts

    ca = up.data_dir / "ca.pem"
    headers = {"Authorization": f"Bearer {up.token}"}
    plain = ssl.create_default_context(cafile=ca)
    pems = {}
    with httpx.Client(base_url=up.url, verify=plain) as api:
        for name in ("laptop-7", "laptop-9"):  # laptop-9 is not in the inventory
            key = generate_private_key()
            body = {"csr_pem": make_csr(key, name).decode(), "kind": "device", "common_name": name}
            issued = api.post("/api/v1/pki/certificates", json=body, headers=headers).json()
            (tmp_path / f"{name}.pem").write_text(issued["pem"])
            (tmp_path / f"{name}.key").write_bytes(private_key_pem(key))
            pems[name] = issued
        anonymous = api.post("/api/v1/device/posture", json=POSTURE)
        assert anonymous.status_code == 401
    for name, status in (("laptop-9", 403), ("laptop-7", 200)):
        mutual = ssl.create_default_context(cafile=ca)
        mutual.load_cert_chain(tmp_path / f"{name}.pem", tmp_path / f"{name}.key")
        with httpx.Client(base_url=up.url, verify=mutual) as agent:
            assert agent.post("/api/v1/device/posture", json=POSTURE).status_code == status
            wrong = agent.post("/api/v1/device/posture", json={**POSTURE, "os_version": "x"})
            assert wrong.status_code == 422

    after = verdict()
    assert (after["effect"], after["rule"]) == ("allow", "admins-healthy-laptops")
    assert reach()["device_ready"] is True
    table = admin(up, up.token, "policy", "access", "--device", "laptop-7")
    assert "grafana" in table.stdout and "yes" in table.stdout
    with httpx.Client(base_url=up.url, verify=plain) as api:
        shown = api.get("/api/v1/devices/laptop-7/posture", headers=headers).json()
        assert shown["enrolled"] and shown["report"]["processes"] == ["osqueryd"]
        api.post(
            f"/api/v1/pki/certificates/{pems['laptop-7']['serial']}/revoke",
            json={"reason": "lost"},
            headers=headers,
        )
        rejected = api.get(
            "/api/v1/audit/events", params={"action": "device.posture_rejected"}, headers=headers
        ).json()
    assert len(rejected) == 2  # the anonymous report and laptop-9's
    revoked = verdict()
    assert revoked["effect"] == "deny" and any(
        r["text"] == "device not enrolled"
        for r in revoked["reasons"]  # type: ignore[attr-defined]
    )
