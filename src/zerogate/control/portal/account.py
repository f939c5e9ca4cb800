"""The account page: who you are, your second factor, your sessions; sign out (everywhere)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session as Db

from zerogate.control.portal import web
from zerogate.control.portal.login import FLOW_TTL, audit_event, setup_page
from zerogate.core.audit import AuditAction
from zerogate.store import credentials, sessions
from zerogate.store.db import Database
from zerogate.store.models import Session, User, utcnow

Handle = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]


def current(db: Db, request: Request, config: web.PortalConfig) -> tuple[Session, User] | None:
    secret = request.cookies.get(web.SESSION_COOKIE, "")
    return sessions.lookup(db, secret, now=utcnow(), policy=config.session_policy)


def _to_login() -> Response:
    return RedirectResponse("/portal/login?next=/portal/account", status_code=303)


def router(db_factory: Database, config: web.PortalConfig) -> APIRouter:
    api = APIRouter(prefix="/portal", include_in_schema=False)

    @api.get("/")
    @api.get("/account")
    def account(request: Request, message: str = "") -> Response:
        with db_factory.transaction() as db:
            found = current(db, request, config)
            if found is None:
                return _to_login()
            row, user = found
            return web.render(
                request,
                "account.html",
                user=user,
                groups=[g.name for g in user.groups],
                sessions=sessions.for_user(db, user.id, utcnow()),
                current=row.handle,
                message=message[:200],
            )

    @api.post("/account/totp")
    def totp_begin(request: Request, csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
        web.check_csrf(request, csrf)
        with db_factory.transaction() as db:
            found = current(db, request, config)
            if found is None:
                return _to_login()
            _, user = found
            secret = credentials.new_totp_secret()
            flow = sessions.start_flow(
                db,
                "totp_setup",
                user_id=user.id,
                data={"totp_secret": secret},
                now=utcnow(),
                ttl=FLOW_TTL,
            )
            page = setup_page(request, user, secret, "/portal/account/totp/confirm")
            web.set_flow_cookie(page, flow)
            return page

    @api.post("/account/totp/confirm")
    def totp_confirm(
        request: Request,
        code: Annotated[str, Form(max_length=16)],
        csrf: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        web.check_csrf(request, csrf)
        now = utcnow()
        with db_factory.transaction() as db:
            found = current(db, request, config)
            flow = sessions.get_flow(db, request.cookies.get(web.FLOW_COOKIE), "totp_setup", now)
            if found is None or flow is None or flow.user_id != found[1].id:
                return _to_login()
            _, user = found
            secret = str(flow.data["totp_secret"])
            if not credentials.enable_totp(user, config.sealer, secret, code.strip(), now):
                return setup_page(
                    request,
                    user,
                    secret,
                    "/portal/account/totp/confirm",
                    error="That code is not valid.",
                    status=401,
                )
            codes = credentials.new_recovery_codes(db, user)
            sessions.end_flow(db, flow)
            audit_event(db, request, AuditAction.MFA_ENROLL, user.username, method="totp")
            return web.render(request, "recovery.html", codes=codes, next="/portal/account")

    @api.post("/account/sessions/{handle}/revoke")
    def revoke(
        request: Request, handle: Handle, csrf: Annotated[str, Form(max_length=64)] = ""
    ) -> Response:
        web.check_csrf(request, csrf)
        with db_factory.transaction() as db:
            found = current(db, request, config)
            if found is None:
                return _to_login()
            _, user = found
            if sessions.revoke(db, handle, utcnow(), user_id=user.id) is not None:
                audit_event(db, request, AuditAction.SESSION_REVOKE, user.username, session=handle)
        return RedirectResponse("/portal/account?message=Session+signed+out.", status_code=303)

    @api.get("/logout")
    def logout_page(request: Request) -> Response:
        """Where an app's "Sign out" link leads (the gateway's `/.zerogate/sign_out`): signing
        out is a POST with the CSRF token, so a link on another site cannot sign anyone out."""
        with db_factory.transaction() as db:
            found = current(db, request, config)
            if found is None:
                return web.render(
                    request, "message.html", title="Signed out", text="You are not signed in."
                )
            _, user = found
            return web.render(request, "logout.html", username=user.username)

    @api.post("/logout")
    def logout(request: Request, csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
        web.check_csrf(request, csrf)
        with db_factory.transaction() as db:
            found = current(db, request, config)
            if found is not None:
                row, user = found
                sessions.revoke(db, row.handle, utcnow())
                audit_event(db, request, AuditAction.LOGOUT, user.username, session=row.handle)
        response = RedirectResponse("/portal/login", status_code=303)
        web.clear_cookie(response, web.SESSION_COOKIE)
        return response

    @api.post("/logout/everywhere")
    def logout_everywhere(
        request: Request, csrf: Annotated[str, Form(max_length=64)] = ""
    ) -> Response:
        web.check_csrf(request, csrf)
        with db_factory.transaction() as db:
            found = current(db, request, config)
            if found is not None:
                _, user = found
                count = sessions.revoke_all(db, user.id, utcnow())
                audit_event(
                    db, request, AuditAction.LOGOUT_EVERYWHERE, user.username, sessions=count
                )
        response = RedirectResponse("/portal/login", status_code=303)
        web.clear_cookie(response, web.SESSION_COOKIE)
        return response

    return api
