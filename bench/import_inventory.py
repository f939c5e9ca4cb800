"""Benchmark: import a large inventory through the real CLI and server, export it back.

Generates 1,000 apps, 10,000 users, 200 groups (plus departments, offices, connector
groups), starts `zerogate up` on a fresh SQLite data directory, and times
`zerogate admin import` and `zerogate admin export` as a user would run them.
Run: `make bench-import` (or `.venv/bin/python bench/import_inventory.py [--users N ...]`).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from harness import ZEROGATE, free_port, start, stop
from rich.console import Console
from rich.table import Table

Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def generate(
    apps: int, users: int, groups: int, seed: int = 7
) -> dict[str, list[dict[str, object]]]:
    rng = random.Random(seed)
    departments = [{"name": f"dept-{i}", "description": f"Department {i}"} for i in range(20)]
    offices = [{"name": f"office-{i}", "location": f"City {i}"} for i in range(10)]
    group_rows = [{"name": f"group-{i}"} for i in range(groups)]
    cgs = [{"name": f"dc-{i}", "region": f"region-{i % 3}"} for i in range(5)]
    user_rows = [
        {
            "username": f"user{i:05d}",
            "email": f"user{i:05d}@example.com",
            "display_name": f"User {i}",
            "department": f"dept-{rng.randrange(20)}",
            "office": f"office-{rng.randrange(10)}",
            "groups": sorted({f"group-{rng.randrange(groups)}" for _ in range(rng.randint(1, 4))}),
        }
        for i in range(users)
    ]
    app_rows: list[dict[str, object]] = []
    for i in range(apps):
        if i % 4 == 3:
            app_rows.append(
                {
                    "name": f"db-{i}",
                    "kind": "tcp",
                    "target": f"db-{i}.internal:5432",
                    "connector_group": f"dc-{i % 5}",
                    "tags": ["database"],
                }
            )
        else:
            app_rows.append(
                {
                    "name": f"app-{i}",
                    "kind": "http",
                    "hostname": f"app-{i}.corp.example.com",
                    "target": f"http://app-{i}.internal:8080",
                    "connector_group": f"dc-{i % 5}",
                    "tags": ["web", f"team-{i % 12}"],
                    "owner": f"user{i:05d}",
                    "mode": rng.choice(["monitor", "enforce"]),
                }
            )
    return {
        "departments": departments,
        "offices": offices,
        "groups": group_rows,
        "connector_groups": cgs,
        "users": user_rows,
        "apps": app_rows,
    }


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    return elapsed


def equivalent(
    original: dict[str, list[dict[str, object]]], exported: dict[str, list[dict[str, object]]]
) -> bool:
    for section, items in original.items():
        key = "username" if section == "users" else "name"
        got = {str(row[key]): row for row in exported.get(section, [])}
        for item in items:
            row = got.get(str(item[key]))
            if row is None or any(row.get(field) != value for field, value in item.items()):
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--groups", type=int, default=200)
    args = parser.parse_args()
    document = generate(args.apps, args.users, args.groups)
    with tempfile.TemporaryDirectory(prefix="zg-bench-") as tmp:
        work = Path(tmp)
        source, exported_path = work / "inventory.yaml", work / "export.yaml"
        source.write_text(yaml.dump(document, Dumper=Dumper, sort_keys=False))
        proc, token = start(work / "data", port := free_port())
        if token is None:
            raise SystemExit("zerogate up printed no admin token")
        env = {
            **os.environ,
            "ZEROGATE_URL": f"https://localhost:{port}",
            "ZEROGATE_TOKEN": token,
            "ZEROGATE_CA_CERT": str(work / "data" / "ca.pem"),
        }
        try:
            first = timed([ZEROGATE, "admin", "import", str(source)], env)
            again = timed([ZEROGATE, "admin", "import", str(source)], env)
            export = timed([ZEROGATE, "admin", "export", "-o", str(exported_path)], env)
        finally:
            stop(proc)
        same = equivalent(document, yaml.load(exported_path.read_text(), Loader=Loader))  # noqa: S506 - a safe loader
    total = sum(len(v) for v in document.values())
    table = Table(
        title=f"inventory import on SQLite: {args.apps} apps, {args.users} users, {args.groups} groups ({total} objects)"
    )
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("objects/s", justify="right")
    for step, seconds in (
        ("import (all new)", first),
        ("re-import (unchanged)", again),
        ("export", export),
    ):
        table.add_row(step, f"{seconds:.2f}", f"{total / seconds:,.0f}")
    Console().print(table)
    print(
        f"export equivalent to the imported file: {'yes' if same else 'NO'}; target: import under 60 s"
    )
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
