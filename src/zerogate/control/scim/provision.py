"""Writes from SCIM into the inventory: the step between the resources and the database.

Every user and group change goes through `Inventory`, so it is validated, checked for
conflicts and audited exactly like the same change made through the admin API. On top, this
module adds what only SCIM needs:

1. Names an identity provider treats as one (`Alice` and `alice`: userName and a group's
   displayName are caseExact false, RFC 7643 §4.1.1, §4.2) are kept unique ignoring case.
2. `externalId` is not part of the inventory document; its changes are audited here.
3. Deprovisioning cuts access at once: deactivating or deleting a user revokes all of their
   sessions in the same transaction, recorded as `session.logout_everywhere`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ValidationError
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute

from zerogate.control.scim.errors import ScimError, ScimType, invalid_spec
from zerogate.core.audit import AuditAction
from zerogate.core.inventory.kinds import KINDS_BY_NAME, Kind
from zerogate.store import audit, sessions
from zerogate.store.errors import Conflict
from zerogate.store.inventory import Inventory, to_row
from zerogate.store.models import Group, User, utcnow

USER: Kind = KINDS_BY_NAME["user"]
GROUP: Kind = KINDS_BY_NAME["group"]


def validated(kind: Kind, row: Mapping[str, object]) -> BaseModel:
    """The spec the inventory will check, checked first to name SCIM attributes in errors."""
    try:
        return kind.spec.model_validate(dict(row))
    except ValidationError as exc:
        raise invalid_spec(exc) from None


def _ensure_free(
    inventory: Inventory,
    column: InstrumentedAttribute[str],
    name: str,
    *,
    others: ColumnElement[bool] | None = None,
) -> None:
    """Refuse `name` when another object holds it in any letter case (`others` excludes self)."""
    statement = select(column).where(func.lower(column) == name.lower())
    if others is not None:
        statement = statement.where(others)
    owner = inventory.session.scalars(statement).first()
    if owner is not None:
        attribute = "userName" if column is User.username else "displayName"
        detail = (
            f"{attribute} {name!r} already exists"
            if owner == name
            else f"{attribute} {name!r} is taken by {owner!r} (names ignore case)"
        )
        raise ScimError(409, detail, ScimType.UNIQUENESS)


def _set_external_id(
    inventory: Inventory, target: str, obj: User | Group, value: str | None
) -> None:
    if obj.external_id == value:
        return
    audit.record(
        inventory.session,
        inventory.actor,
        AuditAction.UPDATE,
        target,
        before={"external_id": obj.external_id},
        after={"external_id": value},
    )
    obj.external_id = value


def _cut_sessions(inventory: Inventory, user: User, reason: str) -> None:
    count = sessions.revoke_all(inventory.session, user.id, utcnow())
    audit.record(
        inventory.session,
        inventory.actor,
        AuditAction.LOGOUT_EVERYWHERE,
        f"user/{user.username}",
        sessions=count,
        reason=reason,
    )


# -- users -------------------------------------------------------------------------------------


def create_user(
    inventory: Inventory, fields: Mapping[str, object], external_id: str | None
) -> User:
    name = str(fields["username"])
    _ensure_free(inventory, User.username, name)
    inventory.create(USER, validated(USER, fields))
    user = inventory.session.scalars(select(User).where(User.username == name)).one()
    _set_external_id(inventory, f"user/{user.username}", user, external_id)
    return user


def update_user(
    inventory: Inventory, user: User, fields: Mapping[str, object], external_id: str | None
) -> None:
    before = to_row(USER, user)
    patch = {name: value for name, value in fields.items() if before[name] != value}
    if "username" in patch:
        name = str(patch["username"])
        _ensure_free(inventory, User.username, name, others=User.id != user.id)
    if patch:
        validated(USER, {**before, **patch})
        inventory.update(USER, user.username, patch)
    _set_external_id(inventory, f"user/{user.username}", user, external_id)
    if patch.get("disabled") is True:
        _cut_sessions(inventory, user, "deactivated through SCIM")


def delete_user(inventory: Inventory, user: User) -> None:
    _cut_sessions(inventory, user, "deleted through SCIM")
    try:
        inventory.delete(USER, user.username)
    except Conflict as exc:  # still owns devices: not a uniqueness problem
        raise ScimError(409, str(exc)) from exc


# -- groups ------------------------------------------------------------------------------------


def create_group(inventory: Inventory, name: str, external_id: str | None) -> Group:
    _ensure_free(inventory, Group.name, name)
    inventory.create(GROUP, validated(GROUP, {"name": name}))
    group = inventory.session.scalars(select(Group).where(Group.name == name)).one()
    _set_external_id(inventory, f"group/{name}", group, external_id)
    return group


def update_group(inventory: Inventory, group: Group, name: str, external_id: str | None) -> None:
    if name != group.name:
        _ensure_free(inventory, Group.name, name, others=Group.id != group.id)
        validated(GROUP, {**to_row(GROUP, group), "name": name})
        inventory.update(GROUP, group.name, {"name": name})
    _set_external_id(inventory, f"group/{group.name}", group, external_id)


def set_membership(inventory: Inventory, group: Group, users: Iterable[User], member: bool) -> None:
    """Membership is a field of each user, so each change is one audited user update."""
    for user in users:
        names = {g.name for g in user.groups}
        wanted = names | {group.name} if member else names - {group.name}
        if wanted != names:
            inventory.update(USER, user.username, {"groups": sorted(wanted)})


def delete_group(inventory: Inventory, group: Group) -> None:
    inventory.delete(GROUP, group.name)
