"""Benchmark: policy parse and compile time, and single-decision latency, on a generated org.

The organisation (issue 4): 100,000 users, 2,000 groups, 10,000 apps, 5,000 rules, written
as a YAML policy and parsed like an admin's file. Decisions are timed one by one
(`perf_counter_ns` around each call, no cache, in-process) over requests of which half are
built to hit a rule (a member of the rule's group asking for one of its apps) and half are
random (mostly the default deny). The reference `decide_naive` is timed on a sample too.
Targets: compile < 10 s, p99 < 20 us. Run: `.venv/bin/python bench/policy.py`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import platform
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from rich.console import Console
from rich.table import Table

from zerogate.core.policy.compile import CompiledPolicy, compile_policy
from zerogate.core.policy.decide import decide_naive
from zerogate.core.policy.model import (
    App,
    Decision,
    Device,
    OsFamily,
    Policy,
    RequestContext,
)
from zerogate.core.policy.parse import parse_policy
from zerogate.core.policy.replay import access_event, impact, recorded_decision
from zerogate.core.policy.snapshot import Snapshot, sign_snapshot, verify_snapshot
from zerogate.core.token_keys import jwks, new_signing_key

T = TypeVar("T")
NOW = datetime(2031, 7, 2, 10, 30, tzinfo=UTC)
CONDITIONS = (
    "",
    "    when: {device: {enrolled: true, disk_encrypted: true, posture_max_age_seconds: 300}}\n",
    "    when: {auth: {mfa_max_age_minutes: 60}, risk_below: 70}\n",
    "    when: {network: {source_in: [offices]}, device: {os: [macos, windows]}}\n",
    "    when: {time: {weekdays: [mon, tue, wed, thu, fri], hours: '07:00-20:00', "
    "time_zone: Europe/Paris}}\n",
)


class Org:
    def __init__(self, rng: random.Random, users: int, groups: int, apps: int) -> None:
        self.users = [f"user{i}" for i in range(users)]
        self.groups = [f"group{i}" for i in range(groups)]
        self.tags = [f"tag{i}" for i in range(200)]
        self.apps = [
            App(f"app{i}", frozenset(rng.sample(self.tags, rng.randint(0, 2)))) for i in range(apps)
        ]
        self.membership = {
            u: frozenset(rng.sample(self.groups, rng.randint(1, 6))) for u in self.users
        }
        self.members: dict[str, list[str]] = {g: [] for g in self.groups}
        for user, groups_of in self.membership.items():
            for group in groups_of:
                self.members[group].append(user)


def policy_yaml(org: Org, rng: random.Random, rules: int) -> tuple[str, list[tuple[str, str]]]:
    """The policy text and, per rule, a (group, app) pair it names (to build hitting requests)."""
    lines = ["cidr_lists:\n  offices: [198.18.0.0/16]\n  blocked: [203.0.113.0/24]\nrules:\n"]
    hits: list[tuple[str, str]] = []
    for number in range(rules):
        group = rng.choice(org.groups)
        apps = [a.name for a in rng.sample(org.apps, rng.randint(1, 3))]
        kind = rng.random()
        if kind < 0.85:
            what = f"{{apps: [{', '.join(apps)}]}}"
        elif kind < 0.95:
            what = f"{{tags: [{rng.choice(org.tags)}]}}"
        else:
            what = f"{{globs: ['app{rng.randint(1, 999)}*']}}"
        effect = "deny" if rng.random() < 0.05 else "allow"
        mode = "monitor" if rng.random() < 0.05 else "enforce"
        lines.append(
            f"  - name: rule{number}\n    who: {{groups: [{group}]}}\n    what: {what}\n"
            f"{rng.choice(CONDITIONS)}    effect: {effect}\n    mode: {mode}\n"
        )
        hits.append((group, apps[0]))
    return "".join(lines), hits


def request(org: Org, rng: random.Random, user: str, app: App) -> RequestContext:
    device = Device(
        id=f"dev-{user}",
        enrolled=True,
        approved=True,
        os_family=rng.choice((OsFamily.MACOS, OsFamily.WINDOWS, OsFamily.LINUX)),
        os_version=(14, 5),
        disk_encrypted=rng.random() < 0.9,
        firewall=True,
        screen_lock=True,
        processes=frozenset({"edr"}),
        agent_version=(1, 4),
        reported_at=NOW - timedelta(seconds=rng.randint(0, 600)),
    )
    return RequestContext(
        user=user,
        app=app,
        now=NOW,
        source_ip=ipaddress.ip_address(rng.choice(("198.18.3.4", "192.0.2.10"))),
        groups=org.membership[user],
        device=device,
        method="GET",
        path="/",
        mfa_time=NOW - timedelta(minutes=rng.randint(0, 120)),
        auth_time=NOW - timedelta(minutes=30),
        identity_provider="okta",
        risk=rng.randint(0, 100),
    )


def requests(
    org: Org, rng: random.Random, hits: Sequence[tuple[str, str]], count: int
) -> list[RequestContext]:
    by_name = {app.name: app for app in org.apps}
    out = []
    for index in range(count):
        if index % 2 == 0:
            group, app_name = rng.choice(hits)
            user = rng.choice(org.members[group] or org.users)
            out.append(request(org, rng, user, by_name[app_name]))
        else:
            out.append(request(org, rng, rng.choice(org.users), rng.choice(org.apps)))
    return out


def latencies(
    decide: Callable[[RequestContext], Decision], reqs: Sequence[RequestContext]
) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    for req in reqs:
        start = clock()
        decide(req)
        out.append(clock() - start)
    return out


def percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000


def timed(action: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=2_000)
    parser.add_argument("--apps", type=int, default=10_000)
    parser.add_argument("--rules", type=int, default=5_000)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--naive-decisions", type=int, default=500)
    parser.add_argument("--replay", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    org = Org(rng, args.users, args.groups, args.apps)
    text, hits = policy_yaml(org, rng, args.rules)
    policy, parse_s = timed(lambda: parse_policy(text))
    compiled, compile_s = timed(lambda: compile_policy(policy, org.apps))
    reqs = requests(org, rng, hits, args.decisions)
    for req in reqs[:2000]:  # warm up
        compiled.decide(req)
    fast = latencies(compiled.decide, reqs)
    naive = latencies(lambda req: decide_naive(policy, req), reqs[: args.naive_decisions])
    for req in reqs[: args.naive_decisions]:
        assert compiled.decide(req) == decide_naive(policy, req)
    counts = Counter(str(compiled.decide(r).effect) for r in reqs)
    effects = [f"{name} {count:,}" for name, count in sorted(counts.items())]
    extra = snapshot_rows(policy, org) + impact_rows(
        policy, compiled, reqs[: args.replay], org.apps
    )
    show(args, len(text), parse_s, compile_s, fast, naive, policy, effects, extra)


def snapshot_rows(policy: Policy, org: Org) -> list[tuple[str, str, str]]:
    """What a gateway pays to take a new snapshot: verify, decode, compile."""
    key = new_signing_key(NOW)
    snapshot = Snapshot("https://control.example", 1, 1, NOW, policy, tuple(org.apps))
    signed, sign_s = timed(lambda: sign_snapshot(key, snapshot))
    key_set = jwks([key])
    received, verify_s = timed(
        lambda: verify_snapshot(signed, key_set, issuer="https://control.example")
    )
    assert received == snapshot
    _, compile_s = timed(lambda: compile_policy(received.policy, received.apps))
    return [
        ("signed snapshot size", f"{len(signed) / 1e6:.2f} MB", ""),
        ("snapshot sign (control plane)", f"{sign_s:.2f} s", ""),
        ("snapshot verify + decode (gateway)", f"{verify_s:.2f} s", ""),
        ("snapshot verify + decode + compile", f"{verify_s + compile_s:.2f} s", ""),
    ]


def impact_rows(
    policy: Policy, compiled: CompiledPolicy, reqs: Sequence[RequestContext], apps: list[App]
) -> list[tuple[str, str, str]]:
    """Impact of dropping every tenth rule, replayed over recorded decisions (JSON round trip)."""
    details = [
        json.loads(
            json.dumps(
                access_event(
                    r, compiled.decide(r), policy_version=1, gateway="gw", event_id=str(i)
                ).details
            )
        )
        for i, r in enumerate(reqs)
    ]
    kept = tuple(rule for index, rule in enumerate(policy.rules) if index % 10)
    candidate = replace(policy, rules=kept)
    recorded, decode_s = timed(lambda: [recorded_decision(d) for d in details])
    changes, replay_s = timed(lambda: impact(candidate, recorded, apps=apps))
    rate = len(details) / (decode_s + replay_s)
    return [
        (f"impact: decode {len(details):,} recorded", f"{decode_s:.2f} s", ""),
        ("impact: compile candidate + replay", f"{replay_s:.2f} s", ""),
        ("impact replay rate (decode + decide)", f"{rate:,.0f} decisions/s", ""),
        ("(user, app) outcomes changed", f"{len(changes):,}", ""),
    ]


def show(
    args: argparse.Namespace,
    size: int,
    parse_s: float,
    compile_s: float,
    fast: list[int],
    naive: list[int],
    policy: Policy,
    effects: list[str],
    extra: list[tuple[str, str, str]],
) -> None:
    table = Table(
        title=f"policy engine: {args.users:,} users, {args.groups:,} groups, "
        f"{args.apps:,} apps, {len(policy.rules):,} rules"
    )
    for column in ("measure", "value", "target"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    table.add_row("policy YAML size", f"{size / 1e6:.2f} MB", "")
    table.add_row("parse + validate", f"{parse_s:.2f} s", "")
    table.add_row("compile (index by app, subject)", f"{compile_s:.2f} s", "< 10 s")
    table.add_row(f"decide p50 ({len(fast):,} decisions)", f"{percentile(fast, 0.5):.1f} us", "")
    table.add_row("decide p99", f"{percentile(fast, 0.99):.1f} us", "< 20 us")
    table.add_row("decide max", f"{max(fast) / 1000:.1f} us", "")
    table.add_row(f"decide_naive p50 ({len(naive):,})", f"{percentile(naive, 0.5):.1f} us", "")
    table.add_row("decide_naive p99", f"{percentile(naive, 0.99):.1f} us", "")
    table.add_row("effects over the decisions", ", ".join(effects), "")
    for row in extra:
        table.add_row(*row)
    console = Console()
    console.print(table)
    console.print(f"CPython {platform.python_version()} on {platform.machine()}, one thread")


if __name__ == "__main__":
    main()
