"""Hypothesis strategies for random policies and requests, shared by the property tests.

Small name universes make rules and requests collide often, so the interesting paths
(several applicable rules, monitor next to enforce, step-up) are exercised on most examples.
"""

from __future__ import annotations

import ipaddress
from datetime import time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import settings
from hypothesis import strategies as st
from policykit import NOW, device

from zerogate.core.policy.model import (
    App,
    AuthConditions,
    Conditions,
    DeviceConditions,
    Effect,
    Mode,
    NetworkConditions,
    OsFamily,
    Policy,
    RequestContext,
    Rule,
    Subjects,
    Targets,
    TimeConditions,
)

USERS = ("u0", "u1", "u2")
GROUPS = ("g0", "g1", "g2")
DEPTS = ("d0", "d1")
OFFICES = ("o0", "o1")
APPS = ("a0", "a1", "b0", "b1")
TAGS = ("t0", "t1")
CIDRS = {
    "n0": (ipaddress.ip_network("198.18.0.0/24"),),
    "n1": (ipaddress.ip_network("198.18.1.0/24"),),
}
IPS = tuple(ipaddress.ip_address(a) for a in ("198.18.0.1", "198.18.1.1", "203.0.113.1"))
EXAMPLES = settings(max_examples=250, deadline=None)


def names(pool: tuple[str, ...]) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(pool), max_size=2)


subjects = st.one_of(
    st.just(Subjects(everyone=True)),
    st.builds(
        Subjects,
        users=names(USERS),
        groups=names(GROUPS),
        departments=names(DEPTS),
        offices=names(OFFICES),
    ),
)
targets = st.builds(
    Targets,
    apps=names(APPS),
    tags=names(TAGS),
    globs=st.lists(st.sampled_from(("a*", "*1", "b?")), max_size=1).map(tuple),
    methods=st.frozensets(st.sampled_from(("GET", "POST")), max_size=1),
    path_prefixes=st.lists(st.sampled_from(("/x", "/x/", "/y")), max_size=1).map(tuple),
)
device_conditions = st.builds(
    DeviceConditions,
    enrolled=st.booleans(),
    disk_encrypted=st.booleans(),
    os_families=st.frozensets(st.sampled_from((OsFamily.MACOS, OsFamily.LINUX)), max_size=1),
    posture_max_age_seconds=st.none() | st.sampled_from((60, 600)),
)
auth_conditions = st.builds(
    AuthConditions,
    mfa=st.booleans(),
    mfa_max_age_minutes=st.none() | st.sampled_from((10, 120)),
)
network_conditions = st.builds(
    NetworkConditions,
    source_in=st.lists(st.sampled_from(("n0", "n1")), max_size=1).map(tuple),
    source_not_in=st.lists(st.sampled_from(("n0", "n1")), max_size=1).map(tuple),
)
time_conditions = st.builds(
    TimeConditions,
    weekdays=st.frozensets(st.integers(0, 6), min_size=1),
    start=st.sampled_from((time(8), time(22))),
    end=st.sampled_from((time(18), time(6))),
    zone=st.just(ZoneInfo("Europe/Paris")),
)
conditions = st.builds(
    Conditions,
    device=st.none() | device_conditions,
    auth=st.none() | auth_conditions,
    network=st.none() | network_conditions,
    time=st.none() | time_conditions,
    risk_below=st.none() | st.sampled_from((20, 80)),
)
rules = st.builds(
    Rule,
    name=st.sampled_from(("r0", "r1", "r2", "r3")),
    subjects=subjects,
    targets=targets,
    conditions=conditions,
    effect=st.sampled_from(Effect),
    mode=st.sampled_from(Mode),
)
policies = st.builds(
    Policy, rules=st.lists(rules, max_size=6).map(tuple), cidr_lists=st.just(CIDRS)
)
apps = st.builds(App, name=st.sampled_from(APPS), tags=names(TAGS), mode=st.sampled_from(Mode))
ages = st.none() | st.integers(0, 200).map(lambda minutes: NOW - timedelta(minutes=minutes))
devices = st.none() | st.builds(
    device,
    enrolled=st.booleans(),
    disk_encrypted=st.booleans(),
    os_family=st.sampled_from((OsFamily.MACOS, OsFamily.LINUX)),
    reported_at=st.none() | st.integers(0, 900).map(lambda s: NOW - timedelta(seconds=s)),
)
contexts = st.builds(
    RequestContext,
    user=st.sampled_from(USERS),
    app=apps,
    now=st.integers(0, 7 * 24).map(lambda hours: NOW + timedelta(hours=hours)),
    source_ip=st.sampled_from(IPS),
    groups=names(GROUPS),
    department=st.none() | st.sampled_from(DEPTS),
    office=st.none() | st.sampled_from(OFFICES),
    device=devices,
    method=st.none() | st.sampled_from(("GET", "POST")),
    path=st.none() | st.sampled_from(("/", "/x", "/x/1", "/y/2")),
    mfa_time=ages,
    auth_time=ages,
    risk=st.none() | st.integers(0, 100),
)
inventories = st.lists(apps, max_size=4)
