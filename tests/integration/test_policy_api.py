"""Policy versions and what-if through the API on SQLite and PostgreSQL: a refused push
names every error's line and column and stores nothing; decisions explain themselves."""

from __future__ import annotations

import ipaddress
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from conftest import Control  # type: ignore[import-not-found]
from portalkit import events
from zerogate.core.policy.compile import compile_policy
from zerogate.core.policy.model import App, RequestContext
from zerogate.core.policy.replay import access_event
from zerogate.core.policy.snapshot import SnapshotError, verify_snapshot
from zerogate.store import audit, policies, snapshots

POLICY = """\
cidr_lists:
  office: [198.18.0.0/24]
rules:
  - name: eng-grafana
    who: {groups: [eng]}
    what: {apps: [grafana]}
    when:
      network: {source_in: [office]}
"""

BROKEN = """\
rules:
  - name: eng-grafana
    who: {groups: [ghosts]}
    what: {apps: [grafana]}
    colour: blue
"""


def _inventory(control: Control) -> None:
    c, h = control.client, control.admin
    c.post("/api/v1/groups", json={"name": "eng"}, headers=h)
    c.post("/api/v1/users", json={"username": "alice", "groups": ["eng"]}, headers=h)
    c.post("/api/v1/users", json={"username": "bob"}, headers=h)
    app = {
        "name": "grafana",
        "kind": "http",
        "hostname": "grafana.corp.example",
        "target": "http://10.0.0.1:3000",
    }
    assert c.post("/api/v1/apps", json=app, headers=h).status_code == 201


def _check(control: Control, **body: object) -> dict[str, object]:
    response = control.client.post("/api/v1/policy/check", json=body, headers=control.auditor)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_push_show_check_and_rollback(control: Control) -> None:
    _inventory(control)
    c, h = control.client, control.admin
    empty = _check(control, user="alice", app="grafana")
    assert empty["effect"] == "deny" and empty["policy_version"] == 0  # default deny

    pushed = c.post(
        "/api/v1/policy/versions", json={"source": POLICY, "comment": "first"}, headers=h
    )
    assert pushed.status_code == 201 and pushed.json()["version"] == 1
    allowed = _check(control, user="alice", app="grafana", source_ip="198.18.0.7")
    assert allowed["effect"] == "allow" and allowed["rule"] == "eng-grafana"
    outside = _check(control, user="alice", app="grafana", source_ip="203.0.113.9")
    assert outside["effect"] == "deny"
    assert any(r["code"] == "source_not_allowed" for r in outside["reasons"])  # type: ignore[attr-defined]
    bob = _check(control, user="bob", app="grafana", source_ip="198.18.0.7")
    assert bob["effect"] == "deny" and bob["rule"] is None

    c.patch("/api/v1/apps/grafana", json={"mode": "monitor"}, headers=h)
    monitored = _check(control, user="bob", app="grafana", source_ip="198.18.0.7")
    assert (
        monitored["effect"] == "allow"
        and monitored["would_be"] == "deny"
        and monitored["monitored"]
    )

    second = POLICY.replace("198.18.0.0/24", "198.18.1.0/24")
    assert (
        c.post(
            "/api/v1/policy/versions", json={"source": second, "comment": "move"}, headers=h
        ).status_code
        == 201
    )
    shown = c.get("/api/v1/policy/versions/2", headers=control.auditor).json()
    assert (
        "-  office: [198.18.0.0/24]" in shown["diff"]
        and "+  office: [198.18.1.0/24]" in shown["diff"]
    )
    rolled = c.post("/api/v1/policy/versions/1/rollback", headers=h)
    assert rolled.status_code == 201 and rolled.json()["version"] == 3
    assert c.get("/api/v1/policy/versions/3", headers=h).json()["source"] == POLICY
    listed = c.get("/api/v1/policy/versions", headers=h).json()
    assert [v["version"] for v in listed] == [3, 2, 1] and listed[0][
        "comment"
    ] == "rollback to version 1"
    assert len(events(control, "policy.push")) == 3


