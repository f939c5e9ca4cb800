"""The control plane's token endpoints: the JWKS every gateway verifies against, and access
tokens minted for a signed-in session, one audience (application) at a time.

Login state is shared by the session cookie; each application still gets its own
audience-bound, short-lived token, so a token stolen from one app is useless at another.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from zerogate.control.deps import CONTROL_AUDIENCE, issuer_of
from zerogate.control.portal import web
from zerogate.control.portal.account import current
from zerogate.core.tokens import AccessClaims, issue_access_token, jwks, new_token_id
from zerogate.store import signing_keys
from zerogate.store.db import Database
from zerogate.store.models import Application, utcnow


def router(db_factory: Database, config: web.PortalConfig) -> APIRouter:
    api = APIRouter(include_in_schema=False)

    @api.get("/.well-known/jwks.json")
    def jwks_document() -> Response:
        with db_factory.transaction() as db:
            keys = signing_keys.published(db, config.signing_sealer, utcnow())
        response = JSONResponse(jwks(keys))
        response.headers["Cache-Control"] = "public, max-age=60"
        return response

    @api.post("/portal/token")
    def mint(
        request: Request,
        audience: Annotated[str, Form(max_length=64)],
        csrf: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        web.check_csrf(request, csrf)
        now = utcnow()
        with db_factory.transaction() as db:
            found = current(db, request, config)
            if found is None:
                return JSONResponse({"error": "login_required"}, status_code=401)
            known = (
                audience == CONTROL_AUDIENCE
                or db.scalars(select(Application.id).where(Application.name == audience)).first()
            )
            if not known:
                return JSONResponse({"error": "unknown_audience"}, status_code=400)
            row, user = found
            claims = AccessClaims(
                issuer=issuer_of(request),
                subject=f"user:{user.username}",
                audience=audience,
                session_id=row.handle,
                principal_kind=user.kind,
                username=user.username,
                groups=tuple(g.name for g in user.groups),
                auth_time=row.auth_time,
                mfa_time=row.mfa_time,
                amr=tuple(row.amr),
                issued_at=now,
                expires_at=now + signing_keys.ACCESS_TOKEN_LIFETIME,
                token_id=new_token_id(),
                cnf_x5t_s256=None,
            )
            token = issue_access_token(signing_keys.current(db, config.signing_sealer, now), claims)
        expires = int(signing_keys.ACCESS_TOKEN_LIFETIME.total_seconds())
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": expires})

    return api
