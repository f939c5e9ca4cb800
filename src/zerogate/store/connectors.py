"""Connectors in the database: enrollment tokens, enrollment, revocation, health, liveness.

Where it sits: the control plane's `/api/v1/connectors…` routes call these; the policy
snapshot (`store/snapshots.py`) lists every connector a gateway may admit with the serials of
its live certificates, so a revocation reaches the gateways with the next snapshot.

An enrollment token is `zgc_` + 256 random bits, shown once; only its SHA-256 is stored, and
it is good for one enrollment before it expires. Health reports are not audited (they are
telemetry, and the snapshot serial moves only with audited changes).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from zerogate.core.audit import AuditAction
from zerogate.store import audit
from zerogate.store.errors import NotFound
from zerogate.store.models import Connector, IssuedCertificateRecord

TOKEN_PREFIX = "zgc_"
ENROLLMENT_LIFETIME = timedelta(hours=24)
CONNECTOR_KIND = "connector"  # `pki.CertKind.CONNECTOR`, as stored (store sits beside pki)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def find(session: Session, name: str) -> Connector:
    row = session.scalars(select(Connector).where(Connector.name == name)).first()
    if row is None:
        raise NotFound("connector", name)
    return row


def new_enrollment(session: Session, actor: str, name: str, now: datetime) -> tuple[str, datetime]:
    """A fresh one-time token for connector `name` (replacing any earlier one) and its expiry."""
    connector = find(session, name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = now + ENROLLMENT_LIFETIME
    connector.enrollment_hash = _digest(token)
    connector.enrollment_expires_at = expires
    audit.record(
        session,
        actor,
        AuditAction.CONNECTOR_TOKEN,
        f"connector/{name}",
        expires_at=expires.isoformat(),
    )
    return token, expires


def redeem(session: Session, token: str, now: datetime) -> Connector | None:
    """The connector this unexpired token enrolls, with the token used up; None if none.

    The lookup is by the token's SHA-256: 256 random bits, so nothing is learnt from timing.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    row = session.scalars(
        select(Connector).where(Connector.enrollment_hash == _digest(token))
    ).first()
    if row is None or row.enrollment_expires_at is None or row.enrollment_expires_at <= now:
        return None
    row.enrollment_hash = None
    row.enrollment_expires_at = None
    row.revoked_at = None  # an admin who issues a new token after a revocation means it
    row.enrolled_at = now
    return row


def revoke(session: Session, actor: str, name: str, now: datetime) -> Connector:
    """Cut a connector off: its certificates are revoked and it leaves the snapshot."""
    connector = find(session, name)
    if connector.revoked_at is None:
        connector.revoked_at = now
    connector.enrollment_hash = None
    connector.enrollment_expires_at = None
    for cert in _certificates(session, name, now):
        if cert.revoked_at is None:
            cert.revoked_at = now
            cert.revocation_reason = "connector revoked"
    audit.record(session, actor, AuditAction.CONNECTOR_REVOKE, f"connector/{name}")
    return connector


def record_health(
    session: Session, connector: Connector, report: Mapping[str, object], now: datetime
) -> None:
    connector.health = dict(report)
    connector.last_seen_at = now


def _certificates(session: Session, name: str, now: datetime) -> Sequence[IssuedCertificateRecord]:
    return session.scalars(
        select(IssuedCertificateRecord).where(
            IssuedCertificateRecord.kind == CONNECTOR_KIND,
            IssuedCertificateRecord.common_name == name,
            IssuedCertificateRecord.not_after > now,
        )
    ).all()


@dataclass(frozen=True, slots=True)
class Admitted:
    """A connector a gateway may hold a session with, and the certificates that prove it."""

    name: str
    group: str
    serials: frozenset[str]


def admitted(session: Session, now: datetime) -> list[Admitted]:
    """Every enrolled, unrevoked connector with at least one live certificate (two queries,
    however many connectors: this runs for every snapshot)."""
    rows = session.scalars(
        select(Connector).where(Connector.enrolled_at.is_not(None), Connector.revoked_at.is_(None))
    ).all()
    live = session.execute(
        select(IssuedCertificateRecord.common_name, IssuedCertificateRecord.serial).where(
            IssuedCertificateRecord.kind == CONNECTOR_KIND,
            IssuedCertificateRecord.not_after > now,
            IssuedCertificateRecord.revoked_at.is_(None),
        )
    )
    serials: dict[str, set[str]] = {}
    for name, serial in live:
        serials.setdefault(name, set()).add(serial)
    return [
        Admitted(row.name, row.connector_group.name, frozenset(serials[row.name]))
        for row in sorted(rows, key=lambda r: r.name)
        if row.name in serials
    ]


def status(connector: Connector, now: datetime, stale_after: timedelta) -> str:
    """pending (never enrolled), revoked, online (a health report within `stale_after`) or offline."""
    if connector.revoked_at is not None:
        return "revoked"
    if connector.enrolled_at is None:
        return "pending"
    if connector.last_seen_at is not None and now - connector.last_seen_at <= stale_after:
        return "online"
    return "offline"


def all_connectors(session: Session) -> Sequence[Connector]:
    return session.scalars(select(Connector).order_by(Connector.name)).all()