def test_refused_push_lists_every_error_by_line_and_column(control: Control) -> None:
    _inventory(control)
    c, h = control.client, control.admin
    refused = c.post("/api/v1/policy/versions", json={"source": BROKEN}, headers=h)
    assert refused.status_code == 422
    errors = {(tuple(e["loc"]), e["msg"].split(":")[0]) for e in refused.json()["errors"]}
    lines = {loc[2] for loc, _ in errors}
    assert {3, 5} <= lines, errors  # the unknown group and the unknown key
    assert c.get("/api/v1/policy/versions", headers=h).json() == []
    assert (
        c.post("/api/v1/policy/versions", json={"source": "rules: [oops"}, headers=h).status_code
        == 422
    )
    assert (
        c.post(
            "/api/v1/policy/check", json={"user": "nobody", "app": "grafana"}, headers=h
        ).status_code
        == 404
    )
    assert (
        c.post(
            "/api/v1/policy/check",
            json={"user": "alice", "app": "grafana", "at": "2026-01-01T10:00:00"},
            headers=h,
        ).status_code
        == 422
    )


def test_access_graph_for_a_user_and_an_app(control: Control) -> None:
    _inventory(control)
    c, h = control.client, control.admin
    assert c.post("/api/v1/policy/versions", json={"source": POLICY}, headers=h).status_code == 201
    alice = c.get("/api/v1/policy/access/users/alice", headers=control.auditor).json()
    assert alice["apps"] == [
        {"app": "grafana", "rules": ["eng-grafana"], "conditional": True, "monitor": False}
    ]
    assert c.get("/api/v1/policy/access/users/bob", headers=h).json()["apps"] == []
    grafana = c.get("/api/v1/policy/access/apps/grafana", headers=h).json()
    assert [(a["rule"], a["groups"]) for a in grafana["audience"]] == [("eng-grafana", ["eng"])]
    assert c.get("/api/v1/policy/access/apps/nope", headers=h).status_code == 404


def test_the_signed_snapshot_verifies_against_the_jwks_and_decides_like_check(
    control: Control,
) -> None:
    _inventory(control)
    c, h = control.client, control.admin
    assert c.post("/api/v1/policy/versions", json={"source": POLICY}, headers=h).status_code == 201
    assert c.get("/api/v1/policy/snapshot").status_code == 401

    response = c.get("/api/v1/policy/snapshot", headers=control.auditor)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jose"
    key_set = c.get("/.well-known/jwks.json").json()
    snapshot = verify_snapshot(response.text, key_set, issuer="https://testserver")
    assert snapshot.policy_version == 1
    assert [app.name for app in snapshot.apps] == ["grafana"]

    # The gateway's decision from the snapshot is the control plane's what-if answer.
    context = RequestContext(
        user="alice",
        app=snapshot.apps[0],
        now=datetime.now(UTC),
        source_ip=ipaddress.ip_address("198.18.0.7"),
        groups=frozenset({"eng"}),
    )
    decision = compile_policy(snapshot.policy, snapshot.apps).decide(context)
    expected = _check(control, user="alice", app="grafana", source_ip="198.18.0.7")
    assert (decision.effect, decision.rule) == (expected["effect"], expected["rule"])

    # A gateway's token reads the snapshot and nothing of the admin API.
    made = c.post("/api/v1/tokens", json={"name": "gw-1", "scope": "gateway"}, headers=h)
    gateway = {"Authorization": f"Bearer {made.json()['token']}"}
    assert c.get("/api/v1/policy/snapshot", headers=gateway).status_code == 200
    assert c.get("/api/v1/apps", headers=gateway).status_code == 403
    what_if = {"user": "alice", "app": "grafana"}
    assert c.post("/api/v1/policy/check", json=what_if, headers=gateway).status_code == 403

    # Any change moves the serial on; a tampered snapshot is refused.
    c.post("/api/v1/groups", json={"name": "ops"}, headers=h)
    later = verify_snapshot(
        c.get("/api/v1/policy/snapshot", headers=h).text, key_set, issuer="https://testserver"
    )
    assert later.serial > snapshot.serial
    header, payload, signature = response.text.split(".")
    with pytest.raises(SnapshotError):
        verify_snapshot(f"{header}.{payload}x.{signature}", key_set, issuer="https://testserver")


