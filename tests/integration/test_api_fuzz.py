"""Schemathesis drives the API from its own OpenAPI document: no 5xx, no schema violation,
and schema-invalid input always answered with a 4xx. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from zerogate.control.app import create_app
from zerogate.control.pki_service import PkiService
from zerogate.core.api_tokens import Scope
from zerogate.store import tokens
from zerogate.store.db import Database
from zgproc import portal_config

CHECKS = (
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
)


def _no_long_poll(case: schemathesis.Case) -> None:
    """The snapshot feed may hold a request up to `wait` seconds by design: fuzz it with a
    zero wait (another valid value, so validity checks still hold); test_policy_api.py
    covers the long poll itself."""
    query = case.query if isinstance(case.query, dict) else None
    if case.path.endswith("/policy/snapshot") and query is not None:
        wait = query.get("wait")
        if isinstance(wait, int) and not isinstance(wait, bool) and 0 < wait <= 60:
            query["wait"] = 0


def _fuzz(
    operation: schemathesis.APIOperation, mode: GenerationMode, headers: dict[str, str]
) -> bool:
    """Fuzz one operation; False when the mode cannot produce input for it at all."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        _no_long_poll(case)
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        # An operation without parameters or body has no invalid input to generate.
        return False
    return True


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
def test_api_answers_within_its_schema(db: Database, mode: GenerationMode) -> None:
    app = create_app(
        db,
        PkiService.open(db, secrets.token_bytes(32)),
        portal_config(),
    )
    with db.transaction() as session:
        _, token = tokens.issue(session, name="fuzzer", scope=Scope.ADMIN, actor="test")
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 45  # every kind's five verbs and the rest
    fuzzed = sum(_fuzz(operation, mode, headers) for operation in operations)
    assert fuzzed >= 40
