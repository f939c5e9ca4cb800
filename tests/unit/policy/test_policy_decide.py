"""The decision semantics of decide.py, case by case (docs/policy.md, "Semantics")."""

from __future__ import annotations

from datetime import timedelta

from policykit import NOW, ctx, device, rule

from zerogate.core.policy.compile import compile_policy
from zerogate.core.policy.decide import decide_naive
from zerogate.core.policy.model import (
    App,
    AuthConditions,
    Conditions,
    Decision,
    DeviceConditions,
    Effect,
    Mode,
    Policy,
    ReasonCode,
    RequestContext,
    Subjects,
    Targets,
)
from zerogate.core.policy.paths import path_matches

DISK = Conditions(device=DeviceConditions(disk_encrypted=True))
FRESH_MFA = Conditions(auth=AuthConditions(mfa_max_age_minutes=10))


def both(policy: Policy, request: RequestContext) -> Decision:
    decision = decide_naive(policy, request)
    assert compile_policy(policy, [request.app]).decide(request) == decision
    return decision


def codes(decision: Decision) -> list[ReasonCode]:
    return [reason.code for reason in decision.reasons]


def test_empty_policy_denies() -> None:
    decision = both(Policy(), ctx())
    assert decision == Decision(Effect.DENY, None, decision.reasons)
    assert codes(decision) == [ReasonCode.NO_MATCHING_RULE]


def test_allow_names_the_rule() -> None:
    decision = both(Policy((rule("grafana-all"),)), ctx())
    assert (decision.effect, decision.rule) == (Effect.ALLOW, "grafana-all")
    assert str(decision.reasons[0]) == "rule 'grafana-all': allowed"


def test_deny_beats_allow_whatever_the_order() -> None:
    deny = rule("no", effect=Effect.DENY)
    for rules in ((rule("yes"), deny), (deny, rule("yes"))):
        decision = both(Policy(rules), ctx())
        assert (decision.effect, decision.rule) == (Effect.DENY, "no")


def test_deny_with_failing_condition_does_not_apply() -> None:
    deny = rule("no", effect=Effect.DENY, conditions=DISK)
    decision = both(Policy((rule("yes"), deny)), ctx(device=None))
    assert decision.effect is Effect.ALLOW


def test_default_deny_lists_every_failed_condition() -> None:
    conditions = Conditions(
        device=DeviceConditions(disk_encrypted=True, posture_max_age_seconds=300)
    )
    stale = device(disk_encrypted=False, reported_at=NOW - timedelta(seconds=612))
    request = ctx(device=stale)
    decision = both(Policy((rule("laptops", conditions=conditions),)), request)
    assert decision.effect is Effect.DENY and decision.rule is None
    assert [str(r) for r in decision.reasons] == [
        "no rule grants access",
        "rule 'laptops': disk not encrypted",
        "rule 'laptops': posture report 612 s old > 300 s",
    ]


def test_allow_failing_only_on_mfa_asks_for_step_up() -> None:
    stale = ctx(mfa_time=NOW - timedelta(minutes=75))
    decision = both(Policy((rule("admin", conditions=FRESH_MFA),)), stale)
    assert (decision.effect, decision.rule) == (Effect.STEP_UP, "admin")
    assert [str(r) for r in decision.reasons] == ["rule 'admin': MFA 75 min old > 10 min"]


def test_mfa_and_other_failure_is_a_deny() -> None:
    conditions = Conditions(device=DISK.device, auth=FRESH_MFA.auth)
    request = ctx(mfa_time=None, device=None)
    decision = both(Policy((rule("admin", conditions=conditions),)), request)
    assert decision.effect is Effect.DENY
    assert codes(decision) == [
        ReasonCode.NO_MATCHING_RULE,
        ReasonCode.NO_DEVICE,
        ReasonCode.MFA_MISSING,
    ]


