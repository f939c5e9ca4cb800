"""Gateways' access decisions into the audit log: `POST /api/v1/audit/events`.

Each event is stored once however often it is sent, only gateway tokens may send, only
`access.*` events are taken, and the hash chain keeps verifying. The end-to-end test ships a
real on-disk spool through the API and reopens it, as a restarted gateway would.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import Control, bearer  # type: ignore[import-not-found]
from zerogate.core.audit import LINES_MEDIA_TYPE, AuditRecord, canonical, chain_hash_of
from zerogate.core.policy.model import (
    App,
    Decision,
    Effect,
    Reason,
    ReasonCode,
    RequestContext,
)
from zerogate.core.policy.replay import access_event
from zerogate.core.spool_report import SPOOL_HEADER
from zerogate.gateway.spool import AsyncShipper, Spool, to_json

URL = "/api/v1/audit/events"
START = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def _decision(user: str, n: int, effect: Effect = Effect.ALLOW) -> AuditRecord:
    ctx = RequestContext(
        user=user,
        app=App("wiki"),
        now=START + timedelta(seconds=n, microseconds=n),
        source_ip=ipaddress.ip_address("198.18.0.7"),
        groups=frozenset({"staff"}),
        method="GET",
        path=f"/page/{n}",
    )
    reasons = () if effect is Effect.ALLOW else (Reason(ReasonCode.NO_MATCHING_RULE, "no rule"),)
    decision = Decision(effect, "staff-wiki" if effect is Effect.ALLOW else None, reasons)
    return access_event(ctx, decision, policy_version=3, gateway="gw-1", event_id=uuid.uuid4().hex)


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def _gateway_token(control: Control, bound: str | None = None) -> dict[str, str]:
    asked: dict[str, object] = {"name": "gw", "scope": "gateway"}
    if bound is not None:
        asked["gateway"] = bound
    response = control.client.post("/api/v1/tokens", json=asked, headers=control.admin)
    assert response.status_code == 201, response.text
    return bearer(response.json()["token"])


def _stored(control: Control) -> list[dict[str, object]]:
    response = control.client.get(
        "/api/v1/audit/events",
        params={"action": "access.decision", "limit": 1000},
        headers=control.auditor,
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, object]] = response.json()
    return events


def _intact(control: Control) -> bool:
    response = control.client.get("/api/v1/audit/verify", headers=control.auditor)
    assert response.status_code == 200, response.text
    assert response.json()["first_broken_seq"] is None
    return bool(response.json()["intact"])


def test_ingest_stores_each_event_once(control: Control) -> None:
    gateway = _gateway_token(control)
    records = [_decision("alice", n) for n in range(5)] + [_decision("bob", 9, Effect.DENY)]
    body = {"events": [to_json(record) for record in records]}

    first = control.client.post(URL, json=body, headers=gateway)
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 6, "stored": 6}
    again = control.client.post(URL, json=body, headers=gateway)
    assert again.json() == {"accepted": 6, "stored": 0}
    # A retried batch overlapping a new one, with a repeat inside the request itself.
    fresh = _decision("carol", 20)
    mixed = {"events": [to_json(fresh), to_json(records[0]), to_json(fresh)]}
    assert control.client.post(URL, json=mixed, headers=gateway).json() == {
        "accepted": 3,
        "stored": 1,
    }

    stored = _stored(control)
    ids = [str(event["event_id"]) for event in stored]
    assert sorted(ids) == sorted(r.event_id for r in [*records, fresh])
    assert len(ids) == len(set(ids))
    denied = next(event for event in stored if event["event_id"] == records[-1].event_id)
    assert denied["outcome"] == "failure"
    assert denied["actor"] == "user:bob"
    assert denied["target"] == "app/wiki"
    assert denied["details"] == to_json(records[-1])["details"]
    assert datetime.fromisoformat(str(denied["time"])) == records[-1].time
    assert _intact(control)


def test_a_gateway_s_lines_are_hashed_as_they_came(control: Control) -> None:
    """One event per line (`application/x-ndjson`), as gateways send their spools: each line,
    in the canonical form, is the very bytes its link of the chain hashes."""
    gateway = _gateway_token(control)
    records = [_decision("alice", n) for n in range(3)] + [_decision("bob", 9, Effect.DENY)]
    lines = [canonical(record) for record in records]
    as_lines = {**gateway, "content-type": LINES_MEDIA_TYPE}

    first = control.client.post(URL, content=b"\n".join(lines) + b"\n", headers=as_lines)
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 4, "stored": 4}
    assert LINES_MEDIA_TYPE in first.headers["accept-post"]  # what tells gateways to send lines
    again = control.client.post(URL, content=b"\n".join(lines), headers=as_lines)
    assert again.json() == {"accepted": 4, "stored": 0}
    enveloped = b'{"events":[' + b",".join(lines) + b"]}"  # the same events as JSON
    assert control.client.post(URL, content=enveloped, headers=gateway).json()["stored"] == 0

    stored = sorted(_stored(control), key=lambda event: int(str(event["seq"])))
    assert [event["event_id"] for event in stored] == [record.event_id for record in records]
    for before, event, line in zip(stored, stored[1:], lines[1:], strict=False):
        assert event["hash"] == chain_hash_of(str(before["hash"]), int(str(event["seq"])), line)
    assert stored[-1]["details"] == to_json(records[-1])["details"]
    assert stored[-1]["outcome"] == "failure"

    forged = canonical(replace(_decision("mallory", 2), action="policy.push"))
    response = control.client.post(URL, content=lines[0] + b"\n" + forged, headers=as_lines)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][:3] == ["body", 1, "action"]
    assert len(_stored(control)) == 4
    assert _intact(control)


def _shipping(spool: Spool, token: str, transport: httpx.ASGITransport) -> AsyncShipper:
    """The real shipper, started on the running loop, posting to the control plane in-process."""
    shipper = AsyncShipper(
        spool,
        "https://control.test",
        token,
        ssl.create_default_context(),
        interval=0.01,
        transport=transport,
    )
    shipper.start(asyncio.get_running_loop())
    return shipper


def test_a_gateway_s_shipper_sends_lines_once_told_it_may(control: Control, tmp_path: Path) -> None:
    """The real shipper and the real control plane (in-process, over ASGI): the first post,
    a report, goes as JSON; its answer's Accept-Post lists lines, and the events go as lines."""
    token = _gateway_token(control)["Authorization"].removeprefix("Bearer ")
    records = [_decision("alice", n) for n in range(5)]
    forms: list[str] = []

    class Recording(httpx.ASGITransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            forms.append(request.headers["content-type"])
            return await super().handle_async_request(request)

    async def ship() -> None:
        with Spool(tmp_path / "spool") as spool:
            shipper = _shipping(spool, token, Recording(app=control.app))
            while not forms:
                await asyncio.sleep(0.01)
            for record in records:
                spool.append(record)
            while len(await asyncio.to_thread(_stored, control)) < len(records):
                await asyncio.sleep(0.05)
            await shipper.stop()

    asyncio.run(asyncio.wait_for(ship(), timeout=60))
    assert forms[0] == "application/json"  # the first report, before any answer
    assert LINES_MEDIA_TYPE in forms[1:]
    assert sorted(str(e["event_id"]) for e in _stored(control)) == sorted(
        r.event_id for r in records
    )
    assert _intact(control)


def test_only_gateway_tokens_may_ingest(control: Control) -> None:
    body = {"events": [to_json(_decision("alice", 1))]}
    assert control.client.post(URL, json=body, headers=control.admin).status_code == 403
    assert control.client.post(URL, json=body, headers=control.auditor).status_code == 403
    assert control.client.post(URL, json=body).status_code == 401
    assert _stored(control) == []


def test_gateways_cannot_forge_other_actions(control: Control) -> None:
    gateway = _gateway_token(control)
    good = to_json(_decision("alice", 1))
    forged = {**to_json(_decision("mallory", 2)), "action": "policy.push"}
    response = control.client.post(URL, json={"events": [good, forged]}, headers=gateway)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][:3] == ["body", "events", 1]
    assert _stored(control) == []  # the whole request is refused, the good event too


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", "short"),
        ("event_id", "x" * 65),
        ("event_id", "has space in it"),
        ("time", "2025-03-01T09:30:00"),  # naive: whose clock?
        ("time", "9999-12-31T23:59:59-12:00"),  # beyond year 9999 in UTC
        ("actor", "a" * 201),
        ("target", "t" * 301),
        ("target", "app/wiki\n"),
        ("action", "access." + "x" * 58),
        ("outcome", "maybe"),
        ("details", ["not", "an", "object"]),
        ("details", {"a": _nested(40)}),  # its canonical JSON must serialise anywhere
        ("extra", "unknown fields are refused"),
    ],
)
def test_malformed_events_are_refused(control: Control, field: str, value: object) -> None:
    gateway = _gateway_token(control)
    event = {**to_json(_decision("alice", 1)), field: value}
    response = control.client.post(URL, json={"events": [event]}, headers=gateway)
    assert response.status_code == 422, response.text
    assert _stored(control) == []


