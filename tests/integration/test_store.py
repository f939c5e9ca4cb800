"""The store on SQLite and on a real PostgreSQL: inventory rules, audit chain, migrations."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, text

from zerogate.core.audit import AuditRecord, Outcome, canonicalise, chain_hash_of
from zerogate.core.inventory import AppSpec, DepartmentSpec, GroupSpec, UserSpec
from zerogate.core.inventory.document import validate_document
from zerogate.core.inventory.kinds import KINDS_BY_NAME
from zerogate.core.spool_report import SpoolReport
from zerogate.store import audit, gateway_reports
from zerogate.store.db import MIGRATIONS, Database, DatabaseError, open_database
from zerogate.store.errors import Conflict, Invalid, NotFound
from zerogate.store.inventory import Inventory
from zerogate.store.models import Base

APP, USER, GROUP, DEPT = (KINDS_BY_NAME[k] for k in ("app", "user", "group", "department"))


def test_migrations_are_idempotent(database_url: str) -> None:
    first = open_database(database_url)
    first.close()
    again = open_database(database_url)  # a second start on the same database
    again.ping()
    again.close()


def test_the_upgrade_binds_the_local_gateway_s_token_to_it(database_url: str) -> None:
    """An install from before tokens were bound: the token `zerogate up` made for its own
    gateway is bound to that gateway (`local`); any other gateway token stays unbound."""
    engine = create_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    row = "INSERT INTO api_tokens (id, name, scope, secret_hash, created_at, created_by) VALUES "
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0008")
        for token_id, name, scope, by in (
            ("0" * 16, "local-gateway", "gateway", "system"),
            ("1" * 16, "edge", "gateway", "token:admin:x"),
            ("2" * 16, "local-gateway", "admin", "token:admin:x"),
        ):
            connection.execute(
                text(row + "(:id, :name, :scope, :hash, CURRENT_TIMESTAMP, :by)"),
                {"id": token_id, "name": name, "scope": scope, "hash": "0" * 64, "by": by},
            )
    engine.dispose()
    upgraded = open_database(database_url)
    with upgraded.engine.connect() as connection:
        bound = dict(connection.execute(text("SELECT id, gateway FROM api_tokens")).all())
    upgraded.close()
    assert bound == {"0" * 16: "local", "1" * 16: None, "2" * 16: None}


def test_migrations_build_the_schema_the_models_describe(db: Database) -> None:
    """No model change without its migration: what alembic would generate from here is nothing."""
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_create_read_update_delete_with_references(db: Database) -> None:
    with db.transaction() as session:
        inv = Inventory(session, "tester")
        inv.create(DEPT, DepartmentSpec(name="eng"))
        inv.create(GROUP, GroupSpec(name="admins"))
        inv.create(
            USER,
            UserSpec(username="alice", email="a@example.test", department="eng", groups=["admins"]),
        )
    with db.transaction() as session:
        inv = Inventory(session, "tester")
        alice = inv.get(USER, "alice")
        assert alice["department"] == "eng" and alice["groups"] == ["admins"]
        updated = inv.update(USER, "alice", {"department": None, "display_name": "Alice"})
        assert updated["department"] is None and updated["display_name"] == "Alice"
    with db.transaction() as session:
        Inventory(session, "tester").delete(USER, "alice")
    with db.transaction() as session, pytest.raises(NotFound):
        Inventory(session, "tester").get(USER, "alice")


def test_dangling_reference_is_invalid_and_nothing_written(db: Database) -> None:
    with pytest.raises(Invalid) as caught, db.transaction() as session:
        Inventory(session, "tester").create(USER, UserSpec(username="bob", department="nope"))
    assert "unknown department 'nope'" in str(caught.value)
    with db.transaction() as session:
        assert Inventory(session, "t").page(USER, limit=10, offset=0)[1] == 0


def test_duplicates_and_in_use_conflicts(db: Database) -> None:
    app = AppSpec(name="wiki", kind="http", hostname="wiki.example.test", target="http://10.1.1.1")
    with db.transaction() as session:
        inv = Inventory(session, "tester")
        inv.create(APP, app)
        inv.create(DEPT, DepartmentSpec(name="ops"))
        inv.create(USER, UserSpec(username="carol", department="ops"))
    with pytest.raises(Conflict, match="already exists"), db.transaction() as session:
        Inventory(session, "tester").create(APP, app)
    clash = AppSpec(
        name="wiki2", kind="http", hostname="wiki.example.test", target="http://10.1.1.2"
    )
    with (
        pytest.raises(Conflict, match=re.escape("hostname 'wiki.example.test' is already used")),
        db.transaction() as session,
    ):
        Inventory(session, "tester").create(APP, clash)
    with pytest.raises(Conflict, match="still used by 1 users"), db.transaction() as session:
        Inventory(session, "tester").delete(DEPT, "ops")


def test_every_change_is_audited_with_before_and_after(db: Database) -> None:
    with db.transaction() as session:
        inv = Inventory(session, "token:ops")
        inv.create(GROUP, GroupSpec(name="eng"))
        inv.update(GROUP, "eng", {"description": "engineers"})
        inv.delete(GROUP, "eng")
    with db.transaction() as session:
        events = list(reversed(audit.query(session, limit=10)))
        assert [e.action for e in events] == [
            "inventory.create",
            "inventory.update",
            "inventory.delete",
        ]
        assert all(e.actor == "token:ops" and e.target == "group/eng" for e in events)
        assert events[1].details["before"]["description"] == ""  # type: ignore[index]
        assert events[1].details["after"]["description"] == "engineers"  # type: ignore[index]
        assert events[2].details["after"] is None
        assert audit.verify(session) is None


def test_tampering_with_a_stored_event_is_detected(db: Database) -> None:
    with db.transaction() as session:
        inv = Inventory(session, "tester")
        for name in ("a", "b", "c"):
            inv.create(GROUP, GroupSpec(name=name))
    with db.transaction() as session:
        session.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    with db.transaction() as session:
        assert audit.verify(session) == 2
    with db.transaction() as session:
        session.execute(text("UPDATE audit_events SET actor = 'tester' WHERE seq = 2"))
        session.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    with db.transaction() as session:
        assert audit.verify(session) == 3


def test_bulk_import_creates_updates_and_is_idempotent(db: Database) -> None:
    document = {
        "departments": [{"name": "eng"}],
        "groups": [{"name": f"g{i}"} for i in range(5)],
        "users": [
            {"username": f"u{i}", "department": "eng", "groups": ["g1", "g2"]} for i in range(50)
        ],
        "apps": [{"name": "db", "kind": "tcp", "target": "db.internal:5432"}],
    }
    for expected in ("created", "unchanged"):
        with db.transaction() as session:
            inv = Inventory(session, "importer")
            parsed, problems = validate_document(document, inv.existing())
            assert problems == [] and parsed is not None
            counts = inv.apply_document(parsed)
        assert counts["users"][expected] == 50
    document["users"][0]["groups"] = ["g3"]
    with db.transaction() as session:
        inv = Inventory(session, "importer")
        parsed, _ = validate_document(document, inv.existing())
        assert parsed is not None
        assert inv.apply_document(parsed)["users"] == {"created": 0, "updated": 1, "unchanged": 49}
    with db.transaction() as session:
        assert Inventory(session, "x").get(USER, "u0")["groups"] == ["g3"]
        assert audit.verify(session) is None


def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(DatabaseError) as caught:
        open_database("postgresql+psycopg://zerogate:s3cret@127.0.0.1:1/none")
    assert "cannot open database" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_concurrent_writers_extend_one_chain(db: Database) -> None:
    """Many transactions auditing at once (as concurrent logins do) never fork the chain."""
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            for step in range(10):
                with db.transaction() as session:
                    audit.record(session, f"writer-{index}", "test.concurrent", f"step/{step}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with db.transaction() as session:
        assert audit.verify(session) is None
        assert len(audit.query(session, limit=1000, action="test.concurrent")) == 60


def test_sqlite_bulk_insert_stores_what_sqlalchemy_would(tmp_path: Path) -> None:
    """The SQLite fast path writes each audit row exactly as SQLAlchemy's typed insert does:
    same text in every column, and the chain verifies and reads back the same."""
    when = [
        datetime(2026, 11, 24, 1, 2, 3, 456789, tzinfo=UTC),
        datetime(2026, 11, 24, 3, 0, tzinfo=timezone(timedelta(hours=2))),  # not UTC, no µs
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),  # a year below 1000
    ]
    records = [
        AuditRecord(f"{n:032x}", moment, "user:alice", "access.decision", "app/wiki",
                    Outcome.SUCCESS, {"n": n, "é": [1.5, None, True], "z": {"b": 1, "a": 2}})
        for n, moment in enumerate(when)
    ]  # fmt: skip
    stored = []
    for fast in (True, False):
        db = open_database(f"sqlite:///{tmp_path}/{fast}.db")
        with db.transaction() as session:
            if fast:
                audit.append(session, records)
            else:  # the reference: SQLAlchemy's own typed insert of the same rows
                head = audit._head(session)
                rows, previous = [], head.hash
                for seq, record in enumerate(records, start=head.seq + 1):
                    event = canonicalise(record)
                    digest = chain_hash_of(previous, seq, event.text)
                    rows.append(audit._row(seq, event, previous, digest))
                    previous = digest
                session.connection().execute(insert(audit._EVENTS), rows)
                head.seq, head.hash = len(records), previous
        with db.transaction() as session:
            raw = session.execute(text("SELECT * FROM audit_events ORDER BY seq")).all()
            stored.append([tuple(row) for row in raw])
            assert audit.verify(session) is None
            back = [audit.to_chained(row).record for row in audit.query(session, limit=10)]
            assert sorted(back, key=lambda r: r.event_id) == [
                replace(r, time=r.time.astimezone(UTC)) for r in records
            ]
        db.close()
    assert stored[0] == stored[1]


def test_sqlite_commits_reach_the_disk_before_they_return(tmp_path: Path) -> None:
    """synchronous=FULL: a commit (a batch of audit events the gateway then lets go of)
    survives a crash of the machine, not only of the process."""
    db = open_database(f"sqlite:///{tmp_path / 'zerogate.db'}")
    try:
        with db.transaction() as session:
            assert session.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
            assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        db.close()


def test_gateway_reports_keep_the_latest_per_worker_and_forget_the_long_silent(
    db: Database,
) -> None:
    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def report(gateway: str, worker: int, at: datetime, accepting: bool = True) -> None:
        state = SpoolReport(gateway=gateway, worker=worker, accepting=accepting, backlog_bytes=1)
        with db.transaction() as session:
            gateway_reports.record(session, "token:gw:1", state, at)

    def shown() -> list[tuple[str, int, bool]]:
        with db.transaction() as session:
            reports = [reported.report for reported in gateway_reports.latest(session)]
            return [(r.gateway, r.worker, r.accepting) for r in reports]

    report("old", 0, start)
    report("edge", 1, start + timedelta(hours=1))
    report("edge", 1, start + timedelta(hours=2), accepting=False)  # the same worker, updated
    assert shown() == [("edge", 1, False), ("old", 0, True)]
    report("edge", 0, start + timedelta(days=1, minutes=30))  # a new worker, a day later
    assert shown() == [("edge", 0, True), ("edge", 1, False)]  # "old" was silent a day: gone
