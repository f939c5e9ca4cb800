"""The access graph over parsed policies: grants, conditions, denies and monitor mode."""

from __future__ import annotations

from datetime import timedelta

from policykit import NOW, device

from zerogate.core.policy.graph import (
    Grant,
    Principal,
    device_shortfalls,
    reachable_apps,
    who_can_reach,
)
from zerogate.core.policy.model import App, Mode
from zerogate.core.policy.parse import parse_policy

POLICY = parse_policy(
    """
rules:
  - name: eng-tools
    who: {groups: [eng]}
    what: {tags: [tools]}
  - name: eng-db-office
    who: {groups: [eng]}
    what: {apps: [db]}
    when: {auth: {mfa: true}}
  - name: no-contractors-on-wiki
    who: {groups: [contractors]}
    what: {apps: [wiki]}
    effect: deny
  - name: everyone-wiki
    who: everyone
    what: {apps: [wiki]}
"""
)
APPS = [
    App("grafana", frozenset({"tools"})),
    App("db"),
    App("wiki"),
    App("payroll"),
    App("legacy", mode=Mode.MONITOR),
]


def test_reachable_apps_for_an_engineer() -> None:
    grants = {
        g.app: g for g in reachable_apps(POLICY, Principal("alice", frozenset({"eng"})), APPS)
    }
    assert set(grants) == {"grafana", "db", "wiki", "legacy"}
    assert grants["grafana"].rules == ("eng-tools",) and not grants["grafana"].conditional
    assert grants["db"].conditional  # only with MFA
    assert grants["legacy"].monitor and grants["legacy"].rules == ()
    assert "payroll" not in grants  # default deny


def test_an_unconditional_deny_removes_the_grant() -> None:
    grants = {
        g.app for g in reachable_apps(POLICY, Principal("carol", frozenset({"contractors"})), APPS)
    }
    assert "wiki" not in grants and grants == {"legacy"}


def test_who_can_reach_an_app() -> None:
    audience = who_can_reach(POLICY, App("wiki"))
    assert [a.rule for a in audience] == ["everyone-wiki"] and audience[0].subjects.everyone
    assert [a.rule for a in who_can_reach(POLICY, App("db"))] == ["eng-db-office"]
    assert who_can_reach(POLICY, App("payroll")) == []


DEVICE_POLICY = parse_policy(
    """
rules:
  - name: laptops-encrypted
    who: everyone
    what: {apps: [db]}
    when: {device: {disk_encrypted: true, posture_max_age_seconds: 300}}
  - name: laptops-firewalled
    who: everyone
    what: {apps: [db]}
    when: {device: {firewall: true}, auth: {mfa: true}}
  - name: wiki-anywhere
    who: everyone
    what: {apps: [wiki]}
    when: {auth: {mfa: true}}
"""
)


def _grants() -> dict[str, Grant]:
    found = reachable_apps(DEVICE_POLICY, Principal("alice"), [App("db"), App("wiki")])
    return {g.app: g for g in found}


def test_a_device_meeting_one_granting_rule_is_ready() -> None:
    grants = _grants()
    healthy = device(disk_encrypted=True, firewall=False)
    assert device_shortfalls(DEVICE_POLICY, grants["db"], healthy, NOW) is None
    # MFA is about the request, not the device: wiki stays ready for any device.
    assert device_shortfalls(DEVICE_POLICY, grants["wiki"], device(firewall=False), NOW) is None


def test_a_device_failing_every_granting_rule_gets_every_reason() -> None:
    stale = device(disk_encrypted=False, firewall=False, reported_at=NOW - timedelta(seconds=900))
    why = device_shortfalls(DEVICE_POLICY, _grants()["db"], stale, NOW)
    assert why is not None
    assert [str(reason) for reason in why] == [
        "rule 'laptops-encrypted': disk not encrypted",
        "rule 'laptops-encrypted': posture report 900 s old > 300 s",
        "rule 'laptops-firewalled': firewall off",
    ]
