"""`/api/v1/connectors/…` and `/api/v1/connector/…`: enrolling, renewing, revoking and
watching connectors.

Admins create a connector in the inventory (`/api/v1/connectors`), then ask for a one-time
enrollment token. The connector redeems it with a CSR at `POST /connector/enroll` (no other
credential) and gets its certificate; from then on its certificate, proven in the TLS
handshake, is its only credential: it renews it (`/connector/renew`) and reports its health
(`/connector/health`) over mutual TLS. Revoking cuts it off: its certificates are revoked and
it leaves the policy snapshot, so gateways drop its tunnels with the next snapshot.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from zerogate.control.deps import AdminCaller, AnyCaller, ApiError, DbSession, database, refuse
from zerogate.control.errors import COMMON_RESPONSES, NOT_FOUND
from zerogate.control.pki_service import PkiService
from zerogate.control.tls import client_certificate, live_certificate
from zerogate.core.audit import AuditAction
from zerogate.core.connector_health import GatewayLink, HealthReport
from zerogate.core.inventory.names import NAME_PATTERN
from zerogate.core.spool_report import STALE_AFTER_SECONDS
from zerogate.pki import CertKind, PkiError
from zerogate.store import audit, connectors, gateway_reports
from zerogate.store.db import Database
from zerogate.store.errors import NotFound
from zerogate.store.models import Connector, utcnow

ConnectorName = Annotated[str, Path(pattern=NAME_PATTERN)]
STALE_AFTER = timedelta(seconds=30)  # three missed health reports: offline


class EnrollmentOut(BaseModel):
    connector: str
    token: str  # shown once
    expires_at: datetime


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: Annotated[str, Field(min_length=1, max_length=100)]
    csr_pem: Annotated[str, Field(max_length=20_000)]


class CertificateBundle(BaseModel):
    connector: str
    group: str
    certificate_pem: str
    ca_pem: str
    not_after: datetime


class HealthAccepted(BaseModel):
    connector: str
    received_at: datetime


class ConnectorStatus(BaseModel):
    name: str
    group: str
    status: str  # pending, online, offline, revoked
    enrolled_at: datetime | None
    revoked_at: datetime | None
    last_seen_at: datetime | None
    version: str | None
    draining: bool
    gateways: list[GatewayLink]


class SpoolStatus(BaseModel):
    """One gateway worker's audit spool, as it last reported it (`core.spool_report`)."""

    worker: int
    accepting: bool  # False: it answers 503 rather than serve requests it cannot record
    refusal: str | None
    backlog_bytes: int  # events the control plane has not confirmed yet
    max_bytes: int | None
    refused: int  # requests refused since it last stopped accepting
    rejected: int
    corrupt_lines: int
    reported_at: datetime
    stale: bool  # silent for three report intervals: its state now is unknown


class GatewayStatus(BaseModel):
    """A gateway as its connectors and its own workers report it: who holds tunnels to it,
    how they fare, and whether each worker's audit spool takes events."""

    gateway: str
    connectors: list[str] = []
    sessions: int = 0
    streams: int = 0
    rtt_ms: float | None = None  # the best of its connectors' latest pings
    audit: list[SpoolStatus] = []


def _status(row: Connector, now: datetime) -> dict[str, object]:
    report = HealthReport.model_validate(row.health) if row.health else None
    online = connectors.status(row, now, STALE_AFTER)
    return {
        "name": row.name,
        "group": row.connector_group.name,
        "status": online,
        "enrolled_at": row.enrolled_at,
        "revoked_at": row.revoked_at,
        "last_seen_at": row.last_seen_at,
        "version": report.version if report else None,
        "draining": report.draining if report else False,
        "gateways": report.gateways if report and online == "online" else [],
    }


def _gateways(
    rows: list[dict[str, object]], reports: list[gateway_reports.Reported], now: datetime
) -> list[GatewayStatus]:
    seen: dict[str, GatewayStatus] = {}
    stale_before = now - timedelta(seconds=STALE_AFTER_SECONDS)
    for reported in reports:
        report = reported.report
        entry = seen.setdefault(report.gateway, GatewayStatus(gateway=report.gateway))
        entry.audit.append(
            SpoolStatus(
                **report.model_dump(exclude={"gateway"}),
                reported_at=reported.at,
                stale=reported.at < stale_before,
            )
        )
    for row in rows:
        links = row["gateways"]
        assert isinstance(links, list)
        for link in links:
            if not link.sessions:
                continue
            entry = seen.setdefault(link.gateway, GatewayStatus(gateway=link.gateway))
            entry.connectors.append(str(row["name"]))
            entry.sessions += link.sessions
            entry.streams += link.streams
            if link.rtt_ms is not None:
                entry.rtt_ms = min(link.rtt_ms, entry.rtt_ms or link.rtt_ms)
    return sorted(seen.values(), key=lambda g: g.gateway)


def _bundle(
    connector: Connector, pem: str, not_after: datetime, pki: PkiService
) -> dict[str, object]:
    return {
        "connector": connector.name,
        "group": connector.connector_group.name,
        "certificate_pem": pem,
        "ca_pem": pki.ca.cert_pem.decode(),
        "not_after": not_after,
    }


