"""Passkeys in the portal: WebAuthn registration on the account page, sign-in on the login page.

Where it sits: static/passkey.js in the browser calls the JSON routes here; py_webauthn does
the ceremony checks (pure functions over the browser's answer); zerogate.store.passkeys keeps
the credentials; a successful sign-in ends in login.finish_login like every other method.

Theory of operation: each ceremony is two round trips. `options` makes a random challenge,
keeps it server-side in a short login flow named by the `zg_passkey` cookie, and answers the
PublicKeyCredential{Creation,Request}Options as JSON; `verify` checks the browser's answer
against that challenge, the RP ID and the origin, then stores the credential or signs in.

Invariants:
1. The RP ID is the host name the portal was reached by and the expected origin is
   https://host[:port] of the same request, so a passkey works under the name it was made
   under (WebAuthn Level 2 §7.1 steps 9 and 13, §7.2 steps 13 and 15).
2. A challenge answers once: its flow is ended before the answer is checked.
3. Sign-in failures all get the same message; why one failed goes only to the audit log, so
   the answer never reveals whether a credential exists.
4. Every POST carries the CSRF token, in `X-CSRF-Token` (double-submit with the `zg_csrf`
   cookie) or, for the remove form, a `csrf` field; a present Origin must be our own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session as Db
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from zerogate.control.errors import error
from zerogate.control.portal import web
from zerogate.control.portal.account import current
from zerogate.control.portal.login import audit_event, finish_login
from zerogate.core.audit import AuditAction, Outcome
from zerogate.store import audit, passkeys, sessions, throttle
from zerogate.store.db import Database
from zerogate.store.models import LoginFlow, User, WebAuthnCredential, utcnow

RP_NAME = "zerogate"
CEREMONY_COOKIE = "zg_passkey"
CEREMONY_TTL = timedelta(minutes=5)
REGISTER, SIGN_IN = "passkey_reg", "passkey_auth"
MAX_BODY = 64 * 1024  # an attestation with a certificate chain is a few KiB
# The library's parsers raise their own errors for most bad input, but a malformed
# base64url or CBOR field can still surface as a plain ValueError or TypeError.
BAD_ANSWER = (WebAuthnException, ValueError, TypeError, KeyError)

NOT_ACCEPTED = "That passkey was not accepted. Try again, or sign in with your password."
NOT_ADDED = "The passkey could not be added. Try again."
EXPIRED = "The page had expired. Reload it and try again."
SIGNED_OUT = "Your session has ended. Sign in again."

_SCRIPT = (FilePath(__file__).parent / "static" / "passkey.js").read_bytes()

Body = dict[str, Any]
PasskeyId = Annotated[int, Path(ge=1)]


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a passkey was not accepted: for the audit log only (invariant 3)."""

    reason: str
    username: str = ""


@dataclass(frozen=True, slots=True)
class Accepted:
    """A verified assertion: whose credential it was and where the user goes next."""

    row: WebAuthnCredential
    user: User
    sign_count: int
    next_url: str


