"""Recorded decisions and their replay: the safe path from monitor to enforce.

Where it sits: a gateway turns every decision into an audit event (`access_event`) whose
details hold the whole `RequestContext`; the control plane reads the events of the last days
back (`recorded_decision`) and `impact` decides each again under a candidate policy, compiled
once, listing every (user, app) whose outcome would change. Pure: the caller supplies events,
policy and inventory.

Invariants:
1. `recorded_decision(access_event(ctx, d, …).details).context == ctx`: the replayed request
   is the request, down to the device posture and the clock.
2. Replaying a policy against the decisions it made itself reports no change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from pydantic import TypeAdapter, ValidationError

from zerogate.core.audit import AuditAction, AuditRecord, Outcome
from zerogate.core.policy.compile import compile_policy
from zerogate.core.policy.model import App, Decision, Effect, Mode, Policy, RequestContext

_CONTEXT: Final = TypeAdapter(RequestContext)


@dataclass(frozen=True, slots=True)
class RecordedDecision:
    context: RequestContext
    effect: Effect
    rule: str | None
    policy_version: int


@dataclass(frozen=True, slots=True)
class Change:
    """Requests of one user to one app whose outcome a candidate policy would change."""

    user: str
    app: str
    before: Effect
    after: Effect
    rule: str | None  # the candidate's deciding rule (None: default deny)
    reasons: tuple[str, ...]  # the candidate's reasons, for the latest such request
    count: int
    first_seen: datetime
    last_seen: datetime


def access_event(
    ctx: RequestContext,
    decision: Decision,
    *,
    policy_version: int,
    gateway: str,
    event_id: str,
    request: Mapping[str, object] | None = None,
) -> AuditRecord:
    """The audit event of one decision; its details are enough to replay it.

    `request` adds what the gateway saw of the exchange (host, status, bytes, duration…).
    """
    details: dict[str, object] = {
        "effect": str(decision.effect),
        "rule": decision.rule,
        "reasons": [str(reason) for reason in decision.reasons],
        "would_be": str(decision.would_be) if decision.would_be else None,
        "would_be_rule": decision.would_be_rule,
        "policy_version": policy_version,
        "gateway": gateway,
        "context": _CONTEXT.dump_python(ctx, mode="json"),
    }
    if request is not None:
        details["request"] = dict(request)
    return AuditRecord(
        event_id=event_id,
        time=ctx.now,
        actor=f"{ctx.principal}:{ctx.user}",
        action=str(AuditAction.ACCESS_DECISION),
        target=f"app/{ctx.app.name}",
        outcome=Outcome.SUCCESS if decision.effect is Effect.ALLOW else Outcome.FAILURE,
        details=details,
    )


def recorded_decision(details: Mapping[str, object]) -> RecordedDecision:
    """The decision an `access_event` recorded; ValueError if the details are not one."""
    try:
        context = _CONTEXT.validate_python(details.get("context"))
        effect = Effect(str(details.get("effect")))
    except (ValidationError, ValueError):
        raise ValueError("not the details of an access decision") from None
    rule, version = details.get("rule"), details.get("policy_version")
    if not (rule is None or isinstance(rule, str)) or not isinstance(version, int):
        raise ValueError("not the details of an access decision")
    return RecordedDecision(context, effect, rule, version)


def impact(
    candidate: Policy,
    decisions: Iterable[RecordedDecision],
    *,
    apps: Iterable[App] = (),
    enforce: bool = False,
) -> list[Change]:
    """Every (user, app, before, after) a candidate changes, most frequent first.

    `apps` is the inventory the candidate is compiled for, once; a recorded app that is not
    in it (deleted or retagged since) is still decided correctly, only more slowly.
    `enforce` replays as if every app and rule were enforcing: what switching the monitored
    apps to enforce would block.
    """
    if enforce:
        candidate = replace(
            candidate, rules=tuple(replace(r, mode=Mode.ENFORCE) for r in candidate.rules)
        )
    compiled = compile_policy(candidate, apps)
    changes: dict[tuple[str, str, Effect, Effect], Change] = {}
    for recorded in decisions:
        ctx = recorded.context
        if enforce and ctx.app.mode is not Mode.ENFORCE:
            ctx = replace(ctx, app=replace(ctx.app, mode=Mode.ENFORCE))
        decision = compiled.decide(ctx)
        if decision.effect is recorded.effect:
            continue
        key = (ctx.user, ctx.app.name, recorded.effect, decision.effect)
        seen = changes.get(key)
        reasons = tuple(str(reason) for reason in decision.reasons)
        if seen is None:
            changes[key] = Change(*key, decision.rule, reasons, 1, ctx.now, ctx.now)
        else:
            latest = ctx.now >= seen.last_seen
            changes[key] = replace(
                seen,
                count=seen.count + 1,
                first_seen=min(seen.first_seen, ctx.now),
                last_seen=max(seen.last_seen, ctx.now),
                rule=decision.rule if latest else seen.rule,
                reasons=reasons if latest else seen.reasons,
            )
    return sorted(changes.values(), key=lambda c: (-c.count, c.user, c.app, c.before, c.after))
