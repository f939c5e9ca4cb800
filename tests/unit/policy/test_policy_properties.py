"""Hypothesis properties of the decision semantics, over random policies and requests."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st
from policystrategies import EXAMPLES, contexts, inventories, policies

from zerogate.core.policy.compile import compile_policy
from zerogate.core.policy.decide import decide_naive
from zerogate.core.policy.model import (
    App,
    Effect,
    Mode,
    Policy,
    RequestContext,
    Rule,
    Subjects,
    Targets,
)


def enforcing(request: RequestContext) -> RequestContext:
    return replace(request, app=replace(request.app, mode=Mode.ENFORCE))


@EXAMPLES
@given(contexts)
def test_empty_policy_denies_everything(request: RequestContext) -> None:
    assert decide_naive(Policy(), enforcing(request)).effect is Effect.DENY
    monitored = replace(request, app=replace(request.app, mode=Mode.MONITOR))
    decision = decide_naive(Policy(), monitored)
    assert (decision.effect, decision.would_be) == (Effect.ALLOW, Effect.DENY)


@EXAMPLES
@given(policies, contexts)
def test_deny_beats_allow(policy: Policy, request: RequestContext) -> None:
    request = enforcing(request)
    deny = Rule(
        "block",
        Subjects(everyone=True),
        Targets(apps=frozenset({request.app.name})),
        effect=Effect.DENY,
    )
    for rules in ((*policy.rules, deny), (deny, *policy.rules)):
        decision = decide_naive(replace(policy, rules=rules), request)
        deciding = [r for r in rules if r.name == decision.rule]
        assert decision.effect is Effect.DENY
        assert any(r.effect is Effect.DENY for r in deciding)


@EXAMPLES
@given(policies, contexts)
def test_monitor_never_blocks(policy: Policy, request: RequestContext) -> None:
    enforced_only = replace(policy, rules=tuple(r for r in policy.rules if r.mode is Mode.ENFORCE))
    with_monitor = decide_naive(policy, request)
    without = decide_naive(enforced_only, request)
    assert (with_monitor.effect, with_monitor.rule) == (without.effect, without.rule)
    if request.app.mode is Mode.MONITOR:
        assert with_monitor.effect is Effect.ALLOW and with_monitor.monitored


@EXAMPLES
@given(policies, contexts, inventories)
def test_compiled_decides_like_naive(
    policy: Policy, request: RequestContext, inventory: list[App]
) -> None:
    compiled = compile_policy(policy, inventory)
    assert compiled.decide(request) == decide_naive(policy, request)


@EXAMPLES
@given(policies, contexts)
def test_compiled_for_the_request_app_decides_like_naive(
    policy: Policy, request: RequestContext
) -> None:
    compiled = compile_policy(policy, [request.app])
    assert compiled.decide(request) == decide_naive(policy, request)
    assert compiled.decide(request) == compiled.decide(request)  # deterministic


@EXAMPLES
@given(policies, contexts, inventories, st.integers(-400 * 24 * 60, 400 * 24 * 60))
def test_a_timeless_decision_is_the_same_at_any_time(
    policy: Policy, request: RequestContext, inventory: list[App], minutes: int
) -> None:
    """What lets the gateway reuse a decision: if `decide_once` calls it timeless, moving the
    clock (by up to 400 days, across MFA ages, posture ages and time windows) changes nothing."""
    compiled = compile_policy(policy, inventory)
    decision, timeless = compiled.decide_once(request)
    assert decision == compiled.decide(request) == decide_naive(policy, request)
    later = replace(request, now=request.now + timedelta(minutes=minutes))
    if timeless:
        assert compiled.decide(later) == decision
    else:  # a clock check took part; sometimes it decides differently (not asserted here)
        assert compiled.clock_rules
