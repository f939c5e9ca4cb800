"""Builders shared by the policy tests: a healthy request context and rules in one line."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from zerogate.core.policy.model import (
    App,
    Conditions,
    Device,
    Effect,
    Mode,
    OsFamily,
    RequestContext,
    Rule,
    Subjects,
    Targets,
)

NOW = datetime(2031, 7, 2, 10, 30, tzinfo=UTC)  # a Wednesday


def device(**changes: object) -> Device:
    base = Device(
        id="laptop-1",
        enrolled=True,
        approved=True,
        os_family=OsFamily.MACOS,
        os_version=(14, 5),
        disk_encrypted=True,
        firewall=True,
        screen_lock=True,
        processes=frozenset({"edr"}),
        agent_version=(1, 4, 2),
        reported_at=NOW - timedelta(seconds=30),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def ctx(**changes: object) -> RequestContext:
    base = RequestContext(
        user="alice",
        app=App("grafana", frozenset({"observability"})),
        now=NOW,
        source_ip=ipaddress.ip_address("198.18.0.5"),
        groups=frozenset({"eng"}),
        department="rnd",
        office="paris",
        device=device(),
        method="GET",
        path="/d/home",
        mfa_time=NOW - timedelta(minutes=5),
        auth_time=NOW - timedelta(minutes=30),
        identity_provider="okta",
        risk=10,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def rule(
    name: str = "r",
    *,
    effect: Effect = Effect.ALLOW,
    mode: Mode = Mode.ENFORCE,
    subjects: Subjects | None = None,
    targets: Targets | None = None,
    conditions: Conditions | None = None,
) -> Rule:
    return Rule(
        name,
        subjects or Subjects(everyone=True),
        targets or Targets(apps=frozenset({"grafana"})),
        conditions or Conditions(),
        effect,
        mode,
    )
