"""Login sessions and login flows in the database.

A browser holds a random secret; the database holds its SHA-256 (`id`) and a public
`handle`. A session ends at its absolute expiry, after `idle` without use, when revoked, or
when its user is disabled or deleted. Flows (a second factor due, an SSO round trip) are
short-lived records keyed the same way.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session as Db

from zerogate.store.models import LoginFlow, Session, User

TOUCH_EVERY = timedelta(minutes=1)  # write last_seen_at at most this often


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta = timedelta(hours=1)
    absolute: timedelta = timedelta(hours=12)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(
    db: Db,
    user: User,
    *,
    now: datetime,
    policy: SessionPolicy,
    amr: Sequence[str],
    mfa_time: datetime | None,
    source: str,
    user_agent: str,
    provider: str = "local",
) -> tuple[str, Session]:
    secret = secrets.token_urlsafe(32)
    row = Session(
        id=_digest(secret),
        handle=secrets.token_hex(8),
        user_id=user.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + policy.absolute,
        auth_time=now,
        mfa_time=mfa_time,
        amr=list(amr),
        provider=provider,
        source_address=source[:64],
        user_agent=user_agent[:500],
    )
    db.add(row)
    db.flush()
    return secret, row


def lookup(
    db: Db, secret: str, *, now: datetime, policy: SessionPolicy
) -> tuple[Session, User] | None:
    if not secret or len(secret) > 100:
        return None
    row = db.get(Session, _digest(secret))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if now - row.last_seen_at > policy.idle:
        return None
    user = db.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
    return row, user


def by_handle(db: Db, handle: str, now: datetime) -> Session | None:
    """A live session by its public handle (for tokens, which carry the handle as `zg_sid`)."""
    row = db.scalars(select(Session).where(Session.handle == handle)).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    return row


def for_user(db: Db, user_id: int, now: datetime) -> Sequence[Session]:
    return db.scalars(
        select(Session)
        .where(Session.user_id == user_id, Session.revoked_at.is_(None), Session.expires_at > now)
        .order_by(Session.created_at.desc())
    ).all()


def revoke(db: Db, handle: str, now: datetime, *, user_id: int | None = None) -> Session | None:
    statement = select(Session).where(Session.handle == handle)
    if user_id is not None:
        statement = statement.where(Session.user_id == user_id)
    row = db.scalars(statement).first()
    if row is not None and row.revoked_at is None:
        row.revoked_at = now
    return row


def revoke_all(db: Db, user_id: int, now: datetime) -> int:
    result = db.execute(
        update(Session)
        .where(Session.user_id == user_id, Session.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def start_flow(
    db: Db,
    kind: str,
    *,
    user_id: int | None,
    data: dict[str, object],
    now: datetime,
    ttl: timedelta,
) -> str:
    secret = secrets.token_urlsafe(32)
    db.add(
        LoginFlow(
            id=_digest(secret),
            kind=kind,
            user_id=user_id,
            data=data,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    db.flush()
    return secret


def get_flow(db: Db, secret: str | None, kind: str, now: datetime) -> LoginFlow | None:
    if not secret or len(secret) > 100:
        return None
    row = db.get(LoginFlow, _digest(secret))
    if row is None or row.kind != kind or row.expires_at <= now:
        return None
    return row


def end_flow(db: Db, flow: LoginFlow) -> None:
    db.delete(flow)
