"""SCIM failures: one exception type carrying an RFC 7644 §3.12 error, and the body it becomes.

Pure. Everything under `/scim/v2` fails as a `ScimError`: the resources raise it directly, and
`routing.ScimRoute` translates what the rest of zerogate raises (auth, store, validation) into
one, so an identity provider only ever reads SCIM's error shape.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

from pydantic import ValidationError

from zerogate.core.inventory.document import Problem, plain_message
from zerogate.core.inventory.names import NAME_PATTERN, USERNAME_PATTERN

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimType(enum.StrEnum):
    """The `scimType` detail codes of RFC 7644 §3.12, Table 9 (only with status 400 or 409)."""

    INVALID_FILTER = "invalidFilter"
    TOO_MANY = "tooMany"
    UNIQUENESS = "uniqueness"
    MUTABILITY = "mutability"
    INVALID_SYNTAX = "invalidSyntax"
    INVALID_PATH = "invalidPath"
    NO_TARGET = "noTarget"
    INVALID_VALUE = "invalidValue"
    INVALID_VERS = "invalidVers"
    SENSITIVE = "sensitive"


class ScimError(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        scim_type: ScimType | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        # RFC 7644 §3.12: `status` is the HTTP status code as a string.
        body: dict[str, object] = {
            "schemas": [ERROR_SCHEMA],
            "status": str(self.status),
            "detail": self.detail,
        }
        if self.scim_type is not None:
            body["scimType"] = str(self.scim_type)
        return body


def bad(scim_type: ScimType, detail: str) -> ScimError:
    """A 400 with its scimType, the most common SCIM failure."""
    return ScimError(400, detail, scim_type)


# Inventory field -> the SCIM attribute an identity provider wrote it as.
SCIM_NAMES: Mapping[str, str] = {
    "username": "userName",
    "display_name": "displayName",
    "email": "emails",
    "disabled": "active",
    "groups": "groups",
    "name": "displayName",  # a group's name
}

_PATTERN_RULES: Mapping[str, str] = {
    USERNAME_PATTERN: "1 to 128 letters, digits or . _ @ + - starting with a letter or digit",
    NAME_PATTERN: "1 to 64 letters, digits or . _ - starting with a letter or digit",
}


def _describe(field: str, message: str, value: object) -> str:
    attribute = SCIM_NAMES.get(field, field)
    for pattern, rule in _PATTERN_RULES.items():
        if pattern in message:
            shown = repr(value) if isinstance(value, str) and len(value) <= 200 else "the value"
            return f"{attribute} {shown} does not fit zerogate's names: use {rule}"
    return f"{attribute}: {message}"


def invalid_spec(exc: ValidationError) -> ScimError:
    """A schema's refusal as 400 invalidValue, naming the SCIM attributes involved."""
    details = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        message = (
            f"pattern {error['ctx']['pattern']}"
            if error["type"] == "string_pattern_mismatch" and "ctx" in error
            else plain_message(error)
        )
        details.append(_describe(field, message, error.get("input")))
    return bad(ScimType.INVALID_VALUE, "; ".join(details))


def invalid_problems(problems: Sequence[Problem]) -> ScimError:
    """The store's `Invalid` problems (paths are inventory fields) as 400 invalidValue."""
    details = [
        _describe(str(problem.path[0]) if problem.path else "", problem.message, None)
        for problem in problems
    ]
    return bad(ScimType.INVALID_VALUE, "; ".join(details) or "invalid value")
