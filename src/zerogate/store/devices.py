"""Devices as the policy sees them: the inventory entry, its certificate and latest posture."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from zerogate.core.inventory.schemas import DeviceStatus
from zerogate.core.policy.model import Device as PolicyDevice
from zerogate.core.policy.model import OsFamily
from zerogate.core.posture import PostureReport, policy_device
from zerogate.store.models import Device, DevicePosture, IssuedCertificateRecord

DEVICE_CERTIFICATE = "device"  # pki.CertKind.DEVICE, as stored in the certificates table


def find(session: Session, name: str) -> Device | None:
    return session.scalars(select(Device).where(Device.name == name)).first()


def record_posture(
    session: Session, device: Device, report: PostureReport, *, certificate: str, now: datetime
) -> DevicePosture:
    """Keep `report` as the device's latest posture (one row per device, replaced each time)."""
    row = session.get(DevicePosture, device.id) or DevicePosture(device_id=device.id)
    row.os_family = str(report.os_family)
    row.os_version = report.os_version
    row.disk_encrypted = report.disk_encrypted
    row.firewall = report.firewall
    row.screen_lock = report.screen_lock
    row.processes = list(report.processes)
    row.agent_version = report.agent_version
    row.reported_at = now
    row.certificate_serial = certificate
    session.add(row)
    session.flush()
    return row


def latest_posture(session: Session, device: Device) -> tuple[PostureReport, datetime] | None:
    row = session.get(DevicePosture, device.id)
    if row is None:
        return None
    report = PostureReport(
        os_family=OsFamily(row.os_family),
        os_version=row.os_version,
        disk_encrypted=row.disk_encrypted,
        firewall=row.firewall,
        screen_lock=row.screen_lock,
        processes=list(row.processes),
        agent_version=row.agent_version,
    )
    return report, row.reported_at


def enrolled(session: Session, device: Device, now: datetime) -> bool:
    """A live device certificate names this device: its agent holds a key from our CA."""
    live = (
        select(IssuedCertificateRecord.serial)
        .where(IssuedCertificateRecord.kind == DEVICE_CERTIFICATE)
        .where(IssuedCertificateRecord.common_name == device.name)
        .where(IssuedCertificateRecord.revoked_at.is_(None))
        .where(IssuedCertificateRecord.not_after > now)
        .limit(1)
    )
    return session.scalar(live) is not None


def policy_view(session: Session, device: Device, now: datetime) -> PolicyDevice:
    posture = latest_posture(session, device)
    return policy_device(
        device.name,
        enrolled=enrolled(session, device, now),
        approved=device.status == DeviceStatus.APPROVED,
        inventory_os=OsFamily(device.os_family) if device.os_family else None,
        report=posture[0] if posture else None,
        reported_at=posture[1] if posture else None,
    )
