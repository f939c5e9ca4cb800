"""An access decision's audit event as one line of JSON, written directly, for the gateway.

Where it sits: the gateway records one event per request in its spool, in the wire form the
control plane ingests (`gateway.spool.to_json` of `replay.access_event`). Building those
nested dicts and encoding them cost more than deciding the request did, so `EventLines`
writes the text itself: the parts that recur from request to request (who is asking, the
app) are encoded once and kept; only what is new each time (the ids, the clock, the path,
the decision and the outcome) is encoded per request.

Invariant: `json.loads(EventLines(g).line(ctx, d, …))` equals `to_json(access_event(ctx, d,
gateway=g, …))`, but for the order of the groups, which are a set (here they are sorted).
A property test holds the two equal; a field added to the event must be added here too.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from zerogate.core.audit import AuditAction
from zerogate.core.policy.model import App, Decision, Effect, RequestContext
from zerogate.core.policy.replay import _device_json, _time_json

_JSON: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_CACHE_LIMIT: Final = 4096
_ACTION: Final = _JSON.encode(str(AuditAction.ACCESS_DECISION))
_Who = tuple[object, ...]


class EventLines:
    """Writes access-decision events as JSON lines; one per gateway process (not thread-safe)."""

    def __init__(self, gateway: str) -> None:
        self._gateway = _JSON.encode(gateway)
        self._who: dict[_Who, str] = {}
        self._apps: dict[App, str] = {}
        self._addresses: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}

    def line(
        self,
        ctx: RequestContext,
        decision: Decision,
        *,
        policy_version: int,
        event_id: str,
        request: Mapping[str, object],
    ) -> bytes:
        """The event's JSON and a newline, ASCII only (so one event is exactly one line)."""
        encode = _JSON.encode
        now = ctx.now if ctx.now.tzinfo else ctx.now.replace(tzinfo=UTC)
        would_be = "null" if decision.would_be is None else f'"{decision.would_be}"'
        reasons = encode([str(reason) for reason in decision.reasons])
        text = (
            f'{{"event_id":{encode(event_id)},"time":"{now.astimezone(UTC).isoformat()}",'
            f'"actor":{encode(f"{ctx.principal}:{ctx.user}")},"action":{_ACTION},'
            f'"target":{encode(f"app/{ctx.app.name}")},'
            f'"outcome":"{"success" if decision.effect is Effect.ALLOW else "failure"}",'
            f'"details":{{"effect":"{decision.effect}","rule":{encode(decision.rule)},'
            f'"reasons":{reasons},"would_be":{would_be},'
            f'"would_be_rule":{encode(decision.would_be_rule)},'
            f'"policy_version":{int(policy_version)},"gateway":{self._gateway},'
            f'"context":{{{self._who_text(ctx)},"app":{self._app_text(ctx.app)},'
            f'"now":"{_time_json(ctx.now, keep=False)}",'
            f'"source_ip":"{self._address_text(ctx.source_ip)}",'
            f'"device":{"null" if ctx.device is None else encode(_device_json(ctx.device))},'
            f'"method":{encode(ctx.method)},"path":{encode(ctx.path)}}},'
            f'"request":{encode(dict(request))}}}}}\n'
        )
        return text.encode("ascii")

    def _who_text(self, ctx: RequestContext) -> str:
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
            text = self._encode_who(ctx)
            if len(self._who) >= _CACHE_LIMIT:
                self._who.clear()
            self._who[key] = text
        return text

    @staticmethod
    def _encode_who(ctx: RequestContext) -> str:
        encode = _JSON.encode
        mfa, auth = ctx.mfa_time, ctx.auth_time
        return (
            f'"user":{encode(ctx.user)},"groups":{encode(sorted(ctx.groups))},'
            f'"department":{encode(ctx.department)},"office":{encode(ctx.office)},'
            f'"principal":{encode(str(ctx.principal))},'
            f'"mfa_time":{"null" if mfa is None else encode(_time_json(mfa))},'
            f'"auth_time":{"null" if auth is None else encode(_time_json(auth))},'
            f'"identity_provider":{encode(ctx.identity_provider)},"risk":{encode(ctx.risk)}'
        )

    def _app_text(self, app: App) -> str:
        text = self._apps.get(app)
        if text is None:
            text = _JSON.encode({"name": app.name, "tags": sorted(app.tags), "mode": str(app.mode)})
            if len(self._apps) >= _CACHE_LIMIT:
                self._apps.clear()
            self._apps[app] = text
        return text

    def _address_text(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
        text = self._addresses.get(address)
        if text is None:
            text = str(address)
            if len(self._addresses) >= _CACHE_LIMIT:
                self._addresses.clear()
            self._addresses[address] = text
        return text


def _utc_or_none(when: datetime | None) -> bool:
    return when is None or when.tzinfo is UTC
