"""Sign-in: username and password, then a second factor when enrolled or required.

Flow: POST /portal/login checks the throttle, then the password (same argon2 work and the
same answer, "invalid username or password", for unknown users and wrong passwords). With a
second factor enrolled, a short-lived login flow carries the user to /portal/login/mfa; when
one is required but missing, to enrollment first. Only then is a session created. Every step
is audited with the source address and user agent.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from zerogate.control.portal import web
from zerogate.core.audit import AuditAction, Outcome
from zerogate.core.identity.redirects import safe_next
from zerogate.store import audit, credentials, sessions, throttle
from zerogate.store.db import Database
from zerogate.store.models import Application, LoginFlow, User, utcnow

INVALID = "Invalid username or password."
FLOW_TTL = timedelta(minutes=10)


def audit_event(
    db: Db,
    request: Request,
    action: AuditAction,
    username: str,
    outcome: Outcome = Outcome.SUCCESS,
    **details: object,
) -> None:
    record = audit.new_record(
        f"user:{username}",
        action,
        f"user/{username}",
        {"source": web.client_address(request), "user_agent": web.user_agent(request), **details},
        outcome,
    )
    audit.append(db, [record])


def allowed_hosts(db: Db) -> set[str]:
    return {host for host in db.scalars(select(Application.hostname)) if host}


def qr_data_uri(uri: str) -> str:
    svg = segno.make(uri, error="m").svg_inline(scale=5)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def finish_login(
    db: Db,
    request: Request,
    config: web.PortalConfig,
    user: User,
    amr: list[str],
    next_url: str,
    provider: str = "local",
) -> Response:
    """Create the session, set its cookie and send the user on."""
    now = utcnow()
    mfa_time = now if len(amr) > 1 else None
    secret, row = sessions.create(
        db,
        user,
        now=now,
        policy=config.session_policy,
        amr=amr,
        mfa_time=mfa_time,
        source=web.client_address(request),
        user_agent=web.user_agent(request),
        provider=provider,
    )
    audit_event(db, request, AuditAction.SESSION_CREATE, user.username, session=row.handle, amr=amr)
    response = RedirectResponse(
        safe_next(next_url, allowed_hosts=allowed_hosts(db)), status_code=303
    )
    web.set_session_cookie(response, secret, config.session_policy)
    web.clear_cookie(response, web.FLOW_COOKIE, "/portal")
    return response


def flow_user(db: Db, request: Request, kind: str, now: datetime) -> tuple[LoginFlow, User] | None:
    """The login flow of this browser (by its cookie) and the user it is for, if still valid."""
    flow = sessions.get_flow(db, request.cookies.get(web.FLOW_COOKIE), kind, now)
    user = db.get(User, flow.user_id) if flow and flow.user_id else None
    return (flow, user) if flow is not None and user is not None else None


def start_flow_response(
    db: Db, user: User, kind: str, where: str, next_url: str, now: datetime, **data: object
) -> Response:
    """Begin a login flow (a second factor due, an enrollment) and send the browser to it."""
    secret = sessions.start_flow(
        db, kind, user_id=user.id, data={"next": next_url, **data}, now=now, ttl=FLOW_TTL
    )
    response = RedirectResponse(where, status_code=303)
    web.set_flow_cookie(response, secret)
    return response


def router(
    db_factory: Database, config: web.PortalConfig, providers: Sequence[object]
) -> APIRouter:
    api = APIRouter(prefix="/portal", include_in_schema=False)

    @api.get("/login")
    def login_page(request: Request, next: str = "") -> Response:
        return web.render(
            request, "login.html", next=next, username="", error=None, providers=providers
        )

    @api.post("/login")
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=128)],
        password: Annotated[str, Form(max_length=1024)],
        csrf: Annotated[str, Form(max_length=64)] = "",
        next: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        web.check_csrf(request, csrf)
        now, source = utcnow(), web.client_address(request)
        keys = [f"user:{username.lower()}", f"ip:{source}"]
        with db_factory.transaction() as db:
            wait = throttle.wait_needed(db, keys, now)
            if wait > timedelta(0):
                audit_event(
                    db,
                    request,
                    AuditAction.LOGIN_THROTTLED,
                    username,
                    Outcome.FAILURE,
                    retry_after=int(wait.total_seconds()) + 1,
                )
                error = f"Too many attempts. Try again in {int(wait.total_seconds()) + 1} seconds."
                return web.render(
                    request,
                    "login.html",
                    429,
                    next=next,
                    username=username,
                    error=error,
                    providers=providers,
                )
            user = credentials.find_user(db, username)
            if not credentials.verify_password(user, password) or user is None:
                throttle.record_failure(db, keys, now)
                audit_event(
                    db,
                    request,
                    AuditAction.LOGIN_FAILURE,
                    username,
                    Outcome.FAILURE,
                    method="password",
                )
                return web.render(
                    request,
                    "login.html",
                    401,
                    next=next,
                    username=username,
                    error=INVALID,
                    providers=providers,
                )
            throttle.clear(db, keys[0])
            audit_event(db, request, AuditAction.LOGIN_SUCCESS, user.username, method="password")
            if user.totp_enabled_at is not None:
                return start_flow_response(db, user, "mfa", "/portal/login/mfa", next, now)
            if credentials.mfa_required(user, config.mfa_required_for_everyone):
                secret = credentials.new_totp_secret()
                return start_flow_response(
                    db, user, "enroll", "/portal/login/enroll", next, now, totp_secret=secret
                )
            return finish_login(db, request, config, user, ["pwd"], next)

    @api.get("/login/mfa")
    def mfa_page(request: Request) -> Response:
        return web.render(request, "mfa.html", error=None)

    @api.post("/login/mfa")
    def mfa(
        request: Request,
        code: Annotated[str, Form(max_length=64)],
        csrf: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        web.check_csrf(request, csrf)
        now = utcnow()
        with db_factory.transaction() as db:
            found = flow_user(db, request, "mfa", now)
            if found is None:
                return RedirectResponse("/portal/login", status_code=303)
            flow, user = found
            keys = [f"mfa:{user.username}"]
            if throttle.wait_needed(db, keys, now) > timedelta(0):
                audit_event(
                    db,
                    request,
                    AuditAction.LOGIN_THROTTLED,
                    user.username,
                    Outcome.FAILURE,
                    method="totp",
                )
                return web.render(
                    request,
                    "mfa.html",
                    429,
                    error="Too many attempts. Wait a moment and try again.",
                )
            if credentials.verify_totp(user, config.sealer, code, now):
                method = "totp"
            elif credentials.use_recovery_code(db, user, code, now):
                method = "recovery_code"
                audit_event(db, request, AuditAction.RECOVERY_CODE_USED, user.username)
            else:
                throttle.record_failure(db, keys, now)
                audit_event(
                    db,
                    request,
                    AuditAction.MFA_FAILURE,
                    user.username,
                    Outcome.FAILURE,
                    method="totp",
                )
                return web.render(request, "mfa.html", 401, error="That code is not valid.")
            throttle.clear(db, keys[0])
            audit_event(db, request, AuditAction.MFA_SUCCESS, user.username, method=method)
            sessions.end_flow(db, flow)
            return finish_login(
                db, request, config, user, ["pwd", "otp", "mfa"], str(flow.data.get("next", ""))
            )

    @api.get("/login/enroll")
    def enroll_page(request: Request) -> Response:
        with db_factory.transaction() as db:
            found = flow_user(db, request, "enroll", utcnow())
            if found is None:
                return RedirectResponse("/portal/login", status_code=303)
            flow, user = found
            secret = str(flow.data["totp_secret"])
            return setup_page(request, user, secret, "/portal/login/enroll", required=True)

    @api.post("/login/enroll")
    def enroll(
        request: Request,
        code: Annotated[str, Form(max_length=16)],
        csrf: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        web.check_csrf(request, csrf)
        now = utcnow()
        with db_factory.transaction() as db:
            found = flow_user(db, request, "enroll", now)
            if found is None:
                return RedirectResponse("/portal/login", status_code=303)
            flow, user = found
            secret = str(flow.data["totp_secret"])
            if not credentials.enable_totp(user, config.sealer, secret, code.strip(), now):
                return setup_page(
                    request,
                    user,
                    secret,
                    "/portal/login/enroll",
                    required=True,
                    error="That code is not valid.",
                    status=401,
                )
            codes = credentials.new_recovery_codes(db, user)
            audit_event(db, request, AuditAction.MFA_ENROLL, user.username, method="totp")
            sessions.end_flow(db, flow)
            login = finish_login(
                db, request, config, user, ["pwd", "otp", "mfa"], str(flow.data.get("next", ""))
            )
            page = web.render(request, "recovery.html", codes=codes, next=login.headers["location"])
            for header, value in login.raw_headers:
                if header == b"set-cookie":
                    page.raw_headers.append((header, value))
            return page

    return api


def setup_page(
    request: Request,
    user: User,
    secret: str,
    action: str,
    *,
    required: bool = False,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return web.render(
        request,
        "totp_setup.html",
        status,
        qr=qr_data_uri(credentials.provisioning_uri(user, secret)),
        secret=secret,
        action=action,
        required=required,
        error=error,
    )
