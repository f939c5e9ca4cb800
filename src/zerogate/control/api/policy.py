"""`/api/v1/policy`: policy versions (push, list, show with diff, rollback) and what-if.

The what-if answers the question "what would the policy in force decide for this user on
this app, from this address, at this time?" with the effect, the deciding rule and every
reason — the same `Decision` the gateways will produce.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from zerogate.control.deps import AdminCaller, AnyCaller, DbSession, SnapshotReader, issuer_of
from zerogate.control.errors import COMMON_RESPONSES, NOT_FOUND
from zerogate.control.snapshot_feed import SerialWatch
from zerogate.core.inventory.document import Problem
from zerogate.core.inventory.names import NAME_PATTERN, USERNAME_PATTERN, Text
from zerogate.core.policy.compile import compile_policy
from zerogate.core.policy.graph import (
    Grant,
    Principal,
    device_shortfalls,
    reachable_apps,
    who_can_reach,
)
from zerogate.core.policy.model import (
    App,
    Decision,
    Effect,
    Mode,
    Policy,
    PrincipalKind,
    RequestContext,
)
from zerogate.core.policy.nodes import PolicyErrors
from zerogate.core.policy.parse import parse_policy
from zerogate.core.policy.replay import RecordedDecision, impact, recorded_decision
from zerogate.store import audit, credentials, devices, policies, snapshots
from zerogate.store.db import Database
from zerogate.store.errors import Invalid, NotFound
from zerogate.store.models import Application, PolicyVersion, User, utcnow

Number = Annotated[int, Path(ge=1, le=2**31)]


class PushBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Annotated[str, Field(max_length=5_000_000)]
    comment: Text = ""


class VersionOut(BaseModel):
    version: int
    author: str
    comment: str
    created_at: datetime


class VersionDetail(VersionOut):
    source: str
    diff: str


class CheckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: Annotated[str, Field(pattern=USERNAME_PATTERN)]
    app: Annotated[str, Field(pattern=NAME_PATTERN)]
    source_ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address("127.0.0.1")
    at: AwareDatetime | None = None
    method: Annotated[str, Field(pattern=r"^[A-Z]{1,16}$")] | None = None
    path: Annotated[str, Field(max_length=2000, pattern=r"^/[^\x00-\x1f\x7f]*$")] | None = None
    mfa_at: AwareDatetime | None = None
    device: Annotated[str, Field(pattern=NAME_PATTERN)] | None = None  # its latest posture


class TestCase(CheckBody):
    name: Text = ""
    expect: Effect


class TestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Annotated[str, Field(max_length=5_000_000)] | None = None  # None: the policy in force
    cases: Annotated[list[TestCase], Field(min_length=1, max_length=10_000)]


class ImpactBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Annotated[str, Field(max_length=5_000_000)]
    days: Annotated[int, Field(ge=1, le=366)] = 7
    enforce: bool = False  # replay as if every app and rule enforced


class ChangeOut(BaseModel):
    user: str
    app: str
    before: str
    after: str
    rule: str | None
    reasons: list[str]
    count: int
    first_seen: datetime
    last_seen: datetime


class ImpactOut(BaseModel):
    replayed: int
    unreadable: int  # recorded events that are not replayable decisions
    since: datetime
    changes: list[ChangeOut]


class ReasonOut(BaseModel):
    code: str
    text: str
    rule: str | None


class CheckOut(BaseModel):
    policy_version: int
    effect: str
    rule: str | None
    reasons: list[ReasonOut]
    would_be: str | None
    would_be_rule: str | None
    monitored: bool


class CaseResult(CheckOut):
    name: str
    expected: str
    passed: bool


class TestOut(BaseModel):
    policy_version: int  # 0 when a candidate source was tested
    passed: bool
    results: list[CaseResult]


class GrantOut(BaseModel):
    app: str
    rules: list[str]
    conditional: bool
    monitor: bool


class DeviceGrantOut(GrantOut):
    device_ready: bool  # some granting rule's device conditions hold for it today
    device_reasons: list[str]  # otherwise, every device condition that fails


class DeviceAccess(BaseModel):
    policy_version: int
    device: str
    user: str | None  # its owner; a device without one reaches nothing
    apps: list[DeviceGrantOut]


class UserAccess(BaseModel):
    policy_version: int
    user: str
    apps: list[GrantOut]


class AudienceOut(BaseModel):
    rule: str
    everyone: bool
    users: list[str]
    groups: list[str]
    departments: list[str]
    offices: list[str]
    conditional: bool


class AppAccess(BaseModel):
    policy_version: int
    app: str
    monitor: bool
    audience: list[AudienceOut]


UsernamePath = Annotated[str, Path(pattern=USERNAME_PATTERN)]
AppPath = Annotated[str, Path(pattern=NAME_PATTERN)]
DevicePath = Annotated[str, Path(pattern=NAME_PATTERN)]


def _version(row: PolicyVersion) -> dict[str, object]:
    return {f: getattr(row, f) for f in VersionOut.model_fields}


def _refused(exc: PolicyErrors) -> Invalid:
    return Invalid(
        [
            Problem(("source", e.line, e.column), f"{e.path}: {e.message}" if e.path else e.message)
            for e in exc.errors
        ]
    )


def _decision(version: int, decision: Decision) -> dict[str, object]:
    return {
        "policy_version": version,
        "effect": str(decision.effect),
        "rule": decision.rule,
        "reasons": [
            {"code": str(r.code), "text": r.text, "rule": r.rule} for r in decision.reasons
        ],
        "would_be": str(decision.would_be) if decision.would_be else None,
        "would_be_rule": decision.would_be_rule,
        "monitored": decision.monitored,
    }


def _context(session: Session, body: CheckBody) -> RequestContext:
    """A request as the gateway would see it, from the inventory and the question asked."""
    user = credentials.find_user(session, body.user)
    if user is None:
        raise NotFound("user", body.user)
    app = session.scalars(select(Application).where(Application.name == body.app)).first()
    if app is None:
        raise NotFound("application", body.app)
    now = body.at or utcnow()
    device = None
    if body.device is not None:
        row = devices.find(session, body.device)
        if row is None:
            raise NotFound("device", body.device)
        device = devices.policy_view(session, row, now)
    return RequestContext(
        user=user.username,
        app=App(name=app.name, tags=frozenset(app.tags), mode=Mode(app.mode)),
        now=now,
        source_ip=body.source_ip,
        groups=frozenset(g.name for g in user.groups),
        department=user.department.name if user.department else None,
        office=user.office.name if user.office else None,
        principal=PrincipalKind.SERVICE if user.kind == "service" else PrincipalKind.USER,
        method=body.method,
        path=body.path,
        mfa_time=body.mfa_at,
        device=device,
        auth_time=now,
    )


def _policy_under_test(session: Session, source: str | None) -> tuple[int, Policy]:
    """The policy in force, or a candidate (version 0) validated against the inventory."""
    if source is None:
        return policies.current_policy(session)
    try:
        return 0, parse_policy(source, policies.FILENAME, policies.known_names(session))
    except PolicyErrors as exc:
        raise _refused(exc) from None


def _grants(session: Session, policy: Policy, user: User) -> list[Grant]:
    principal = Principal(
        user=user.username,
        groups=frozenset(g.name for g in user.groups),
        department=user.department.name if user.department else None,
        office=user.office.name if user.office else None,
    )
    return reachable_apps(policy, principal, policies.inventory_apps(session))


def _grant(grant: Grant) -> dict[str, object]:
    return {
        "app": grant.app,
        "rules": list(grant.rules),
        "conditional": grant.conditional,
        "monitor": grant.monitor,
    }


def router() -> APIRouter:
    api = APIRouter(prefix="/policy", tags=["policy"], responses={**COMMON_RESPONSES, **NOT_FOUND})

    @api.post("/versions", status_code=201, response_model=VersionOut, operation_id="push_policy")
    def push(body: PushBody, who: AdminCaller, session: DbSession) -> dict[str, object]:
        try:
            return _version(
                policies.push(session, body.source, comment=body.comment, author=who.actor)
            )
        except PolicyErrors as exc:
            raise _refused(exc) from None

    @api.get("/versions", response_model=list[VersionOut], operation_id="list_policy_versions")
    def versions(
        who: AnyCaller, session: DbSession, limit: Annotated[int, Query(ge=1, le=1000)] = 50
    ) -> list[dict[str, object]]:
        return [_version(row) for row in policies.versions(session, limit)]

    @api.get("/versions/{number}", response_model=VersionDetail, operation_id="get_policy_version")
    def show(number: Number, who: AnyCaller, session: DbSession) -> dict[str, object]:
        row = policies.get(session, number)
        return {**_version(row), "source": row.source, "diff": policies.diff(session, row)}

    @api.post(
        "/versions/{number}/rollback",
        status_code=201,
        response_model=VersionOut,
        operation_id="rollback_policy",
    )
    def rollback(number: Number, who: AdminCaller, session: DbSession) -> dict[str, object]:
        try:
            return _version(policies.rollback(session, number, author=who.actor))
        except PolicyErrors as exc:  # the inventory changed since: the old version no longer fits
            raise _refused(exc) from None

    @api.post("/check", response_model=CheckOut, operation_id="check_policy")
    def check(body: CheckBody, who: AnyCaller, session: DbSession) -> dict[str, object]:
        number, compiled = policies.current_compiled(session)
        context = _context(session, body)
        return _decision(number, compiled.decide(context))

    @api.post("/test", response_model=TestOut, operation_id="test_policy")
    def test(body: TestBody, who: AnyCaller, session: DbSession) -> dict[str, object]:
        number, policy = _policy_under_test(session, body.source)
        compiled = compile_policy(policy)  # apps it does not name are resolved per case
        results = []
        for index, case in enumerate(body.cases):
            try:
                context = _context(session, case)
            except NotFound as exc:
                raise Invalid([Problem(("cases", index), str(exc))]) from None
            decision = compiled.decide(context)
            passed = str(decision.effect) == str(case.expect)
            name = case.name or f"case {index + 1}"
            results.append(
                {
                    **_decision(number, decision),
                    "name": name,
                    "expected": str(case.expect),
                    "passed": passed,
                }
            )
        return {
            "policy_version": number,
            "passed": all(r["passed"] for r in results),
            "results": results,
        }

    @api.post("/impact", response_model=ImpactOut, operation_id="policy_impact")
    def policy_impact(body: ImpactBody, who: AnyCaller, session: DbSession) -> dict[str, object]:
        """Replay the decisions of the last `days` against a candidate: what would change."""
        _, candidate = _policy_under_test(session, body.source)
        since = utcnow() - timedelta(days=body.days)
        counts = {"replayed": 0, "unreadable": 0}

        def recorded() -> Iterator[RecordedDecision]:
            for details in audit.access_decisions(session, since):
                try:
                    decision = recorded_decision(details)
                except ValueError:
                    counts["unreadable"] += 1
                    continue
                counts["replayed"] += 1
                yield decision

        inventory = policies.inventory_apps(session)
        changes = impact(candidate, recorded(), apps=inventory, enforce=body.enforce)
        return {
            **counts,
            "since": since,
            "changes": [
                {**asdict(c), "before": str(c.before), "after": str(c.after)} for c in changes
            ],
        }

    @api.get(
        "/snapshot",
        response_class=Response,
        operation_id="policy_snapshot",
        responses={
            200: {"content": {"application/jose": {"schema": {"type": "string"}}}},
            204: {"description": "nothing changed since the serial given"},
        },
    )
    async def snapshot(
        request: Request,
        who: SnapshotReader,
        since: Annotated[int | None, Query(ge=0, le=2**62)] = None,
        wait: Annotated[int, Query(ge=0, le=60)] = 0,
    ) -> Response:
        """The policy in force and the apps, signed (JWS, ES256) with a key of the JWKS.

        `since`: the serial the caller holds; 204 when nothing changed since. `wait`: hold
        the request up to that many seconds for a change (the gateways' long poll).
        """
        db: Database = request.app.state.db
        if since is not None:
            watch: SerialWatch = request.app.state.serial_watch
            if await watch.wait_past(since, wait) <= since:
                return Response(status_code=204)
        sealer = request.app.state.portal.signing_sealer
        issuer = issuer_of(request)

        def build() -> str:
            with db.transaction() as session:
                return snapshots.signed(session, sealer, issuer=issuer, now=utcnow())

        text = await run_in_threadpool(build)
        return Response(text, media_type="application/jose", headers={"Cache-Control": "no-store"})

    @api.get("/access/users/{username}", response_model=UserAccess, operation_id="user_access")
    def user_access(
        username: UsernamePath, who: AnyCaller, session: DbSession
    ) -> dict[str, object]:
        user = credentials.find_user(session, username)
        if user is None:
            raise NotFound("user", username)
        number, policy = policies.current_policy(session)
        apps = [_grant(g) for g in _grants(session, policy, user)]
        return {"policy_version": number, "user": username, "apps": apps}

    @api.get("/access/devices/{name}", response_model=DeviceAccess, operation_id="device_access")
    def device_access(name: DevicePath, who: AnyCaller, session: DbSession) -> dict[str, object]:
        row = devices.find(session, name)
        if row is None:
            raise NotFound("device", name)
        number, policy = policies.current_policy(session)
        if row.user is None:  # nobody signs in on it: it reaches nothing
            return {"policy_version": number, "device": name, "user": None, "apps": []}
        now = utcnow()
        device = devices.policy_view(session, row, now)
        apps = []
        for grant in _grants(session, policy, row.user):
            shortfalls = device_shortfalls(policy, grant, device, now)
            apps.append(
                {
                    **_grant(grant),
                    "device_ready": shortfalls is None,
                    "device_reasons": [str(r) for r in shortfalls or ()],
                }
            )
        return {"policy_version": number, "device": name, "user": row.user.username, "apps": apps}

    @api.get("/access/apps/{name}", response_model=AppAccess, operation_id="app_access")
    def app_access(name: AppPath, who: AnyCaller, session: DbSession) -> dict[str, object]:
        app = next((a for a in policies.inventory_apps(session) if a.name == name), None)
        if app is None:
            raise NotFound("application", name)
        number, policy = policies.current_policy(session)
        audience = [
            {
                "rule": a.rule,
                "everyone": a.subjects.everyone,
                "users": sorted(a.subjects.users),
                "groups": sorted(a.subjects.groups),
                "departments": sorted(a.subjects.departments),
                "offices": sorted(a.subjects.offices),
                "conditional": a.conditional,
            }
            for a in who_can_reach(policy, app)
        ]
        return {
            "policy_version": number,
            "app": name,
            "monitor": app.mode is Mode.MONITOR,
            "audience": audience,
        }

    return api
