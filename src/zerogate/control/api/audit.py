"""`/api/v1/audit`: read the audit log (admins and auditors), verify its hash chain, and take
in the gateways' access decisions (gateway tokens; each event stored once, by event_id)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ValidationError

from zerogate.control.api.ingest import IngestBody, IngestEvent, parse_ingest_body
from zerogate.control.deps import AnyCaller, Caller, DbSession, GatewayCaller, database, refuse
from zerogate.control.errors import COMMON_RESPONSES
from zerogate.core.api_tokens import gateway_may_name
from zerogate.core.audit import LINES_MEDIA_TYPE, AuditAction, Canonical
from zerogate.core.spool_report import SPOOL_HEADER, SpoolReport
from zerogate.store import audit, gateway_reports
from zerogate.store.models import utcnow

log = logging.getLogger("zerogate.control.audit")

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


async def _ingest_events(request: Request) -> list[Canonical]:
    return parse_ingest_body(await request.body(), request.headers.get("content-type"))


def _spool_report(request: Request) -> SpoolReport | None:
    """The sending worker's spool state (`core.spool_report`), if it sent a valid one.

    A malformed report is logged and ignored, never refused: refusing the request would
    refuse its events too, and a gateway drops events the control plane keeps refusing."""
    header = request.headers.get(SPOOL_HEADER)
    if header is None:
        return None
    try:
        return SpoolReport.model_validate_json(header)
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc']}: {e['msg']}" for e in exc.errors()[:3])
        log.warning("ignored a malformed %s header (%s)", SPOOL_HEADER, problems)
        return None


def _speaks_for_itself(
    request: Request, who: Caller, bound: str, events: list[Canonical], report: SpoolReport | None
) -> None:
    """Refuse (403, audited) a batch from a token bound to gateway `bound` if any of its
    events or its report names another gateway: a gateway's token cannot make the trail say
    that traffic passed through some other gateway. The gateway keeps such events in its
    spool and retries, so nothing is lost while its name or token is put right."""
    named: str | None = None
    if report is not None and report.gateway != bound:
        named = report.gateway
    else:
        for event in events:
            if not gateway_may_name(bound, event.gateway):
                named = event.gateway or "no gateway"
                break
    if named is None:
        return
    why = (
        f"this token speaks for gateway {bound!r} (and its workers, {bound}-N), "
        f"but the batch names {named!r}: start that gateway with --name {bound}, "
        "or give it a token of its own"
    )
    raise refuse(
        database(request),
        request,
        AuditAction.GATEWAY_MISNAMED,
        403,
        why,
        f"gateway/{bound}",
        actor=who.actor,
        named=named[:64],
        events=len(events),
    )


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic schema with its `$defs` put in place (an OpenAPI request body has none)."""
    defs = schema.pop("$defs", {})

    def resolve(node: object) -> object:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved = resolve(schema)
    assert isinstance(resolved, dict)
    return resolved


_INGEST_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inlined(IngestBody.model_json_schema())},
            # One event per line (what gateways send); each line is an IngestEvent.
            LINES_MEDIA_TYPE: {"schema": _inlined(IngestEvent.model_json_schema())},
        },
    }
}


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

    @api.post(
        "/events",
        response_model=IngestResult,
        operation_id="ingest_audit_events",
        openapi_extra=_INGEST_BODY_DOC,
    )
    def ingest_events(
        request: Request,
        who: GatewayCaller,
        events: Annotated[list[Canonical], Depends(_ingest_events)],
        report: Annotated[SpoolReport | None, Depends(_spool_report)],
        session: DbSession,
        response: Response,
    ) -> dict[str, int]:
        # Tells gateways they may send their lines as they are (see `core.audit`).
        response.headers["Accept-Post"] = f"application/json, {LINES_MEDIA_TYPE}"
        if who.gateway is not None:
            _speaks_for_itself(request, who, who.gateway, events, report)
        stored = audit.ingest(session, events)
        if report is not None:
            gateway_reports.record(session, who.actor, report, utcnow())
        return {"accepted": len(events), "stored": stored}

    return api
