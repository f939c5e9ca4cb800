"""parse.py: a full policy parses into the AST; every error is reported with its place."""

from __future__ import annotations

import ipaddress
import textwrap
from datetime import time

import pytest

from zerogate.core.policy.model import (
    AuthConditions,
    Effect,
    Mode,
    NetworkConditions,
    OsFamily,
    Policy,
    Subjects,
    Targets,
)
from zerogate.core.policy.nodes import PolicyError, PolicyErrors
from zerogate.core.policy.parse import KnownNames, parse_policy

FULL = """\
cidr_lists:
  office: [198.18.0.0/24, "2001:db8::/32"]
  tor: 198.19.9.0/24
rules:
  - name: eng-grafana
    who: {groups: [eng], users: alice}
    what: {apps: [grafana], globs: ["graf*"], methods: [get], paths: [/d]}
    when:
      device:
        enrolled: true
        approved: true
        os: [macos, windows]
        min_os_version: {macos: "14.2", windows: "10.0.22000"}
        disk_encrypted: true
        firewall: true
        screen_lock: true
        processes: [edr]
        min_agent_version: "1.4"
        posture_max_age_seconds: 300
      auth: {mfa: true, mfa_max_age_minutes: 60, login_max_age_minutes: 720, identity_providers: okta}
      network: {source_in: [office], source_not_in: tor}
      time: {weekdays: [mon, tue, wed, thu, fri], hours: "08:00-18:00", time_zone: Europe/Paris}
      risk_below: 70
    effect: allow
    mode: monitor
  - name: everyone-wiki
    who: everyone
    what: {tags: [wiki]}
    effect: deny
"""


def errors(text: str, known: KnownNames | None = None) -> list[str]:
    with pytest.raises(PolicyErrors) as caught:
        parse_policy(textwrap.dedent(text), known=known)
    return str(caught.value).splitlines()


def test_full_policy_parses() -> None:
    policy = parse_policy(FULL)
    first, second = policy.rules
    assert policy.cidr_lists["tor"] == (ipaddress.ip_network("198.19.9.0/24"),)
    assert first.subjects == Subjects(users=frozenset({"alice"}), groups=frozenset({"eng"}))
    assert first.targets == Targets(
        frozenset({"grafana"}), frozenset(), ("graf*",), frozenset({"GET"}), ("/d",)
    )
    device = first.conditions.device
    assert device is not None and device.os_families == {OsFamily.MACOS, OsFamily.WINDOWS}
    assert device.min_os_versions == ((OsFamily.MACOS, (14, 2)), (OsFamily.WINDOWS, (10, 0, 22000)))
    assert device.min_agent_version == (1, 4) and device.processes == ("edr",)
    assert first.conditions.auth == AuthConditions(True, 60, 720, frozenset({"okta"}))
    assert first.conditions.network == NetworkConditions(("office",), ("tor",))
    window = first.conditions.time
    assert window is not None and (window.start, window.end) == (time(8), time(18))
    assert window.weekdays == frozenset(range(5)) and window.zone.key == "Europe/Paris"
    assert (first.conditions.risk_below, first.mode, first.line) == (70, Mode.MONITOR, 5)
    assert (second.subjects.everyone, second.effect, second.mode) == (
        True,
        Effect.DENY,
        Mode.ENFORCE,
    )


def test_empty_document_is_an_empty_policy() -> None:
    assert parse_policy("") == Policy()
    assert parse_policy("rules: []") == Policy()


def test_error_string_format() -> None:
    error = PolicyError(12, 5, "rules[3].when.device.os", "unknown os family 'beos'")
    assert str(PolicyErrors([error])) == (
        "policy.yaml:12:5: rules[3].when.device.os: unknown os family 'beos'"
    )


RULE = "rules:\n  - name: r\n    who: everyone\n    what: {apps: [a]}\n"

