"""The shape of every inventory object, as the API, the import file and the export use it.

Objects refer to each other by name (a user's `department`, an app's `connector_group`), so
a file an admin writes by hand reads the same as what the API returns. Unknown fields are
errors, types are strict: a typo never silently means "default".
"""

from __future__ import annotations

import enum
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from zerogate.core.inventory.names import (
    Address,
    Email,
    Hostname,
    Name,
    Tag,
    Text,
    Username,
    check_host_port,
    check_http_url,
)


class PrincipalKind(enum.StrEnum):
    """Who asks: a person (with devices) or a workload (short-lived credentials, no device)."""

    PERSON = "person"
    SERVICE = "service"


class AppKind(enum.StrEnum):
    HTTP = "http"
    TCP = "tcp"


class AppMode(enum.StrEnum):
    """`monitor` lets traffic through and records what the policy would have decided."""

    MONITOR = "monitor"
    ENFORCE = "enforce"


class DeviceStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    BLOCKED = "blocked"


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DepartmentSpec(Spec):
    name: Name
    description: Text = ""


class OfficeSpec(Spec):
    name: Name
    location: Text = ""
    description: Text = ""


class GroupSpec(Spec):
    name: Name
    description: Text = ""
    mfa_required: StrictBool = False  # every member must use a second factor


class ConnectorGroupSpec(Spec):
    name: Name
    region: Text = ""
    description: Text = ""


class ConnectorSpec(Spec):
    name: Name
    connector_group: Name
    description: Text = ""


class GatewaySpec(Spec):
    name: Name
    region: Text = ""
    public_address: Address
    description: Text = ""


def _unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} is listed twice")
        seen.add(value)


class UserSpec(Spec):
    username: Username
    email: Email | None = None
    display_name: Text = ""
    kind: PrincipalKind = PrincipalKind.PERSON
    department: Name | None = None
    office: Name | None = None
    groups: Annotated[list[Name], Field(max_length=1000)] = []
    disabled: StrictBool = False
    mfa_required: StrictBool = False

    @model_validator(mode="after")
    def _groups_unique(self) -> Self:
        _unique(self.groups, "group")
        return self


class AppSpec(Spec):
    name: Name
    kind: AppKind
    hostname: Hostname | None = None
    target: Annotated[str, Field(max_length=2000)]
    connector_group: Name | None = None
    tags: Annotated[list[Tag], Field(max_length=64)] = []
    owner: Text = ""
    mode: AppMode = AppMode.ENFORCE
    description: Text = ""

    @field_validator("target")
    @classmethod
    def _target_for_kind(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("kind") is AppKind.TCP:
            return check_host_port(value)
        return check_http_url(value)

    @model_validator(mode="after")
    def _kind_rules(self) -> Self:
        _unique(self.tags, "tag")
        if self.kind is AppKind.HTTP and self.hostname is None:
            raise ValueError("an http app needs a hostname (the name users type)")
        return self


class DeviceSpec(Spec):
    name: Name
    user: Username | None = None
    os_family: Annotated[str, Field(pattern=r"^(|linux|macos|windows|ios|android|chromeos)$")] = ""
    serial: Text = ""
    status: DeviceStatus = DeviceStatus.PENDING
    description: Text = ""
