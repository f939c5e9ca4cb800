"""The ingest fast paths: whatever they accept, the models accept too, with the same records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from zerogate.control.api.ingest import (
    MAX_DETAILS_DEPTH,
    MAX_INGEST,
    IngestBody,
    IngestEvent,
    _canonical_line,
    _fast_event,
    _NotSure,
    _shallow,
    _shallow_enough,
    parse_ingest,
    parse_ingest_body,
    parse_ingest_lines,
)
from zerogate.core.audit import AuditRecord, canonical, canonicalise

GOOD: dict[str, Any] = {
    "event_id": "0123456789abcdef0123456789abcdef",
    "time": "2026-11-24T01:21:33.364701+00:00",
    "actor": "user:alice",
    "action": "access.decision",
    "target": "app/wiki",
    "outcome": "success",
    "details": {"effect": "allow", "request": {"status": 200, "duration_ms": 0.5}},
}

texts = st.one_of(
    st.sampled_from(["user:alice", "access.decision", "policy.push", "", "a\x00b", "é", "x" * 301]),
    st.text(max_size=12),
)
times = st.one_of(
    st.sampled_from(
        [
            "2026-11-24T01:21:33Z",
            "2026-11-24T01:21:33.5+14:00",
            "2026-11-24T01:21:33",
            "2026-13-24T01:21:33Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-12:00",
            "20261124T012133Z",
            "2026-11-24 01:21:33Z",
            "2026-11-24T01:21:33.1234567Z",
        ]
    ),
    st.text(max_size=30),
    st.integers(),
)
ids = st.one_of(
    st.sampled_from(["0123456789abcdef0123456789abcdef", "short", "abc_DEF-123", "x" * 65, "a\n"]),
    st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    st.text(max_size=70),
)
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)
)
details = st.recursive(
    st.dictionaries(st.text(max_size=4), leaves, max_size=3),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=20,
)


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@settings(max_examples=400, deadline=None)
@given(  # each field is often the good value, so that whole events pass too
    event_id=st.one_of(st.just(GOOD["event_id"]), ids),
    time=st.one_of(st.just(GOOD["time"]), times),
    actor=st.one_of(st.just(GOOD["actor"]), texts),
    action=st.one_of(st.just(GOOD["action"]), texts),
    target=st.one_of(st.just(GOOD["target"]), texts),
    outcome=st.sampled_from(["success", "failure", "maybe", 1]),
    detail=st.one_of(details, st.just([]), st.just(_nested(MAX_DETAILS_DEPTH + 1))),
    drop=st.sampled_from([None, "actor", "details"]),
    extra=st.booleans(),
)
def test_the_fast_path_accepts_only_what_the_model_accepts(
    event_id: object,
    time: object,
    actor: object,
    action: object,
    target: object,
    outcome: object,
    detail: object,
    drop: str | None,
    extra: bool,
) -> None:
    event: dict[str, object] = {
        "event_id": event_id,
        "time": time,
        "actor": actor,
        "action": action,
        "target": target,
        "outcome": outcome,
        "details": detail,
    }
    if drop:
        del event[drop]
    if extra:
        event["more"] = 1
    raw = json.loads(json.dumps(event))  # what the parser would give
    try:
        fast = _fast_event(raw)
    except _NotSure:
        return
    model = IngestBody.model_validate_json(json.dumps({"events": [event]}))
    assert model.events[0].record() == fast


def test_a_good_batch_takes_the_fast_path_and_equals_the_model() -> None:
    body = json.dumps({"events": [GOOD, {**GOOD, "outcome": "failure"}]}).encode()
    assert [_fast_event(e) for e in json.loads(body)["events"]] == parse_ingest(body)
    assert parse_ingest(body) == [e.record() for e in IngestBody.model_validate_json(body).events]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b"not json", ["body"]),
        (json.dumps({"events": [{**GOOD, "action": "policy.push"}]}).encode(), "action"),
        (b'{"events":[' + json.dumps(GOOD).encode().replace(b"0.5", b"1e400") + b"]}", "details"),
        (b'{"events":[' + json.dumps(GOOD).encode().replace(b"0.5", b"NaN") + b"]}", "details"),
        (json.dumps({"events": [{**GOOD, "details": _nested(40)}]}).encode(), "details"),
        (json.dumps({"events": [{**GOOD, "time": "2026-11-24T01:21:33"}]}).encode(), "time"),
        (json.dumps({"events": [GOOD], "more": 1}).encode(), "more"),
    ],
)
def test_a_bad_body_gets_the_model_s_errors(body: bytes, loc: object) -> None:
    with pytest.raises(RequestValidationError) as caught:
        parse_ingest(body)
    locs = [error["loc"] for error in caught.value.errors()]
    assert all(where[0] == "body" for where in locs)
    if isinstance(loc, str):
        assert any(loc in where for where in locs), locs


def test_an_escaped_surrogate_goes_the_model_s_way() -> None:
    event = {**GOOD, "details": {"note": "\ud83d\ude00"}}  # a valid pair, escaped by dumps
    body = json.dumps({"events": [event]}).encode()
    assert parse_ingest(body) == [e.record() for e in IngestBody.model_validate_json(body).events]


@settings(max_examples=400, deadline=None)
@given(
    detail=st.one_of(details, st.just(_nested(MAX_DETAILS_DEPTH + 1))),
    big=st.integers(min_value=2**63 - 5, max_value=2**70),
    ascii_only=st.booleans(),
    spaced=st.booleans(),
)
def test_a_whole_body_parses_to_what_the_model_reads(
    detail: object, big: int, ascii_only: bool, spaced: bool
) -> None:
    """orjson reads the body on the fast path: its numbers, strings and refusals must be the
    model's (an integer past 64 bits would become a float there, so it goes the model's way)."""
    event = {**GOOD, "details": {"d": detail, "big": big}}
    body = json.dumps(
        {"events": [event, GOOD]},
        ensure_ascii=ascii_only,
        separators=(", ", ": ") if spaced else (",", ":"),
    ).encode()
    try:
        model = [e.record() for e in IngestBody.model_validate_json(body).events]
    except ValueError:
        with pytest.raises(RequestValidationError):
            parse_ingest(body)
        return
    assert parse_ingest(body) == model
    assert parse_ingest(body)[0].details["big"] == big  # exact, an int


def test_a_gateway_s_batch_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Event ids hold long runs of digits (a prefix, then a counter): no false alarm there."""

    def no_model(*_: object) -> object:
        raise AssertionError("the model was asked")

    events = [{**GOOD, "event_id": f"296bd9d1daa6{n:020d}"} for n in range(3)]
    body = json.dumps({"events": events}, separators=(",", ":")).encode()
    monkeypatch.setattr(IngestBody, "model_validate_json", no_model)
    assert [record.event_id for record in parse_ingest(body)] == [e["event_id"] for e in events]


