"""`/api/v1/policy`: policy versions (push, list, show with diff, rollback) and what-if.

The what-if answers the question "what would the policy in force decide for this user on
this app, from this address, at this time?" with the effect, the deciding rule and every
reason — the same `Decision` the gateways will produce.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from zerogate.control.deps import AdminCaller, AnyCaller, DbSession
from zerogate.control.errors import COMMON_RESPONSES, NOT_FOUND
from zerogate.core.inventory.document import Problem
from zerogate.core.inventory.names import NAME_PATTERN, USERNAME_PATTERN, Text
from zerogate.core.policy.compile import compile_policy
from zerogate.core.policy.model import App, Decision, Mode, PrincipalKind, RequestContext
from zerogate.core.policy.nodes import PolicyErrors
from zerogate.store import credentials, policies
from zerogate.store.errors import Invalid, NotFound
from zerogate.store.models import Application, PolicyVersion, utcnow

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
        user = credentials.find_user(session, body.user)
        if user is None:
            raise NotFound("user", body.user)
        app = session.query(Application).filter(Application.name == body.app).first()
        if app is None:
            raise NotFound("application", body.app)
        number, policy = policies.current_policy(session)
        target = App(name=app.name, tags=frozenset(app.tags), mode=Mode(app.mode))
        context = RequestContext(
            user=user.username,
            app=target,
            now=body.at or utcnow(),
            source_ip=body.source_ip,
            groups=frozenset(g.name for g in user.groups),
            department=user.department.name if user.department else None,
            office=user.office.name if user.office else None,
            principal=PrincipalKind.SERVICE if user.kind == "service" else PrincipalKind.USER,
            method=body.method,
            path=body.path,
            mfa_time=body.mfa_at,
            auth_time=body.at or utcnow(),
        )
        return _decision(number, compile_policy(policy, [target]).decide(context))

    return api
