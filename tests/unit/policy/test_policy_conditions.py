"""Every condition kind: it holds on a healthy request and fails with its code and text."""

from __future__ import annotations

import ipaddress
from datetime import time, timedelta
from zoneinfo import ZoneInfo

import pytest
from policykit import NOW, ctx, device

from zerogate.core.policy.conditions import checks_for
from zerogate.core.policy.model import (
    AuthConditions,
    Conditions,
    DeviceConditions,
    NetworkConditions,
    OsFamily,
    Reason,
    ReasonCode,
    RequestContext,
    TimeConditions,
)

C = ReasonCode
CIDRS = {
    "office": (ipaddress.ip_network("198.18.0.0/24"),),
    "tor": (ipaddress.ip_network("198.19.9.0/24"), ipaddress.ip_network("2001:db8::/32")),
}
PARIS_WORK = TimeConditions(frozenset(range(5)), time(8), time(18), ZoneInfo("Europe/Paris"))
NIGHT = TimeConditions(frozenset(range(7)), time(22), time(6), ZoneInfo("UTC"))


def failed(conditions: Conditions, request: RequestContext) -> list[Reason]:
    reasons = (check(request) for check in checks_for(conditions, CIDRS))
    return [reason for reason in reasons if reason is not None]


def dev(**kwargs: object) -> Conditions:
    return Conditions(device=DeviceConditions(**kwargs))  # type: ignore[arg-type]


def auth(**kwargs: object) -> Conditions:
    return Conditions(auth=AuthConditions(**kwargs))  # type: ignore[arg-type]


CASES = [
    (
        dev(enrolled=True),
        ctx(device=device(enrolled=False)),
        C.DEVICE_NOT_ENROLLED,
        "device not enrolled",
    ),
    (
        dev(approved=True),
        ctx(device=device(approved=False)),
        C.DEVICE_NOT_APPROVED,
        "device not approved",
    ),
    (
        dev(disk_encrypted=True),
        ctx(device=device(disk_encrypted=False)),
        C.DISK_NOT_ENCRYPTED,
        "disk not encrypted",
    ),
    (dev(firewall=True), ctx(device=device(firewall=False)), C.FIREWALL_OFF, "firewall off"),
    (
        dev(screen_lock=True),
        ctx(device=device(screen_lock=False)),
        C.SCREEN_LOCK_OFF,
        "screen lock off",
    ),
    (
        dev(os_families=frozenset({OsFamily.WINDOWS, OsFamily.LINUX})),
        ctx(),
        C.OS_FAMILY,
        "os macos not in (linux, windows)",
    ),
    (
        dev(min_os_versions=((OsFamily.MACOS, (14, 6)),)),
        ctx(),
        C.OS_VERSION,
        "macos 14.5 older than 14.6",
    ),
    (
        dev(processes=("edr", "vpn-killer")),
        ctx(),
        C.PROCESS_MISSING,
        "required process not running: vpn-killer",
    ),
    (dev(min_agent_version=(1, 10)), ctx(), C.AGENT_OUTDATED, "agent 1.4.2 older than 1.10"),
    (
        dev(min_agent_version=(1,)),
        ctx(device=device(agent_version=None)),
        C.AGENT_OUTDATED,
        "agent none older than 1",
    ),
    (
        dev(posture_max_age_seconds=300),
        ctx(device=device(reported_at=NOW - timedelta(seconds=612))),
        C.POSTURE_STALE,
        "posture report 612 s old > 300 s",
    ),
    (
        dev(posture_max_age_seconds=300),
        ctx(device=device(reported_at=None)),
        C.POSTURE_MISSING,
        "no posture report",
    ),
    (dev(enrolled=True), ctx(device=None), C.NO_DEVICE, "no enrolled device presented"),
    (auth(mfa=True), ctx(mfa_time=None), C.MFA_MISSING, "no MFA"),
    (
        auth(mfa_max_age_minutes=60),
        ctx(mfa_time=NOW - timedelta(minutes=75)),
        C.MFA_STALE,
        "MFA 75 min old > 60 min",
    ),
    (auth(mfa_max_age_minutes=60), ctx(mfa_time=None), C.MFA_MISSING, "no MFA"),
    (auth(login_max_age_minutes=20), ctx(), C.LOGIN_STALE, "login 30 min old > 20 min"),
    (auth(login_max_age_minutes=20), ctx(auth_time=None), C.LOGIN_STALE, "login time unknown"),
    (
        auth(identity_providers=frozenset({"entra", "google"})),
        ctx(),
        C.IDP_NOT_ALLOWED,
        "identity provider okta not in (entra, google)",
    ),
    (
        Conditions(network=NetworkConditions(source_in=("office",))),
        ctx(source_ip=ipaddress.ip_address("203.0.113.9")),
        C.SOURCE_NOT_ALLOWED,
        "source 203.0.113.9 not in office",
    ),
    (
        Conditions(network=NetworkConditions(source_not_in=("tor",))),
        ctx(source_ip=ipaddress.ip_address("2001:db8::1")),
        C.SOURCE_BLOCKED,
        "source 2001:db8::1 in tor",
    ),
    (
        Conditions(time=PARIS_WORK),
        ctx(now=NOW.replace(hour=17)),  # 19:30 in Paris (CEST)
        C.OUTSIDE_HOURS,
        "outside allowed hours: Wed 19:30 Europe/Paris",
    ),
    (
        Conditions(time=PARIS_WORK),
        ctx(now=NOW + timedelta(days=3)),  # Saturday
        C.OUTSIDE_HOURS,
        "outside allowed hours: Sat 12:30 Europe/Paris",
    ),
    (Conditions(time=NIGHT), ctx(), C.OUTSIDE_HOURS, "outside allowed hours: Wed 10:30 UTC"),
    (Conditions(risk_below=50), ctx(risk=50), C.RISK_TOO_HIGH, "risk score 50 >= 50"),
    (Conditions(risk_below=50), ctx(risk=None), C.RISK_TOO_HIGH, "no risk score"),
]


