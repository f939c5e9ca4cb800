"""Policy as code: YAML text -> `model.Policy`, or `PolicyErrors` listing every error.

Where it sits: the control plane parses a policy file (from git or the API) before it becomes
a version; `zerogate admin policy` tools parse candidates the same way. Pure: text in.

Theory: the text is composed into a node tree (`yaml.compose` with `SafeLoader`, so no tag can
build an object and every node keeps its position). One pass reads it through a `Reader`,
recording each problem at its node and continuing (names are checked against those the
caller knows as they are read); a last pass finds duplicate rule names and shadowed rules.
Any error rejects the whole file.

File shape (all keys but `rules[].name`, `who`, `what` optional; `docs/policy.md` has more):

    cidr_lists: {office: [198.18.0.0/24]}
    rules:
      - name: eng-grafana
        who: {groups: [eng]}          # or: who: everyone
        what: {apps: [grafana], tags: [], globs: ["grafana-*"], methods: [GET], paths: [/api]}
        when: {device: {...}, auth: {...}, network: {...}, time: {...}, risk_below: 70}
        effect: allow                 # allow | deny | step_up
        mode: enforce                 # enforce | monitor
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Set
from dataclasses import dataclass
from typing import TypeVar

import yaml

from zerogate.core.http.paths import PathError, normalise_path
from zerogate.core.policy.model import (
    Conditions,
    Effect,
    IPNetwork,
    Mode,
    Policy,
    Rule,
    Subjects,
    Targets,
)
from zerogate.core.policy.nodes import PolicyError, PolicyErrors, Reader
from zerogate.core.policy.parse_when import parse_when

TOP_KEYS = ("cidr_lists", "rules")
RULE_KEYS = ("name", "who", "what", "when", "effect", "mode")
WHO_KEYS = ("users", "groups", "departments", "offices")
WHAT_KEYS = ("apps", "tags", "globs", "methods", "paths")
E = TypeVar("E", Effect, Mode)
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


@dataclass(frozen=True, slots=True)
class KnownNames:
    """What the inventory holds; a None set is not checked (e.g. no inventory at hand)."""

    users: Set[str] | None = None
    groups: Set[str] | None = None
    departments: Set[str] | None = None
    offices: Set[str] | None = None
    apps: Set[str] | None = None


def parse_policy(
    text: str, filename: str = "policy.yaml", known: KnownNames | None = None
) -> Policy:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PolicyErrors(
            [PolicyError(line, column, "", f"invalid YAML: {exc.problem}")], filename
        ) from None
    except yaml.YAMLError as exc:
        raise PolicyErrors([PolicyError(1, 1, "", f"invalid YAML: {exc}")], filename) from None
    if root is None:
        return Policy()
    reader = Reader()
    policy = _document(reader, root, known or KnownNames())
    if reader.errors:
        raise PolicyErrors(reader.errors, filename)
    return policy


def _document(reader: Reader, root: yaml.Node, known: KnownNames) -> Policy:
    top = reader.mapping(root, "", TOP_KEYS) or {}
    cidrs = _cidr_lists(reader, top["cidr_lists"]) if "cidr_lists" in top else {}
    rules: list[Rule] = []
    nodes: list[tuple[yaml.Node, str]] = []
    if "rules" in top:
        node = top["rules"]
        if not isinstance(node, yaml.SequenceNode):
            reader.error(node, "rules", "expected a list of rules")
        else:
            for index, item in enumerate(node.value):
                path = f"rules[{index}]"
                rule = _rule(reader, item, path, cidrs.keys(), known)
                if rule is not None:
                    rules.append(rule)
                    nodes.append((item, path))
    _check_names(reader, rules, nodes)
    _check_shadowed(reader, rules, nodes)
    return Policy(rules=tuple(rules), cidr_lists=cidrs)


def _cidr_lists(reader: Reader, node: yaml.Node) -> dict[str, tuple[IPNetwork, ...]]:
    if not isinstance(node, yaml.MappingNode):
        reader.error(node, "cidr_lists", "expected a mapping of list name to CIDRs")
        return {}
    lists: dict[str, tuple[IPNetwork, ...]] = {}
    for key_node, value_node in node.value:
        name = reader.string(key_node, "cidr_lists")
        if name is None:
            continue
        path = f"cidr_lists.{name}"
        if name in lists:
            reader.error(key_node, path, f"duplicate key {name!r}")
            continue
        networks = []
        for text, item, item_path in reader.strings(value_node, path):
            try:
                networks.append(ipaddress.ip_network(text))
            except ValueError as exc:
                reader.error(item, item_path, f"bad CIDR {text!r}: {exc}")
        lists[name] = tuple(networks)
    return lists


def _rule(
    reader: Reader, node: yaml.Node, path: str, cidr_names: Set[str], known: KnownNames
) -> Rule | None:
    v = reader.mapping(node, path, RULE_KEYS)
    if v is None:
        return None
    present = [reader.require(node, path, v, key) for key in ("name", "who", "what")]
    name = reader.string(v["name"], f"{path}.name") if "name" in v else None
    subjects = _who(reader, v["who"], f"{path}.who", known) if "who" in v else None
    targets = _what(reader, v["what"], f"{path}.what", known) if "what" in v else None
    when = parse_when(reader, v["when"], f"{path}.when", cidr_names) if "when" in v else None
    effect = _enum(reader, Effect, v.get("effect"), f"{path}.effect", Effect.ALLOW)
    mode = _enum(reader, Mode, v.get("mode"), f"{path}.mode", Mode.ENFORCE)
    conditions = when or Conditions()
    if effect is Effect.STEP_UP and not _has_mfa_condition(conditions):
        reader.error(
            node, path, "a step_up rule needs when.auth.mfa or when.auth.mfa_max_age_minutes"
        )
    if not all(present) or name is None or subjects is None or targets is None:
        return None
    line = node.start_mark.line + 1
    return Rule(name, subjects, targets, conditions, effect, mode, line)


def _has_mfa_condition(conditions: Conditions) -> bool:
    auth = conditions.auth
    return auth is not None and (auth.mfa or auth.mfa_max_age_minutes is not None)


def _enum(reader: Reader, cls: type[E], node: yaml.Node | None, path: str, default: E) -> E:
    if node is None:
        return default
    text = reader.string(node, path)
    if text is None:
        return default
    try:
        return cls(text)
    except ValueError:
        choices = ", ".join(cls)
        reader.error(
            node, path, f"unknown {path.rsplit('.', 1)[-1]} {text!r} (expected one of: {choices})"
        )
        return default


def _who(reader: Reader, node: yaml.Node, path: str, known: KnownNames) -> Subjects | None:
    if Reader.scalar_text(node) == "everyone":
        return Subjects(everyone=True)
    if isinstance(node, yaml.ScalarNode):
        reader.error(
            node, path, "expected 'everyone' or a mapping of users/groups/departments/offices"
        )
        return None
    v = reader.mapping(node, path, WHO_KEYS)
    if v is None:
        return None
    sets = {
        key: _names(reader, v[key], f"{path}.{key}", getattr(known, key), key[:-1])
        for key in WHO_KEYS
        if key in v
    }
    empty: frozenset[str] = frozenset()
    subjects = Subjects(
        users=sets.get("users", empty),
        groups=sets.get("groups", empty),
        departments=sets.get("departments", empty),
        offices=sets.get("offices", empty),
    )
    if not any(sets.values()):
        reader.error(node, path, "names nobody: list users, groups, departments or offices")
    return subjects


def _names(
    reader: Reader, node: yaml.Node, path: str, known: Set[str] | None, noun: str
) -> frozenset[str]:
    names = set()
    for text, item, item_path in reader.strings(node, path):
        if known is not None and text not in known:
            reader.error(item, item_path, f"unknown {noun} {text!r}")
        names.add(text)
    return frozenset(names)


def _what(reader: Reader, node: yaml.Node, path: str, known: KnownNames) -> Targets | None:
    v = reader.mapping(node, path, WHAT_KEYS)
    if v is None:
        return None

    def texts(key: str) -> list[tuple[str, yaml.Node, str]]:
        return reader.strings(v[key], f"{path}.{key}") if key in v else []

    apps = (
        _names(reader, v["apps"], f"{path}.apps", known.apps, "app") if "apps" in v else frozenset()
    )
    globs = tuple(text for text, _, _ in texts("globs"))
    for text, item, item_path in texts("globs"):
        if known.apps is not None and not any(fnmatch.fnmatchcase(app, text) for app in known.apps):
            reader.error(item, item_path, f"glob {text!r} matches no known app")
    methods = set()
    for text, item, item_path in texts("methods"):
        if text.upper() not in HTTP_METHODS:
            reader.error(item, item_path, f"unknown http method {text!r}")
        methods.add(text.upper())
    paths = tuple(text for text, _, _ in texts("paths"))
    for text, item, item_path in texts("paths"):
        problem = _path_prefix_problem(text)
        if problem is not None:
            reader.error(item, item_path, problem)
    tags = frozenset(text for text, _, _ in texts("tags"))
    if not (apps or tags or globs):
        reader.error(node, path, "names no application: list apps, tags or globs")
    return Targets(apps, tags, globs, frozenset(methods), paths)


def _path_prefix_problem(text: str) -> str | None:
    """Requests are matched by their normalised path, so a prefix in any other form would
    silently match nothing, or not what its author meant."""
    try:
        normal = normalise_path(text)
    except PathError as error:
        return f"path prefix {text!r}: {error.reason}"
    if normal != text:
        return f"path prefix {text!r} is not normalised: requests are matched as {normal!r}"
    return None


def _check_names(reader: Reader, rules: list[Rule], nodes: list[tuple[yaml.Node, str]]) -> None:
    seen: set[str] = set()
    for rule, (node, path) in zip(rules, nodes, strict=True):
        if rule.name in seen:
            reader.error(node, f"{path}.name", f"duplicate rule name {rule.name!r}")
        seen.add(rule.name)


def _check_shadowed(reader: Reader, rules: list[Rule], nodes: list[tuple[yaml.Node, str]]) -> None:
    """A rule is shadowed when an earlier unconditional enforcing rule for the same subjects
    and targets already decides every request it could: a deny decides everything, an allow
    makes a later allow redundant. Indexed by (subjects, targets): linear in the rules."""
    deciders: dict[tuple[Subjects, Targets], list[Rule]] = {}
    for rule, (node, path) in zip(rules, nodes, strict=True):
        if rule.mode is not Mode.ENFORCE:
            continue
        key = (rule.subjects, rule.targets)
        earlier = deciders.setdefault(key, [])
        for other in earlier:
            if other.effect is Effect.DENY or other.effect is rule.effect:
                message = (
                    f"rule {rule.name!r} is shadowed by rule {other.name!r} (line {other.line})"
                )
                reader.error(node, path, message)
                break
        if rule.conditions.is_empty():
            earlier.append(rule)
