"""SCIM messages on the wire (RFC 7644 §3): media type, list responses, paging, projection.

Shared by every resource: what a response looks like, never what it says about a user or a
group. Query parameters arrive as text and are read here, so a bad `count` is a SCIM
`invalidValue` with a reason rather than a framework validation error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import JSONResponse

from zerogate.control.scim.errors import ScimType, bad
from zerogate.control.scim.filters import AttrPath, Filter, SyntaxProblem, parse_filter, parse_path

MEDIA_TYPE = "application/scim+json"  # RFC 7644 §3.1
PREFIX = "/scim/v2"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
MAX_RESULTS = 200  # announced as filter.maxResults in the ServiceProviderConfig
_INTEGER = re.compile(r"-?[0-9]{1,12}")
_ID = re.compile(r"[1-9][0-9]{0,9}")
_ALWAYS_RETURNED = frozenset({"schemas", "id"})  # RFC 7643 §2.4, returned "always"

Resource = dict[str, object]


class ScimResponse(JSONResponse):
    media_type = MEDIA_TYPE


def parse_id(value: object) -> int | None:
    """A resource id as zerogate issues them: a positive 32-bit integer, written in decimal."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        return None
    number = int(value)
    return number if number < 2**31 else None


def base_url(request: Request) -> str:
    """Where this service provider lives, for `meta.location` and `$ref` (absolute URIs)."""
    return str(request.base_url).rstrip("/") + PREFIX


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def meta(resource_type: str, created: datetime, modified: datetime, location: str) -> Resource:
    return {
        "resourceType": resource_type,
        "created": timestamp(created),
        "lastModified": timestamp(modified),
        "location": location,
    }


@dataclass(frozen=True, slots=True)
class Page:
    """RFC 7644 §3.4.2.4: `startIndex` counts from 1, `count` is at most MAX_RESULTS."""

    start_index: int = 1
    count: int = MAX_RESULTS

    @property
    def offset(self) -> int:
        return self.start_index - 1


def _integer(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    if not _INTEGER.fullmatch(text.strip()):
        raise bad(ScimType.INVALID_VALUE, f"{name} must be an integer, not {text[:40]!r}")
    return int(text)


def paging(
    start_index: Annotated[str | None, Query(alias="startIndex")] = None,
    count: Annotated[str | None, Query()] = None,
) -> Page:
    start, size = _integer(start_index, "startIndex"), _integer(count, "count")
    # §3.4.2.4: a startIndex below 1 means 1; a negative count means 0.
    return Page(
        start_index=max(1, start if start is not None else 1),
        count=min(MAX_RESULTS, max(0, size if size is not None else MAX_RESULTS)),
    )


def read_filter(text: str | None, core_schema: str) -> Filter:
    """The `filter` query parameter (RFC 7644 §3.4.2.2); absent means every resource."""
    if text is None or not text.strip():
        return ()
    try:
        return parse_filter(text, core_schema)
    except SyntaxProblem as exc:
        raise bad(ScimType.INVALID_FILTER, f"filter: {exc}") from None


def list_response(resources: Sequence[Resource], total: int, page: Page) -> Resource:
    # §3.4.2: Resources is present even when empty — clients index into it unconditionally.
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "itemsPerPage": len(resources),
        "startIndex": page.start_index,
        "Resources": list(resources),
    }


@dataclass(frozen=True, slots=True)
class Projection:
    """`attributes` / `excludedAttributes` (RFC 7644 §3.9), top level and one level down."""

    attributes: tuple[AttrPath, ...] = ()
    excluded: tuple[AttrPath, ...] = ()

    def wants(self, attribute: str) -> bool:
        """Whether `attribute` (lower-case, top level) is returned: skip loading it if not."""
        if self.attributes and all(path.attr != attribute for path in self.attributes):
            return False
        return not any(path.attr == attribute and path.sub is None for path in self.excluded)

    def apply(self, resource: Resource) -> Resource:
        if self.attributes:
            wanted = _selection(self.attributes)
            resource = {
                key: value
                if wanted.get(key.lower()) is None
                else _subset(value, wanted[key.lower()])
                for key, value in resource.items()
                if key.lower() in _ALWAYS_RETURNED or key.lower() in wanted
            }
        for path in self.excluded:
            for key in [k for k in resource if k.lower() == path.attr]:
                if key.lower() in _ALWAYS_RETURNED:
                    continue
                if path.sub is None:
                    del resource[key]
                else:
                    resource[key] = _without(resource[key], path.sub)
        return resource


def _selection(paths: Iterable[AttrPath]) -> dict[str, frozenset[str] | None]:
    """attribute -> the sub-attributes asked for, or None for the whole attribute."""
    wanted: dict[str, frozenset[str] | None] = {}
    for path in paths:
        if path.sub is None or (path.attr in wanted and wanted[path.attr] is None):
            wanted[path.attr] = None
        else:
            wanted[path.attr] = (wanted.get(path.attr) or frozenset()) | {path.sub}
    return wanted


def _subset(value: object, subs: frozenset[str] | None) -> object:
    if subs is None:
        return value
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if k.lower() in subs}
    if isinstance(value, list):
        return [_subset(item, subs) for item in value]
    return value


def _without(value: object, sub: str) -> object:
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if k.lower() != sub}
    if isinstance(value, list):
        return [_without(item, sub) for item in value]
    return value


def _paths(text: str | None, name: str, core_schema: str) -> tuple[AttrPath, ...]:
    if not text:
        return ()
    try:
        paths = tuple(parse_path(part, core_schema) for part in text.split(",") if part.strip())
    except SyntaxProblem as exc:
        raise bad(ScimType.INVALID_VALUE, f"{name}: {exc}") from None
    return tuple(path for path in paths if path.schema is None)  # extensions: none stored


def projection_for(core_schema: str) -> Callable[..., Projection]:
    """A dependency reading `attributes` and `excludedAttributes` for one resource type."""

    def projection(
        attributes: Annotated[str | None, Query(max_length=2000)] = None,
        excluded: Annotated[str | None, Query(alias="excludedAttributes", max_length=2000)] = None,
    ) -> Projection:
        return Projection(
            _paths(attributes, "attributes", core_schema),
            _paths(excluded, "excludedAttributes", core_schema),
        )

    return projection
