"""`/api/v1/audit`: read the audit log (admins and auditors), verify its hash chain, and take
in the gateways' access decisions (gateway tokens; each event stored once, by event_id)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from zerogate.control.deps import AnyCaller, DbSession, GatewayCaller
from zerogate.control.errors import COMMON_RESPONSES
from zerogate.core.audit import AuditRecord, Outcome, is_access_decision
from zerogate.store import audit

Text = Annotated[str | None, Query(max_length=300, pattern=r"^[^\x00-\x1f\x7f]*$")]
MAX_INGEST = 5_000  # events per request; a gateway ships batches of 500 by default
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
MAX_DETAILS_DEPTH = 32


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


class IngestEvent(BaseModel):
    """One event as a gateway recorded it; the lengths are those of the audit_events columns."""

    model_config = ConfigDict(extra="forbid")
    event_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$|^[A-Za-z0-9_-]{8,64}$")]
    time: AwareDatetime
    actor: Annotated[str, Field(max_length=200, pattern=_PRINTABLE)]
    action: Annotated[str, Field(max_length=64, pattern=_PRINTABLE)]
    target: Annotated[str, Field(max_length=300, pattern=_PRINTABLE)]
    outcome: Outcome
    details: dict[str, object]

    @field_validator("action")
    @classmethod
    def _access_only(cls, action: str) -> str:
        # A gateway token may add traffic to the log, never forge changes of state (logins,
        # policy pushes…) or move the snapshot serial, which counts those.
        if not is_access_decision(action):
            raise ValueError("only access events (access.*) may be ingested")
        return action

    @field_validator("time")
    @classmethod
    def _in_utc(cls, time: datetime) -> datetime:
        try:
            return time.astimezone(UTC)
        except OverflowError:  # year 1 at +14:00, year 9999 at -12:00
            raise ValueError("time out of range") from None

    @field_validator("details")
    @classmethod
    def _plain_json(cls, details: dict[str, object]) -> dict[str, object]:
        # The chain hashes the canonical JSON of the details: it must be standard JSON (no
        # NaN, which Python's parser lets through) and shallow enough to serialise without
        # hitting the recursion limit. Walked with a stack, not recursion, for that reason.
        stack: list[tuple[object, int]] = [(details, 0)]
        while stack:
            value, depth = stack.pop()
            if depth > MAX_DETAILS_DEPTH:
                raise ValueError(f"details nest deeper than {MAX_DETAILS_DEPTH} levels")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError("details hold a number that is not finite")
            if isinstance(value, dict):
                stack.extend((item, depth + 1) for item in value.values())
            elif isinstance(value, list):
                stack.extend((item, depth + 1) for item in value)
        return details

    def record(self) -> AuditRecord:
        return AuditRecord(
            event_id=self.event_id,
            time=self.time,
            actor=self.actor,
            action=self.action,
            target=self.target,
            outcome=self.outcome,
            details=self.details,
        )


class IngestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: Annotated[list[IngestEvent], Field(max_length=MAX_INGEST)]


class IngestResult(BaseModel):
    accepted: int  # events in the request
    stored: int  # of those, new to the log (the rest were already stored: a retry)


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

    @api.post("/events", response_model=IngestResult, operation_id="ingest_audit_events")
    def ingest_events(body: IngestBody, who: GatewayCaller, session: DbSession) -> dict[str, int]:
        stored = audit.ingest(session, [event.record() for event in body.events])
        return {"accepted": len(body.events), "stored": stored}

    return api
