"""`/scim/v2/Groups`: an identity provider's groups as zerogate groups (RFC 7643 §4.2).

Where it sits: identity provider → SCIM (`routing`, `patch`, `filters`) → this module maps
attributes → `provision` → the `Inventory` repository (validation, audit) → database.

    id           the group's integer id as a string: stable across renames
    displayName  name (zerogate's group-name rules; caseExact false, unique ignoring case)
    externalId   external_id
    members      the users whose `groups` include this group: [{value: user id, display}]

Membership is stored on each user, so adding or removing a member is an audited update of
that user, exactly as if an admin had edited the user's groups. Members are users only:
zerogate has no nested groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import ColumnElement, false, func, select
from sqlalchemy.orm import Session, selectinload

from zerogate.control.deps import DbSession
from zerogate.control.scim import provision
from zerogate.control.scim.errors import ScimError, ScimType, bad
from zerogate.control.scim.filters import Equals, Filter, Present, Term
from zerogate.control.scim.messages import (
    GROUP_SCHEMA,
    Page,
    Projection,
    Resource,
    ScimResponse,
    base_url,
    list_response,
    meta,
    paging,
    parse_id,
    projection_for,
    read_filter,
)
from zerogate.control.scim.patch import (
    Change,
    Op,
    as_text,
    body_changes,
    parse_patch,
    unknown_target,
)
from zerogate.control.scim.routing import FilterText, JsonBody, ScimCaller, ScimRoute
from zerogate.store.inventory import Inventory
from zerogate.store.models import Group, User

_READ_ONLY = frozenset({"id", "meta", "schemas"})  # Okta sends `id` inside replace values


@dataclass(slots=True)
class GroupDraft:
    """A group's SCIM-writable fields while one request's changes are applied to them."""

    name: str
    external_id: str | None
    members: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, group: Group) -> GroupDraft:
        return cls(group.name, group.external_id, {user.id for user in group.members})


def apply(draft: GroupDraft, changes: Iterable[Change]) -> None:
    for change in changes:
        path = change.path
        key = (path.attr, path.sub)
        if path.schema is not None or path.attr in _READ_ONLY:
            continue
        if path.where and path.attr != "members":  # value filters select among many values
            raise bad(ScimType.INVALID_PATH, f"{path.text!r}: only members take a [filter]")
        if key == ("displayname", None):
            if change.op is Op.REMOVE:
                raise bad(ScimType.INVALID_VALUE, "displayName is required and cannot be removed")
            draft.name = as_text(change.value, "displayName", max_length=64) or ""
        elif key == ("externalid", None):
            value = None if change.op is Op.REMOVE else change.value
            draft.external_id = as_text(value, "externalId", max_length=200) or None
        elif key == ("members", None):
            _members(draft, change)
        else:
            raise unknown_target(change)


def _members(draft: GroupDraft, change: Change) -> None:
    selected = _selected(change.path.where) if change.path.where else None
    if change.op is Op.REMOVE:
        if selected is not None:  # members[value eq "12"] (Okta)
            draft.members -= selected
        elif change.value is None:  # RFC 7644 §3.5.2.2: no value removes every member
            draft.members.clear()
        else:  # Entra ID: "path": "members", "value": [{"value": "12"}]
            draft.members -= _ids(change.value)
        return
    if selected is not None:
        raise bad(ScimType.INVALID_PATH, 'add and replace members with "path": "members"')
    ids = _ids(change.value)
    draft.members = ids if change.op is Op.REPLACE else draft.members | ids


def _selected(where: Filter) -> set[int]:
    selected: set[int] | None = None
    for term in where:
        if not (isinstance(term, Equals) and (term.path.attr, term.path.sub) == ("value", None)):
            raise bad(ScimType.INVALID_PATH, 'members can only be selected by value eq "id"')
        ident = parse_id(term.value)
        found = {ident} if ident is not None else set()
        selected = found if selected is None else selected & found
    return selected or set()


def _ids(value: object) -> set[int]:
    items = value if isinstance(value, list) else [value]
    ids = set()
    for item in items:
        raw = item.get("value") if isinstance(item, Mapping) else None
        ident = parse_id(raw)
        if ident is None:
            raise bad(
                ScimType.INVALID_VALUE, f'members: {repr(item)[:80]} is not {{"value": user id}}'
            )
        ids.add(ident)
    return ids


def _users(session: Session, ids: set[int]) -> list[User]:
    if not ids:
        return []
    statement = select(User).where(User.id.in_(ids)).options(selectinload(User.groups))
    users = list(session.scalars(statement).unique())
    missing = ids - {user.id for user in users}
    if missing:
        unknown = ", ".join(str(ident) for ident in sorted(missing))
        raise bad(ScimType.INVALID_VALUE, f"members: no user with id {unknown}")
    return users


def _save(inventory: Inventory, group: Group, draft: GroupDraft) -> None:
    provision.update_group(inventory, group, draft.name, draft.external_id)
    current = {user.id for user in group.members}
    joining = _users(inventory.session, draft.members - current)
    leaving = _users(inventory.session, current - draft.members)
    provision.set_membership(inventory, group, joining, member=True)
    provision.set_membership(inventory, group, leaving, member=False)


# -- reading -----------------------------------------------------------------------------------


def resource(group: Group, base: str, *, members: bool = True) -> Resource:
    out: Resource = {"schemas": [GROUP_SCHEMA], "id": str(group.id)}
    if group.external_id:
        out["externalId"] = group.external_id
    out["displayName"] = group.name
    if members:
        out["members"] = [
            {
                "value": str(user.id),
                "display": user.username,
                "type": "User",
                "$ref": f"{base}/Users/{user.id}",
            }
            for user in sorted(group.members, key=lambda user: user.id)
        ]
    out["meta"] = meta("Group", group.created_at, group.updated_at, f"{base}/Groups/{group.id}")
    return out


def search(
    session: Session, where: Filter, page: Page, *, members: bool
) -> tuple[list[Group], int]:
    conditions = [_condition(term) for term in where]
    total = session.scalar(select(func.count()).select_from(Group).where(*conditions)) or 0
    if page.count == 0:
        return [], total
    statement = select(Group).where(*conditions).order_by(Group.id)
    if members:
        statement = statement.options(selectinload(Group.members))
    statement = statement.offset(page.offset).limit(page.count)
    return list(session.scalars(statement).unique()), total


def _condition(term: Term) -> ColumnElement[bool]:
    path = term.path
    key = (path.attr, path.sub)
    if isinstance(term, Present) and path.attr == "members":
        return Group.members.any(User.id.in_(_selected(path.where)))
    if isinstance(term, Equals) and isinstance(term.value, str) and not path.where:
        if key == ("displayname", None):  # caseExact false (RFC 7643 §4.2)
            return func.lower(Group.name) == term.value.lower()
        if key == ("externalid", None):
            return Group.external_id == term.value
        if key == ("id", None):
            return Group.id == ident if (ident := parse_id(term.value)) else false()
        if key in (("members", None), ("members", "value")):
            ident = parse_id(term.value)
            return Group.members.any(User.id == ident) if ident else false()
    known = 'displayName, externalId, id and members[value eq "id"], compared with strings'
    raise bad(ScimType.INVALID_FILTER, f"filtering groups on {path.text!r}: use {known}")


# -- routes ------------------------------------------------------------------------------------

GroupView = Annotated[Projection, Depends(projection_for(GROUP_SCHEMA))]


def _load(session: Session, group_id: str) -> Group:
    ident = parse_id(group_id)
    group = session.get(Group, ident) if ident is not None else None
    if group is None:
        raise ScimError(404, f"no group with id {group_id!r}")
    return group


def _answer(group: Group, request: Request, view: Projection, status: int = 200) -> Response:
    body = resource(group, base_url(request), members=view.wants("members"))
    headers = {"Location": str(cast(Resource, body["meta"])["location"])} if status == 201 else None
    return ScimResponse(view.apply(body), status_code=status, headers=headers)


def router() -> APIRouter:
    api = APIRouter(prefix="/Groups", route_class=ScimRoute, include_in_schema=False)

    @api.get("")
    def list_groups(
        request: Request,
        session: DbSession,
        view: GroupView,
        page: Annotated[Page, Depends(paging)],
        filter_text: FilterText = None,
    ) -> Response:
        wanted = view.wants("members")
        groups, total = search(
            session, read_filter(filter_text, GROUP_SCHEMA), page, members=wanted
        )
        base = base_url(request)
        found = [view.apply(resource(g, base, members=wanted)) for g in groups]
        return ScimResponse(list_response(found, total, page))

    @api.get("/{group_id}")
    def get_group(group_id: str, request: Request, session: DbSession, view: GroupView) -> Response:
        return _answer(_load(session, group_id), request, view)

    @api.post("")
    def create_group(
        request: Request, who: ScimCaller, session: DbSession, body: JsonBody, view: GroupView
    ) -> Response:
        draft = GroupDraft("", None)
        apply(draft, body_changes(body, GROUP_SCHEMA))
        if not draft.name:
            raise bad(ScimType.INVALID_VALUE, "displayName is required")  # RFC 7643 §4.2
        inventory = Inventory(session, who.actor)
        group = provision.create_group(inventory, draft.name, draft.external_id)
        provision.set_membership(inventory, group, _users(session, draft.members), member=True)
        return _answer(group, request, view, status=201)

    @api.put("/{group_id}")
    def replace_group(
        group_id: str,
        request: Request,
        who: ScimCaller,
        session: DbSession,
        body: JsonBody,
        view: GroupView,
    ) -> Response:
        group = _load(session, group_id)
        changes = body_changes(body, GROUP_SCHEMA)
        if not any(c.path.attr == "displayname" and c.path.schema is None for c in changes):
            raise bad(ScimType.INVALID_VALUE, "displayName is required")  # PUT replaces, §3.5.1
        draft = GroupDraft.of(group)
        apply(draft, changes)
        _save(Inventory(session, who.actor), group, draft)
        return _answer(group, request, view)

    @api.patch("/{group_id}", status_code=204)
    def patch_group(group_id: str, who: ScimCaller, session: DbSession, body: JsonBody) -> Response:
        group = _load(session, group_id)
        draft = GroupDraft.of(group)
        apply(draft, parse_patch(body, GROUP_SCHEMA))
        _save(Inventory(session, who.actor), group, draft)
        # RFC 7644 §3.5.2 allows 204: a large group's member list is not sent back each time.
        return Response(status_code=204)

    @api.delete("/{group_id}", status_code=204)
    def delete_group(group_id: str, who: ScimCaller, session: DbSession) -> Response:
        provision.delete_group(Inventory(session, who.actor), _load(session, group_id))
        return Response(status_code=204)

    return api
