"""An access decision's audit event as one line of JSON, written directly, for the gateway.

Where it sits: the gateway records one event per request in its spool, as the line the
control plane ingests: `replay.access_event` in the audit chain's canonical form
(`core.audit.canonical_parts`: keys sorted, no spaces, ASCII, the time in UTC with six
fractional digits and "Z"), which the control plane then hashes as it came, without decoding
and encoding it again. Building those nested dicts and encoding them cost more than deciding
the request did, so `EventLines` writes the text itself: the parts that recur from request to
request (who is asking, the app, the decision) are encoded once and kept; only what is new
each time (the id, the clock and the exchange's facts) is written per request.

Invariant: `EventLines(g).line(ctx, d, …)` is `canonical(access_event(ctx, d, gateway=g, …))`
and a newline, the groups and tags (sets) written sorted. A property test holds the two
equal; a field added to the event must be added here too.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Final

from zerogate.core.audit import AuditAction, canonical_time
from zerogate.core.memo import Memo
from zerogate.core.policy.model import App, Decision, Effect, RequestContext
from zerogate.core.policy.replay import _device_json, _time_json

_JSON: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False, sort_keys=True)
_CACHE_LIMIT: Final = 4096
_ACTION: Final = _JSON.encode(str(AuditAction.ACCESS_DECISION))
_Who = tuple[object, ...]
# The context's fields that come from the token, encoded: auth_time, department, groups,
# identity_provider, mfa_time, office, principal, risk, user (the order of their keys).
_WhoText = tuple[str, str, str, str, str, str, str, str, str]
# A line but its id, clock and facts: the four texts around them (see `EventLines.line`).
Part = tuple[str, str, str, str]


def _text(value: str | None) -> str:
    """A JSON string (or null). `JSONEncoder.encode` builds a whole encoder for anything
    that is not a string, None included: too slow for every field of every request."""
    return "null" if value is None else encode_basestring_ascii(value)


def _scalar(value: object) -> str:
    """What `_JSON` writes for a value of the request's facts (strings, numbers, None)."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a JSON number: {value!r}")
        return float.__repr__(value)
    return _JSON.encode(value)


def _object(values: Mapping[str, object]) -> str:
    pairs = sorted(values.items())
    return "{" + ",".join([f"{_text(key)}:{_scalar(value)}" for key, value in pairs]) + "}"


def facts(
    host: str, status: int, bytes_in: int, bytes_out: int, duration_ms: float, error: str | None
) -> str:
    """The JSON text of a gateway exchange's facts, as `_JSON` writes that dict (the gateway
    writes one per request; the generic path costs three times this)."""
    if not math.isfinite(duration_ms):
        raise ValueError(f"not a JSON number: {duration_ms!r}")
    return (
        f'{{"bytes_in":{int(bytes_in)},"bytes_out":{int(bytes_out)},'
        f'"duration_ms":{float.__repr__(float(duration_ms))},"error":{_text(error)},'
        f'"host":{_text(host)},"status":{int(status)}}}'
    )


