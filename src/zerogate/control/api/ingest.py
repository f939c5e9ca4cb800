"""The body of `POST /api/v1/audit/events`: a gateway's access decisions, checked to the
audit log's rules and made ready for the chain (`core.audit.Canonical`).

Two forms: a JSON object `{"events": [...]}` (`parse_ingest`), and newline-delimited JSON,
one event per line (`parse_ingest_lines`, `application/x-ndjson`), which is what gateways
send: their spool lines as they are. A gateway writes each line in the chain's canonical
form, so a line that is canonical is hashed and stored as it came, not decoded into a record
and encoded again.

`IngestEvent` is the judge: the fast paths here may only accept what it accepts, with the
same values, and anything they are not sure of goes its way, errors and their wording
included. Property tests hold them to that.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from zerogate.core.audit import (
    LINES_MEDIA_TYPE,
    AuditRecord,
    Canonical,
    Outcome,
    canonicalise,
    is_access_decision,
    named_gateway,
    orjson_wrote_canonical,
)

MAX_INGEST = 5_000  # events per request; a gateway ships batches of up to 2,000
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
MAX_DETAILS_DEPTH = 32


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


# --- the fast paths -----------------------------------------------------------------------------
# Gateways send thousands of events a second, and pydantic's validation of them cost more
# than storing them. So a well-formed batch, the usual case, is checked here by hand, to the
# same rules; anything this path is not sure of (an error, or merely an unusual spelling) is
# validated again by `IngestBody` or `IngestEvent`, whose answer, errors and their wording
# included, is the one that counts. The fast paths may therefore only accept what the models
# accept, with the same values: they are deliberately narrower.

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
    """`_shallow(details, 0)`, decided for most events by counting (`_shallow_as_written`)
    over orjson's text of them."""
    try:
        text = orjson.dumps(details)
    except TypeError:  # orjson.JSONEncodeError: too deep for orjson, or a huge integer
        return _shallow(details, 0)
    return _shallow_as_written(text, details)


def _shallow_as_written(text: bytes, details: dict[str, object]) -> bool:
    """`_shallow(details, 0)` for details written as the JSON `text`: nesting needs a bracket
    per level, so a text with few opening brackets (strings' included) cannot nest deeply.
    Counting them is a C pass far cheaper than walking every value in Python."""
    return text.count(b"{") + text.count(b"[") <= MAX_DETAILS_DEPTH or _shallow(details, 0)


def _fast_event(raw: object) -> AuditRecord:
    if not isinstance(raw, dict) or raw.keys() != _EVENT_KEYS:
        raise _NotSure
    details = raw["details"]
    when = _fast_fields(raw, _TIME)
    if type(details) is not dict or not _shallow_enough(details):
        raise _NotSure
    return AuditRecord(
        event_id=raw["event_id"],
        time=when,
        actor=raw["actor"],
        action=raw["action"],
        target=raw["target"],
        outcome=Outcome(raw["outcome"]),
        details=details,
    )


def _fast_fields(raw: dict[str, Any], spelling: re.Pattern[str]) -> datetime:
    """Check the fields of an event but its details, as `IngestEvent` would; its time, in
    UTC. The time must be written as `spelling` matches (a subset of what the model reads)."""
    event_id, time, outcome = raw["event_id"], raw["time"], raw["outcome"]
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
    if not isinstance(time, str) or not spelling.fullmatch(time):
        raise _NotSure
    try:
        return datetime.fromisoformat(time).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _NotSure from None


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


# --- newline-delimited events, as gateways send them -----------------------------------------
# A line in the chain's canonical form (`core.audit.canonical_parts`: sorted keys, no spaces,
# ASCII, the time in UTC with six fractional digits and "Z") is the very bytes the chain
# hashes. orjson reads it and writes it back; if that gives the same bytes, and orjson's
# spelling is the canonical one (`orjson_wrote_canonical`), the line is canonical, and its
# details are the text between its "details" and "event_id" keys. Those keys are found from
# the outside in: before the details stand only two strings, after them only strings, and a
# key's quotes cannot appear unescaped inside a JSON string.
_CANONICAL_TIME = re.compile(r"[1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_OUTCOMES = {str(outcome): outcome for outcome in Outcome}  # cheaper than calling the enum
_DETAILS_KEY = b',"details":'
_AFTER_DETAILS = b',"event_id":'


def _canonical_line(line: bytes) -> Canonical:
    if not orjson_wrote_canonical(line):
        raise _NotSure
    raw = orjson.loads(line)  # ValueError (JSONDecodeError) for what is not JSON
    if type(raw) is not dict or raw.keys() != _EVENT_KEYS:
        raise _NotSure
    if orjson.dumps(raw, option=orjson.OPT_SORT_KEYS) != line:  # TypeError: too deep
        raise _NotSure
    when = _fast_fields(raw, _CANONICAL_TIME)
    if type(raw["details"]) is not dict:
        raise _NotSure
    start = line.index(_DETAILS_KEY) + len(_DETAILS_KEY)
    details = line[start : line.rindex(_AFTER_DETAILS)]
    if not _shallow_as_written(details, raw["details"]):
        raise _NotSure
    return Canonical(
        event_id=raw["event_id"],
        time=when,
        actor=raw["actor"],
        action=raw["action"],
        target=raw["target"],
        outcome=_OUTCOMES[raw["outcome"]],
        details=details.decode("ascii"),
        text=line,
        gateway=named_gateway(raw["details"]),
    )


def _checked_line(index: int, line: bytes) -> Canonical:
    try:
        return _canonical_line(line)
    except (_NotSure, ValueError, TypeError, RecursionError):
        pass
    try:
        event = IngestEvent.model_validate_json(line)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", index, *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None
    return canonicalise(event.record())


def parse_ingest_lines(body: bytes) -> list[Canonical]:
    """The events of a newline-delimited body (a last newline is allowed, an empty body holds
    none), or RequestValidationError with what is wrong: the line's index and field."""
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if len(lines) > MAX_INGEST:
        raise RequestValidationError(
            [
                {
                    "type": "too_long",
                    "loc": ("body",),
                    "msg": f"at most {MAX_INGEST} events in one request",
                    "input": None,
                }
            ]
        )
    return [_checked_line(index, line) for index, line in enumerate(lines)]


def parse_ingest_body(body: bytes, content_type: str | None) -> list[Canonical]:
    """The events of an ingest body in either form, by its media type."""
    media = (content_type or "").partition(";")[0].strip().lower()
    if media == LINES_MEDIA_TYPE:
        return parse_ingest_lines(body)
    return [canonicalise(record) for record in parse_ingest(body)]
