"""Parsing of a rule's `when:` block (its conditions) from YAML nodes into `model.Conditions`.

Where it sits: called by `parse.py` for each rule; reports through the shared `Reader`, so a
bad value is recorded with its line and column and parsing carries on with the next key.
"""

from __future__ import annotations

import re
from collections.abc import Set
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from zerogate.core.policy.model import (
    AuthConditions,
    Conditions,
    DeviceConditions,
    NetworkConditions,
    OsFamily,
    TimeConditions,
    Version,
    parse_version,
)
from zerogate.core.policy.nodes import Reader

WHEN_KEYS = ("device", "auth", "network", "time", "risk_below")
DEVICE_KEYS = (
    "enrolled",
    "approved",
    "os",
    "min_os_version",
    "disk_encrypted",
    "firewall",
    "screen_lock",
    "processes",
    "min_agent_version",
    "posture_max_age_seconds",
)
AUTH_KEYS = ("mfa", "mfa_max_age_minutes", "login_max_age_minutes", "identity_providers")
NETWORK_KEYS = ("source_in", "source_not_in")
TIME_KEYS = ("weekdays", "hours", "time_zone")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])\Z")
_WEEK_SECONDS = 7 * 24 * 3600
_YEAR_MINUTES = 366 * 24 * 60


def parse_when(reader: Reader, node: yaml.Node, path: str, cidr_names: Set[str]) -> Conditions:
    values = reader.mapping(node, path, WHEN_KEYS) or {}
    risk = values.get("risk_below")
    return Conditions(
        device=_device(reader, values["device"], f"{path}.device") if "device" in values else None,
        auth=_auth(reader, values["auth"], f"{path}.auth") if "auth" in values else None,
        network=(
            _network(reader, values["network"], f"{path}.network", cidr_names)
            if "network" in values
            else None
        ),
        time=_time(reader, values["time"], f"{path}.time") if "time" in values else None,
        risk_below=None if risk is None else reader.integer(risk, f"{path}.risk_below", 1, 100),
    )


def _version(reader: Reader, node: yaml.Node, path: str) -> Version | None:
    if isinstance(node, yaml.ScalarNode) and node.tag != "tag:yaml.org,2002:null":
        try:
            return parse_version(str(node.value))
        except ValueError:
            pass
    reader.error(node, path, f'expected a version like "14.2.1", got {node.value!r}')
    return None


def _os_family(reader: Reader, text: str, node: yaml.Node, path: str) -> OsFamily | None:
    try:
        return OsFamily(text)
    except ValueError:
        choices = ", ".join(OsFamily)
        reader.error(node, path, f"unknown os family {text!r} (expected one of: {choices})")
        return None


def _min_os_versions(
    reader: Reader, node: yaml.Node, path: str
) -> tuple[tuple[OsFamily, Version], ...]:
    values = reader.mapping(node, path, tuple(OsFamily)) or {}
    pairs = []
    for key, value in values.items():
        version = _version(reader, value, f"{path}.{key}")
        if version is not None:
            pairs.append((OsFamily(key), version))
    return tuple(pairs)


def _device(reader: Reader, node: yaml.Node, path: str) -> DeviceConditions:
    v = reader.mapping(node, path, DEVICE_KEYS) or {}

    def flag(key: str) -> bool:
        return key in v and reader.true(v[key], f"{path}.{key}")

    families = [
        _os_family(reader, text, item, item_path)
        for text, item, item_path in (reader.strings(v["os"], f"{path}.os") if "os" in v else [])
    ]
    agent = v.get("min_agent_version")
    max_age = v.get("posture_max_age_seconds")
    return DeviceConditions(
        enrolled=flag("enrolled"),
        approved=flag("approved"),
        os_families=frozenset(f for f in families if f is not None),
        min_os_versions=(
            _min_os_versions(reader, v["min_os_version"], f"{path}.min_os_version")
            if "min_os_version" in v
            else ()
        ),
        disk_encrypted=flag("disk_encrypted"),
        firewall=flag("firewall"),
        screen_lock=flag("screen_lock"),
        processes=tuple(text for text, _, _ in reader.strings(v["processes"], f"{path}.processes"))
        if "processes" in v
        else (),
        min_agent_version=None
        if agent is None
        else _version(reader, agent, f"{path}.min_agent_version"),
        posture_max_age_seconds=None
        if max_age is None
        else reader.integer(max_age, f"{path}.posture_max_age_seconds", 1, _WEEK_SECONDS),
    )


def _auth(reader: Reader, node: yaml.Node, path: str) -> AuthConditions:
    v = reader.mapping(node, path, AUTH_KEYS) or {}

    def minutes(key: str) -> int | None:
        return reader.integer(v[key], f"{path}.{key}", 1, _YEAR_MINUTES) if key in v else None

    idps = v.get("identity_providers")
    return AuthConditions(
        mfa="mfa" in v and reader.true(v["mfa"], f"{path}.mfa"),
        mfa_max_age_minutes=minutes("mfa_max_age_minutes"),
        login_max_age_minutes=minutes("login_max_age_minutes"),
        identity_providers=frozenset(
            text for text, _, _ in reader.strings(idps, f"{path}.identity_providers")
        )
        if idps is not None
        else frozenset(),
    )


def _network(reader: Reader, node: yaml.Node, path: str, cidr_names: Set[str]) -> NetworkConditions:
    v = reader.mapping(node, path, NETWORK_KEYS) or {}

    def lists(key: str) -> tuple[str, ...]:
        if key not in v:
            return ()
        names = []
        for text, item, item_path in reader.strings(v[key], f"{path}.{key}"):
            if text not in cidr_names:
                reader.error(item, item_path, f"unknown CIDR list {text!r}")
            names.append(text)
        return tuple(names)

    return NetworkConditions(source_in=lists("source_in"), source_not_in=lists("source_not_in"))


def _time(reader: Reader, node: yaml.Node, path: str) -> TimeConditions | None:
    v = reader.mapping(node, path, TIME_KEYS)
    if v is None or not all(reader.require(node, path, v, key) for key in TIME_KEYS):
        return None
    days = set()
    for text, item, item_path in reader.strings(v["weekdays"], f"{path}.weekdays"):
        if text in WEEKDAYS:
            days.add(WEEKDAYS.index(text))
        else:
            reader.error(item, item_path, f"unknown weekday {text!r} (expected one of: mon..sun)")
    hours = _hours(reader, v["hours"], f"{path}.hours")
    zone = _zone(reader, v["time_zone"], f"{path}.time_zone")
    if hours is None or zone is None or not days:
        return None
    return TimeConditions(frozenset(days), hours[0], hours[1], zone)


def _hours(reader: Reader, node: yaml.Node, path: str) -> tuple[time, time] | None:
    text = reader.string(node, path)
    match = _HOURS.match(text) if text else None
    if text is not None and match is None:
        reader.error(node, path, f'expected hours like "08:00-18:00", got {text!r}')
    if match is None:
        return None
    sh, sm, eh, em = (int(group) for group in match.groups())
    if eh == 24 and em != 0:
        reader.error(node, path, f'expected hours like "08:00-18:00", got {text!r}')
        return None
    return time(sh, sm), time(0, 0) if eh == 24 else time(eh, em)


def _zone(reader: Reader, node: yaml.Node, path: str) -> ZoneInfo | None:
    name = reader.string(node, path)
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        reader.error(node, path, f"unknown time zone {name!r}")
        return None