@pytest.mark.parametrize(("conditions", "request_", "code", "text"), CASES)
def test_condition_fails_with_reason(
    conditions: Conditions, request_: RequestContext, code: ReasonCode, text: str
) -> None:
    assert failed(conditions, request_) == [Reason(code, text)]


def test_every_kind_holds_on_a_healthy_request() -> None:
    conditions = Conditions(
        device=DeviceConditions(
            enrolled=True,
            approved=True,
            os_families=frozenset({OsFamily.MACOS}),
            min_os_versions=((OsFamily.MACOS, (14, 5)),),
            disk_encrypted=True,
            firewall=True,
            screen_lock=True,
            processes=("edr",),
            min_agent_version=(1, 4),
            posture_max_age_seconds=60,
        ),
        auth=AuthConditions(
            mfa=True,
            mfa_max_age_minutes=10,
            login_max_age_minutes=60,
            identity_providers=frozenset({"okta"}),
        ),
        network=NetworkConditions(source_in=("office",), source_not_in=("tor",)),
        time=PARIS_WORK,
        risk_below=11,
    )
    assert len(checks_for(conditions, CIDRS)) == 17
    assert failed(conditions, ctx()) == []


def test_limits_are_inclusive() -> None:
    at_limit = ctx(
        device=device(reported_at=NOW - timedelta(seconds=300)),
        mfa_time=NOW - timedelta(minutes=60),
        auth_time=NOW - timedelta(minutes=20),
    )
    conditions = Conditions(
        device=DeviceConditions(posture_max_age_seconds=300),
        auth=AuthConditions(mfa_max_age_minutes=60, login_max_age_minutes=20),
    )
    assert failed(conditions, at_limit) == []


def test_time_window_inside_and_wrapping() -> None:
    assert failed(Conditions(time=PARIS_WORK), ctx()) == []  # 12:30 Paris, Wednesday
    assert failed(Conditions(time=NIGHT), ctx(now=NOW.replace(hour=23))) == []
    assert failed(Conditions(time=NIGHT), ctx(now=NOW.replace(hour=5, minute=59))) == []
    whole_day = TimeConditions(frozenset({2}), time(0), time(0), ZoneInfo("UTC"))
    assert failed(Conditions(time=whole_day), ctx()) == []


def test_source_lists_match_any_network() -> None:
    inside = Conditions(network=NetworkConditions(source_in=("office", "tor")))
    assert failed(inside, ctx(source_ip=ipaddress.ip_address("198.19.9.1"))) == []
    outside = Conditions(network=NetworkConditions(source_not_in=("tor",)))
    assert failed(outside, ctx()) == []


def test_os_version_only_constrains_its_family() -> None:
    conditions = dev(min_os_versions=((OsFamily.WINDOWS, (10, 0, 22000)),))
    assert failed(conditions, ctx()) == []