async def json_body(request: Request) -> Body | None:
    """The request's JSON object, or None for anything else (too big, not JSON, not an object)."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            return None
    try:
        value = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return None
    return value if isinstance(value, dict) else None


JsonBody = Annotated[Body | None, Depends(json_body)]


def csrf_ok(request: Request) -> bool:
    try:
        web.check_csrf(request, request.headers.get("x-csrf-token", "")[:64])
    except web.CsrfError:
        return False
    return True


def rp_id(request: Request) -> str:
    return request.url.hostname or ""


def expected_origin(request: Request) -> str:
    return f"https://{request.url.netloc}"  # the portal is only ever served over HTTPS


def user_handle(user: User) -> bytes:
    # Not a name or address: the authenticator keeps the handle and it must not identify
    # the person (§14.6.1). One handle per user also makes a second registration on the
    # same authenticator replace the first rather than pile up.
    return user.id.to_bytes(8, "big")


def json_answer(body: object, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def refuse(db: Db, request: Request, action: AuditAction, refused: Refused) -> None:
    details = {
        "source": web.client_address(request),
        "user_agent": web.user_agent(request),
        "method": "passkey",
        "reason": refused.reason[:200],
    }
    actor, target = "anonymous", "portal/passkey"  # nobody can be named for an unknown key
    if refused.username:
        actor, target = f"user:{refused.username}", f"user/{refused.username}"
    audit.append(db, [audit.new_record(actor, action, target, details, Outcome.FAILURE)])


# --- ceremonies: a challenge kept server-side, good for one answer --------------------------


def start_ceremony(
    db: Db, request: Request, kind: str, user_id: int | None, challenge: bytes, **data: object
) -> str:
    now = utcnow()
    passkeys.purge_ceremonies(db, [REGISTER, SIGN_IN], now)
    earlier = sessions.get_flow(db, request.cookies.get(CEREMONY_COOKIE), kind, now)
    if earlier is not None:
        sessions.end_flow(db, earlier)
    return sessions.start_flow(
        db,
        kind,
        user_id=user_id,
        data={"challenge": passkeys.encode(challenge), **data},
        now=now,
        ttl=CEREMONY_TTL,
    )


def take_ceremony(db: Db, request: Request, kind: str) -> LoginFlow | None:
    """The ceremony this browser started, used up by this answer (invariant 2)."""
    flow = sessions.get_flow(db, request.cookies.get(CEREMONY_COOKIE), kind, utcnow())
    if flow is not None:
        sessions.end_flow(db, flow)
    return flow


def options_answer(options_json: str, ceremony: str) -> Response:
    response = Response(options_json, media_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        CEREMONY_COOKIE,
        ceremony,
        max_age=int(CEREMONY_TTL.total_seconds()),
        secure=True,
        httponly=True,
        samesite="strict",
        path="/portal",
    )
    return response


# --- registration (signed in, account page) -------------------------------------------------


def registration_options(db: Db, request: Request, user: User) -> Response:
    options = generate_registration_options(
        rp_id=rp_id(request),
        rp_name=RP_NAME,
        user_name=user.username,
        user_id=user_handle(user),
        user_display_name=user.display_name or user.username,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,  # sign-in names no user first
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=passkeys.decode(row.credential_id))
            for row in passkeys.for_user(db, user.id)
        ],
    )
    ceremony = start_ceremony(db, request, REGISTER, user.id, options.challenge)
    return options_answer(options_to_json(options), ceremony)


def register(db: Db, request: Request, user: User, body: Body | None) -> Response:
    flow = take_ceremony(db, request, REGISTER)
    answer = body.get("credential") if body else None
    name = str(body.get("name") or "").strip() if body else ""
    if flow is None or flow.user_id != user.id or not isinstance(answer, dict):
        return error(400, NOT_ADDED)
    try:
        verified = verify_registration_response(
            credential=answer,
            expected_challenge=passkeys.decode(str(flow.data["challenge"])),
            expected_rp_id=rp_id(request),
            expected_origin=expected_origin(request),
        )
    except BAD_ANSWER as exc:
        refuse(db, request, AuditAction.MFA_ENROLL, Refused(str(exc), user.username))
        return error(400, NOT_ADDED)
    if passkeys.find(db, passkeys.encode(verified.credential_id)) is not None:
        # §7.1 step 22: a credential id registered already, to anyone, is refused.
        refuse(db, request, AuditAction.MFA_ENROLL, Refused("already registered", user.username))
        return error(400, NOT_ADDED)
    row = passkeys.add(
        db,
        user.id,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=name or "Passkey",
        now=utcnow(),
    )
    audit_event(
        db, request, AuditAction.MFA_ENROLL, user.username, method="passkey", passkey=row.name
    )
    return json_answer({"redirect": "/portal/account?message=Passkey+added."})


def listing(rows: Sequence[WebAuthnCredential]) -> list[dict[str, object]]:
    def when(moment: datetime | None) -> str:
        return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "never"

    return [
        {
            "id": row.id,
            "name": row.name,
            "created": when(row.created_at),
            "last_used": when(row.last_used_at),
        }
        for row in rows
    ]


# --- sign-in (login page, nobody named yet) -------------------------------------------------


def sign_in_options(db: Db, request: Request, body: Body) -> Response:
    # Discoverable credentials: no user is named and allowCredentials stays empty, so the
    # options say nothing about which accounts exist. UV is required because the session
    # is recorded as multi-factor: the passkey (possession) plus its PIN or biometric.
    options = generate_authentication_options(
        rp_id=rp_id(request), user_verification=UserVerificationRequirement.REQUIRED
    )
    next_url = str(body.get("next") or "")[:2000]
    ceremony = start_ceremony(db, request, SIGN_IN, None, options.challenge, next=next_url)
    return options_answer(options_to_json(options), ceremony)


def identify(
    db: Db, body: Body | None
) -> tuple[AuthenticationCredential, WebAuthnCredential, User] | Refused:
    """The browser's assertion, the credential it names and that credential's owner."""
    answer = body.get("credential") if body else None
    if not isinstance(answer, dict):
        return Refused("malformed answer")
    try:
        credential = parse_authentication_credential_json(answer)
    except BAD_ANSWER:
        return Refused("malformed answer")
    row = passkeys.find(db, credential.id)
    user = db.get(User, row.user_id) if row is not None else None
    if row is None or user is None:
        return Refused("unknown credential")
    if user.disabled:
        return Refused("user disabled", user.username)
    # §7.2 step 6: nobody was named before the ceremony, so the authenticator must name its
    # user, and that must be the credential's owner on record.
    if credential.response.user_handle != user_handle(user):
        return Refused("user handle is not the credential owner's", user.username)
    return credential, row, user


def check_assertion(
    db: Db, request: Request, flow: LoginFlow | None, body: Body | None
) -> Accepted | Refused:
    if flow is None:
        return Refused("no sign-in under way (expired, or answered already)")
    found = identify(db, body)
    if isinstance(found, Refused):
        return found
    credential, row, user = found
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=passkeys.decode(str(flow.data["challenge"])),
            expected_rp_id=rp_id(request),
            expected_origin=expected_origin(request),
            credential_public_key=passkeys.decode(row.public_key),
            # §6.1.1 and §7.2 step 21: a counter that does not grow (unless it stays 0, as
            # synced passkeys' do) signals a cloned authenticator; the library refuses it.
            credential_current_sign_count=row.sign_count,
            require_user_verification=True,
        )
    except BAD_ANSWER as exc:
        return Refused(str(exc), user.username)
    next_url = str(flow.data.get("next", ""))
    return Accepted(row, user, verified.new_sign_count, next_url)


def sign_in(db: Db, config: web.PortalConfig, request: Request, body: Body | None) -> Response:
    now, keys = utcnow(), [f"ip:{web.client_address(request)}"]
    wait = throttle.wait_needed(db, keys, now)
    if wait > timedelta(0):
        refuse(db, request, AuditAction.LOGIN_THROTTLED, Refused("throttled"))
        return error(429, f"Too many attempts. Try again in {int(wait.total_seconds()) + 1} s.")
    checked = check_assertion(db, request, take_ceremony(db, request, SIGN_IN), body)
    if isinstance(checked, Refused):
        throttle.record_failure(db, keys, now)
        refuse(db, request, AuditAction.LOGIN_FAILURE, checked)
        return error(400, NOT_ACCEPTED)
    passkeys.record_use(checked.row, checked.sign_count, now)
    audit_event(db, request, AuditAction.LOGIN_SUCCESS, checked.user.username, method="passkey")
    return signed_in(db, config, request, checked.user, checked.next_url)


def signed_in(
    db: Db, config: web.PortalConfig, request: Request, user: User, next_url: str
) -> Response:
    """finish_login's session, told to the script as JSON instead of a redirect."""
    login = finish_login(db, request, config, user, ["hwk", "mfa"], next_url)
    response = json_answer({"redirect": login.headers["location"]})
    for header, value in login.raw_headers:
        if header == b"set-cookie":
            response.raw_headers.append((header, value))
    web.clear_cookie(response, CEREMONY_COOKIE, "/portal")
    return response


