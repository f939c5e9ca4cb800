"""The latest audit spool state of each gateway worker, and its changes in the audit log."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from zerogate.core.audit import AuditAction, Outcome
from zerogate.core.spool_report import SpoolReport
from zerogate.store import audit
from zerogate.store.models import GatewayReport

log = logging.getLogger("zerogate.store.gateway_reports")
FORGET_AFTER = timedelta(days=1)  # a worker silent this long is no longer shown


def record(session: Session, actor: str, report: SpoolReport, now: datetime) -> None:
    """Keep `report` as its worker's latest. When the worker starts refusing requests (or
    reports for the first time refusing) or accepts again, say so in the log and the audit
    trail: a gateway that refuses is an outage for its users, and one that accepts again
    after a failing disk is worth a look."""
    row = session.scalars(
        select(GatewayReport).where(
            GatewayReport.gateway == report.gateway, GatewayReport.worker == report.worker
        )
    ).one_or_none()
    was_accepting = True if row is None else bool(row.report.get("accepting", True))
    state = report.model_dump(mode="json")
    if row is None:
        # A worker not seen before: the time to forget those gone silent long ago (a gateway
        # renamed, run with fewer workers, or retired), which would otherwise show forever.
        session.execute(delete(GatewayReport).where(GatewayReport.reported_at < now - FORGET_AFTER))
        row = GatewayReport(gateway=report.gateway, worker=report.worker)
        session.add(row)
    row.actor, row.report, row.reported_at = actor, state, now
    if report.accepting == was_accepting:
        return
    target = f"gateway/{report.gateway}/{report.worker}"
    if report.accepting:
        log.warning("%s accepts requests again (%d refused meanwhile)", target, report.refused)
        action, outcome = AuditAction.GATEWAY_ACCEPTING, Outcome.SUCCESS
    else:
        log.error("%s refuses requests: %s", target, report.refusal)
        action, outcome = AuditAction.GATEWAY_REFUSING, Outcome.FAILURE
    details = {k: state[k] for k in ("refusal", "backlog_bytes", "max_bytes", "refused")}
    audit.append(session, [audit.new_record(actor, action, target, details, outcome=outcome)])


@dataclass(frozen=True, slots=True)
class Reported:
    report: SpoolReport
    at: datetime


def latest(session: Session) -> list[Reported]:
    """Every worker's latest report, by gateway and worker."""
    rows = session.scalars(
        select(GatewayReport).order_by(GatewayReport.gateway, GatewayReport.worker)
    )
    return [Reported(SpoolReport.model_validate(row.report), row.reported_at) for row in rows]