@settings(max_examples=300, deadline=None)
@given(detail=st.one_of(details, st.integers(0, 40).map(_nested)))
def test_counting_brackets_decides_depth_as_the_walk_does(detail: object) -> None:
    value = detail if isinstance(detail, dict) else {"d": detail}
    assert _shallow_enough(value) == _shallow(value, 0)


# --- newline-delimited events ------------------------------------------------------------------


def _line(event: dict[str, Any], spelling: str) -> bytes:
    if spelling == "canonical":  # as gateways write them
        return json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    if spelling == "orjson":  # sorted too, but raw UTF-8 and orjson's floats
        return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    return json.dumps(event).encode()  # unsorted, spaced


CANONICAL_GOOD = {**GOOD, "time": "2026-11-24T01:21:33.364701Z"}


@settings(max_examples=500, deadline=None)
@given(
    vary=st.sampled_from([None, None, "event_id", "time", "actor", "action", "target", "outcome"]),
    event_id=ids,
    time=st.one_of(st.just("0999-01-01T00:00:00.000000Z"), times),
    text=texts,
    outcome=st.sampled_from(["maybe", 1]),
    detail=st.one_of(
        details,
        st.just([]),
        st.just(_nested(MAX_DETAILS_DEPTH + 1)),
        st.just({"event_id": "x", "l": [{"a": 1}, {"details": 2}]}),  # the keys, nested
        st.integers(2**63, 2**70).map(lambda big: {"big": big}),
    ),
    spelling=st.sampled_from(["canonical", "canonical", "orjson", "plain"]),
)
def test_a_line_taken_as_it_came_is_the_canonical_form_of_what_the_model_reads(
    vary: str | None,
    event_id: object,
    time: object,
    text: object,
    outcome: object,
    detail: object,
    spelling: str,
) -> None:
    """Each example is a good event with one field (or none) made odd, in one spelling."""
    odd = {"event_id": event_id, "time": time, "outcome": outcome}
    event = {**CANONICAL_GOOD, "details": detail}
    if vary is not None:
        event[vary] = odd.get(vary, text)
    try:
        line = _line(event, spelling)
    except TypeError:  # orjson: an integer past 64 bits
        return
    try:
        fast = _canonical_line(line)
    except (_NotSure, ValueError, TypeError):
        return
    model = IngestEvent.model_validate_json(line)
    assert fast == canonicalise(model.record())
    assert fast.text == line  # hashed as it came


