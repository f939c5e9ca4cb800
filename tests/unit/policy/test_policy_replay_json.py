"""The hand-written JSON form of a request context is exactly pydantic's (replay depends on it)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from policystrategies import EXAMPLES, contexts
from pydantic import TypeAdapter

from zerogate.core.policy.model import OsFamily, PrincipalKind, RequestContext
from zerogate.core.policy.replay import context_json, recorded_decision

PYDANTIC = TypeAdapter(RequestContext)
ZONES = st.none() | st.sampled_from(
    (
        UTC,
        timezone(timedelta(0)),
        timezone(timedelta(hours=-3, minutes=-30)),
        timezone(timedelta(seconds=37)),  # sub-minute: pydantic rounds it; so must we
        ZoneInfo("Europe/Paris"),
        ZoneInfo("Europe/London"),
    )
)
TIMES = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES)
ADDRESSES = st.sampled_from(
    tuple(
        ipaddress.ip_address(a)
        for a in ("198.18.0.1", "0.0.0.0", "2001:db8::1", "::1", "::ffff:1.2.3.4")
    )
)
VERSIONS = st.lists(st.integers(0, 999), max_size=4).map(tuple)


@EXAMPLES
@given(contexts)
def test_the_context_is_written_as_pydantic_writes_it(ctx: RequestContext) -> None:
    assert context_json(ctx) == PYDANTIC.dump_python(ctx, mode="json")


@EXAMPLES
@given(
    contexts,
    TIMES,
    st.none() | TIMES,
    ADDRESSES,
    st.sampled_from(PrincipalKind),
    st.none() | st.text(max_size=8),
    st.none() | st.sampled_from(OsFamily),
    VERSIONS,
    st.none() | VERSIONS,
    st.none() | TIMES,
)
def test_every_field_and_time_zone_is_written_as_pydantic_writes_it(
    ctx: RequestContext,
    now: datetime,
    auth_time: datetime | None,
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    principal: PrincipalKind,
    identity_provider: str | None,
    os_family: OsFamily | None,
    os_version: tuple[int, ...],
    agent_version: tuple[int, ...] | None,
    reported_at: datetime | None,
) -> None:
    ctx = replace(
        ctx,
        now=now,
        auth_time=auth_time,
        source_ip=address,
        principal=principal,
        identity_provider=identity_provider,
    )
    if ctx.device is not None:
        device = replace(
            ctx.device,
            os_family=os_family,
            os_version=os_version,
            agent_version=agent_version,
            reported_at=reported_at,
        )
        ctx = replace(ctx, device=device)
    written = context_json(ctx)
    assert written == PYDANTIC.dump_python(ctx, mode="json")
    details = {"context": written, "effect": "deny", "rule": None, "policy_version": 1}
    assert recorded_decision(details).context == PYDANTIC.validate_python(written)
