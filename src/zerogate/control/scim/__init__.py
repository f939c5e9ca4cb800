"""SCIM 2.0 provisioning (RFC 7643, RFC 7644) at `/scim/v2`: identity providers manage people.

Where it sits: an identity provider (Okta, Microsoft Entra ID) calls these routes with an API
token of scope `scim` → the resources map SCIM attributes to zerogate's → `provision` writes
through the inventory repository, which validates and audits every change exactly as for the
admin API → database. Deprovisioning (`active: false`, DELETE) also revokes sessions at once.

    routing     the route class: every failure leaves as a SCIM error (RFC 7644 §3.12)
    messages    media type, ListResponse, paging, attributes / excludedAttributes
    filters     filters and attribute paths, parsed (pure)
    patch       PatchOp bodies as flat changes (pure)
    user_draft  SCIM attributes onto a user's fields (the one mapping table)
    users       /Users: routes, users as resources, filters as SQL
    groups      /Groups: the same for groups and their members
    provision   the writes into the inventory
    discovery   /ServiceProviderConfig, /ResourceTypes, /Schemas

The routes stay out of the admin OpenAPI document: it describes `/api/v1`, while SCIM's shapes
are fixed by the RFCs and published by `/Schemas`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from zerogate.control.deps import known_query_only, scim_client
from zerogate.control.scim import discovery, groups, users
from zerogate.control.scim.errors import ScimError
from zerogate.control.scim.messages import PREFIX
from zerogate.control.scim.routing import ScimRoute, install_handlers

__all__ = ["install_handlers", "router"]

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def router() -> APIRouter:
    scim = APIRouter(
        prefix=PREFIX,
        route_class=ScimRoute,
        include_in_schema=False,
        dependencies=[Depends(scim_client), Depends(known_query_only)],
    )
    parts = (discovery.router(), users.router(), groups.router())
    for part in parts:
        scim.include_router(part)
    allowed = _methods_by_path(parts)

    # Last, so it only sees what no route above matched: those answer in SCIM's shape too.
    @scim.api_route("/{rest:path}", methods=_METHODS)
    def unmatched(rest: str, request: Request) -> Response:
        path = "/" + rest
        methods = sorted({m for pattern, ms in allowed if pattern.fullmatch(path) for m in ms})
        if methods:
            detail = f"{request.method} is not allowed on {PREFIX}{path}"
            raise ScimError(405, detail, headers={"Allow": ", ".join(methods)})
        raise ScimError(404, f"no SCIM endpoint {PREFIX}{path}")

    return scim


def _methods_by_path(parts: Iterable[APIRouter]) -> list[tuple[re.Pattern[str], set[str]]]:
    return [
        (compile_path(route.path)[0], set(route.methods or ()))
        for part in parts
        for route in part.routes
        if isinstance(route, APIRoute)
    ]