def _record_traffic(control: Control, *requests: RequestContext) -> None:
    """Decisions as a gateway records them: decided by the policy in force, audited."""
    with control.db.transaction() as session:
        version, policy = policies.current_policy(session)
        records = [
            access_event(
                r,
                compile_policy(policy, [r.app]).decide(r),
                policy_version=version,
                gateway="gw-test",
                event_id=uuid.uuid4().hex,
            )
            for r in requests
        ]
        audit.append(session, records)


def test_impact_replays_recorded_decisions_against_a_candidate(control: Control) -> None:
    _inventory(control)
    c, h = control.client, control.admin
    assert c.post("/api/v1/policy/versions", json={"source": POLICY}, headers=h).status_code == 201
    serial = verify_snapshot(
        c.get("/api/v1/policy/snapshot", headers=h).text,
        c.get("/.well-known/jwks.json").json(),
        issuer="https://testserver",
    ).serial
    now = datetime.now(UTC)
    grafana = App("grafana")
    alice = RequestContext(
        user="alice",
        app=grafana,
        now=now,
        source_ip=ipaddress.ip_address("198.18.0.7"),
        groups=frozenset({"eng"}),
    )
    _record_traffic(control, alice, alice, replace(alice, user="bob", groups=frozenset()))
    with control.db.transaction() as session:  # the traffic did not move the snapshot serial
        assert snapshots.current(session, issuer="x", now=now).serial == serial

    # The office range moves: alice's requests from the old address would now be denied.
    moved = POLICY.replace("198.18.0.0/24", "198.18.9.0/24")
    response = c.post("/api/v1/policy/impact", json={"source": moved}, headers=control.auditor)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["replayed"] == 3 and report["unreadable"] == 0
    assert [
        (x["user"], x["app"], x["before"], x["after"], x["count"]) for x in report["changes"]
    ] == [("alice", "grafana", "allow", "deny", 2)]
    assert any("source" in reason for reason in report["changes"][0]["reasons"])
    unchanged = c.post("/api/v1/policy/impact", json={"source": POLICY}, headers=h).json()
    assert unchanged["changes"] == []
    refused = c.post("/api/v1/policy/impact", json={"source": BROKEN}, headers=h)
    assert refused.status_code == 422  # a candidate is validated like a push


def test_the_snapshot_long_poll_answers_when_the_state_changes(control: Control) -> None:
    _inventory(control)
    c, h = control.client, control.admin
    key_set = c.get("/.well-known/jwks.json").json()
    first = verify_snapshot(
        c.get("/api/v1/policy/snapshot", headers=h).text, key_set, issuer="https://testserver"
    )
    unchanged = c.get(
        "/api/v1/policy/snapshot", params={"since": first.serial, "wait": 1}, headers=h
    )
    assert unchanged.status_code == 204

    def change() -> None:
        time.sleep(0.3)
        with control.db.transaction() as session:
            policies.push(session, POLICY, comment="while a gateway waits", author="test")

    changer = threading.Thread(target=change)
    changer.start()
    waited = c.get("/api/v1/policy/snapshot", params={"since": first.serial, "wait": 30}, headers=h)
    changer.join()
    assert waited.status_code == 200
    later = verify_snapshot(waited.text, key_set, issuer="https://testserver")
    assert later.serial > first.serial and later.policy_version == 1


def test_the_snapshot_names_ended_sessions_and_removed_or_disabled_people(
    control: Control,
) -> None:
    _inventory(control)
    c, h = control.client, control.admin
    assert c.patch("/api/v1/users/bob", json={"disabled": True}, headers=h).status_code == 200
    assert c.delete("/api/v1/users/alice", headers=h).status_code == 204
    key_set = c.get("/.well-known/jwks.json").json()
    snapshot = verify_snapshot(
        c.get("/api/v1/policy/snapshot", headers=h).text, key_set, issuer="https://testserver"
    )
    assert snapshot.disabled_users == frozenset({"bob"})
    assert set(snapshot.users_removed_at) == {"alice"}
    assert snapshot.users_removed_at["alice"] <= datetime.now(UTC)
