"""Request dependencies: the database session and the authenticated caller."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from zerogate.control.tls import client_certificate, device_thumbprint
from zerogate.core.api_tokens import Scope, parse_token
from zerogate.core.audit import Outcome
from zerogate.core.tokens import TokenError, TokenVerifier, jwks
from zerogate.store import audit, sessions, signing_keys, tokens
from zerogate.store.db import Database
from zerogate.store.models import utcnow

CONTROL_AUDIENCE = "zerogate-control"  # the audience of access tokens for this API


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling the API, as written into audit events."""

    actor: str
    scope: Scope
    gateway: str | None = None  # a gateway-scoped token's gateway, if it is bound to one


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def db_session(db: Annotated[Database, Depends(database)]) -> Iterator[Session]:
    with db.transaction() as session:
        yield session


_bearer = HTTPBearer(auto_error=False, description="an admin API token: zgt_<id>_<secret>")


def authenticated(
    request: Request,
    db: Annotated[Database, Depends(database)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Any valid token, whatever its scope; routes narrow it down with `caller` or `scim`.

    Two kinds are accepted: admin API tokens (`zgt_…`), and a signed-in person's access
    token for the audience `zerogate-control` (members of `admins` act as admins, of
    `auditors` as auditors). Every rejection is audited with its reason.
    """
    source = request.client.host if request.client else "unknown"
    if credentials is None:
        raise ApiError(401, "missing bearer token")
    text = credentials.credentials
    if parse_token(text) is None and text.count(".") == 2:
        return _person(request, db, text, source)
    # Its own transaction: a rejection is audited even though the request itself fails.
    with db.transaction() as session:
        row = tokens.authenticate(session, text, utcnow())
        if row is None:
            tokens.reject(session, "invalid, expired or revoked token", source)
        else:
            row.last_used_at = utcnow()
    if row is None:
        raise ApiError(401, "invalid, expired or revoked token")
    return Caller(actor=f"token:{row.name}:{row.id}", scope=Scope(row.scope), gateway=row.gateway)


def refuse(
    db: Database,
    request: Request,
    action: str,
    status: int,
    why: str,
    target: str,
    *,
    actor: str = "anonymous",
    **more: object,
) -> ApiError:
    """An error for a refused call, audited in its own transaction (the request fails, the
    audit event stays); `actor` when the caller is known, `more` for the event's details."""
    source = request.client.host if request.client else "unknown"
    with db.transaction() as session:
        details = {"reason": why, "source": source, **more}
        record = audit.new_record(actor, action, target, details, Outcome.FAILURE)
        audit.append(session, [record])
    return ApiError(status, why)


def issuer_of(request: Request) -> str:
    """Tokens and snapshots name the control plane by the address its clients reached it at."""
    return f"https://{request.url.netloc}"


def _person(request: Request, db: Database, token: str, source: str) -> Caller:
    portal = request.app.state.portal
    now = utcnow()
    refusal, claims = None, None
    # The refusal is raised after the transaction commits, so its audit event is kept.
    with db.transaction() as session:
        keys = signing_keys.published(session, portal.signing_sealer, now)
        verifier = TokenVerifier(jwks(keys), issuer=issuer_of(request))
        try:
            presented = device_thumbprint(session, client_certificate(request), now)
            claims = verifier.verify(
                token, audience=CONTROL_AUDIENCE, now=now, client_cert_x5t_s256=presented
            )
        except TokenError as exc:
            refusal = str(exc.reason)
        if claims is not None and sessions.by_handle(session, claims.session_id, now) is None:
            refusal = "session_ended"
        if refusal is not None:
            tokens.reject(session, refusal, source)
    if refusal is not None or claims is None:
        raise ApiError(401, f"access token refused: {refusal}")
    groups = set(claims.groups)
    scope = Scope.ADMIN if "admins" in groups else Scope.AUDITOR if "auditors" in groups else None
    if scope is None:
        raise ApiError(403, "only members of the admins or auditors groups may use the admin API")
    return Caller(actor=f"user:{claims.username}:{claims.session_id}", scope=scope)


def caller(who: Annotated[Caller, Depends(authenticated)]) -> Caller:
    """A caller of the admin API: admin or auditor tokens (SCIM and gateway tokens are narrow)."""
    if who.scope is Scope.SCIM:
        raise ApiError(403, "this token is for SCIM provisioning only")
    if who.scope is Scope.GATEWAY:
        raise ApiError(403, "this token is for a gateway only")
    return who


def gateway_client(who: Annotated[Caller, Depends(authenticated)]) -> Caller:
    if who.scope is not Scope.GATEWAY:
        raise ApiError(
            403, "this endpoint is for gateways: it needs a token with the gateway scope"
        )
    return who


def snapshot_reader(who: Annotated[Caller, Depends(authenticated)]) -> Caller:
    """Gateways, and admins or auditors who want to see what gateways get."""
    if who.scope is Scope.SCIM:
        raise ApiError(403, "this token is for SCIM provisioning only")
    return who


def scim_client(who: Annotated[Caller, Depends(authenticated)]) -> Caller:
    if who.scope is not Scope.SCIM:
        raise ApiError(403, "SCIM needs a token with the scim scope")
    return who


def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    if who.scope is not Scope.ADMIN:
        raise ApiError(403, "this token is read-only (auditor scope)")
    return who


AnyCaller = Annotated[Caller, Depends(caller)]
GatewayCaller = Annotated[Caller, Depends(gateway_client)]
SnapshotReader = Annotated[Caller, Depends(snapshot_reader)]
AdminCaller = Annotated[Caller, Depends(admin)]
# "function": the transaction commits before the response leaves, so a client that got its
# answer reads its own write on the next request (the default commits after sending).
DbSession = Annotated[Session, Depends(db_session, scope="function")]


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _declared_query(route: object) -> set[str]:
    dependant = getattr(route, "dependant", None)
    return _query_names(dependant) if isinstance(dependant, Dependant) else set()


def known_query_only(request: Request) -> None:
    """Refuse query parameters a route does not declare: a typo must not silently mean
    "no filter" (for example `?actr=alice` on the audit log)."""
    unknown = sorted(set(request.query_params) - _declared_query(request.scope.get("route")))
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "unknown query parameter",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )
