"""The inventory: what exists. Anything not in it can never be reached by anyone.

Pure schemas and rules shared by the API, the import file and the store.
"""

from zerogate.core.inventory.kinds import KINDS, KINDS_BY_PLURAL, Kind
from zerogate.core.inventory.schemas import (
    AppKind,
    AppMode,
    AppSpec,
    ConnectorGroupSpec,
    ConnectorSpec,
    DepartmentSpec,
    DeviceSpec,
    DeviceStatus,
    GatewaySpec,
    GroupSpec,
    OfficeSpec,
    PrincipalKind,
    UserSpec,
)

__all__ = [
    "KINDS",
    "KINDS_BY_PLURAL",
    "AppKind",
    "AppMode",
    "AppSpec",
    "ConnectorGroupSpec",
    "ConnectorSpec",
    "DepartmentSpec",
    "DeviceSpec",
    "DeviceStatus",
    "GatewaySpec",
    "GroupSpec",
    "Kind",
    "OfficeSpec",
    "PrincipalKind",
    "UserSpec",
]
