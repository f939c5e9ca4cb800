"""`/api/v1/audit`: read the audit log (admins and auditors), verify its hash chain, and take
in the gateways' access decisions (gateway tokens; each event stored once, by event_id)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from zerogate.control.deps import AnyCaller, DbSession, GatewayCaller
from zerogate.control.errors import COMMON_RESPONSES
from zerogate.core.audit import AuditRecord, Outcome, is_access_decision
from zerogate.core.spool_report import SPOOL_HEADER, SpoolReport
from zerogate.store import audit, gateway_reports
from zerogate.store.models import utcnow

log = logging.getLogger("zerogate.control.audit")

Text = Annotated[str | None, Query(max_length=300, pattern=r"^[^\x00-\x1f\x7f]*$")]
MAX_INGEST = 5_000  # events per request; a gateway ships batches of up to 2,000
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


# --- the ingest fast path -----------------------------------------------------------------------
# Gateways send thousands of events a second, and pydantic's validation of them cost more
# than storing them. So a well-formed batch, the usual case, is checked here by hand, to the
# same rules; anything this path is not sure of (an error, or merely an unusual spelling) is
# validated again by `IngestBody`, whose answer, errors and their wording included, is the one
# that counts. The fast path may therefore only accept what `IngestBody` accepts, with the same
# values: it is deliberately narrower.

_EVENT_ID = re.compile(r"[0-9a-f]{32}|[A-Za-z0-9_-]{8,64}")
_NOT_PRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
# RFC 3339 as the gateways write it; other spellings pydantic accepts go the slow way.
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")  # lone surrogates: not every parser agrees
# orjson reads an integer beyond 64 bits as a float, so a body with a number of 20 digits or
# more goes the model's way, which keeps it exact. Found without a regular expression (slower
# than the parse itself): every digit becomes 0, every byte that may come just before a
# number (`:`, `,`, `[`, `-`, white space) becomes n, the rest a space; then one search for n
# and 20 zeros. Digits inside strings match only after one of those bytes, a false alarm that
# costs the slow path; the hexadecimal event ids never do.
_NUMBER_START = frozenset(b":,[- \t\r\n")
_DIGITS_ONLY = bytes(
    0x30 if 0x30 <= byte <= 0x39 else 0x6E if byte in _NUMBER_START else 0x20 for byte in range(256)
)
_LONG_NUMBER = b"n" + b"0" * 20
_EVENT_KEYS = frozenset(IngestEvent.model_fields)
_TEXTS = (("actor", 200), ("action", 64), ("target", 300))


class _NotSure(Exception):
    """The fast path cannot vouch for this body; `IngestBody` decides."""


def _shallow(value: dict[str, object] | list[object], depth: int) -> bool:
    """Nested no deeper than MAX_DETAILS_DEPTH (the same count as `_plain_json`). The JSON
    parser makes exact dicts and lists, so `type(...) is` does (cheaper than isinstance)."""
    if depth > MAX_DETAILS_DEPTH:
        return False
    children: Iterable[object] = value.values() if type(value) is dict else value
    for child in children:  # a plain loop: this runs for every value of every event
        kind = type(child)
        if (kind is dict or kind is list) and not _shallow(child, depth + 1):  # type: ignore[arg-type]
            return False
    return True


def _shallow_enough(details: dict[str, object]) -> bool:
    """`_shallow(details, 0)`, decided for most events by counting: nesting needs a bracket
    per level, so a text with few opening brackets (strings' included) cannot nest deeply.
    The count is of orjson's text, a C pass far cheaper than walking every value in Python."""
    try:
        text = orjson.dumps(details)
    except TypeError:  # orjson.JSONEncodeError: too deep for orjson, or a huge integer
        return _shallow(details, 0)
    return text.count(b"{") + text.count(b"[") <= MAX_DETAILS_DEPTH or _shallow(details, 0)


def _fast_event(raw: object) -> AuditRecord:
    if not isinstance(raw, dict) or raw.keys() != _EVENT_KEYS:
        raise _NotSure
    event_id, time, outcome, details = raw["event_id"], raw["time"], raw["outcome"], raw["details"]
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise _NotSure
    for key, longest in _TEXTS:
        text = raw[key]
        if not isinstance(text, str) or not text or len(text) > longest:
            raise _NotSure
        if _NOT_PRINTABLE.search(text):
            raise _NotSure
    if not is_access_decision(raw["action"]) or outcome not in ("success", "failure"):
        raise _NotSure
    if not isinstance(time, str) or not _TIME.fullmatch(time):
        raise _NotSure
    if type(details) is not dict or not _shallow_enough(details):
        raise _NotSure
    try:
        when = datetime.fromisoformat(time).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _NotSure from None
    return AuditRecord(
        event_id=event_id,
        time=when,
        actor=raw["actor"],
        action=raw["action"],
        target=raw["target"],
        outcome=Outcome(outcome),
        details=details,
    )


def parse_ingest(body: bytes) -> list[AuditRecord]:
    """The records of an ingest body, or RequestValidationError with what is wrong."""
    try:
        if _SURROGATE.search(body) or _LONG_NUMBER in body.translate(_DIGITS_ONLY):
            raise _NotSure
        # orjson refuses NaN, Infinity and numbers too large for a double (1e400), as standard
        # JSON does; Python's parser would let them through.
        raw: Any = orjson.loads(body)
        if not isinstance(raw, dict) or raw.keys() != {"events"}:
            raise _NotSure
        events = raw["events"]
        if not isinstance(events, list) or len(events) > MAX_INGEST:
            raise _NotSure
        return [_fast_event(event) for event in events]
    except (_NotSure, ValueError, RecursionError):
        pass
    try:
        checked = IngestBody.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None
    return [event.record() for event in checked.events]


async def _ingest_records(request: Request) -> list[AuditRecord]:
    return parse_ingest(await request.body())


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
        "content": {"application/json": {"schema": _inlined(IngestBody.model_json_schema())}},
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
        who: GatewayCaller,
        records: Annotated[list[AuditRecord], Depends(_ingest_records)],
        report: Annotated[SpoolReport | None, Depends(_spool_report)],
        session: DbSession,
    ) -> dict[str, int]:
        stored = audit.ingest(session, records)
        if report is not None:
            gateway_reports.record(session, who.actor, report, utcnow())
        return {"accepted": len(records), "stored": stored}

    return api