def _unauthorised(db: Database, request: Request, why: str) -> ApiError:
    """401 for a connector call without a valid credential, audited as `connector.rejected`."""
    return refuse(db, request, AuditAction.CONNECTOR_REJECTED, 401, why, "connector")


def _pki(request: Request) -> PkiService:
    service: PkiService = request.app.state.pki
    return service


def _own_connector(session: Session, request: Request, now: datetime) -> Connector | None:
    """The connector whose live certificate this connection presented, if it is not revoked."""
    row = live_certificate(session, client_certificate(request), (CertKind.CONNECTOR,), now)
    if row is None:
        return None
    try:
        connector = connectors.find(session, row.common_name)
    except NotFound:
        return None
    return connector if connector.revoked_at is None else None


def router() -> APIRouter:
    api = APIRouter(tags=["connectors"], responses=COMMON_RESPONSES)
    admin_routes(api)
    connector_routes(api)
    return api


def admin_routes(api: APIRouter) -> None:
    @api.post(
        "/connectors/{name}/enrollment",
        status_code=201,
        response_model=EnrollmentOut,
        operation_id="new_connector_enrollment",
        responses=NOT_FOUND,
    )
    def enrollment(name: ConnectorName, who: AdminCaller, session: DbSession) -> dict[str, object]:
        token, expires = connectors.new_enrollment(session, who.actor, name, utcnow())
        return {"connector": name, "token": token, "expires_at": expires}

    @api.post(
        "/connectors/{name}/revoke",
        response_model=ConnectorStatus,
        operation_id="revoke_connector",
        responses=NOT_FOUND,
    )
    def revoke(name: ConnectorName, who: AdminCaller, session: DbSession) -> dict[str, object]:
        now = utcnow()
        return _status(connectors.revoke(session, who.actor, name, now), now)

    @api.get(
        "/status/connectors",
        response_model=list[ConnectorStatus],
        operation_id="connector_status",
    )
    def connector_status(who: AnyCaller, session: DbSession) -> list[dict[str, object]]:
        now = utcnow()
        return [_status(row, now) for row in connectors.all_connectors(session)]

    @api.get(
        "/status/gateways",
        response_model=list[GatewayStatus],
        operation_id="gateway_status",
    )
    def gateway_status(who: AnyCaller, session: DbSession) -> list[GatewayStatus]:
        now = utcnow()
        rows = [_status(row, now) for row in connectors.all_connectors(session)]
        return _gateways(rows, gateway_reports.latest(session), now)


def connector_routes(api: APIRouter) -> None:
    @api.post(
        "/connector/enroll",
        status_code=201,
        response_model=CertificateBundle,
        operation_id="enroll_connector",
        responses={401: {"description": "the token is unknown, used or expired"}},
    )
    def enroll(
        body: EnrollRequest, request: Request, db: Annotated[Database, Depends(database)]
    ) -> dict[str, object]:
        now = utcnow()
        pki = _pki(request)
        with db.transaction() as session:
            connector = connectors.redeem(session, body.token, now)
            if connector is not None:
                try:
                    issued = pki.issue_from_csr(
                        session,
                        f"connector:{connector.name}",
                        body.csr_pem.encode(),
                        kind=CertKind.CONNECTOR,
                        common_name=connector.name,
                    )
                except PkiError as exc:
                    raise ApiError(422, f"csr_pem: {exc}") from None
                connector.cert_serial = issued.serial
                audit.record(
                    session,
                    f"connector:{connector.name}",
                    AuditAction.CONNECTOR_ENROLL,
                    f"connector/{connector.name}",
                    serial=issued.serial,
                )
                return _bundle(connector, issued.pem, issued.not_after, pki)
        raise _unauthorised(db, request, "the enrollment token is unknown, used or expired")

    @api.post(
        "/connector/renew",
        status_code=201,
        response_model=CertificateBundle,
        operation_id="renew_connector_certificate",
        responses={401: {"description": "no live connector certificate was presented"}},
    )
    def renew(request: Request, db: Annotated[Database, Depends(database)]) -> dict[str, object]:
        now = utcnow()
        pki = _pki(request)
        with db.transaction() as session:
            connector = _own_connector(session, request, now)
            cert = client_certificate(request)
            if connector is not None and cert is not None:
                serial = format(cert.serial_number, "x")
                issued = pki.renew(session, f"connector:{connector.name}", serial)
                connector.cert_serial = issued.serial
                return _bundle(connector, issued.pem, issued.not_after, pki)
        raise _unauthorised(db, request, "a live connector certificate is required")

    @api.post(
        "/connector/health",
        response_model=HealthAccepted,
        operation_id="report_connector_health",
        responses={401: {"description": "no live connector certificate was presented"}},
    )
    def health(
        body: HealthReport, request: Request, db: Annotated[Database, Depends(database)]
    ) -> dict[str, object]:
        now = utcnow()
        with db.transaction() as session:
            connector = _own_connector(session, request, now)
            if connector is not None:
                connectors.record_health(session, connector, body.model_dump(mode="json"), now)
                return {"connector": connector.name, "received_at": now}
        raise _unauthorised(db, request, "a live connector certificate is required")
