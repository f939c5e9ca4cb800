"""`/api/v1/audit`: read the audit log (admins and auditors) and verify its hash chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from zerogate.control.deps import AnyCaller, DbSession
from zerogate.control.errors import COMMON_RESPONSES
from zerogate.store import audit

Text = Annotated[str | None, Query(max_length=300, pattern=r"^[^\x00-\x1f\x7f]*$")]


class AuditEventOut(BaseModel):
    seq: int
    event_id: str
    time: datetime
    actor: str
    action: str
    target: str
    outcome: str
    details: dict[str, object]
    hash: str


class ChainStatus(BaseModel):
    intact: bool
    first_broken_seq: int | None


def router() -> APIRouter:
    api = APIRouter(prefix="/audit", tags=["audit"], responses=COMMON_RESPONSES)

    @api.get("/events", response_model=list[AuditEventOut], operation_id="list_audit_events")
    def list_events(
        who: AnyCaller,
        session: DbSession,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before_seq: Annotated[int | None, Query(ge=1, le=2**62)] = None,
        actor: Text = None,
        action: Text = None,
        target: Text = None,
    ) -> list[dict[str, object]]:
        rows = audit.query(
            session, limit=limit, before_seq=before_seq, actor=actor, action=action, target=target
        )
        return [
            {field: getattr(row, field) for field in AuditEventOut.model_fields} for row in rows
        ]

    @api.get("/verify", response_model=ChainStatus, operation_id="verify_audit_chain")
    def verify(who: AnyCaller, session: DbSession) -> dict[str, object]:
        broken = audit.verify(session)
        return {"intact": broken is None, "first_broken_seq": broken}

    return api
