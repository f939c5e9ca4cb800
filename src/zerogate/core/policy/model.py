"""The policy AST, the request context it is evaluated against, and the decision it yields.

Where it sits: `parse.py` builds these values from YAML, `decide.py` and `compile.py` read
them, and the gateway builds a `RequestContext` per request and records the `Decision`.

Invariants:
1. Every value is immutable (frozen, slotted dataclasses; frozensets and tuples), so a
   compiled snapshot can be shared by every request without copying or locking.
2. Enum values and `ReasonCode` values are stable strings, never renamed: audit events,
   deny pages and the what-if tool print them.
3. An unset condition field (`None`, empty set) means "no requirement"; a `Conditions`
   section left out of the YAML is `None` and costs nothing at decision time.
4. Nothing here reads a clock: `RequestContext.now` is the only "now".
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from zoneinfo import ZoneInfo

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Version = tuple[int, ...]


class Effect(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    STEP_UP = "step_up"


class Mode(enum.StrEnum):
    ENFORCE = "enforce"
    MONITOR = "monitor"


class OsFamily(enum.StrEnum):
    MACOS = "macos"
    WINDOWS = "windows"
    LINUX = "linux"
    IOS = "ios"
    ANDROID = "android"
    CHROMEOS = "chromeos"


class PrincipalKind(enum.StrEnum):
    USER = "user"
    SERVICE = "service"


def parse_version(text: str) -> Version:
    """'14.2.1' -> (14, 2, 1); raises ValueError on anything but dot-separated integers."""
    parts = text.split(".")
    if not all(part.isdigit() and part.isascii() for part in parts):
        raise ValueError(f"not a dotted version: {text!r}")
    return tuple(int(part) for part in parts)


def format_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


# --- the AST ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subjects:
    """Who a rule is about: any of the listed names, or everyone."""

    everyone: bool = False
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    departments: frozenset[str] = frozenset()
    offices: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Targets:
    """What a rule is about: apps by name, tag or glob; for http apps, methods and paths."""

    apps: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    globs: tuple[str, ...] = ()
    methods: frozenset[str] = frozenset()  # upper case; empty = any method
    path_prefixes: tuple[str, ...] = ()  # empty = any path


@dataclass(frozen=True, slots=True)
class DeviceConditions:
    enrolled: bool = False
    approved: bool = False
    os_families: frozenset[OsFamily] = frozenset()  # empty = any
    min_os_versions: tuple[tuple[OsFamily, Version], ...] = ()  # (family, minimum) pairs
    disk_encrypted: bool = False
    firewall: bool = False
    screen_lock: bool = False
    processes: tuple[str, ...] = ()
    min_agent_version: Version | None = None
    posture_max_age_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class AuthConditions:
    mfa: bool = False
    mfa_max_age_minutes: int | None = None
    login_max_age_minutes: int | None = None
    identity_providers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class NetworkConditions:
    source_in: tuple[str, ...] = ()  # names of CIDR lists; the source must be in one
    source_not_in: tuple[str, ...] = ()  # the source must be in none


@dataclass(frozen=True, slots=True)
class TimeConditions:
    """Weekdays (0 = Monday) and [start, end) local hours; end <= start wraps past midnight."""

    weekdays: frozenset[int]
    start: time
    end: time
    zone: ZoneInfo


@dataclass(frozen=True, slots=True)
class Conditions:
    device: DeviceConditions | None = None
    auth: AuthConditions | None = None
    network: NetworkConditions | None = None
    time: TimeConditions | None = None
    risk_below: int | None = None

    def is_empty(self) -> bool:
        return (
            self.device is None
            and self.auth is None
            and self.network is None
            and self.time is None
            and self.risk_below is None
        )


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    subjects: Subjects
    targets: Targets
    conditions: Conditions = Conditions()
    effect: Effect = Effect.ALLOW
    mode: Mode = Mode.ENFORCE
    line: int = 0  # 1-based line of the rule in its file; 0 when built in code


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    cidr_lists: Mapping[str, tuple[IPNetwork, ...]] = field(default_factory=dict)


# --- the request ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    enrolled: bool
    approved: bool
    os_family: OsFamily | None  # None: never reported and not recorded in the inventory
    os_version: Version
    disk_encrypted: bool
    firewall: bool
    screen_lock: bool
    processes: frozenset[str]
    agent_version: Version | None
    reported_at: datetime | None  # the latest posture report; None = never reported


@dataclass(frozen=True, slots=True)
class App:
    name: str
    tags: frozenset[str] = frozenset()
    mode: Mode = Mode.ENFORCE


@dataclass(frozen=True, slots=True)
class RequestContext:
    user: str  # the principal's name, a person or a service identity
    app: App
    now: datetime  # timezone-aware
    source_ip: IPAddress
    groups: frozenset[str] = frozenset()
    department: str | None = None
    office: str | None = None
    principal: PrincipalKind = PrincipalKind.USER
    device: Device | None = None
    method: str | None = None  # upper case; None for TCP apps
    path: str | None = None
    mfa_time: datetime | None = None
    auth_time: datetime | None = None
    identity_provider: str | None = None
    risk: int | None = None  # None = no signal yet, which fails any `risk_below`


# --- the answer ----------------------------------------------------------------------------


class ReasonCode(enum.StrEnum):
    NO_MATCHING_RULE = "no_matching_rule"
    ALLOWED_BY_RULE = "allowed_by_rule"
    DENIED_BY_RULE = "denied_by_rule"
    STEP_UP_REQUIRED = "step_up_required"
    APP_IN_MONITOR_MODE = "app_in_monitor_mode"
    NO_DEVICE = "no_device"
    DEVICE_NOT_ENROLLED = "device_not_enrolled"
    DEVICE_NOT_APPROVED = "device_not_approved"
    OS_FAMILY = "os_family_not_allowed"
    OS_VERSION = "os_version_too_old"
    DISK_NOT_ENCRYPTED = "disk_not_encrypted"
    FIREWALL_OFF = "firewall_off"
    SCREEN_LOCK_OFF = "screen_lock_off"
    PROCESS_MISSING = "process_not_running"
    AGENT_OUTDATED = "agent_version_too_old"
    POSTURE_MISSING = "posture_missing"
    POSTURE_STALE = "posture_stale"
    MFA_MISSING = "mfa_missing"
    MFA_STALE = "mfa_stale"
    LOGIN_STALE = "login_stale"
    IDP_NOT_ALLOWED = "identity_provider_not_allowed"
    SOURCE_NOT_ALLOWED = "source_not_allowed"
    SOURCE_BLOCKED = "source_blocked"
    OUTSIDE_HOURS = "outside_allowed_hours"
    RISK_TOO_HIGH = "risk_too_high"


# A failure of one of these alone can be cured by a fresh second factor: see docs/policy.md.
MFA_CODES = frozenset({ReasonCode.MFA_MISSING, ReasonCode.MFA_STALE})


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    text: str  # for humans: "disk not encrypted", "posture report 612 s old > 300 s"
    rule: str | None = None  # the rule whose condition or effect this is about

    def __str__(self) -> str:
        return f"rule {self.rule!r}: {self.text}" if self.rule else self.text


@dataclass(frozen=True, slots=True)
class Decision:
    effect: Effect
    rule: str | None  # the rule that decided `effect`; None for the default deny
    reasons: tuple[Reason, ...] = ()
    would_be: Effect | None = None  # what enforcing every rule would have decided
    would_be_rule: str | None = None
    monitored: bool = False  # True when a monitor rule or app made `would_be` worth recording
