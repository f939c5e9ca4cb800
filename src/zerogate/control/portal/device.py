"""RFC 8628 device authorization grant: how the CLI and the agent sign a person in.

The device asks `/oauth/device_authorization` for a code pair, shows the person a short
code and `/portal/device`; the person signs in there (every factor the portal requires),
checks the code and approves; the device, polling `/oauth/token`, receives an access token
for the control plane tied to a new session of that person. Approving and denying are
audited; wrong user codes count against the address's login throttle.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from zerogate.control.deps import CONTROL_AUDIENCE
from zerogate.control.portal import web
from zerogate.control.portal.account import current
from zerogate.control.portal.login import audit_event
from zerogate.control.portal.tokens import session_token
from zerogate.control.tls import client_certificate, device_thumbprint
from zerogate.core.audit import AuditAction, Outcome
from zerogate.store import device_auth, sessions, signing_keys, throttle
from zerogate.store.db import Database
from zerogate.store.device_auth import PollResult
from zerogate.store.models import User, utcnow

AGENT = "zerogate-agent"  # must present its device certificate; gets bound tokens
CLIENTS = frozenset({"zerogate-cli", AGENT})
GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _oauth_error(code: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": code}, status_code=status, headers={"Cache-Control": "no-store"})


def router(db_factory: Database, config: web.PortalConfig) -> APIRouter:
    api = APIRouter(include_in_schema=False)

    @api.post("/oauth/device_authorization")
    def authorize(request: Request, client_id: Annotated[str, Form(max_length=64)]) -> Response:
        if client_id not in CLIENTS:
            return _oauth_error("invalid_client", 401)
        with db_factory.transaction() as db:
            if (
                client_id == AGENT
                and device_thumbprint(db, client_certificate(request), utcnow()) is None
            ):
                return _oauth_error("invalid_client", 401)
            started = device_auth.start(db, client_id, utcnow())
        page = f"https://{request.url.netloc}/portal/device"
        return JSONResponse(
            {
                "device_code": started.device_code,
                "user_code": started.user_code,
                "verification_uri": page,
                "verification_uri_complete": f"{page}?user_code={started.user_code}",
                "expires_in": started.expires_in,
                "interval": started.interval,
            },
            headers={"Cache-Control": "no-store"},
        )

    @api.post("/oauth/token")
    def token(
        request: Request,
        grant_type: Annotated[str, Form(max_length=100)],
        device_code: Annotated[str, Form(max_length=100)],
        client_id: Annotated[str, Form(max_length=64)],
    ) -> Response:
        if grant_type != GRANT:
            return _oauth_error("unsupported_grant_type")
        now = utcnow()
        with db_factory.transaction() as db:
            binding = device_thumbprint(db, client_certificate(request), now)
            if client_id == AGENT and binding is None:
                # An agent's token is only ever issued bound to its device (RFC 8705 §3).
                return _oauth_error("invalid_client", 401)
            result, row = device_auth.poll(db, device_code, client_id, now)
            if result is not PollResult.APPROVED or row is None or row.approved_by is None:
                return _oauth_error(str(result))
            user = db.get(User, row.approved_by)
            if user is None or user.disabled:
                return _oauth_error(str(PollResult.DENIED))
            _, session = sessions.create(
                db,
                user,
                now=now,
                policy=config.session_policy,
                amr=row.approved_amr,
                mfa_time=now if "mfa" in row.approved_amr else None,
                source=web.client_address(request),
                user_agent=web.user_agent(request),
                provider=f"device:{client_id}",
            )
            binding_for = binding if client_id == AGENT else None
            access = session_token(
                db, config, request, session, user, CONTROL_AUDIENCE, cnf_x5t_s256=binding_for
            )
            audit_event(
                db,
                request,
                AuditAction.SESSION_CREATE,
                user.username,
                session=session.handle,
                client=client_id,
            )
        expires = int(signing_keys.ACCESS_TOKEN_LIFETIME.total_seconds())
        body = {"access_token": access, "token_type": "Bearer", "expires_in": expires}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @api.get("/portal/device")
    def page(request: Request, user_code: str = "") -> Response:
        with db_factory.transaction() as db:
            if current(db, request, config) is None:
                target = "/portal/device" + (
                    f"?user_code={device_auth.normalise_user_code(user_code)}" if user_code else ""
                )
                return RedirectResponse(f"/portal/login?next={target}", status_code=303)
        return web.render(
            request, "device.html", user_code=device_auth.normalise_user_code(user_code), error=None
        )

    @api.post("/portal/device")
    def decide(
        request: Request,
        user_code: Annotated[str, Form(max_length=20)],
        decision: Annotated[str, Form(max_length=10)],
        csrf: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        web.check_csrf(request, csrf)
        now, keys = utcnow(), [f"ip:{web.client_address(request)}"]
        with db_factory.transaction() as db:
            found = current(db, request, config)
            if found is None:
                return RedirectResponse("/portal/login?next=/portal/device", status_code=303)
            row_session, user = found
            if throttle.wait_needed(db, keys, now) > timedelta(0):
                return web.render(
                    request,
                    "device.html",
                    429,
                    user_code=user_code,
                    error="Too many attempts. Wait a moment.",
                )
            row = device_auth.pending_by_user_code(db, user_code, now)
            if row is None:
                throttle.record_failure(db, keys, now)
                audit_event(
                    db,
                    request,
                    AuditAction.DEVICE_DENY,
                    user.username,
                    Outcome.FAILURE,
                    reason="unknown_code",
                )
                return web.render(
                    request,
                    "device.html",
                    400,
                    user_code=user_code,
                    error="That code is not valid or has expired.",
                )
            if decision == "approve":
                row.approved_by, row.approved_amr = user.id, list(row_session.amr)
                audit_event(
                    db, request, AuditAction.DEVICE_APPROVE, user.username, client=row.client_id
                )
                text = "Done. You can close this page and return to your terminal."
            else:
                row.denied = True
                audit_event(
                    db, request, AuditAction.DEVICE_DENY, user.username, client=row.client_id
                )
                text = "The sign-in was refused."
        return web.render(request, "message.html", title="Device sign-in", text=text)

    return api