# --- routes ---------------------------------------------------------------------------------


def router(db_factory: Database, config: web.PortalConfig) -> APIRouter:
    api = APIRouter(prefix="/portal", include_in_schema=False)

    @api.get("/static/passkey.js")
    def script() -> Response:
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        return Response(_SCRIPT, media_type="text/javascript", headers=headers)

    @api.get("/account/passkeys")
    def mine(request: Request) -> Response:
        with db_factory.transaction() as db:
            found = current(db, request, config)
            if found is None:
                return error(401, SIGNED_OUT)
            return json_answer(listing(passkeys.for_user(db, found[1].id)))

    @api.post("/account/passkeys/options")
    def add_options(request: Request) -> Response:
        if not csrf_ok(request):
            return error(403, EXPIRED)
        with db_factory.transaction() as db:
            found = current(db, request, config)
            if found is None:
                return error(401, SIGNED_OUT)
            return registration_options(db, request, found[1])

    @api.post("/account/passkeys/verify")
    def add_verify(request: Request, body: JsonBody) -> Response:
        if not csrf_ok(request):
            return error(403, EXPIRED)
        with db_factory.transaction() as db:
            found = current(db, request, config)
            if found is None:
                return error(401, SIGNED_OUT)
            return register(db, request, found[1], body)

    @api.post("/account/passkeys/{passkey}/remove")
    def remove(
        request: Request, passkey: PasskeyId, csrf: Annotated[str, Form(max_length=64)] = ""
    ) -> Response:
        web.check_csrf(request, csrf)
        with db_factory.transaction() as db:
            found = current(db, request, config)
            if found is None:
                return RedirectResponse("/portal/login?next=/portal/account", status_code=303)
            user = found[1]
            row = passkeys.remove(db, passkey, user_id=user.id)
            if row is not None:
                audit_event(
                    db,
                    request,
                    AuditAction.MFA_DISABLE,
                    user.username,
                    method="passkey",
                    passkey=row.name,
                )
        return RedirectResponse("/portal/account?message=Passkey+removed.", status_code=303)

    @api.post("/login/passkey/options")
    def login_options(request: Request, body: JsonBody) -> Response:
        if not csrf_ok(request):
            return error(403, EXPIRED)
        with db_factory.transaction() as db:
            return sign_in_options(db, request, body or {})

    @api.post("/login/passkey/verify")
    def login_verify(request: Request, body: JsonBody) -> Response:
        if not csrf_ok(request):
            return error(403, EXPIRED)
        with db_factory.transaction() as db:
            return sign_in(db, config, request, body)

    return api