CASES = [
    ("nope: 1", "1:1: unknown key 'nope' (expected one of: cidr_lists, rules)"),
    ("rules: {}", "1:8: rules: expected a list of rules"),
    ("- 1", "1:1: expected a mapping, got a list"),
    ("rules: [1]", "1:9: rules[0]: expected a mapping, got an integer"),
    ("rules: [{name: r}]", "1:9: rules[0]: missing required key 'who'"),
    ("rules: [{name: r}]", "1:9: rules[0]: missing required key 'what'"),
    (RULE + "    name: s\n", "5:5: rules[0].name: duplicate key 'name'"),
    (
        RULE + "    effect: permit\n",
        "5:13: rules[0].effect: unknown effect 'permit' (expected one of: allow, deny, step_up)",
    ),
    (RULE + "    mode: 3\n", "5:11: rules[0].mode: expected a string, got an integer"),
    (
        RULE + "    effect: step_up\n",
        "2:5: rules[0]: a step_up rule needs when.auth.mfa or when.auth.mfa_max_age_minutes",
    ),
    (
        RULE + "    when: {risk_below: 101}\n",
        "5:24: rules[0].when.risk_below: must be between 1 and 100, got 101",
    ),
    (
        RULE + "    when: {risk_below: high}\n",
        "5:24: rules[0].when.risk_below: expected an integer, got a string",
    ),
    (
        RULE + "    when: {weather: sunny}\n",
        "5:12: rules[0].when: unknown key 'weather' (expected one of: device, auth, network, time, risk_below)",
    ),
    (
        RULE + "    when: {device: {os: beos}}\n",
        "5:25: rules[0].when.device.os: unknown os family 'beos' (expected one of: macos, windows, linux, ios, android, chromeos)",
    ),
    (
        RULE + "    when: {device: {os: [linux, 7]}}\n",
        "5:33: rules[0].when.device.os[1]: expected a string, got an integer",
    ),
    (
        RULE + "    when: {device: {firewall: false}}\n",
        "5:31: rules[0].when.device.firewall: must be true (leave the key out to not require it)",
    ),
    (
        RULE + "    when: {device: {firewall: 1}}\n",
        "5:31: rules[0].when.device.firewall: expected true, got an integer",
    ),
    (
        RULE + "    when: {device: {min_os_version: {beos: '1'}}}\n",
        "5:38: rules[0].when.device.min_os_version: unknown key 'beos' (expected one of: macos, windows, linux, ios, android, chromeos)",
    ),
    (
        RULE + "    when: {device: {min_agent_version: v1}}\n",
        "5:40: rules[0].when.device.min_agent_version: expected a version like \"14.2.1\", got 'v1'",
    ),
    (
        RULE + "    when: {device: {posture_max_age_seconds: 0}}\n",
        "5:46: rules[0].when.device.posture_max_age_seconds: must be between 1 and 604800, got 0",
    ),
    (
        RULE + "    when: {device: {processes: {a: 1}}}\n",
        "5:32: rules[0].when.device.processes: expected a list of strings, got a mapping",
    ),
    (
        RULE + "    when: {auth: {mfa: true, mfa_max_age_minutes: 1.5}}\n",
        "5:51: rules[0].when.auth.mfa_max_age_minutes: expected an integer, got a number",
    ),
    (
        RULE + "    when: {auth: {identity_providers: ''}}\n",
        "5:39: rules[0].when.auth.identity_providers: must not be empty",
    ),
    (
        RULE + "    when: {network: {source_in: [office]}}\n",
        "5:34: rules[0].when.network.source_in[0]: unknown CIDR list 'office'",
    ),
    (
        RULE + "    when: {time: {weekdays: [mon]}}\n",
        "5:18: rules[0].when.time: missing required key 'hours'",
    ),
    (
        RULE + "    when: {time: {weekdays: [moon], hours: '08:00-18:00', time_zone: UTC}}\n",
        "5:30: rules[0].when.time.weekdays[0]: unknown weekday 'moon' (expected one of: mon..sun)",
    ),
    (
        RULE + "    when: {time: {weekdays: mon, hours: '8-18', time_zone: UTC}}\n",
        "5:41: rules[0].when.time.hours: expected hours like \"08:00-18:00\", got '8-18'",
    ),
    (
        RULE + "    when: {time: {weekdays: mon, hours: '08:00-24:30', time_zone: UTC}}\n",
        "5:41: rules[0].when.time.hours: expected hours like \"08:00-18:00\", got '08:00-24:30'",
    ),
    (
        RULE + "    when: {time: {weekdays: mon, hours: '08:00-18:00', time_zone: Mars/Base}}\n",
        "5:67: rules[0].when.time.time_zone: unknown time zone 'Mars/Base'",
    ),
    (
        "cidr_lists: {office: [10.0.0.300/8]}",
        "1:23: cidr_lists.office[0]: bad CIDR '10.0.0.300/8': '10.0.0.300/8' does not appear to be an IPv4 or IPv6 network",
    ),
    (
        "cidr_lists: {office: [10.0.0.1/8]}",
        "1:23: cidr_lists.office[0]: bad CIDR '10.0.0.1/8': 10.0.0.1/8 has host bits set",
    ),
    ("cidr_lists: [a]", "1:13: cidr_lists: expected a mapping of list name to CIDRs"),
    (
        "rules: [{name: r, who: nobody, what: {apps: [a]}}]",
        "1:24: rules[0].who: expected 'everyone' or a mapping of users/groups/departments/offices",
    ),
    (
        "rules: [{name: r, who: {}, what: {apps: [a]}}]",
        "1:24: rules[0].who: names nobody: list users, groups, departments or offices",
    ),
    (
        "rules: [{name: r, who: everyone, what: {methods: [GET]}}]",
        "1:40: rules[0].what: names no application: list apps, tags or globs",
    ),
    (
        "rules: [{name: r, who: everyone, what: {apps: a, methods: [FETCH]}}]",
        "1:60: rules[0].what.methods[0]: unknown http method 'FETCH'",
    ),
    (
        "rules: [{name: r, who: everyone, what: {apps: a, paths: [api]}}]",
        "1:58: rules[0].what.paths[0]: path prefix 'api': path must start with '/'",
    ),
    (
        "rules: [{name: r, who: everyone, what: {apps: a, paths: ['/api//v1']}}]",
        "1:58: rules[0].what.paths[0]: path prefix '/api//v1' is not normalised: requests are "
        "matched as '/api/v1'",
    ),
    (
        "rules: [{name: r, who: everyone, what: {apps: a, paths: ['/%61dmin/../x']}}]",
        "1:58: rules[0].what.paths[0]: path prefix '/%61dmin/../x' is not normalised: requests "
        "are matched as '/x'",
    ),
    (
        "rules: [{name: r, who: everyone, what: {apps: a, paths: ['/a%2Fb']}}]",
        "1:58: rules[0].what.paths[0]: path prefix '/a%2Fb': forbidden percent-escape in path",
    ),
    (
        "rules: [{name: '', who: everyone, what: {apps: a}}]",
        "1:16: rules[0].name: must not be empty",
    ),
    ("rules: [{1: r}]", "1:10: rules[0]: keys must be strings, got an integer"),
    (RULE + RULE[7:], "5:5: rules[1].name: duplicate rule name 'r'"),
    ("rules: [\n", "2:1: invalid YAML: expected the node content, but found '<stream end>'"),
    (
        "rules: [{name: !!python/name:os.system r, who: everyone, what: {apps: a}}]",
        "1:16: rules[0].name: expected a string, got a value tagged tag:yaml.org,2002:python/name:os.system",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_error_is_located_and_precise(text: str, expected: str) -> None:
    assert f"policy.yaml:{expected}" in errors(text)


SHADOW = """\
rules:
  - {name: all, who: {groups: [eng]}, what: {apps: [a]}, effect: %s}
  - {name: later, who: {groups: [eng]}, what: {apps: [a]}, effect: %s, mode: %s}
"""


@pytest.mark.parametrize(
    ("first", "second", "mode", "shadowed"),
    [
        ("deny", "allow", "enforce", True),
        ("deny", "deny", "enforce", True),
        ("allow", "allow", "enforce", True),
        ("allow", "deny", "enforce", False),
        ("deny", "allow", "monitor", False),
    ],
)
def test_shadowed_rules(first: str, second: str, mode: str, shadowed: bool) -> None:
    text = SHADOW % (first, second, mode)
    expected = "policy.yaml:3:5: rules[1]: rule 'later' is shadowed by rule 'all' (line 2)"
    if shadowed:
        assert errors(text) == [expected]
    else:
        parse_policy(text)


def test_conditions_or_other_subjects_do_not_shadow() -> None:
    parse_policy(
        """\
rules:
  - {name: a, who: {groups: [eng]}, what: {apps: [a]}, effect: deny, when: {risk_below: 5}}
  - {name: b, who: {groups: [eng]}, what: {apps: [a]}}
  - {name: c, who: {groups: [ops]}, what: {apps: [a]}}
"""
    )


def test_unknown_references_given_known_names() -> None:
    known = KnownNames(
        users=frozenset({"alice"}),
        groups=frozenset({"eng"}),
        departments=frozenset({"rnd"}),
        offices=frozenset({"paris"}),
        apps=frozenset({"grafana", "wiki"}),
    )
    text = """\
rules:
  - name: r
    who: {users: [bob], groups: [ops], departments: [sales], offices: [oslo]}
    what: {apps: [jira], globs: ["git*"]}
"""
    assert errors(text, known) == [
        "policy.yaml:3:19: rules[0].who.users[0]: unknown user 'bob'",
        "policy.yaml:3:34: rules[0].who.groups[0]: unknown group 'ops'",
        "policy.yaml:3:54: rules[0].who.departments[0]: unknown department 'sales'",
        "policy.yaml:3:72: rules[0].who.offices[0]: unknown office 'oslo'",
        "policy.yaml:4:19: rules[0].what.apps[0]: unknown app 'jira'",
        "policy.yaml:4:34: rules[0].what.globs[0]: glob 'git*' matches no known app",
    ]
    ok = "rules: [{name: r, who: {users: alice}, what: {apps: grafana, globs: [w*]}}]"
    assert len(parse_policy(ok, known=known).rules) == 1


def test_all_errors_are_collected_in_file_order() -> None:
    text = """\
rules:
  - {name: a, who: everyone, what: {apps: [x]}, effect: nope}
  - {name: b, who: nobody, what: {apps: [x]}, bogus: 1}
"""
    found = errors(text)
    assert len(found) == 3
    assert [line.split(":")[1] for line in found] == ["2", "3", "3"]
