"""The access graph over parsed policies: grants, conditions, denies and monitor mode."""

from __future__ import annotations

from zerogate.core.policy.graph import Principal, reachable_apps, who_can_reach
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
