"""A database that went away: clear 503 answers, never a 500 or a hang; back when it returns."""

from __future__ import annotations

import secrets

import psycopg
import pytest
from fastapi.testclient import TestClient

from zerogate.control.app import create_app
from zerogate.control.pki_service import PkiService
from zerogate.core.api_tokens import Scope
from zerogate.store import tokens
from zerogate.store.db import open_database
from zgproc import portal_config


@pytest.mark.timeout(120)
def test_postgresql_going_away_gives_503_not_500(pg_server: str, pg_url: str) -> None:
    db = open_database(pg_url)
    app = create_app(
        db,
        PkiService.open(db, secrets.token_bytes(32)),
        portal_config(),
    )
    with db.transaction() as session:
        _, token = tokens.issue(session, name="t", scope=Scope.ADMIN, actor="test")
    headers = {"Authorization": f"Bearer {token}"}
    name = pg_url.rsplit("/", 1)[1]
    admin_dsn = pg_server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/api/v1/apps", headers=headers).status_code == 200
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            # Connections are refused while the database is gone (as during a failover).
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "database unavailable" in ready.json()["detail"]
        down = client.get("/api/v1/apps", headers=headers)
        assert down.status_code == 503, down.text
        assert down.json()["detail"] == "database unavailable, try again shortly"
        write = client.post("/api/v1/groups", json={"name": "eng"}, headers=headers)
        assert write.status_code == 503
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        assert client.get("/readyz").status_code == 200
        assert (
            client.post("/api/v1/groups", json={"name": "eng"}, headers=headers).status_code == 201
        )
    db.close()