def test_details_must_be_standard_json(control: Control) -> None:
    # Python's parser takes NaN, which no other JSON reader would: the chain's canonical
    # form could not be verified elsewhere.
    gateway = _gateway_token(control)
    event = json.dumps({**to_json(_decision("alice", 1)), "details": {"risk": float("nan")}})
    response = control.client.post(
        URL,
        content=f'{{"events": [{event}]}}',
        headers={**gateway, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert _stored(control) == []


def test_a_request_holds_at_most_5000_events(control: Control) -> None:
    gateway = _gateway_token(control)
    event = to_json(_decision("alice", 1))
    events = [{**event, "event_id": f"{n:032x}"} for n in range(5001)]
    response = control.client.post(URL, json={"events": events}, headers=gateway)
    assert response.status_code == 422
    response = control.client.post(URL, json={"events": events[:5000]}, headers=gateway)
    assert response.json() == {"accepted": 5000, "stored": 5000}
    assert _intact(control)


def test_spool_ships_through_the_api_exactly_once(control: Control, tmp_path: Path) -> None:
    gateway = _gateway_token(control)

    def send(records: list[AuditRecord]) -> None:
        response = control.client.post(
            URL, json={"events": [to_json(record) for record in records]}, headers=gateway
        )
        response.raise_for_status()

    records = [_decision("alice", n) for n in range(25)]
    with Spool(tmp_path / "spool") as spool:
        for record in records[:20]:
            spool.append(record)
        spool.flush()
        assert spool.ship_once(send, batch=8) == 8
        # A crash after the control plane stored a batch but before the cursor moved:
        # the batch is sent again and the control plane keeps one copy.
        again, _ = spool.read_unshipped(8)
        send(again)
        for record in records[20:]:
            spool.append(record)
    with Spool(tmp_path / "spool") as spool:
        shipped = 0
        while sent := spool.ship_once(send, batch=8):
            shipped += sent
        assert shipped == 17
    with Spool(tmp_path / "spool") as spool:
        assert spool.ship_once(send) == 0

    ids = [str(event["event_id"]) for event in _stored(control)]
    assert sorted(ids) == sorted(r.event_id for r in records)
    assert _intact(control)


def _report(**changes: object) -> dict[str, str]:
    state = {
        "gateway": "edge", "worker": 2, "accepting": True, "backlog_bytes": 4096,
        "max_bytes": 1 << 30, "refused": 0,
    }  # fmt: skip
    return {SPOOL_HEADER: json.dumps({**state, **changes})}


def _spools(control: Control) -> list[dict[str, object]]:
    response = control.client.get("/api/v1/status/gateways", headers=control.auditor)
    assert response.status_code == 200, response.text
    return [w for g in response.json() if g["gateway"] == "edge" for w in g["audit"]]


def _changes(control: Control) -> list[tuple[str, str, str, object]]:
    found = []
    for action in ("gateway.refusing", "gateway.accepting"):
        response = control.client.get(
            "/api/v1/audit/events", params={"action": action}, headers=control.auditor
        )
        found += [(e["action"], e["target"], e["outcome"], e["seq"]) for e in response.json()]
    return [change[:3] for change in sorted(found, key=lambda change: change[3])]  # type: ignore[return-value]


def test_a_gateway_reports_its_spool_with_its_events(
    control: Control, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = _gateway_token(control)
    body = {"events": [to_json(_decision("alice", 1))]}
    refusing = _report(accepting=False, refusal="the audit spool is full", refused=7)
    assert control.client.post(URL, json=body, headers={**gateway, **refusing}).status_code == 200
    (spool,) = _spools(control)
    assert (spool["worker"], spool["accepting"], spool["refused"]) == (2, False, 7)
    assert spool["refusal"] == "the audit spool is full" and spool["stale"] is False
    metrics = control.client.get("/metrics").text
    assert 'zerogate_gateway_audit_accepting{gateway="edge",worker="2"} 0.0' in metrics
    assert 'zerogate_gateway_audit_backlog_bytes{gateway="edge",worker="2"} 4096.0' in metrics
    # The same state again (a heartbeat, no events) is no new change; accepting again is.
    empty = {"events": []}
    assert control.client.post(URL, json=empty, headers={**gateway, **refusing}).status_code == 200
    assert control.client.post(URL, json=empty, headers={**gateway, **_report()}).status_code == 200
    assert _changes(control) == [
        ("gateway.refusing", "gateway/edge/2", "failure"),
        ("gateway.accepting", "gateway/edge/2", "success"),
    ]
    assert _spools(control)[0]["accepting"] is True
    # A malformed report is ignored and logged; the events it came with are still stored.
    for bad in (_report(worker=-1), {SPOOL_HEADER: "{not json"}):
        later = {"events": [to_json(_decision("bob", 2))]}
        response = control.client.post(URL, json=later, headers={**gateway, **bad})
        assert response.json() == {"accepted": 1, "stored": 1}
    assert "ignored a malformed x-zerogate-spool header" in caplog.text
    assert [s["accepting"] for s in _spools(control)] == [True]
    assert len(_stored(control)) == 3
    assert _intact(control)


def _named(user: str, n: int, gateway: str) -> AuditRecord:
    record = _decision(user, n)
    return replace(record, details={**record.details, "gateway": gateway})


def test_a_bound_gateway_token_speaks_only_for_its_gateway(control: Control) -> None:
    """A token bound to gateway `gw` ships events of `gw` and of its workers (`gw-0`,
    `gw-1`), in either form. A batch with one event naming another gateway (or none), or a
    spool report for another, is refused whole (403, with what to do), audited, and stores
    nothing: the gateway keeps those events in its spool and retries."""
    bound = _gateway_token(control, "gw")
    ours = [_named("alice", 1, "gw"), _named("alice", 2, "gw-0"), _named("bob", 3, "gw-12")]
    as_lines = {**bound, "content-type": LINES_MEDIA_TYPE}
    sent = control.client.post(
        URL, content=b"\n".join(canonical(r) for r in ours[:2]), headers=as_lines
    )
    assert sent.json() == {"accepted": 2, "stored": 2}
    enveloped = {"events": [to_json(ours[2])]}
    assert control.client.post(URL, json=enveloped, headers=bound).json()["stored"] == 1

    for other in ("gw-east", "edge", "gw-", "gw-1x", "xgw"):
        stray = _named("mallory", 9, other)
        for body, headers in (
            (b"\n".join([canonical(ours[0]), canonical(stray)]), as_lines),
            (json.dumps({"events": [to_json(stray)]}).encode(), bound),
        ):
            response = control.client.post(URL, content=body, headers=headers)
            assert response.status_code == 403, (other, response.text)
            assert "speaks for gateway 'gw'" in response.text and repr(other) in response.text
    unnamed = _decision("mallory", 10)
    unnamed = replace(unnamed, details={k: v for k, v in unnamed.details.items() if k != "gateway"})
    assert control.client.post(URL, content=canonical(unnamed), headers=as_lines).status_code == 403
    report = _report(gateway="edge", worker=0)
    refused = control.client.post(URL, json=enveloped, headers={**bound, **report})
    assert refused.status_code == 403 and "'edge'" in refused.text
    assert _spools(control) == []  # the report was not taken either

    assert sorted(str(e["event_id"]) for e in _stored(control)) == sorted(r.event_id for r in ours)
    audited = control.client.get(
        "/api/v1/audit/events", params={"action": "gateway.misnamed"}, headers=control.auditor
    ).json()
    assert len(audited) == 12 and {e["target"] for e in audited} == {"gateway/gw"}
    assert {e["details"]["named"] for e in audited} >= {"gw-east", "edge", "no gateway"}
    assert all(str(e["actor"]).startswith("token:gw:") for e in audited)
    # An unbound token (made before tokens were bound) may still name any gateway.
    unbound = _gateway_token(control)
    stray = {"events": [to_json(_named("carol", 11, "edge"))]}
    assert control.client.post(URL, json=stray, headers=unbound).json()["stored"] == 1
    assert _intact(control)


@pytest.mark.parametrize("scope", ["admin", "auditor", "scim"])
def test_only_a_gateway_token_is_bound_to_a_gateway(control: Control, scope: str) -> None:
    response = control.client.post(
        "/api/v1/tokens",
        json={"name": "odd", "scope": scope, "gateway": "gw"},
        headers=control.admin,
    )
    assert response.status_code == 422
    assert "only a token with the gateway scope" in response.text
    bad_name = {"name": "gw", "scope": "gateway", "gateway": "no spaces"}
    assert (
        control.client.post("/api/v1/tokens", json=bad_name, headers=control.admin).status_code
        == 422
    )


def test_a_misnamed_gateway_s_events_stay_in_its_spool(control: Control, tmp_path: Path) -> None:
    """The real shipper with a token bound to another gateway: its batches are refused, and
    its events stay in its spool, unshipped, to be sent once its name or token is right."""
    token = _gateway_token(control, "gw")["Authorization"].removeprefix("Bearer ")
    records = [_named("alice", n, "gw-east") for n in range(3)]

    def refusals() -> int:
        return len(
            control.client.get(
                "/api/v1/audit/events",
                params={"action": "gateway.misnamed"},
                headers=control.auditor,
            ).json()
        )

    async def ship() -> list[bytes]:
        with Spool(tmp_path / "spool") as spool:
            for record in records:
                spool.append(record)
            spool.flush()
            shipper = _shipping(spool, token, httpx.ASGITransport(app=control.app))
            while await asyncio.to_thread(refusals) == 0:
                await asyncio.sleep(0.02)
            await shipper.stop()
            lines, _cursor = spool.read_unshipped_lines(100)
            return lines

    left = asyncio.run(asyncio.wait_for(ship(), timeout=60))
    assert _stored(control) == []
    assert [json.loads(line)["event_id"] for line in left] == [r.event_id for r in records]
