"""Shared test fixtures: real databases (SQLite and a real PostgreSQL the tests start).

PostgreSQL comes from `$ZEROGATE_TEST_PG_URL` when set, else the tests start a throw-away
cluster on a free loopback port from Debian's `postgresql` (installed by
scripts/install-test-deps.sh) and stop it at the end. Each test gets a fresh database.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from netkit import free_port
from zerogate.store.db import Database, open_database
from zgproc import Running, start, stop


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    if owner is None:
        return command
    return ["su", owner, "-s", "/bin/sh", "-c", shlex.join(command)]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A base URL (without database name) of a running PostgreSQL server."""
    if os.environ.get("ZEROGATE_TEST_PG_URL"):
        yield os.environ["ZEROGATE_TEST_PG_URL"].rstrip("/")
        return
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (run scripts/install-test-deps.sh as root)")
    owner = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root but there is no postgres user to own the cluster")
        owner = "postgres"
    base = Path(tempfile.mkdtemp(prefix="zg-pg-"))
    data, port = base / "data", free_port()
    if owner:
        shutil.chown(base, owner)
    init = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "zerogate", "--no-sync"]
    subprocess.run(_as_owner(init, owner), check=True, capture_output=True, timeout=120)
    options = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off"
    start = [
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(base / "log"),
        "-w",
        "start",
    ]
    subprocess.run(_as_owner(start, owner), check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql+psycopg://zerogate@127.0.0.1:{port}"
    finally:
        stop = [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_owner(stop, owner), capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


def _admin_dsn(base: str) -> str:
    return base.replace("postgresql+psycopg://", "postgresql://") + "/postgres"


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(pg_server), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{pg_server}/{name}"
    with psycopg.connect(_admin_dsn(pg_server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'zerogate.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    yield database
    database.close()


@pytest.fixture
def port() -> int:
    """A free loopback TCP port."""
    return free_port()


@pytest.fixture
def up(tmp_path: Path, port: int) -> Iterator[Running]:
    """A real `zerogate up` on a fresh data directory, stopped after the test."""
    running = start(tmp_path / "zerogate-data", port)
    yield running
    stop(running)
