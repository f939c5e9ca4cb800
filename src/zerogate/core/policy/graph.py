"""The access graph: which applications the policy can grant a person (and whether their
device meets the device conditions today), and who can reach an application. Feeds the
blast-radius and unused-app reports.

It reads the rules, not a request: an allow is counted when its `who` and `what` match, and
marked conditional when it also has `when` conditions or method/path limits (so whether it
grants depends on the device, the network, the time…). An enforcing deny with no conditions
and no limits removes the grant; any other deny only makes it conditional.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from zerogate.core.policy.conditions import checks_for
from zerogate.core.policy.decide import app_matches, failures
from zerogate.core.policy.model import (
    App,
    Conditions,
    Device,
    Effect,
    Mode,
    Policy,
    Reason,
    RequestContext,
    Rule,
    Subjects,
)

# Device checks never read the source address; the probe request still needs one.
_NO_ADDRESS = ipaddress.IPv4Address(0)


@dataclass(frozen=True, slots=True)
class Principal:
    user: str
    groups: frozenset[str] = frozenset()
    department: str | None = None
    office: str | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    app: str
    rules: tuple[str, ...]  # the allow rules that grant it
    conditional: bool
    monitor: bool  # the app is in monitor mode: reachable today whatever the rules say


@dataclass(frozen=True, slots=True)
class Audience:
    rule: str
    subjects: Subjects
    conditional: bool


def _covers(subjects: Subjects, who: Principal) -> bool:
    return (
        subjects.everyone
        or who.user in subjects.users
        or who.department in subjects.departments
        or who.office in subjects.offices
        or not subjects.groups.isdisjoint(who.groups)
    )


def _limited(rule: Rule) -> bool:
    targets = rule.targets
    return not rule.conditions.is_empty() or bool(targets.methods) or bool(targets.path_prefixes)


def _enforcing(policy: Policy, effect: Effect) -> list[Rule]:
    return [r for r in policy.rules if r.mode is Mode.ENFORCE and r.effect is effect]


def reachable_apps(policy: Policy, who: Principal, apps: Iterable[App]) -> list[Grant]:
    allows = [r for r in _enforcing(policy, Effect.ALLOW) if _covers(r.subjects, who)]
    denies = [r for r in _enforcing(policy, Effect.DENY) if _covers(r.subjects, who)]
    grants = []
    for app in sorted(apps, key=lambda a: a.name):
        granting = [r for r in allows if app_matches(r.targets, app.name, app.tags)]
        blocking = [r for r in denies if app_matches(r.targets, app.name, app.tags)]
        if any(not _limited(r) for r in blocking) or not granting:
            if app.mode is Mode.MONITOR:
                grants.append(Grant(app.name, (), conditional=False, monitor=True))
            continue
        conditional = all(_limited(r) for r in granting) or bool(blocking)
        names = tuple(r.name for r in granting)
        grants.append(Grant(app.name, names, conditional, monitor=app.mode is Mode.MONITOR))
    return grants


def who_can_reach(policy: Policy, app: App) -> list[Audience]:
    """The allow rules that name this app, with whom they are for (before deny rules)."""
    return [
        Audience(rule.name, rule.subjects, _limited(rule))
        for rule in _enforcing(policy, Effect.ALLOW)
        if app_matches(rule.targets, app.name, app.tags)
    ]


def device_shortfalls(
    policy: Policy, grant: Grant, device: Device, now: datetime
) -> tuple[Reason, ...] | None:
    """Why `device` cannot use `grant` today: None if one granting rule's device conditions
    all hold (or it has none), else every device condition that failed, rule by rule.

    Only device conditions are judged: MFA, network and time depend on the request, not on
    the device, and stay "conditional".
    """
    if not grant.rules:  # a monitor-mode app lets everyone through
        return None
    probe = RequestContext(
        user="",
        app=App(grant.app),
        now=now,
        source_ip=_NO_ADDRESS,
        device=device,
    )
    by_name = {rule.name: rule for rule in policy.rules}
    why: list[Reason] = []
    for name in grant.rules:
        wanted = by_name[name].conditions.device
        if wanted is None:
            return None
        failed = failures(checks_for(Conditions(device=wanted), {}), probe, name)
        if not failed:
            return None
        why.extend(failed)
    return tuple(why)
