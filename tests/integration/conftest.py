"""Fixtures for the control-plane API: the real app on a real database, with tokens."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gatewaykit import upstream  # noqa: F401 - a fixture for every test here
from zerogate.control.app import create_app
from zerogate.control.pki_service import PkiService
from zerogate.core.api_tokens import Scope
from zerogate.store import tokens
from zerogate.store.db import Database
from zgproc import portal_config


@dataclass
class Control:
    app: FastAPI
    client: TestClient
    admin: dict[str, str]
    auditor: dict[str, str]
    db: Database


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def control(db: Database) -> Iterator[Control]:
    pki = PkiService.open(db, secrets.token_bytes(32))
    app = create_app(db, pki, portal_config())
    with db.transaction() as session:
        _, admin = tokens.issue(session, name="test-admin", scope=Scope.ADMIN, actor="test")
        _, auditor = tokens.issue(session, name="test-auditor", scope=Scope.AUDITOR, actor="test")
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Control(app, client, bearer(admin), bearer(auditor), db)
