"""The control plane's token endpoints: the JWKS every gateway verifies against, and access
tokens minted for a signed-in session, one audience (application) at a time.

Login state is shared by the session cookie; each application still gets its own
audience-bound, short-lived token, so a token stolen from one app is useless at another.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from zerogate.control.deps import CONTROL_AUDIENCE, issuer_of
from zerogate.control.portal import web
from zerogate.control.portal.account import current
from zerogate.core.tokens import AccessClaims, issue_access_token, jwks, new_token_id
from zerogate.store import signing_keys
from zerogate.store.db import Database
from zerogate.store.models import Application, Session, User, utcnow

_SECOND = timedelta(seconds=1)


def router(db_factory: Database, config: web.PortalConfig) -> APIRouter:
    api = APIRouter(include_in_schema=False)

    @api.get("/.well-known/jwks.json")
    def jwks_document() -> Response:
        with db_factory.transaction() as db:
            keys = signing_keys.published(db, config.signing_sealer, utcnow())
        response = JSONResponse(jwks(keys))
        response.headers["Cache-Control"] = "public, max-age=60"
        return response

    @api.get("/portal/authorize")
    def authorize(
        request: Request,
        app: Annotated[str, Query(max_length=64)],
        return_to: Annotated[str, Query(alias="return", max_length=2000)] = "",
        state: Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")] = "",
    ) -> Response:
        """A gateway sends a browser here for an app's token; it goes back with one.

        Signed in: a token for that app's audience, handed to the app's own hostname at
        `/.zerogate/callback` (the only place it may go: never an address the request names).
        Not signed in: to the login page first, which comes back here.
        """
        with db_factory.transaction() as db:
            target = db.scalars(
                select(Application).where(Application.name == app, Application.kind == "http")
            ).first()
            if target is None or not target.hostname:
                return web.render(
                    request, "message.html", 404, title="Not found", text="No such application."
                )
            found = current(db, request, config)
            if found is None:
                here = "/portal/authorize?" + urlencode(
                    {"app": app, "return": return_to, "state": state}
                )
                return RedirectResponse("/portal/login?" + urlencode({"next": here}), 303)
            row, user = found
            token = session_token(db, config, request, row, user, target.name)
            callback = _callback(target.hostname, return_to, token, state)
        response = RedirectResponse(callback, 303)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @api.post("/portal/token")
    def mint(
        request: Request,
        audience: Annotated[str, Form(max_length=64)],
        csrf: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        web.check_csrf(request, csrf)
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
            now = utcnow()
            token = session_token(db, config, request, row, user, audience)
        expires = int((token_expiry(now, row.expires_at) - now).total_seconds())
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": expires})

    return api


def token_expiry(now: datetime, session_ends: datetime) -> datetime:
    """When a token issued `now` expires: after its lifetime, or with its session if that
    ends sooner (but a second later at the earliest: a token's life is whole seconds)."""
    return max(min(now + signing_keys.ACCESS_TOKEN_LIFETIME, session_ends), now + _SECOND)


def session_token(
    db: Db,
    config: web.PortalConfig,
    request: Request,
    row: Session,
    user: User,
    audience: str,
    *,
    cnf_x5t_s256: str | None = None,
) -> str:
    """An access token for one audience from a live session (bound to a certificate if given).

    It expires with the session at the latest (`token_expiry`), and names when the session
    ends, so that a gateway can cut a WebSocket opened with it then."""
    now = utcnow()
    claims = AccessClaims(
        issuer=issuer_of(request),
        subject=f"user:{user.username}",
        audience=audience,
        session_id=row.handle,
        principal_kind=user.kind,
        username=user.username,
        groups=tuple(g.name for g in user.groups),
        department=user.department.name if user.department else None,
        office=user.office.name if user.office else None,
        identity_provider=row.provider,
        auth_time=row.auth_time,
        mfa_time=row.mfa_time,
        amr=tuple(row.amr),
        issued_at=now,
        expires_at=token_expiry(now, row.expires_at),
        token_id=new_token_id(),
        cnf_x5t_s256=cnf_x5t_s256,
        session_expires_at=row.expires_at,
    )
    return issue_access_token(signing_keys.current(db, config.signing_sealer, now), claims)


def _callback(hostname: str, return_to: str, token: str, state: str) -> str:
    """The app's callback URL: its host and the port the browser used, never another host."""
    parts = urlsplit(return_to)
    port = ""
    if parts.scheme == "https" and parts.hostname == hostname.lower() and parts.port:
        port = f":{parts.port}"
    same_host = parts.scheme == "https" and parts.hostname == hostname.lower()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "") if same_host else "/"
    # `state` goes back as it came: the gateway matches it with the cookie it set.
    query = urlencode({"token": token, "return": path, "state": state})
    return f"https://{hostname}{port}/.zerogate/callback?{query}"
