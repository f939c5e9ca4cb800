"""A gateway worker's audit spool state: what it tells the control plane beside its events.

Where it sits: each gateway worker's `AsyncShipper` sends its spool's state, as JSON in the
`X-Zerogate-Spool` header, with every batch of events it ships, and an empty batch when it
has nothing else to send (at least every `REPORT_SECONDS`, and at once when it starts or
stops refusing requests). The control plane validates it (this model), keeps the latest one
per gateway worker, records the changes between accepting and refusing in the audit log, and
serves it in `/api/v1/status/gateways` and `/metrics`. It is telemetry: the gateway refuses
by itself (invariant 5), whether or not the control plane hears of it.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

from zerogate.core.inventory.names import NAME_PATTERN

SPOOL_HEADER: Final = "x-zerogate-spool"
REPORT_SECONDS: Final = 10.0  # the longest a gateway worker stays silent
STALE_AFTER_SECONDS: Final = 3 * REPORT_SECONDS  # three missed reports: the state is unknown

Count = Annotated[int, Field(ge=0, le=2**62)]


class SpoolReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    gateway: Annotated[str, Field(pattern=NAME_PATTERN)]  # `zerogate gateway --name`
    worker: Annotated[int, Field(ge=0, le=1023)]
    accepting: bool  # False: the worker answers 503 rather than serve unrecorded requests
    refusal: Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = None
    backlog_bytes: Count  # events the control plane has not confirmed, on disk and in memory
    max_bytes: Count | None = None  # the backlog at which it refuses; None: no limit
    refused: Count = 0  # requests refused since it last stopped accepting
    rejected: Count = 0  # events the control plane refused as invalid (dropped, logged)
    corrupt_lines: Count = 0  # unreadable spool lines skipped since it started
