"""Device posture: the report an agent sends, and the device the policy sees from it.

Where it sits: the control plane validates a report (`PostureReport`) that arrived over
mutual TLS with the device's certificate, stores the latest one per device, and builds the
policy's `Device` (`policy_device`) for what-if questions and snapshots; gateways build the
same `Device` from the same fields. The report states facts; whether they are good enough is
the policy's business (`core/policy/conditions.py`), never the agent's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from zerogate.core.policy.model import Device, OsFamily, parse_version

# Dotted decimal versions ("14.2.1", "10.0.22631"): what the policy's minimums compare against.
DottedVersion = Annotated[str, Field(pattern=r"^[0-9]{1,9}(\.[0-9]{1,9}){0,7}$")]
ProcessName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


class PostureReport(BaseModel):
    """What the agent observed on the device, at the moment it sent the report."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    os_family: OsFamily
    os_version: DottedVersion
    disk_encrypted: bool
    firewall: bool
    screen_lock: bool
    processes: Annotated[list[ProcessName], Field(max_length=1000)] = []
    agent_version: DottedVersion | None = None


def policy_device(
    name: str,
    *,
    enrolled: bool,
    approved: bool,
    inventory_os: OsFamily | None,
    report: PostureReport | None,
    reported_at: datetime | None,
) -> Device:
    """The device as the policy sees it; with no report, every posture fact is false/unknown.

    `enrolled`: the device holds a live certificate from our CA; `approved`: an admin approved
    it in the inventory. The OS family reported by the agent wins over the inventory's.
    """
    if report is None:
        return Device(
            id=name,
            enrolled=enrolled,
            approved=approved,
            os_family=inventory_os,
            os_version=(),
            disk_encrypted=False,
            firewall=False,
            screen_lock=False,
            processes=frozenset(),
            agent_version=None,
            reported_at=None,
        )
    return Device(
        id=name,
        enrolled=enrolled,
        approved=approved,
        os_family=report.os_family,
        os_version=parse_version(report.os_version),
        disk_encrypted=report.disk_encrypted,
        firewall=report.firewall,
        screen_lock=report.screen_lock,
        processes=frozenset(report.processes),
        agent_version=parse_version(report.agent_version) if report.agent_version else None,
        reported_at=reported_at,
    )
