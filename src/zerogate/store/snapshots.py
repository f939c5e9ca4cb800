"""The signed policy snapshot the gateways fetch: the policy in force and the apps it covers.

The snapshot's serial is the sequence number of the newest audit event that is not an access
decision: every change the control plane makes is audited in the same transaction, so the
serial grows whenever something a gateway might care about changed (and not with traffic),
and a gateway that already holds that serial can skip the download.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from zerogate.core.audit import AuditAction
from zerogate.core.policy.snapshot import (
    AdmittedConnector,
    HttpRoute,
    Snapshot,
    TcpRoute,
    sign_snapshot,
)
from zerogate.core.sealing import SecretSealer
from zerogate.store import audit, connectors, policies, signing_keys
from zerogate.store.models import Application, AuditEvent, User
from zerogate.store.models import Session as SessionRow


def serial(session: Session) -> int:
    return audit.state_seq(session)


def current(session: Session, *, issuer: str, now: datetime) -> Snapshot:
    number = audit.state_seq(session)
    version, policy = policies.current_policy(session)
    rows = session.scalars(
        select(Application)
        .where(Application.kind == "http", Application.hostname.is_not(None))
        .order_by(Application.name)
    )
    routes = tuple(HttpRoute(r.name, str(r.hostname).lower(), r.target, _via(r)) for r in rows)
    tcp_rows = session.scalars(
        select(Application)
        .where(Application.kind == "tcp", Application.hostname.is_not(None))
        .order_by(Application.name)
    )
    tcp_routes = tuple(
        TcpRoute(r.name, str(r.hostname).lower(), r.target, _via(r)) for r in tcp_rows
    )
    apps = policies.inventory_apps(session)
    # A token outlives its session by at most its lifetime (plus verifiers' clock leeway).
    horizon = now - signing_keys.ACCESS_TOKEN_LIFETIME - timedelta(minutes=5)
    revoked = frozenset(
        session.scalars(select(SessionRow.handle).where(SessionRow.revoked_at >= horizon))
    )
    disabled = frozenset(session.scalars(select(User.username).where(User.disabled.is_(True))))
    removed: dict[str, datetime] = {}
    deletions = select(AuditEvent.target, AuditEvent.time).where(
        AuditEvent.action == AuditAction.DELETE,
        AuditEvent.target.startswith("user/"),
        AuditEvent.time >= horizon,
    )
    for target, when in session.execute(deletions):
        name = target.removeprefix("user/")
        removed[name] = max(when, removed.get(name, when))
    admitted = tuple(
        AdmittedConnector(c.name, c.group, c.serials) for c in connectors.admitted(session, now)
    )
    return Snapshot(
        issuer,
        number,
        version,
        now,
        policy,
        apps,
        routes,
        revoked,
        disabled,
        removed,
        tcp_routes=tcp_routes,
        connectors=admitted,
    )


def _via(app: Application) -> str | None:
    return app.connector_group.name if app.connector_group is not None else None


def signed(session: Session, sealer: SecretSealer, *, issuer: str, now: datetime) -> str:
    """The current snapshot, signed with the current token signing key (published in the JWKS)."""
    key = signing_keys.current(session, sealer, now)
    return sign_snapshot(key, current(session, issuer=issuer, now=now))
