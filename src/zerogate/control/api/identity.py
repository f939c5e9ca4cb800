"""`/api/v1/users/{username}/password`, `/api/v1/sessions`: credentials and sessions for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from zerogate.control.deps import AdminCaller, AnyCaller, DbSession
from zerogate.control.errors import COMMON_RESPONSES, NOT_FOUND
from zerogate.core.audit import AuditAction
from zerogate.core.identity.passwords import PasswordRejected
from zerogate.core.inventory.document import Problem
from zerogate.core.inventory.names import USERNAME_PATTERN
from zerogate.store import audit, credentials, sessions, signing_keys
from zerogate.store.errors import Invalid, NotFound
from zerogate.store.models import Session, User, utcnow

Username = Annotated[str, Path(pattern=USERNAME_PATTERN)]


class PasswordBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class SessionOut(BaseModel):
    handle: str
    username: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    amr: list[str]
    provider: str
    source_address: str
    user_agent: str


class RotatedKey(BaseModel):
    kid: str


class Revoked(BaseModel):
    revoked: int


def _user(session: DbSession, username: str) -> User:
    user = credentials.find_user(session, username)
    if user is None:
        raise NotFound("user", username)
    return user


def _out(row: Session, username: str) -> dict[str, object]:
    return {
        **{f: getattr(row, f) for f in SessionOut.model_fields if f != "username"},
        "username": username,
    }


def router() -> APIRouter:
    api = APIRouter(tags=["identity"], responses={**COMMON_RESPONSES, **NOT_FOUND})

    @api.post(
        "/users/{username}/password",
        status_code=204,
        response_class=Response,
        operation_id="set_password",
    )
    def set_password(
        username: Username, body: PasswordBody, who: AdminCaller, session: DbSession
    ) -> Response:
        user = _user(session, username)
        try:
            credentials.set_password(user, body.password)
        except PasswordRejected as exc:
            raise Invalid([Problem(("password",), str(exc))]) from None
        audit.record(session, who.actor, AuditAction.PASSWORD_SET, f"user/{username}")
        return Response(status_code=204)

    @api.post("/signing-keys/rotate", response_model=RotatedKey, operation_id="rotate_signing_key")
    def rotate_signing_key(
        request: Request, who: AdminCaller, session: DbSession
    ) -> dict[str, str]:
        sealer = request.app.state.portal.signing_sealer
        key = signing_keys.rotate(session, sealer, utcnow())
        audit.record(session, who.actor, AuditAction.SIGNING_KEY_ROTATE, f"signing-key/{key.kid}")
        return {"kid": key.kid}

    @api.get("/sessions", response_model=list[SessionOut], operation_id="list_sessions")
    def list_sessions(
        who: AnyCaller,
        session: DbSession,
        username: Annotated[str, Query(pattern=USERNAME_PATTERN)],
    ) -> list[dict[str, object]]:
        user = _user(session, username)
        return [_out(row, username) for row in sessions.for_user(session, user.id, utcnow())]

    @api.post(
        "/users/{username}/sessions/revoke",
        response_model=Revoked,
        operation_id="revoke_user_sessions",
    )
    def revoke_all(username: Username, who: AdminCaller, session: DbSession) -> dict[str, int]:
        user = _user(session, username)
        count = sessions.revoke_all(session, user.id, utcnow())
        audit.record(
            session, who.actor, AuditAction.LOGOUT_EVERYWHERE, f"user/{username}", sessions=count
        )
        return {"revoked": count}

    return api
