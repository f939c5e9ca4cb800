"""`/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`: what this service provider supports.

RFC 7644 §4 and RFC 7643 §5 to §7. Identity providers read these to decide how to talk to us:
PATCH yes, filters yes (at most MAX_RESULTS per page), bulk, sort, ETags and password changes
no, and a bearer token for authentication. The schemas list only the attributes zerogate
keeps; the rest of the core schema is accepted and ignored (see `users`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from zerogate.control.scim.errors import ScimError
from zerogate.control.scim.messages import (
    GROUP_SCHEMA,
    MAX_RESULTS,
    USER_SCHEMA,
    Page,
    Resource,
    ScimResponse,
    base_url,
    list_response,
)
from zerogate.control.scim.routing import ScimRoute

CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


def _attribute(
    name: str,
    description: str,
    *,
    kind: str = "string",
    multi: bool = False,
    required: bool = False,
    case_exact: bool = False,
    mutability: str = "readWrite",
    uniqueness: str = "none",
    subs: tuple[Resource, ...] = (),
) -> Resource:
    """One attribute definition (RFC 7643 §7)."""
    out: Resource = {
        "name": name,
        "type": kind,
        "multiValued": multi,
        "description": description,
        "required": required,
        "caseExact": case_exact,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": uniqueness,
    }
    if subs:
        out["subAttributes"] = list(subs)
    return out


_USER_ATTRIBUTES = (
    _attribute("userName", "zerogate's username", required=True, uniqueness="server"),
    _attribute(
        "name",
        "kept as the display name",
        kind="complex",
        subs=(
            _attribute("formatted", "the full name"),
            _attribute("givenName", "the given name"),
            _attribute("familyName", "the family name"),
        ),
    ),
    _attribute("displayName", "the name shown to people"),
    _attribute(
        "emails",
        "the primary (else the first) address is kept",
        kind="complex",
        multi=True,
        subs=(
            _attribute("value", "the address"),
            _attribute("type", "work"),
            _attribute("primary", "whether this is the primary address", kind="boolean"),
        ),
    ),
    _attribute("active", "false disables the user and ends their sessions", kind="boolean"),
    _attribute(
        "groups",
        "the groups the user belongs to",
        kind="complex",
        multi=True,
        mutability="readOnly",
        subs=(
            _attribute("value", "the group's id", mutability="readOnly"),
            _attribute("display", "the group's name", mutability="readOnly"),
        ),
    ),
)
_GROUP_ATTRIBUTES = (
    _attribute("displayName", "zerogate's group name", required=True, uniqueness="server"),
    _attribute(
        "members",
        "the users in the group",
        kind="complex",
        multi=True,
        subs=(
            _attribute("value", "the user's id", mutability="immutable"),
            _attribute("display", "the user's username", mutability="readOnly"),
            _attribute("type", "User", mutability="immutable"),
        ),
    ),
)
_SCHEMAS = {
    USER_SCHEMA: ("User", "User Account", _USER_ATTRIBUTES),
    GROUP_SCHEMA: ("Group", "Group", _GROUP_ATTRIBUTES),
}
_RESOURCE_TYPES = {"User": ("/Users", USER_SCHEMA), "Group": ("/Groups", GROUP_SCHEMA)}


def service_provider_config(base: str) -> Resource:
    return {
        "schemas": [CONFIG_SCHEMA],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "a zerogate API token with the scim scope",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }


def resource_type(name: str, base: str) -> Resource:
    endpoint, schema = _RESOURCE_TYPES[name]
    return {
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": name,
        "name": name,
        "endpoint": endpoint,
        "schema": schema,
        "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/{name}"},
    }


def schema(urn: str, base: str) -> Resource:
    name, description, attributes = _SCHEMAS[urn]
    return {
        "schemas": [SCHEMA_SCHEMA],
        "id": urn,
        "name": name,
        "description": description,
        "attributes": list(attributes),
        "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{urn}"},
    }


def _listed(resources: list[Resource]) -> Response:
    return ScimResponse(list_response(resources, len(resources), Page()))


def router() -> APIRouter:
    api = APIRouter(route_class=ScimRoute, include_in_schema=False)

    @api.get("/ServiceProviderConfig")
    def get_config(request: Request) -> Response:
        return ScimResponse(service_provider_config(base_url(request)))

    @api.get("/ResourceTypes")
    def list_resource_types(request: Request) -> Response:
        return _listed([resource_type(name, base_url(request)) for name in _RESOURCE_TYPES])

    @api.get("/ResourceTypes/{name}")
    def get_resource_type(name: str, request: Request) -> Response:
        if name not in _RESOURCE_TYPES:
            raise ScimError(404, f"no resource type {name!r}")
        return ScimResponse(resource_type(name, base_url(request)))

    @api.get("/Schemas")
    def list_schemas(request: Request) -> Response:
        return _listed([schema(urn, base_url(request)) for urn in _SCHEMAS])

    @api.get("/Schemas/{urn}")
    def get_schema(urn: str, request: Request) -> Response:
        if urn not in _SCHEMAS:
            raise ScimError(404, f"no schema {urn!r}")
        return ScimResponse(schema(urn, base_url(request)))

    return api
