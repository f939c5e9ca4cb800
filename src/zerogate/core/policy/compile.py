"""The compiled snapshot: a policy indexed by application, then by subject.

Where it sits: the gateway builds one `CompiledPolicy` per policy version (plus the app
inventory it was published with) and swaps it in whole; every request calls `decide`.

Theory: at compile time each rule's conditions become bound checks (`checks_for`) and each
inventory app gets a bucket of the rules whose targets name it (by name, tag or glob),
indexed by user, group, department and office, plus the rules for everyone. A decision looks
up the app's bucket, gathers the rule numbers its principal can hit, and evaluates only those,
in file order, through the same `decide_applicable` as the reference evaluator.

Invariants:
1. `CompiledPolicy.decide(ctx) == decide_naive(policy, ctx)` for every context. A bucket is
   used only when the request's app tags equal the tags it was compiled with; otherwise (an
   app unknown at compile time, or re-tagged since) the rules are resolved from the name,
   tag and glob indexes at request time: slower, never different.
2. Immutable after construction; no caching between decisions. `decide_once` says whether
   a decision may be reused: whether it holds for the same context at any other time.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from zerogate.core.policy.conditions import Check, checks_for, reads_clock
from zerogate.core.policy.decide import (
    Evaluated,
    action_matches,
    app_matches,
    decide_applicable,
    failures,
)
from zerogate.core.policy.model import App, Decision, Policy, RequestContext, Rule

_NONE: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SubjectIndex:
    """Rule numbers (ascending) for one app, by the subject that can make them apply."""

    everyone: tuple[int, ...]
    users: Mapping[str, tuple[int, ...]]
    groups: Mapping[str, tuple[int, ...]]
    departments: Mapping[str, tuple[int, ...]]
    offices: Mapping[str, tuple[int, ...]]

    def lookup(self, ctx: RequestContext) -> list[int]:
        hits = set(self.everyone)
        hits.update(self.users.get(ctx.user, _NONE))
        for group in ctx.groups:
            hits.update(self.groups.get(group, _NONE))
        if ctx.department is not None:
            hits.update(self.departments.get(ctx.department, _NONE))
        if ctx.office is not None:
            hits.update(self.offices.get(ctx.office, _NONE))
        return sorted(hits)


def index_subjects(rules: tuple[Rule, ...], numbers: Iterable[int]) -> SubjectIndex:
    everyone: list[int] = []
    users: defaultdict[str, list[int]] = defaultdict(list)
    groups: defaultdict[str, list[int]] = defaultdict(list)
    departments: defaultdict[str, list[int]] = defaultdict(list)
    offices: defaultdict[str, list[int]] = defaultdict(list)
    for number in sorted(set(numbers)):
        subjects = rules[number].subjects
        if subjects.everyone:
            everyone.append(number)
            continue
        for table, names in (
            (users, subjects.users),
            (groups, subjects.groups),
            (departments, subjects.departments),
            (offices, subjects.offices),
        ):
            for name in names:
                table[name].append(number)

    def frozen(table: defaultdict[str, list[int]]) -> dict[str, tuple[int, ...]]:
        return {name: tuple(found) for name, found in table.items()}

    return SubjectIndex(
        tuple(everyone), frozen(users), frozen(groups), frozen(departments), frozen(offices)
    )


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    rules: tuple[Rule, ...]
    checks: tuple[tuple[Check, ...], ...]  # per rule number
    apps: Mapping[str, tuple[frozenset[str], SubjectIndex]]  # name -> (tags, index)
    by_name: Mapping[str, tuple[int, ...]]
    by_tag: Mapping[str, tuple[int, ...]]
    glob_rules: tuple[int, ...]
    clock_rules: frozenset[int]  # rules with a condition that reads the clock

    def decide(self, ctx: RequestContext) -> Decision:
        return self.decide_once(ctx)[0]

    def decide_once(self, ctx: RequestContext) -> tuple[Decision, bool]:
        """The decision, and whether it is timeless: no condition that took part in it reads
        the clock, so the same context at any other time gets the same decision. Only the
        rules that apply to the request take part; the others cannot change the outcome."""
        app = ctx.app
        entry = self.apps.get(app.name)
        if entry is not None and entry[0] == app.tags:
            numbers = entry[1].lookup(ctx)
        else:
            numbers = self._resolve(app).lookup(ctx)
        evaluated: list[Evaluated] = []
        timeless = True
        for number in numbers:
            rule = self.rules[number]
            if action_matches(rule, ctx):
                evaluated.append((rule, failures(self.checks[number], ctx, rule.name)))
                timeless = timeless and number not in self.clock_rules
        return decide_applicable(evaluated, ctx), timeless

    def _resolve(self, app: App) -> SubjectIndex:
        """The slow path of invariant 1: an app the snapshot was not compiled for."""
        return index_subjects(self.rules, _rules_for(self, app.name, app.tags))

    def rules_for_app(self, name: str, tags: frozenset[str]) -> tuple[Rule, ...]:
        """Every rule that can apply to this app (for the access graph and what-if tools)."""
        return tuple(self.rules[n] for n in sorted(set(_rules_for(self, name, tags))))


def _rules_for(compiled: CompiledPolicy, name: str, tags: frozenset[str]) -> list[int]:
    numbers = list(compiled.by_name.get(name, _NONE))
    for tag in tags:
        numbers += compiled.by_tag.get(tag, _NONE)
    numbers += (
        n for n in compiled.glob_rules if app_matches(compiled.rules[n].targets, name, tags)
    )
    return numbers


def compile_policy(policy: Policy, apps: Iterable[App] = ()) -> CompiledPolicy:
    """Index `policy` for the given app inventory (apps named by rules are indexed too)."""
    rules = policy.rules
    by_name: defaultdict[str, list[int]] = defaultdict(list)
    by_tag: defaultdict[str, list[int]] = defaultdict(list)
    glob_rules: list[int] = []
    for number, rule in enumerate(rules):
        for name in rule.targets.apps:
            by_name[name].append(number)
        for tag in rule.targets.tags:
            by_tag[tag].append(number)
        if rule.targets.globs:
            glob_rules.append(number)
    inventory = {app.name: app.tags for app in apps}
    for name in by_name:
        inventory.setdefault(name, frozenset())
    glob_hits = _glob_hits(rules, glob_rules, inventory.keys())
    buckets: dict[str, tuple[frozenset[str], SubjectIndex]] = {}
    for name, tags in inventory.items():
        numbers = list(by_name.get(name, _NONE)) + glob_hits.get(name, [])
        for tag in tags:
            numbers += by_tag.get(tag, _NONE)
        buckets[name] = (tags, index_subjects(rules, numbers))
    checks = tuple(checks_for(rule.conditions, policy.cidr_lists) for rule in rules)
    return CompiledPolicy(
        rules=rules,
        checks=checks,
        apps=buckets,
        by_name={name: tuple(found) for name, found in by_name.items()},
        by_tag={tag: tuple(found) for tag, found in by_tag.items()},
        glob_rules=tuple(glob_rules),
        clock_rules=frozenset(n for n, bound in enumerate(checks) if any(map(reads_clock, bound))),
    )


def _glob_hits(
    rules: tuple[Rule, ...], glob_rules: list[int], names: Iterable[str]
) -> dict[str, list[int]]:
    """App name -> glob rule numbers naming it (each glob compiled once, as fnmatchcase)."""
    all_names = list(names)
    hits: defaultdict[str, list[int]] = defaultdict(list)
    for number in glob_rules:
        matched: set[str] = set()
        for glob in rules[number].targets.globs:
            match = re.compile(fnmatch.translate(glob)).match
            matched.update(name for name in all_names if match(name))
        for name in matched:
            hits[name].append(number)
    return hits
