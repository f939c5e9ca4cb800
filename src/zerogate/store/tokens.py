"""Admin API tokens in the database: issue (shown once), look up, list, revoke."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from zerogate.core.api_tokens import Scope, format_token, hash_secret, parse_token, secret_matches
from zerogate.core.audit import AuditAction, Outcome
from zerogate.store import audit
from zerogate.store.models import ApiToken, utcnow


def issue(
    session: Session,
    *,
    name: str,
    scope: Scope,
    actor: str,
    expires_at: datetime | None = None,
    gateway: str | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; the returned text is the only time its secret exists outside memory.

    `gateway` binds a gateway-scoped token to the gateway it may speak for."""
    if gateway is not None and scope is not Scope.GATEWAY:
        raise ValueError("only a gateway-scoped token is bound to a gateway")
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    row = ApiToken(
        id=token_id,
        name=name,
        scope=str(scope),
        secret_hash=hash_secret(secret),
        created_by=actor,
        expires_at=expires_at,
        gateway=gateway,
    )
    session.add(row)
    session.flush()
    bound = {"gateway": gateway} if gateway is not None else {}
    audit.record(
        session,
        actor,
        AuditAction.TOKEN_CREATE,
        f"token/{token_id}",
        name=name,
        scope=str(scope),
        **bound,
    )
    return row, format_token(token_id, secret)


def authenticate(session: Session, text: str, now: datetime) -> ApiToken | None:
    """The token record if `text` is a valid, live token; None for anything else."""
    parts = parse_token(text)
    if parts is None:
        return None
    row = session.get(ApiToken, parts.token_id)
    if row is None:
        # Spend the same work as a real comparison so timing does not reveal which ids exist.
        secret_matches(parts.secret, "0" * 64)
        return None
    if not secret_matches(parts.secret, row.secret_hash):
        return None
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    return row


def reject(session: Session, reason: str, source: str) -> None:
    audit.append(
        session,
        [
            audit.new_record(
                "anonymous",
                AuditAction.TOKEN_REJECTED,
                "api",
                {"reason": reason, "source": source},
                Outcome.FAILURE,
            )
        ],
    )


def all_tokens(session: Session) -> Sequence[ApiToken]:
    return session.scalars(select(ApiToken).order_by(ApiToken.created_at)).all()


def revoke(session: Session, token_id: str, actor: str) -> ApiToken | None:
    row = session.get(ApiToken, token_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, actor, AuditAction.TOKEN_REVOKE, f"token/{token_id}", name=row.name)
    return row
