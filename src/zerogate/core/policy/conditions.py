"""One small function per condition kind, and `checks_for` that binds a rule's conditions.

Where it sits: `decide.py` (the reference) and `compile.py` (the snapshot) both evaluate
conditions only through `checks_for`, so they cannot disagree about what a condition means.

Each `check_*` function answers one question about the request and returns `None` when the
condition holds or a `Reason` (stable code + human text) when it fails: the `(ok, reason)`
pair folded into one value, which keeps the hot path free of tuple building. A failed
device check on a request without a device reports `no_device` (the evaluator keeps one).
Ages compare whole seconds and fail only when strictly older than the limit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial

from zerogate.core.policy.model import (
    AuthConditions,
    Conditions,
    DeviceConditions,
    IPAddress,
    IPNetwork,
    OsFamily,
    Reason,
    ReasonCode,
    RequestContext,
    TimeConditions,
    Version,
    format_version,
)

Check = Callable[[RequestContext], Reason | None]

NO_DEVICE = Reason(ReasonCode.NO_DEVICE, "no enrolled device presented")
_WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _flag(code: ReasonCode, text: str, attribute: str, ctx: RequestContext) -> Reason | None:
    device = ctx.device
    if device is None:
        return NO_DEVICE
    return None if getattr(device, attribute) else Reason(code, text)


check_enrolled = partial(_flag, ReasonCode.DEVICE_NOT_ENROLLED, "device not enrolled", "enrolled")
check_approved = partial(_flag, ReasonCode.DEVICE_NOT_APPROVED, "device not approved", "approved")
check_disk_encrypted = partial(
    _flag, ReasonCode.DISK_NOT_ENCRYPTED, "disk not encrypted", "disk_encrypted"
)
check_firewall = partial(_flag, ReasonCode.FIREWALL_OFF, "firewall off", "firewall")
check_screen_lock = partial(_flag, ReasonCode.SCREEN_LOCK_OFF, "screen lock off", "screen_lock")


def check_os_family(families: frozenset[OsFamily], ctx: RequestContext) -> Reason | None:
    device = ctx.device
    if device is None:
        return NO_DEVICE
    if device.os_family in families:
        return None
    allowed = ", ".join(sorted(families))
    shown = device.os_family or "unknown"
    return Reason(ReasonCode.OS_FAMILY, f"os {shown} not in ({allowed})")


def check_os_version(
    minimums: tuple[tuple[OsFamily, Version], ...], ctx: RequestContext
) -> Reason | None:
    device = ctx.device
    if device is None:
        return NO_DEVICE
    for family, minimum in minimums:
        if family == device.os_family and device.os_version < minimum:
            have, need = format_version(device.os_version), format_version(minimum)
            return Reason(ReasonCode.OS_VERSION, f"{family} {have} older than {need}")
    return None


def check_processes(processes: tuple[str, ...], ctx: RequestContext) -> Reason | None:
    device = ctx.device
    if device is None:
        return NO_DEVICE
    missing = [name for name in processes if name not in device.processes]
    if not missing:
        return None
    return Reason(ReasonCode.PROCESS_MISSING, f"required process not running: {', '.join(missing)}")


def check_agent_version(minimum: Version, ctx: RequestContext) -> Reason | None:
    device = ctx.device
    if device is None:
        return NO_DEVICE
    have = device.agent_version
    if have is not None and have >= minimum:
        return None
    shown = "none" if have is None else format_version(have)
    return Reason(ReasonCode.AGENT_OUTDATED, f"agent {shown} older than {format_version(minimum)}")


def _age_seconds(then: datetime, now: datetime) -> int:
    return int((now - then).total_seconds())


def check_posture_age(max_seconds: int, ctx: RequestContext) -> Reason | None:
    device = ctx.device
    if device is None:
        return NO_DEVICE
    if device.reported_at is None:
        return Reason(ReasonCode.POSTURE_MISSING, "no posture report")
    age = _age_seconds(device.reported_at, ctx.now)
    if age <= max_seconds:
        return None
    return Reason(ReasonCode.POSTURE_STALE, f"posture report {age} s old > {max_seconds} s")


def check_mfa(ctx: RequestContext) -> Reason | None:
    return None if ctx.mfa_time is not None else Reason(ReasonCode.MFA_MISSING, "no MFA")


def check_mfa_age(max_minutes: int, ctx: RequestContext) -> Reason | None:
    if ctx.mfa_time is None:
        return Reason(ReasonCode.MFA_MISSING, "no MFA")
    age = _age_seconds(ctx.mfa_time, ctx.now)
    if age <= max_minutes * 60:
        return None
    return Reason(ReasonCode.MFA_STALE, f"MFA {age // 60} min old > {max_minutes} min")


def check_login_age(max_minutes: int, ctx: RequestContext) -> Reason | None:
    if ctx.auth_time is None:
        return Reason(ReasonCode.LOGIN_STALE, "login time unknown")
    age = _age_seconds(ctx.auth_time, ctx.now)
    if age <= max_minutes * 60:
        return None
    return Reason(ReasonCode.LOGIN_STALE, f"login {age // 60} min old > {max_minutes} min")


def check_identity_provider(allowed: frozenset[str], ctx: RequestContext) -> Reason | None:
    if ctx.identity_provider in allowed:
        return None
    shown = ", ".join(sorted(allowed))
    idp = ctx.identity_provider or "none"
    return Reason(ReasonCode.IDP_NOT_ALLOWED, f"identity provider {idp} not in ({shown})")


def check_source_in(
    names: tuple[str, ...], networks: tuple[IPNetwork, ...], ctx: RequestContext
) -> Reason | None:
    address = ctx.source_ip
    if any(address in network for network in networks):
        return None
    text = f"source {_shown(address)} not in {', '.join(names)}"
    return Reason(ReasonCode.SOURCE_NOT_ALLOWED, text)


def check_source_not_in(
    names: tuple[str, ...], networks: tuple[IPNetwork, ...], ctx: RequestContext
) -> Reason | None:
    address = ctx.source_ip
    if not any(address in network for network in networks):
        return None
    return Reason(ReasonCode.SOURCE_BLOCKED, f"source {_shown(address)} in {', '.join(names)}")


@functools.lru_cache(maxsize=4096)
def _shown(address: IPAddress) -> str:
    # `ipaddress` formats in Python, and a deny rule's unmet network condition is written
    # out on every request it does not apply to: the same few clients, again and again.
    return str(address)


def check_time(window: TimeConditions, ctx: RequestContext) -> Reason | None:
    local = ctx.now.astimezone(window.zone)
    clock = local.time().replace(tzinfo=None)
    if window.start < window.end:
        in_hours = window.start <= clock < window.end
    else:  # wraps past midnight (or start == end: the whole day)
        in_hours = clock >= window.start or clock < window.end
    if in_hours and local.weekday() in window.weekdays:
        return None
    when = f"{_WEEKDAY_NAMES[local.weekday()]} {local:%H:%M} {window.zone.key}"
    return Reason(ReasonCode.OUTSIDE_HOURS, f"outside allowed hours: {when}")


def check_risk(limit: int, ctx: RequestContext) -> Reason | None:
    if ctx.risk is None:
        return Reason(ReasonCode.RISK_TOO_HIGH, "no risk score")
    if ctx.risk < limit:
        return None
    return Reason(ReasonCode.RISK_TOO_HIGH, f"risk score {ctx.risk} >= {limit}")


# The checks that read the clock (`ctx.now`). A decision that none of them took part in is
# the same decision at any other time: the gateway may reuse it (see `decide_once`).
CLOCK_CHECKS: frozenset[Callable[..., Reason | None]] = frozenset(
    {check_posture_age, check_mfa_age, check_login_age, check_time}
)


def reads_clock(check: Check) -> bool:
    return (check.func if isinstance(check, partial) else check) in CLOCK_CHECKS


def checks_for(
    conditions: Conditions, cidr_lists: Mapping[str, tuple[IPNetwork, ...]]
) -> tuple[Check, ...]:
    """The checks a rule's conditions stand for, in a fixed order (device, auth, network,
    time, risk), so explanations list failures in the same order every time."""
    checks: list[Check] = []
    if conditions.device is not None:
        checks += _device_checks(conditions.device)
    if conditions.auth is not None:
        checks += _auth_checks(conditions.auth)
    network = conditions.network
    if network is not None and network.source_in:
        nets = tuple(n for name in network.source_in for n in cidr_lists.get(name, ()))
        checks.append(partial(check_source_in, network.source_in, nets))
    if network is not None and network.source_not_in:
        nets = tuple(n for name in network.source_not_in for n in cidr_lists.get(name, ()))
        checks.append(partial(check_source_not_in, network.source_not_in, nets))
    if conditions.time is not None:
        checks.append(partial(check_time, conditions.time))
    if conditions.risk_below is not None:
        checks.append(partial(check_risk, conditions.risk_below))
    return tuple(checks)


def _device_checks(d: DeviceConditions) -> list[Check]:
    flags = (
        (d.enrolled, check_enrolled),
        (d.approved, check_approved),
        (d.disk_encrypted, check_disk_encrypted),
        (d.firewall, check_firewall),
        (d.screen_lock, check_screen_lock),
    )
    checks: list[Check] = [check for wanted, check in flags if wanted]
    if d.os_families:
        checks.append(partial(check_os_family, d.os_families))
    if d.min_os_versions:
        checks.append(partial(check_os_version, d.min_os_versions))
    if d.processes:
        checks.append(partial(check_processes, d.processes))
    if d.min_agent_version is not None:
        checks.append(partial(check_agent_version, d.min_agent_version))
    if d.posture_max_age_seconds is not None:
        checks.append(partial(check_posture_age, d.posture_max_age_seconds))
    return checks


def _auth_checks(a: AuthConditions) -> list[Check]:
    checks: list[Check] = []
    if a.mfa_max_age_minutes is not None:
        checks.append(partial(check_mfa_age, a.mfa_max_age_minutes))
    elif a.mfa:
        checks.append(check_mfa)
    if a.login_max_age_minutes is not None:
        checks.append(partial(check_login_age, a.login_max_age_minutes))
    if a.identity_providers:
        checks.append(partial(check_identity_provider, a.identity_providers))
    return checks
