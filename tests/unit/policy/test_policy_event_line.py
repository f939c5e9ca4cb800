"""The gateway's hand-written event line is exactly the canonical form of `access_event`,
the bytes the audit chain hashes."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from policystrategies import EXAMPLES, contexts

from zerogate.core.audit import AuditRecord, canonical
from zerogate.core.policy.event_line import EventLines, facts
from zerogate.core.policy.model import App, Decision, Effect, Reason, ReasonCode, RequestContext
from zerogate.core.policy.replay import access_event, recorded_decision
from zerogate.gateway.spool import to_json

reasons = st.lists(
    st.builds(
        Reason,
        code=st.sampled_from(ReasonCode),
        text=st.text(max_size=12),
        rule=st.none() | st.text(max_size=6),
    ),
    max_size=3,
).map(tuple)
decisions = st.builds(
    Decision,
    effect=st.sampled_from(Effect),
    rule=st.none() | st.text(max_size=8),
    reasons=reasons,
    would_be=st.none() | st.sampled_from(Effect),
    would_be_rule=st.none() | st.text(max_size=8),
)
requests = st.fixed_dictionaries(
    {
        "host": st.text(max_size=12),
        "status": st.integers(100, 599),
        "bytes_in": st.integers(0, 2**40),
        "bytes_out": st.integers(0, 2**40),
        "duration_ms": st.floats(0, 1e6, allow_nan=False),
        "error": st.none() | st.text(max_size=10),
    }
)
IP = ipaddress.ip_address("198.18.0.1")
zones = st.sampled_from((UTC, timezone(timedelta(hours=2)), timezone(timedelta(0))))


def _as_sets(wire: dict[str, object]) -> dict[str, object]:
    """Groups and tags are sets: the line writes them sorted, the reference in set order."""
    details = wire["details"]
    assert isinstance(details, dict)
    context = details["context"]
    context["groups"] = sorted(context["groups"])
    context["app"]["tags"] = sorted(context["app"]["tags"])
    return wire


def _canonical_line(record: AuditRecord) -> bytes:
    """The canonical bytes of `record`, its groups and tags sorted, and a newline."""
    details = _as_sets({"details": json.loads(json.dumps(dict(record.details)))})["details"]
    assert isinstance(details, dict)
    return canonical(replace(record, details=details)) + b"\n"


@EXAMPLES
@given(
    first=contexts,
    decision=decisions,
    request=requests,
    version=st.integers(0, 10**6),
    gateway=st.text(max_size=8),
    event_id=st.text(min_size=1, max_size=40),
    zone=zones,
    path=st.none() | st.text(max_size=20),
)
def test_the_line_is_the_wire_form_of_access_event(
    first: RequestContext,
    decision: Decision,
    request: dict[str, object],
    version: int,
    gateway: str,
    event_id: str,
    zone: timezone,
    path: str | None,
) -> None:
    lines = EventLines(gateway)
    mfa = None if first.mfa_time is None else first.mfa_time.astimezone(zone)
    for ctx in (  # the second and third are written with what the first left in the caches
        first,
        replace(first, path=path, now=first.now + timedelta(seconds=1)),
        replace(first, mfa_time=mfa),
    ):
        line = lines.line(ctx, decision, policy_version=version, event_id=event_id, request=request)
        assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
        reference = access_event(
            ctx,
            decision,
            policy_version=version,
            gateway=gateway,
            event_id=event_id,
            request=request,
        )
        written = json.loads(line)
        assert _as_sets(written) == _as_sets(json.loads(json.dumps(to_json(reference))))
        assert line == _canonical_line(reference)
        assert recorded_decision(written["details"]).context == ctx
    # A context made earlier, written with the clock of now: as if made now.
    later = first.now + timedelta(minutes=7)
    line = lines.line(
        first, decision, policy_version=version, event_id=event_id, request=request, now=later
    )
    reference = access_event(
        replace(first, now=later),
        decision,
        policy_version=version,
        gateway=gateway,
        event_id=event_id,
        request=request,
    )
    assert line == _canonical_line(reference)
    # …and with the part made once before, as the gateway keeps it for a remembered decision.
    part = lines.part(first, decision, policy_version=version)
    kept = lines.line(
        first,
        decision,
        policy_version=version,
        event_id=event_id,
        request=request,
        now=later,
        part=part,
    )
    assert kept == line


def test_a_naive_clock_is_taken_as_utc() -> None:
    naive = datetime(2026, 11, 24, 1, 2, 3)
    ctx = RequestContext("u", App("a"), naive, ipaddress.ip_address("198.18.0.1"))
    line = EventLines("gw").line(
        ctx, Decision(Effect.ALLOW, "r"), policy_version=1, event_id="e1", request={}
    )
    assert json.loads(line)["time"] == "2026-11-24T01:02:03.000000Z"  # the canonical form


@EXAMPLES
@given(request=requests)
def test_the_facts_are_written_as_the_generic_path_writes_them(request: dict[str, Any]) -> None:
    text = facts(**request)
    assert json.loads(text) == request and text.isascii() and "\n" not in text
    ctx = RequestContext("u", App("a"), datetime(2026, 1, 1, tzinfo=UTC), IP)
    decision = Decision(Effect.ALLOW, "r")
    lines = EventLines("gw")
    given = lines.line(ctx, decision, policy_version=1, event_id="e", request=text)
    built = lines.line(ctx, decision, policy_version=1, event_id="e", request=request)
    assert given == built
