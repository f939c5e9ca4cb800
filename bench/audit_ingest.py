"""Benchmark: the control plane's CPU per ingested audit event, parse and store, on SQLite.

What a gateway ships is measured here without HTTP: batches of 2,000 access decisions, each
the event line a gateway writes for an allowed request (copied from a real gateway's spool,
with its own event id), go through `parse_ingest_body` (the ingest endpoint's body parser)
and `store.audit.ingest` (dedupe by event id, hash chain, insert, commit) on a fresh SQLite
database made by the real migrations. Both forms of the body are measured: the lines as they
are (`application/x-ndjson`, what gateways send to a control plane that reads it) and the
same lines in a JSON envelope (`{"events": [...]}`, what they send to an older one). It prints
µs per event for each half, best of `--rounds` runs of `--batches` batches, with the cycle
collector as the control plane sets it (`heap.settle`) and, for comparison, as CPython starts.

Run: `.venv/bin/python bench/audit_ingest.py [--batches N] [--rounds N]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import tempfile
import time
from pathlib import Path

from zerogate.control.api.ingest import parse_ingest_body
from zerogate.core.audit import LINES_MEDIA_TYPE
from zerogate.heap import settle
from zerogate.store import audit
from zerogate.store.db import open_database

BATCH = 2000
LINE = {  # one allowed request, as `core/policy/event_line.py` writes it (keys sorted there)
    "event_id": "",
    "time": "2026-11-24T06:03:24.527797Z",
    "actor": "user:admin",
    "action": "access.decision",
    "target": "app/bench",
    "outcome": "success",
    "details": {
        "effect": "allow",
        "rule": "admins-bench",
        "reasons": ["rule 'admins-bench': allowed"],
        "would_be": None,
        "would_be_rule": None,
        "policy_version": 1,
        "gateway": "gw-bench",
        "context": {
            "user": "admin",
            "groups": ["admins", "group-001", "group-050", "group-120"],
            "department": None,
            "office": None,
            "principal": "user",
            "mfa_time": "2026-11-24T06:03:21Z",
            "auth_time": "2026-11-24T06:03:21Z",
            "identity_provider": None,
            "risk": None,
            "app": {"name": "bench", "tags": [], "mode": "enforce"},
            "source_ip": "127.0.0.1",
            "device": None,
            "method": "GET",
            "path": "/x",
            "now": "2026-11-24T06:03:24.527797Z",
        },
        "request": {
            "host": "bench.zerogate.localhost",
            "status": 200,
            "bytes_in": 0,
            "bytes_out": 20,
            "duration_ms": 1.211,
            "error": None,
        },
    },
}


FORMS = {"lines": LINES_MEDIA_TYPE, "JSON envelope": "application/json"}


def bodies(count: int, first: int, form: str) -> list[bytes]:
    """`count` ingest bodies of BATCH events, ids as a gateway makes them (prefix, counter)."""
    made = []
    for batch in range(count):
        lines = [
            json.dumps(
                {**LINE, "event_id": f"296bd9d1daa6ab62{first + batch * BATCH + n:016x}"},
                separators=(",", ":"),
                sort_keys=True,
            ).encode()
            for n in range(BATCH)
        ]
        if form == "lines":
            made.append(b"\n".join(lines))
        else:
            made.append(b'{"events":[' + b",".join(lines) + b"]}")
    return made


def run(batches: list[bytes], media_type: str, directory: Path) -> tuple[float, float]:
    """(parse, store) seconds per event over all batches, on a fresh database."""
    db = open_database(f"sqlite:///{directory / 'audit.db'}")
    parsing = storing = 0.0
    try:
        for body in batches:
            started = time.perf_counter()
            records = parse_ingest_body(body, media_type)
            parsed = time.perf_counter()
            with db.transaction() as session:
                audit.ingest(session, records)
            parsing += parsed - started
            storing += time.perf_counter() - parsed
    finally:
        db.close()
    events = len(batches) * BATCH
    return parsing / events, storing / events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(
        f"audit ingest: {args.batches} batches of {BATCH:,} events "
        f"({len(bodies(1, 0, 'lines')[0]) // BATCH} bytes each), best of {args.rounds}; "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    results = {}
    for setting in ("CPython's default", "as the control plane runs"):
        if setting == "as the control plane runs":
            settle()
        for form, media_type in FORMS.items():
            best = (float("inf"), float("inf"))
            for round_ in range(args.rounds):
                batches = bodies(args.batches, round_ * args.batches * BATCH, form)
                with tempfile.TemporaryDirectory(prefix="zerogate-bench-ingest-") as scratch:
                    parse, store = run(batches, media_type, Path(scratch))
                if parse + store < sum(best):
                    best = (parse, store)
            results[setting, form] = best
    print(f"{'collector':<26} {'body':<14} {'parse µs':>9} {'store µs':>9} {'total µs':>9}")
    for (setting, form), (parse, store) in results.items():
        print(
            f"{setting:<26} {form:<14} {parse * 1e6:9.1f} {store * 1e6:9.1f}"
            f" {(parse + store) * 1e6:9.1f}"
        )
    gc.unfreeze()


if __name__ == "__main__":
    main()