def test_step_up_rule_overrides_a_grant_until_mfa_is_fresh() -> None:
    policy = Policy((rule("base"), rule("fresh", effect=Effect.STEP_UP, conditions=FRESH_MFA)))
    stale = both(policy, ctx(mfa_time=NOW - timedelta(hours=2)))
    assert (stale.effect, stale.rule) == (Effect.STEP_UP, "fresh")
    assert both(policy, ctx()).effect is Effect.ALLOW


def test_step_up_rule_alone_grants_nothing() -> None:
    policy = Policy((rule("fresh", effect=Effect.STEP_UP, conditions=FRESH_MFA),))
    assert both(policy, ctx()).effect is Effect.DENY
    assert both(policy, ctx(mfa_time=None)).effect is Effect.DENY


def test_monitor_rule_records_but_never_blocks() -> None:
    policy = Policy((rule("yes"), rule("soon-no", effect=Effect.DENY, mode=Mode.MONITOR)))
    decision = both(policy, ctx())
    assert (decision.effect, decision.rule) == (Effect.ALLOW, "yes")
    assert (decision.would_be, decision.would_be_rule, decision.monitored) == (
        Effect.DENY,
        "soon-no",
        True,
    )


def test_monitor_allow_rule_does_not_grant() -> None:
    decision = both(Policy((rule("trial", mode=Mode.MONITOR),)), ctx())
    assert decision.effect is Effect.DENY
    assert (decision.would_be, decision.would_be_rule) == (Effect.ALLOW, "trial")


def test_no_monitor_rule_records_nothing() -> None:
    decision = both(Policy((rule("yes"),)), ctx())
    assert (decision.would_be, decision.monitored) == (None, False)


def test_app_in_monitor_mode_lets_through_and_records() -> None:
    request = ctx(app=App("grafana", mode=Mode.MONITOR))
    decision = both(Policy((rule("no", effect=Effect.DENY),)), request)
    assert decision.effect is Effect.ALLOW and decision.monitored
    assert (decision.would_be, decision.would_be_rule) == (Effect.DENY, "no")
    assert codes(decision)[0] is ReasonCode.APP_IN_MONITOR_MODE


def test_subject_kinds() -> None:
    cases = [
        Subjects(users=frozenset({"alice"})),
        Subjects(groups=frozenset({"eng"})),
        Subjects(departments=frozenset({"rnd"})),
        Subjects(offices=frozenset({"paris"})),
    ]
    for subjects in cases:
        policy = Policy((rule(subjects=subjects),))
        assert both(policy, ctx()).effect is Effect.ALLOW
        stranger = ctx(user="bob", groups=frozenset(), department=None, office=None)
        assert both(policy, stranger).effect is Effect.DENY


def test_target_kinds() -> None:
    for targets in (
        Targets(apps=frozenset({"grafana"})),
        Targets(tags=frozenset({"observability"})),
        Targets(globs=("graf*",)),
    ):
        policy = Policy((rule(targets=targets),))
        assert both(policy, ctx()).effect is Effect.ALLOW
        assert both(policy, ctx(app=App("wiki"))).effect is Effect.DENY


def test_methods_and_paths() -> None:
    targets = Targets(
        apps=frozenset({"grafana"}), methods=frozenset({"GET"}), path_prefixes=("/d",)
    )
    policy = Policy((rule(targets=targets),))
    assert both(policy, ctx(path="/d/x")).effect is Effect.ALLOW
    assert both(policy, ctx(method="POST")).effect is Effect.DENY
    assert both(policy, ctx(path="/dx")).effect is Effect.DENY
    assert both(policy, ctx(method=None, path=None)).effect is Effect.DENY


def test_path_prefix_is_segment_aware() -> None:
    assert path_matches("/api", "/api") and path_matches("/api", "/api/v1")
    assert not path_matches("/api", "/apix")
    assert path_matches("/api/", "/api/v1") and not path_matches("/api/", "/api")
