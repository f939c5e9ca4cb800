"""`/api/v1/<kind>`: list, create, read, update and delete for every inventory kind.

The routes are generated from the kinds table, so every kind has exactly the same verbs,
status codes and error shapes. Objects are addressed by their name (users by username).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, create_model

from zerogate.control.deps import AdminCaller, AnyCaller, DbSession
from zerogate.control.errors import COMMON_RESPONSES, CONFLICT, NOT_FOUND
from zerogate.core.inventory.kinds import KINDS, Kind
from zerogate.core.inventory.names import NAME_PATTERN, USERNAME_PATTERN
from zerogate.store.inventory import Inventory, Row

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="objects to skip")]


def _patch_model(kind: Kind) -> type[BaseModel]:
    """Every field optional; only the fields sent are changed (`null` clears a reference)."""
    fields: dict[str, Any] = {}
    for name, info in kind.spec.model_fields.items():
        annotation: Any = info.annotation
        fields[name] = (annotation | None, None)
    return create_model(
        f"{kind.spec.__name__.removesuffix('Spec')}Patch",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )


def _page_model(kind: Kind) -> type[BaseModel]:
    return create_model(
        f"{kind.spec.__name__.removesuffix('Spec')}Page",
        items=(list[kind.spec], ...),  # type: ignore[name-defined]
        total=(int, ...),
        limit=(int, ...),
        offset=(int, ...),
    )


def _key_param(kind: Kind) -> Any:
    pattern = USERNAME_PATTERN if kind.key == "username" else NAME_PATTERN
    return Annotated[str, Path(pattern=pattern, description=f"the {kind.title}'s {kind.key}")]


def _routes(router: APIRouter, kind: Kind) -> None:
    Key = _key_param(kind)
    Patch = _patch_model(kind)
    base, item = f"/{kind.plural}", f"/{kind.plural}/{{key}}"

    def list_objects(
        who: AnyCaller, session: DbSession, limit: Limit = 100, offset: Offset = 0
    ) -> dict[str, object]:
        rows, total = Inventory(session, who.actor).page(kind, limit=limit, offset=offset)
        return {"items": rows, "total": total, "limit": limit, "offset": offset}

    def create_object(body: BaseModel, who: AdminCaller, session: DbSession) -> Row:
        return Inventory(session, who.actor).create(kind, body)

    def get_object(key: str, who: AnyCaller, session: DbSession) -> Row:
        return Inventory(session, who.actor).get(kind, key)

    def update_object(key: str, body: BaseModel, who: AdminCaller, session: DbSession) -> Row:
        return Inventory(session, who.actor).update(kind, key, body.model_dump(exclude_unset=True))

    def delete_object(key: str, who: AdminCaller, session: DbSession) -> Response:
        Inventory(session, who.actor).delete(kind, key)
        return Response(status_code=204)

    # FastAPI reads parameter types from annotations; these differ per kind.
    create_object.__annotations__["body"] = kind.spec
    update_object.__annotations__["body"] = Patch
    for endpoint in (get_object, update_object, delete_object):
        endpoint.__annotations__["key"] = Key

    tag, title = kind.plural, kind.title
    add = router.add_api_route
    add(
        base,
        list_objects,
        methods=["GET"],
        response_model=_page_model(kind),
        operation_id=f"list_{kind.name}",
        summary=f"List {kind.plural}",
        tags=[tag],
    )
    add(
        base,
        create_object,
        methods=["POST"],
        status_code=201,
        response_model=kind.spec,
        operation_id=f"create_{kind.name}",
        summary=f"Create a {title}",
        tags=[tag],
        responses={**CONFLICT},
    )
    add(
        item,
        get_object,
        methods=["GET"],
        response_model=kind.spec,
        operation_id=f"get_{kind.name}",
        summary=f"Show a {title}",
        tags=[tag],
        responses={**NOT_FOUND},
    )
    add(
        item,
        update_object,
        methods=["PATCH"],
        response_model=kind.spec,
        operation_id=f"update_{kind.name}",
        summary=f"Change a {title}",
        tags=[tag],
        responses={**NOT_FOUND, **CONFLICT},
    )
    add(
        item,
        delete_object,
        methods=["DELETE"],
        status_code=204,
        response_class=Response,
        operation_id=f"delete_{kind.name}",
        summary=f"Delete a {title}",
        tags=[tag],
        responses={**NOT_FOUND, **CONFLICT},
    )


def router() -> APIRouter:
    api = APIRouter(responses=COMMON_RESPONSES)
    for kind in KINDS:
        _routes(api, kind)
    return api