class EventLines:
    """Writes access-decision events as JSON lines; one per gateway process (not thread-safe)."""

    def __init__(self, gateway: str) -> None:
        self._gateway = _JSON.encode(gateway)
        self._who: Memo[_Who, _WhoText] = Memo(_CACHE_LIMIT)
        self._apps: Memo[App, str] = Memo(_CACHE_LIMIT)
        self._addresses: Memo[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = Memo(
            _CACHE_LIMIT
        )

    def line(
        self,
        ctx: RequestContext,
        decision: Decision,
        *,
        policy_version: int,
        event_id: str,
        request: Mapping[str, object] | str,
        now: datetime | None = None,
        part: Part | None = None,
    ) -> bytes:
        """The event's canonical JSON and a newline, ASCII only (so one event is one line).

        `now`, if given, stands for `ctx.now`: the event of `replace(ctx, now=now)`, without
        building that context (the gateway reuses one context for a remembered decision).
        `request` is the facts of the exchange, or their JSON text already (see `facts`).
        `part`, if given, is `self.part(ctx, decision, policy_version=…)`, made earlier."""
        clock = ctx.now if now is None else now
        time = canonical_time(clock if clock.tzinfo else clock.replace(tzinfo=UTC))
        # The context's clock as pydantic writes it: "Z" for UTC, no fraction when it is zero;
        # a year below 1000 (a shorter canonical time, unpadded) and other zones its own way.
        if clock.tzinfo is not UTC or len(time) != 27:
            now_json = _time_json(clock, keep=False)
        else:
            now_json = time if clock.microsecond else time[:-8] + "Z"
        facts = request if isinstance(request, str) else _object(request)
        if part is None:
            part = self.part(ctx, decision, policy_version=policy_version)
        before_now, before_facts, before_id, before_time = part
        line = (
            f"{before_now}{now_json}{before_facts}{facts}{before_id}{_text(event_id)}"
            f'{before_time}{time}"}}\n'
        )
        return line.encode("ascii")

    def part(self, ctx: RequestContext, decision: Decision, *, policy_version: int) -> Part:
        """Everything of the line but the event id, the clock and the exchange's facts: the
        same for every request a remembered decision answers, so the gateway keeps it.
        The keys are written in sorted order, the canonical one."""
        text = _text
        would_be = "null" if decision.would_be is None else f'"{decision.would_be}"'
        reasons = ",".join([encode_basestring_ascii(str(reason)) for reason in decision.reasons])
        device = "null" if ctx.device is None else _JSON.encode(_device_json(ctx.device))
        auth, department, groups, idp, mfa, office, principal, risk, user = self._who_text(ctx)
        outcome = "success" if decision.effect is Effect.ALLOW else "failure"
        before_now = (
            f'{{"action":{_ACTION},"actor":{text(f"{ctx.principal}:{ctx.user}")},'
            f'"details":{{"context":{{"app":{self._app_text(ctx.app)},"auth_time":{auth},'
            f'"department":{department},"device":{device},"groups":{groups},'
            f'"identity_provider":{idp},"method":{text(ctx.method)},"mfa_time":{mfa},"now":"'
        )
        before_facts = (
            f'","office":{office},"path":{text(ctx.path)},"principal":{principal},'
            f'"risk":{risk},"source_ip":"{self._address_text(ctx.source_ip)}","user":{user}}},'
            f'"effect":"{decision.effect}","gateway":{self._gateway},'
            f'"policy_version":{int(policy_version)},"reasons":[{reasons}],"request":'
        )
        before_id = (
            f',"rule":{text(decision.rule)},"would_be":{would_be},'
            f'"would_be_rule":{text(decision.would_be_rule)}}},"event_id":'
        )
        before_time = f',"outcome":"{outcome}","target":{text(f"app/{ctx.app.name}")},"time":"'
        return before_now, before_facts, before_id, before_time

    def _who_text(self, ctx: RequestContext) -> _WhoText:
        """The context's fields that come from the token: the same on every request of a session."""
        if not (_utc_or_none(ctx.mfa_time) and _utc_or_none(ctx.auth_time)):
            # Equal instants in other zones are written differently: not a cache key.
            return self._encode_who(ctx)
        key = (
            ctx.user,
            ctx.groups,
            ctx.principal,
            ctx.department,
            ctx.office,
            ctx.mfa_time,
            ctx.auth_time,
            ctx.identity_provider,
            ctx.risk,
        )
        text = self._who.get(key)
        if text is None:
            text = self._who.put(key, self._encode_who(ctx))
        return text

    @staticmethod
    def _encode_who(ctx: RequestContext) -> _WhoText:
        encode = _JSON.encode
        mfa, auth = ctx.mfa_time, ctx.auth_time
        return (
            "null" if auth is None else encode(_time_json(auth)),
            encode(ctx.department),
            encode(sorted(ctx.groups)),
            encode(ctx.identity_provider),
            "null" if mfa is None else encode(_time_json(mfa)),
            encode(ctx.office),
            encode(str(ctx.principal)),
            encode(ctx.risk),
            encode(ctx.user),
        )

    def _app_text(self, app: App) -> str:
        text = self._apps.get(app)
        if text is None:
            written = {"mode": str(app.mode), "name": app.name, "tags": sorted(app.tags)}
            text = self._apps.put(app, _JSON.encode(written))
        return text

    def _address_text(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
        text = self._addresses.get(address)
        if text is None:
            text = self._addresses.put(address, str(address))
        return text


def _utc_or_none(when: datetime | None) -> bool:
    return when is None or when.tzinfo is UTC
