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
from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import TypeAdapter, ValidationError

from zerogate.core.audit import AuditAction, AuditRecord, Outcome
from zerogate.core.policy.compile import compile_policy
from zerogate.core.policy.model import (
    App,
    Decision,
    Device,
    Effect,
    Mode,
    Policy,
    RequestContext,
)

_CONTEXT: Final = TypeAdapter(RequestContext)
_DATETIME: Final = TypeAdapter(datetime)
# Token times (login, second factor) recur on every request of a session: their text is kept.
# Only UTC values are kept, so equal keys are equal instants in the same zone, written alike.
_UTC_TEXT: dict[datetime, str] = {}
_UTC_TEXT_LIMIT: Final = 4096


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
        "context": context_json(ctx),
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


def context_json(ctx: RequestContext) -> dict[str, object]:
    """`ctx` as `TypeAdapter(RequestContext).dump_python(ctx, mode="json")` gives it, written
    out by hand: the gateway records one per request, and pydantic's generic walk over the
    dataclasses cost several times this. A property test holds the two equal; a field added
    to `RequestContext`, `App` or `Device` must be added here too (that test then fails)."""
    app = ctx.app
    return {
        "user": ctx.user,
        "app": {"name": app.name, "tags": list(app.tags), "mode": str(app.mode)},
        "now": _time_json(ctx.now, keep=False),  # new every request: nothing to reuse
        "source_ip": str(ctx.source_ip),
        "groups": list(ctx.groups),
        "department": ctx.department,
        "office": ctx.office,
        "principal": str(ctx.principal),
        "device": None if ctx.device is None else _device_json(ctx.device),
        "method": ctx.method,
        "path": ctx.path,
        "mfa_time": None if ctx.mfa_time is None else _time_json(ctx.mfa_time),
        "auth_time": None if ctx.auth_time is None else _time_json(ctx.auth_time),
        "identity_provider": ctx.identity_provider,
        "risk": ctx.risk,
    }


def _device_json(device: Device) -> dict[str, object]:
    return {
        "id": device.id,
        "enrolled": device.enrolled,
        "approved": device.approved,
        "os_family": None if device.os_family is None else str(device.os_family),
        "os_version": list(device.os_version),
        "disk_encrypted": device.disk_encrypted,
        "firewall": device.firewall,
        "screen_lock": device.screen_lock,
        "processes": list(device.processes),
        "agent_version": None if device.agent_version is None else list(device.agent_version),
        "reported_at": None if device.reported_at is None else _time_json(device.reported_at),
    }


def _time_json(when: datetime, *, keep: bool = True) -> str:
    """ISO 8601 as pydantic writes it: "Z" for a zero offset."""
    if when.tzinfo is UTC:  # the gateway's clock and the tokens' times: the common case
        text = _UTC_TEXT.get(when) if keep else None
        if text is None:
            text = when.isoformat()[:-6] + "Z"  # drop "+00:00"
            if keep:
                if len(_UTC_TEXT) >= _UTC_TEXT_LIMIT:
                    _UTC_TEXT.clear()
                _UTC_TEXT[when] = text
        return text
    offset = when.utcoffset()
    if offset is not None and offset % timedelta(minutes=1):
        return str(_DATETIME.dump_python(when, mode="json"))  # sub-minute offset: its rounding
    text = when.isoformat()
    return text[:-6] + "Z" if offset is not None and not offset else text


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
