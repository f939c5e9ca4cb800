"""Database engine, sessions and migrations: SQLite (WAL) by default, PostgreSQL at scale.

Every process that touches storage calls `open_database`, which brings the schema to the
newest Alembic revision before anything reads or writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


class DatabaseError(Exception):
    """The database cannot be reached or used; the message is safe to show (no password)."""


class JsonText(str):
    """A value for a JSON column that is already JSON text: stored as it is, not encoded again.

    The audit log hashes each event's canonical JSON; its details' part is handed over as
    this, so a gateway's event is encoded once on its way into the log, not twice.
    """

    __slots__ = ()


def _json_serializer(value: object) -> str:
    return value if isinstance(value, JsonText) else json.dumps(value)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (API, analytics) run beside the one writer; foreign keys are off in
    # SQLite unless asked for, and references must hold on every backend alike.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: every commit is on disk before it returns. With NORMAL, WAL commits survive a
    # crash of the process but not of the machine; a batch of audit events the control plane
    # had confirmed (so the gateway let go of it) would then be lost. PostgreSQL's default,
    # synchronous_commit=on, is the same promise. It costs one fsync of the WAL per commit.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10},
            json_serializer=_json_serializer,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=20, json_serializer=_json_serializer
    )


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Database:
    """The engine plus a session factory; one per process, handed to whoever needs it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits together, or not at all."""
        with self._sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise DatabaseError(f"database unavailable: {type(exc).__name__}") from None

    def close(self) -> None:
        self.engine.dispose()


def open_database(url: str) -> Database:
    engine = create_db_engine(url)
    try:
        migrate(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        detail = str(getattr(exc, "orig", None) or type(exc).__name__)
        raise DatabaseError(f"cannot open database {safe_url(url)}: {detail}") from None
    return Database(engine)
