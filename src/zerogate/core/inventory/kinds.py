"""The registry of inventory kinds: behaviour as data.

One row per kind says its API/file name, its key field, its schema and which fields refer
to other kinds. The store, the API router, the import and the export all iterate this table,
so adding a kind is adding a row, not a new code path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from zerogate.core.inventory.schemas import (
    AppSpec,
    ConnectorGroupSpec,
    ConnectorSpec,
    DepartmentSpec,
    DeviceSpec,
    GatewaySpec,
    GroupSpec,
    OfficeSpec,
    UserSpec,
)


@dataclass(frozen=True, slots=True)
class Kind:
    name: str  # singular, as in audit events: "app"
    plural: str  # API path segment and import-file section: "apps"
    title: str  # for people: "application"
    spec: type[BaseModel]
    key: str = "name"
    refs: Mapping[str, str] = field(default_factory=dict)  # field -> kind name
    multi_refs: Mapping[str, str] = field(default_factory=dict)  # list field -> kind name
    unique: tuple[str, ...] = ()  # fields whose non-empty values no two objects share
    importable: bool = True


# Ordered so that every kind comes after the kinds it refers to: the import applies in
# this order and the export writes in it.
KINDS: tuple[Kind, ...] = (
    Kind("department", "departments", "department", DepartmentSpec),
    Kind("office", "offices", "office", OfficeSpec),
    Kind("group", "groups", "group", GroupSpec),
    Kind("connector_group", "connector-groups", "connector group", ConnectorGroupSpec),
    Kind(
        "connector",
        "connectors",
        "connector",
        ConnectorSpec,
        refs={"connector_group": "connector_group"},
    ),
    Kind("gateway", "gateways", "gateway", GatewaySpec),
    Kind(
        "user",
        "users",
        "user",
        UserSpec,
        key="username",
        refs={"department": "department", "office": "office"},
        multi_refs={"groups": "group"},
        unique=("email",),
    ),
    Kind(
        "app",
        "apps",
        "application",
        AppSpec,
        refs={"connector_group": "connector_group"},
        unique=("hostname",),
    ),
    Kind("device", "devices", "device", DeviceSpec, refs={"user": "user"}, importable=False),
)

KINDS_BY_NAME: Mapping[str, Kind] = {kind.name: kind for kind in KINDS}
KINDS_BY_PLURAL: Mapping[str, Kind] = {kind.plural: kind for kind in KINDS}


def file_section(kind: Kind) -> str:
    """The key of a kind in an import file: `connector_groups`, never with a dash."""
    return kind.plural.replace("-", "_")
