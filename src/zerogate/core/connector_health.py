"""A connector's health report: what it sends the control plane every few seconds.

Where it sits: `zerogate connector` builds a `HealthReport` from its live tunnels and posts it
over mutual TLS; the control plane validates it (this model), keeps the latest one per
connector, and serves it as the connector's and the gateways' live status. It is telemetry:
it never grants or denies anything.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Count = Annotated[int, Field(ge=0, le=2**62)]
Label = Annotated[str, Field(max_length=300, pattern=r"^[^\x00-\x1f\x7f]*$")]


class GatewayLink(BaseModel):
    """The connector's tunnel(s) to one gateway address (one session per gateway worker)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    gateway: Label  # host:port as the connector dials it
    sessions: Count  # live mux sessions to it
    streams: Count  # open streams over them
    bytes_in: Count  # from the gateway, since the connector started
    bytes_out: Count
    rtt_ms: Annotated[float, Field(ge=0, le=3_600_000)] | None = None  # latest keep-alive ping
    last_error: Label | None = None  # why the last attempt failed, if it did


class HealthReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Label
    draining: bool = False
    gateways: Annotated[list[GatewayLink], Field(max_length=256)] = []
    refused: Count = 0  # streams refused (bad grant, target outside the allow-list)
