"""The decision semantics, and `decide_naive`: the reference evaluator over a whole policy.

Where it sits: `compile.py` finds the applicable rules faster but hands them to the same
`decide_applicable`, so the semantics live here once; `decide_naive` scans every rule and is
what property tests compare the compiled snapshot against.

Theory (also in docs/policy.md):
1. A rule *applies* when its subjects name the principal and its targets name the app (and,
   if given, the method and a path prefix). Its conditions then *hold* or fail with reasons.
2. Among applicable enforcing rules, in file order: a holding `deny` decides deny. Otherwise a
   holding `allow` grants, unless a `step_up` rule applies whose only failures are MFA ones
   (then step_up). With no grant, an `allow` whose only failures are MFA ones asks for
   step_up. Otherwise the default: deny, explained by every failed condition of the allow
   rules that applied.
3. Monitor rules never change the effect: the same procedure over *all* applicable rules
   gives `would_be`, recorded when at least one monitor rule applied.
4. An app in monitor mode lets the request through (allow) and records `would_be`.
5. Deterministic: rules in file order, conditions in `checks_for` order, no clock, no sets
   iterated into the output.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zerogate.core.policy.conditions import Check, checks_for
from zerogate.core.policy.model import (
    MFA_CODES,
    Decision,
    Effect,
    Mode,
    Policy,
    Reason,
    ReasonCode,
    RequestContext,
    Rule,
    Subjects,
    Targets,
)
from zerogate.core.policy.paths import covers

_NO_MATCH = Reason(ReasonCode.NO_MATCHING_RULE, "no rule grants access")
_APP_MONITOR = Reason(ReasonCode.APP_IN_MONITOR_MODE, "app in monitor mode: not enforced")


@dataclass(frozen=True, slots=True)
class Outcome:
    effect: Effect
    rule: str | None
    reasons: tuple[Reason, ...]


Evaluated = tuple[Rule, tuple[Reason, ...]]  # an applicable rule and its failed conditions


def subjects_match(subjects: Subjects, ctx: RequestContext) -> bool:
    return (
        subjects.everyone
        or ctx.user in subjects.users
        or ctx.department in subjects.departments
        or ctx.office in subjects.offices
        or not subjects.groups.isdisjoint(ctx.groups)
    )


def app_matches(targets: Targets, name: str, tags: frozenset[str]) -> bool:
    return (
        name in targets.apps
        or not targets.tags.isdisjoint(tags)
        or any(fnmatch.fnmatchcase(name, glob) for glob in targets.globs)
    )


def action_matches(rule: Rule, ctx: RequestContext) -> bool:
    """The rule's methods and path prefixes, if it has any, cover the request. For a rule that
    restricts (deny, step_up), GET also covers HEAD: servers run the GET handler for it."""
    targets = rule.targets
    restricts = rule.effect is not Effect.ALLOW
    method = ctx.method
    if targets.methods and method not in targets.methods:
        head_as_get = restricts and method == "HEAD" and "GET" in targets.methods
        if not head_as_get:
            return False
    if not targets.path_prefixes:
        return True
    path = ctx.path
    return path is not None and any(
        covers(prefix, path, restricts=restricts) for prefix in targets.path_prefixes
    )


def failures(checks: Sequence[Check], ctx: RequestContext, rule: str) -> tuple[Reason, ...]:
    out: list[Reason] = []
    for check in checks:
        reason = check(ctx)
        if reason is not None:
            tagged = Reason(reason.code, reason.text, rule)
            if tagged not in out:
                out.append(tagged)
    return tuple(out)


def outcome(evaluated: Iterable[Evaluated]) -> Outcome:
    """Rule 2 of the theory, over rules already known to apply, in file order."""
    rules = list(evaluated)
    for rule, failed in rules:
        if rule.effect is Effect.DENY and not failed:
            return Outcome(Effect.DENY, rule.name, (_effect_reason(rule),))
    grant = next((r for r, f in rules if r.effect is Effect.ALLOW and not f), None)
    if grant is not None:
        for rule, failed in rules:
            if rule.effect is Effect.STEP_UP and _only_mfa(failed):
                return Outcome(Effect.STEP_UP, rule.name, failed)
        return Outcome(Effect.ALLOW, grant.name, (_effect_reason(grant),))
    for rule, failed in rules:
        if rule.effect is Effect.ALLOW and _only_mfa(failed):
            return Outcome(Effect.STEP_UP, rule.name, failed)
    why = tuple(r for rule, failed in rules if rule.effect is Effect.ALLOW for r in failed)
    return Outcome(Effect.DENY, None, (_NO_MATCH, *why))


def _only_mfa(failed: tuple[Reason, ...]) -> bool:
    return bool(failed) and all(reason.code in MFA_CODES for reason in failed)


def _effect_reason(rule: Rule) -> Reason:
    if rule.effect is Effect.DENY:
        return Reason(ReasonCode.DENIED_BY_RULE, "denied", rule.name)
    return Reason(ReasonCode.ALLOWED_BY_RULE, "allowed", rule.name)


def decide_applicable(evaluated: Sequence[Evaluated], ctx: RequestContext) -> Decision:
    """Rules 3 and 4 of the theory: enforcement, monitor rules and monitor apps."""
    if ctx.app.mode is Mode.MONITOR:
        would = outcome(evaluated)
        reasons = (_APP_MONITOR, *would.reasons)
        return Decision(Effect.ALLOW, None, reasons, would.effect, would.rule, monitored=True)
    enforcing = [item for item in evaluated if item[0].mode is Mode.ENFORCE]
    real = outcome(enforcing)
    if len(enforcing) == len(evaluated):
        return Decision(real.effect, real.rule, real.reasons)
    would = outcome(evaluated)
    return Decision(real.effect, real.rule, real.reasons, would.effect, would.rule, True)


def applies(rule: Rule, ctx: RequestContext) -> bool:
    return (
        subjects_match(rule.subjects, ctx)
        and app_matches(rule.targets, ctx.app.name, ctx.app.tags)
        and action_matches(rule, ctx)
    )


def decide_naive(policy: Policy, ctx: RequestContext) -> Decision:
    """Scan every rule: slow and obviously right, the yardstick for `CompiledPolicy`."""
    evaluated = [
        (rule, failures(checks_for(rule.conditions, policy.cidr_lists), ctx, rule.name))
        for rule in policy.rules
        if applies(rule, ctx)
    ]
    return decide_applicable(evaluated, ctx)