def test_a_gateway_s_lines_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_model(*_: object) -> object:
        raise AssertionError("the model was asked")

    records = [
        AuditRecord(
            event_id=f"296bd9d1daa6{n:020d}",
            time=datetime(2026, 11, 24, 1, 2, 3, n, tzinfo=UTC),
            actor="user:alice",
            action="access.decision",
            target="app/type-1",  # "e-1": no alarm for the float spellings
            details={"request": {"duration_ms": 0.25, "path": "/page-2"}, "n": n},
        )
        for n in range(3)
    ]
    body = b"\n".join(canonical(record) for record in records) + b"\n"
    monkeypatch.setattr(IngestEvent, "model_validate_json", no_model)
    assert parse_ingest_lines(body) == [canonicalise(record) for record in records]


def test_lines_are_judged_each_by_the_model() -> None:
    good = _line(CANONICAL_GOOD, "canonical")
    spaced = _line({**GOOD, "event_id": "abcdefgh"}, "plain")  # not canonical, still valid
    events = parse_ingest_lines(good + b"\n" + spaced)
    assert [event.event_id for event in events] == [GOOD["event_id"], "abcdefgh"]
    assert events[1] == canonicalise(IngestEvent.model_validate_json(spaced).record())
    assert parse_ingest_lines(b"") == []
    bad = _line({**CANONICAL_GOOD, "action": "policy.push"}, "canonical")
    with pytest.raises(RequestValidationError) as caught:
        parse_ingest_lines(b"\n".join([good, good, bad, good]))
    assert [error["loc"][:3] for error in caught.value.errors()] == [("body", 2, "action")]
    with pytest.raises(RequestValidationError) as caught:
        parse_ingest_lines(good + b"\n\n" + good)  # an empty line is no event
    assert caught.value.errors()[0]["loc"][:2] == ("body", 1)
    with pytest.raises(RequestValidationError, match="at most"):
        parse_ingest_lines(b"\n".join([good] * (MAX_INGEST + 1)))


def test_the_media_type_chooses_the_form() -> None:
    line = _line(CANONICAL_GOOD, "canonical")
    as_lines = parse_ingest_body(line, "application/x-ndjson; charset=utf-8")
    as_json = parse_ingest_body(b'{"events":[' + line + b"]}", "application/json")
    assert as_lines == as_json == parse_ingest_body(b'{"events":[' + line + b"]}", None)
    with pytest.raises(RequestValidationError):
        parse_ingest_body(line, "application/json")  # a line is no JSON body
