"""`/scim/v2/Users`: an identity provider's users as zerogate users (RFC 7643 §4.1).

Where it sits: identity provider → SCIM (`routing`, `patch`, `filters`) → `user_draft` maps
attributes in → `provision` → the `Inventory` repository (validation, audit) → database.
This module holds the routes and the way back out: users as SCIM resources, filters as SQL.

    id           the user's integer id as a string: stable across renames
    userName     username, caseExact false: filtered and kept unique ignoring case
    displayName  display_name; else name.formatted; else "givenName familyName"
    emails       email: the primary address, else the first (shown as type work, primary)
    active       not disabled; turning it false also revokes every session at once
    externalId   external_id
    groups       read only: the groups the user belongs to
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import ColumnElement, and_, false, func, select
from sqlalchemy.orm import Session, selectinload

from zerogate.control.deps import DbSession
from zerogate.control.scim import provision
from zerogate.control.scim.errors import ScimError, ScimType, bad
from zerogate.control.scim.filters import Equals, Filter, Present, Term
from zerogate.control.scim.messages import (
    USER_SCHEMA,
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
from zerogate.control.scim.patch import body_changes, parse_patch
from zerogate.control.scim.routing import FilterText, JsonBody, ScimCaller, ScimRoute
from zerogate.control.scim.user_draft import UserDraft, apply, is_kept_address
from zerogate.store.inventory import Inventory
from zerogate.store.models import User

# -- reading -----------------------------------------------------------------------------------


def resource(user: User, base: str) -> Resource:
    location = f"{base}/Users/{user.id}"
    out: Resource = {"schemas": [USER_SCHEMA], "id": str(user.id)}
    if user.external_id:
        out["externalId"] = user.external_id
    out["userName"] = user.username
    if user.display_name:
        out["displayName"] = user.display_name
        out["name"] = {"formatted": user.display_name}
    if user.email:
        out["emails"] = [{"value": user.email, "type": "work", "primary": True}]
    out["active"] = not user.disabled
    out["groups"] = [
        {"value": str(group.id), "display": group.name, "$ref": f"{base}/Groups/{group.id}"}
        for group in user.groups
    ]
    out["meta"] = meta("User", user.created_at, user.updated_at, location)
    return out


def search(session: Session, where: Filter, offset: int, limit: int) -> tuple[list[User], int]:
    conditions = [_condition(term) for term in where]
    total = session.scalar(select(func.count()).select_from(User).where(*conditions)) or 0
    if limit == 0:
        return [], total
    statement = (
        select(User)
        .where(*conditions)
        .order_by(User.id)
        .offset(offset)
        .limit(limit)
        .options(selectinload(User.groups))
    )
    return list(session.scalars(statement).unique()), total


def _condition(term: Term) -> ColumnElement[bool]:
    path = term.path
    if isinstance(term, Present):
        if path.attr == "emails":
            return _address(path.where, None)
        raise _unsupported(path.text)
    if path.where and path.attr != "emails":
        raise _unsupported(path.text)
    key = (path.attr, path.sub)
    if key == ("active", None):
        if not isinstance(term.value, bool):
            raise bad(ScimType.INVALID_FILTER, "active is compared with true or false")
        return User.disabled.is_(not term.value)
    if key == ("id", None):
        return User.id == ident if (ident := parse_id(term.value)) else false()
    text = _compared_text(term)
    if key == ("username", None):  # caseExact false (RFC 7643 §4.1.1)
        return func.lower(User.username) == text.lower()
    if key == ("externalid", None):  # caseExact true (RFC 7643 §3.1)
        return User.external_id == text
    if key in (("displayname", None), ("name", "formatted")):
        return func.lower(User.display_name) == text.lower()
    if key in (("emails", "value"), ("emails", None)):
        return _address(path.where, text)
    raise _unsupported(path.text)


def _address(where: Filter, value: str | None) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [User.email.is_not(None)]
    if value is not None:
        conditions.append(func.lower(User.email) == value.lower())
    for term in where:
        key = (term.path.attr, term.path.sub)
        if isinstance(term, Equals) and key == ("value", None):
            conditions.append(func.lower(User.email) == _compared_text(term).lower())
        elif isinstance(term, Equals) and key in (("type", None), ("primary", None)):
            if not is_kept_address((term,), None):
                return false()  # only the work, primary address is kept
        else:
            raise _unsupported(f"emails[{term.path.text}]")
    return and_(*conditions)


def _compared_text(term: Equals) -> str:
    if not isinstance(term.value, str):
        raise bad(ScimType.INVALID_FILTER, f"{term.path.text} is compared with a string")
    return term.value


def _unsupported(text: str) -> Exception:
    known = "userName, externalId, displayName, emails.value, id and active"
    return bad(ScimType.INVALID_FILTER, f"filtering users on {text!r} is not supported ({known})")


# -- routes ------------------------------------------------------------------------------------

UserView = Annotated[Projection, Depends(projection_for(USER_SCHEMA))]


def _load(session: Session, user_id: str) -> User:
    ident = parse_id(user_id)
    user = session.get(User, ident) if ident is not None else None
    if user is None:
        raise ScimError(404, f"no user with id {user_id!r}")
    return user


def _answer(user: User, request: Request, view: Projection, status: int = 200) -> Response:
    body = resource(user, base_url(request))
    headers = {"Location": str(cast(Resource, body["meta"])["location"])} if status == 201 else None
    return ScimResponse(view.apply(body), status_code=status, headers=headers)


def router() -> APIRouter:
    api = APIRouter(prefix="/Users", route_class=ScimRoute, include_in_schema=False)

    @api.get("")
    def list_users(
        request: Request,
        session: DbSession,
        view: UserView,
        page: Annotated[Page, Depends(paging)],
        filter_text: FilterText = None,
    ) -> Response:
        where = read_filter(filter_text, USER_SCHEMA)
        users, total = search(session, where, page.offset, page.count)
        base = base_url(request)
        return ScimResponse(
            list_response([view.apply(resource(u, base)) for u in users], total, page)
        )

    @api.get("/{user_id}")
    def get_user(user_id: str, request: Request, session: DbSession, view: UserView) -> Response:
        return _answer(_load(session, user_id), request, view)

    @api.post("")
    def create_user(
        request: Request, who: ScimCaller, session: DbSession, body: JsonBody, view: UserView
    ) -> Response:
        draft = UserDraft.blank()
        apply(draft, body_changes(body, USER_SCHEMA))
        if not draft.username:
            raise bad(ScimType.INVALID_VALUE, "userName is required")  # RFC 7643 §4.1.1
        inventory = Inventory(session, who.actor)
        user = provision.create_user(inventory, draft.fields(keep_parts=False), draft.external_id)
        return _answer(user, request, view, status=201)

    @api.put("/{user_id}")
    def replace_user(
        user_id: str,
        request: Request,
        who: ScimCaller,
        session: DbSession,
        body: JsonBody,
        view: UserView,
    ) -> Response:
        user = _load(session, user_id)
        changes = body_changes(body, USER_SCHEMA)
        if not any(c.path.attr == "username" and c.path.schema is None for c in changes):
            raise bad(ScimType.INVALID_VALUE, "userName is required")  # PUT replaces, §3.5.1
        # RFC 7644 §3.5.1: attributes left out of a PUT are "not asserted"; they keep their value.
        draft = UserDraft.of(user)
        apply(draft, changes)
        fields = draft.fields(keep_parts=False)
        provision.update_user(Inventory(session, who.actor), user, fields, draft.external_id)
        return _answer(user, request, view)

    @api.patch("/{user_id}")
    def patch_user(
        user_id: str,
        request: Request,
        who: ScimCaller,
        session: DbSession,
        body: JsonBody,
        view: UserView,
    ) -> Response:
        user = _load(session, user_id)
        draft = UserDraft.of(user)
        apply(draft, parse_patch(body, USER_SCHEMA))
        fields = draft.fields(keep_parts=True)
        provision.update_user(Inventory(session, who.actor), user, fields, draft.external_id)
        return _answer(user, request, view)  # §3.5.2: 200 with the whole resource

    @api.delete("/{user_id}", status_code=204)
    def delete_user(user_id: str, who: ScimCaller, session: DbSession) -> Response:
        provision.delete_user(Inventory(session, who.actor), _load(session, user_id))
        return Response(status_code=204)

    return api
