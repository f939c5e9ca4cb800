"""Device posture: agents report over mutual TLS; admins and the what-if read the latest report.

`POST /api/v1/device/posture` takes no bearer token: the device's certificate, proven in the
TLS handshake, is the credential, and its common name is the inventory device it speaks for.
A report is a statement of facts; the policy decides what they are worth.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from zerogate.control.deps import AnyCaller, DbSession, database, refuse
from zerogate.control.errors import COMMON_RESPONSES, NOT_FOUND
from zerogate.control.tls import client_certificate, live_certificate
from zerogate.core.audit import AuditAction
from zerogate.core.inventory.names import NAME_PATTERN
from zerogate.core.posture import PostureReport
from zerogate.pki import CertKind
from zerogate.store import devices
from zerogate.store.db import Database
from zerogate.store.errors import NotFound
from zerogate.store.models import utcnow

DeviceName = Annotated[str, Path(pattern=NAME_PATTERN)]


class PostureAccepted(BaseModel):
    device: str
    reported_at: datetime


class PostureOut(BaseModel):
    device: str
    enrolled: bool
    approved: bool
    report: PostureReport | None
    reported_at: datetime | None
    age_seconds: int | None


def router() -> APIRouter:
    api = APIRouter(tags=["devices"], responses=COMMON_RESPONSES)

    @api.post(
        "/device/posture",
        response_model=PostureAccepted,
        operation_id="report_posture",
        responses={403: {"description": "the certificate names no device in the inventory"}},
    )
    def report_posture(
        body: PostureReport,
        request: Request,
        db: Annotated[Database, Depends(database)],
    ) -> dict[str, object]:
        cert = client_certificate(request)
        now = utcnow()
        with db.transaction() as session:
            row = live_certificate(session, cert, (CertKind.DEVICE,), now)
            named = row.common_name if row is not None else None
            device = devices.find(session, named) if named is not None else None
            if device is not None and row is not None:
                devices.record_posture(session, device, body, certificate=row.serial, now=now)
                return {"device": device.name, "reported_at": now}
        if named is None:
            raise refuse(
                db,
                request,
                AuditAction.POSTURE_REJECTED,
                401,
                "a live device certificate is required",
                "device",
            )
        raise refuse(
            db,
            request,
            AuditAction.POSTURE_REJECTED,
            403,
            "no such device in the inventory",
            f"device/{named}",
        )

    @api.get(
        "/devices/{name}/posture",
        response_model=PostureOut,
        operation_id="device_posture",
        responses=NOT_FOUND,
    )
    def posture(name: DeviceName, who: AnyCaller, session: DbSession) -> dict[str, object]:
        device = devices.find(session, name)
        if device is None:
            raise NotFound("device", name)
        now = utcnow()
        latest = devices.latest_posture(session, device)
        view = devices.policy_view(session, device, now)
        return {
            "device": name,
            "enrolled": view.enrolled,
            "approved": view.approved,
            "report": latest[0] if latest else None,
            "reported_at": latest[1] if latest else None,
            "age_seconds": int((now - latest[1]).total_seconds()) if latest else None,
        }

    return api
