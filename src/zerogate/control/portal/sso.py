"""Single sign-on: the portal's side of the OpenID Connect login (`oidc.py` is the protocol).

Flow: /portal/oidc/<name>/start keeps the pending login (state, nonce, PKCE verifier)
server-side in a login flow and sends the browser to the provider; /callback completes it,
then finds or creates the user just in time (by verified e-mail, else `<sub>@<provider>`),
syncs groups, department and office from the claim rules, and signs the user in with
amr "fed" (+ "mfa" when the provider says so). A second factor still applies when zerogate
requires one and the provider did not assert MFA.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session as Db

from zerogate.control.portal import web
from zerogate.control.portal.login import audit_event, finish_login, start_flow_response
from zerogate.control.portal.oidc import FederatedIdentity, OidcClient, OidcError, PendingLogin
from zerogate.core.audit import AuditAction, Outcome
from zerogate.core.inventory import UserSpec
from zerogate.core.inventory.kinds import KINDS_BY_NAME
from zerogate.store import credentials, sessions
from zerogate.store.db import Database
from zerogate.store.inventory import Inventory
from zerogate.store.models import Department, Group, Office, User, utcnow

log = logging.getLogger("zerogate.portal.sso")
ProviderName = Path(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
_USERNAME_SAFE = re.compile(r"[^A-Za-z0-9._@+-]")
FLOW_TTL = timedelta(minutes=10)


def _username(identity: FederatedIdentity) -> str:
    if identity.email and identity.email_verified:
        return identity.email.lower()[:128]
    return _USERNAME_SAFE.sub("-", f"{identity.subject}@{identity.provider}")[:128]


def _existing(
    db: Db, model: type[Group] | type[Department] | type[Office], names: list[str]
) -> list[str]:
    return list(db.scalars(select(model.name).where(model.name.in_(names)))) if names else []


def _sync_user(db: Db, identity: FederatedIdentity) -> User:
    """Create the user on first sign-in; keep groups, department and office as the provider says."""
    username = _username(identity)
    user = credentials.find_user(db, username)
    mapped = identity.mapped
    fields: dict[str, object] = {
        "groups": sorted(_existing(db, Group, list(mapped.groups))),
        "department": next(
            iter(_existing(db, Department, [mapped.department] if mapped.department else [])), None
        ),
        "office": next(iter(_existing(db, Office, [mapped.office] if mapped.office else [])), None),
    }
    if identity.name:
        fields["display_name"] = identity.name[:500]
    inventory = Inventory(db, f"sso:{identity.provider}")
    kind = KINDS_BY_NAME["user"]
    if user is None:
        email = identity.email if identity.email_verified else None
        inventory.create(
            kind, UserSpec.model_validate({"username": username, "email": email, **fields})
        )
    else:
        inventory.update(kind, username, fields)
    found = credentials.find_user(db, username)
    assert found is not None
    return found


def router(
    db_factory: Database, config: web.PortalConfig, clients: dict[str, OidcClient]
) -> APIRouter:
    api = APIRouter(prefix="/portal/oidc", include_in_schema=False)

    def failure(request: Request, provider: str, reason: str) -> Response:
        with db_factory.transaction() as db:
            audit_event(
                db,
                request,
                AuditAction.SSO_FAILURE,
                f"sso:{provider}",
                Outcome.FAILURE,
                reason=reason,
            )
        text = "Single sign-on did not complete. Please try again; if it keeps failing, tell your administrator."
        return web.render(
            request, "message.html", 400, title="Sign-in failed", text=f"{text} (reason: {reason})"
        )

    @api.get("/{name}/start")
    async def start(request: Request, name: str = ProviderName, next: str = "") -> Response:
        client = clients.get(name)
        if client is None:
            return web.render(
                request,
                "message.html",
                404,
                title="Unknown sign-in method",
                text="There is no such provider.",
            )
        callback = f"https://{request.url.netloc}/portal/oidc/{name}/callback"
        try:
            url, pending = await client.begin(callback, utcnow())
        except OidcError as exc:
            return failure(request, name, str(exc.reason))
        data: dict[str, object] = {
            "state": pending.state,
            "nonce": pending.nonce,
            "verifier": pending.code_verifier,
            "redirect_uri": pending.redirect_uri,
            "created_at": pending.created_at.isoformat(),
            "next": next[:2000],
        }
        with db_factory.transaction() as db:
            secret = sessions.start_flow(
                db, f"oidc:{name}"[:16], user_id=None, data=data, now=utcnow(), ttl=FLOW_TTL
            )
        response = RedirectResponse(url, status_code=303)
        web.set_flow_cookie(response, secret)
        return response

    @api.get("/{name}/callback")
    async def callback(request: Request, name: str = ProviderName) -> Response:
        client = clients.get(name)
        with db_factory.transaction() as db:
            flow = sessions.get_flow(
                db, request.cookies.get(web.FLOW_COOKIE), f"oidc:{name}"[:16], utcnow()
            )
            data = dict(flow.data) if flow else None
            if flow is not None:
                sessions.end_flow(db, flow)  # one use only, whatever happens next
        if client is None or data is None:
            return failure(request, name, "no_login_in_progress")
        pending = PendingLogin(
            provider=name,
            state=str(data["state"]),
            nonce=str(data["nonce"]),
            code_verifier=str(data["verifier"]),
            redirect_uri=str(data["redirect_uri"]),
            created_at=datetime.fromisoformat(str(data["created_at"])).astimezone(UTC),
        )
        try:
            identity = await client.complete(pending, dict(request.query_params), utcnow())
        except OidcError as exc:
            return failure(request, name, str(exc.reason))
        return _sign_in(request, identity, str(data.get("next", "")))

    def _sign_in(request: Request, identity: FederatedIdentity, next_url: str) -> Response:
        with db_factory.transaction() as db:
            user = _sync_user(db, identity)
            if user.disabled:
                audit_event(
                    db,
                    request,
                    AuditAction.SSO_FAILURE,
                    user.username,
                    Outcome.FAILURE,
                    reason="user_disabled",
                )
                return web.render(
                    request,
                    "message.html",
                    403,
                    title="Sign-in refused",
                    text="This account is disabled.",
                )
            audit_event(
                db,
                request,
                AuditAction.SSO_SUCCESS,
                user.username,
                provider=identity.provider,
                subject=identity.subject,
            )
            provider_mfa = "mfa" in identity.amr
            if (
                not provider_mfa
                and user.totp_enabled_at is not None
                and credentials.mfa_required(user, config.mfa_required_for_everyone)
            ):
                return start_flow_response(db, user, "mfa", "/portal/login/mfa", next_url, utcnow())
            amr = ["fed", "mfa"] if provider_mfa else ["fed"]
            return finish_login(
                db, request, config, user, amr, next_url, provider=identity.provider
            )

    return api
