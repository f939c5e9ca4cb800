"""Recorded decisions replay exactly, and `impact` lists what a candidate policy changes."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from policykit import NOW, ctx, rule
from policystrategies import EXAMPLES, contexts, policies

from zerogate.core.audit import AuditAction, Outcome
from zerogate.core.policy.compile import compile_policy
from zerogate.core.policy.model import (
    App,
    Conditions,
    DeviceConditions,
    Effect,
    Mode,
    Policy,
    RequestContext,
    Subjects,
)
from zerogate.core.policy.replay import access_event, impact, recorded_decision


def record(policy: Policy, request: RequestContext, version: int = 1) -> dict[str, object]:
    decision = compile_policy(policy, [request.app]).decide(request)
    event = access_event(request, decision, policy_version=version, gateway="gw-1", event_id="e1")
    # What the database gives back: JSON in, JSON out.
    return dict(json.loads(json.dumps(event.details)))


@EXAMPLES
@given(policies, contexts)
def test_a_recorded_request_is_the_request(policy: Policy, request: RequestContext) -> None:
    recorded = recorded_decision(record(policy, request))
    assert recorded.context == request
    assert recorded.effect is compile_policy(policy, [request.app]).decide(request).effect


@EXAMPLES
@given(policies, contexts)
def test_a_policy_replayed_on_its_own_decisions_changes_nothing(
    policy: Policy, request: RequestContext
) -> None:
    assert impact(policy, [recorded_decision(record(policy, request))]) == []


def test_the_event_names_who_what_and_the_outcome() -> None:
    request = ctx()
    deny = compile_policy(Policy(), [request.app]).decide(request)
    event = access_event(request, deny, policy_version=3, gateway="gw-1", event_id="e1")
    assert (event.actor, event.action, event.target) == (
        "user:alice",
        AuditAction.ACCESS_DECISION,
        "app/grafana",
    )
    assert event.outcome is Outcome.FAILURE and event.time == NOW
    assert event.details["reasons"] == ["no rule grants access"]


def test_tightening_lists_each_user_and_app_once_with_counts() -> None:
    open_policy = Policy((rule("everyone"),))
    tight = Policy(
        (
            rule(
                "encrypted-only",
                conditions=Conditions(device=DeviceConditions(disk_encrypted=True)),
            ),
        )
    )
    plain = ctx().device
    assert plain is not None
    bob = ctx(user="bob", groups=frozenset(), device=replace(plain, disk_encrypted=False))
    requests = [ctx(), bob, replace(bob, now=NOW + timedelta(hours=1)), ctx(user="carol")]
    recorded = [recorded_decision(record(open_policy, r)) for r in requests]
    changes = impact(tight, recorded)
    assert [(c.user, c.app, c.before, c.after, c.count) for c in changes] == [
        ("bob", "grafana", Effect.ALLOW, Effect.DENY, 2)
    ]
    change = changes[0]
    assert (change.first_seen, change.last_seen) == (NOW, NOW + timedelta(hours=1))
    assert change.rule is None and "rule 'encrypted-only': disk not encrypted" in change.reasons


def test_enforce_shows_what_switching_monitored_apps_on_would_block() -> None:
    monitored = App("grafana", mode=Mode.MONITOR)
    policy = Policy((rule("eng", subjects=Subjects(groups=frozenset({"eng"}))),))
    requests = [ctx(app=monitored), ctx(app=monitored, user="bob", groups=frozenset())]
    recorded = [recorded_decision(record(policy, r)) for r in requests]
    assert all(r.effect is Effect.ALLOW for r in recorded)  # monitor mode lets all through
    assert impact(policy, recorded) == []
    blocked = impact(policy, recorded, enforce=True)
    assert [(c.user, c.before, c.after) for c in blocked] == [("bob", Effect.ALLOW, Effect.DENY)]


@pytest.mark.parametrize(
    "details",
    [
        {},
        {"effect": "allow", "rule": None, "policy_version": 1, "context": {"user": "x"}},
        {"effect": "perhaps", "rule": None, "policy_version": 1},
    ],
)
def test_other_details_are_refused(details: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="access decision"):
        recorded_decision(details)


def test_malformed_version_or_rule_is_refused() -> None:
    details = record(Policy(), ctx())
    for broken in ({**details, "policy_version": "1"}, {**details, "rule": 7}):
        with pytest.raises(ValueError, match="access decision"):
            recorded_decision(broken)
