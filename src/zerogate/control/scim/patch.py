"""SCIM PATCH (RFC 7644 §3.5.2): a PatchOp request body in, a flat list of changes out.

Pure. Each change names one target, so the resources handle attribute paths, never the
shapes a request can take:

- an operation without `path` carries an object of attributes; it becomes one change per
  attribute (§3.5.2.1, §3.5.2.3);
- POST and PUT bodies go through the same expansion (`body_changes`), so one set of rules
  maps SCIM to zerogate whatever the verb;
- an object value for a single-valued complex attribute (`"name": {"givenName": …}`) is
  split by the resource with `sub_changes`, since only it knows which attributes are complex
  and which are lists of objects (`members`, `emails`).

Identity providers differ in spelling: Microsoft Entra ID writes `"op": "Replace"` and sends
booleans as the strings "True"/"False", so op names are matched case-insensitively and
`as_bool` accepts both forms.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from zerogate.control.scim.errors import ScimError, ScimType, bad
from zerogate.control.scim.filters import AttrPath, SyntaxProblem, parse_path

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Op(enum.StrEnum):
    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"


@dataclass(frozen=True, slots=True)
class Change:
    op: Op
    path: AttrPath
    value: object  # None for a remove


def parse_patch(body: Mapping[str, object], core_schema: str) -> list[Change]:
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or PATCH_OP_SCHEMA not in schemas:
        raise bad(ScimType.INVALID_SYNTAX, f"a PATCH body needs schemas [{PATCH_OP_SCHEMA!r}]")
    operations = body.get("Operations", body.get("operations"))
    if not isinstance(operations, list) or not operations:
        raise bad(ScimType.INVALID_SYNTAX, "a PATCH body needs a non-empty Operations list")
    changes: list[Change] = []
    for index, operation in enumerate(operations):
        changes.extend(_operation(index, operation, core_schema))
    return changes


def body_changes(body: Mapping[str, object], core_schema: str) -> list[Change]:
    """A POST or PUT body as the changes that would set each attribute it carries."""
    return _attributes(Op.REPLACE, body, core_schema, "the body")


def _operation(index: int, operation: object, core_schema: str) -> list[Change]:
    where = f"Operations[{index}]"
    if not isinstance(operation, Mapping):
        raise bad(ScimType.INVALID_SYNTAX, f"{where} must be an object")
    name = operation.get("op")
    try:
        op = Op(name.lower()) if isinstance(name, str) else None
    except ValueError:
        op = None
    if op is None:
        shown = repr(name)[:40]
        raise bad(ScimType.INVALID_SYNTAX, f"{where}.op {shown} is not add, remove or replace")
    path_text, value = operation.get("path"), operation.get("value")
    if path_text is None or path_text == "":
        if op is Op.REMOVE:  # §3.5.2.2: a remove without a path has no target
            raise bad(ScimType.NO_TARGET, f"{where}: remove needs a path")
        if not isinstance(value, Mapping):
            raise bad(ScimType.INVALID_VALUE, f"{where}: without a path, value must be an object")
        return _attributes(op, value, core_schema, where)
    if not isinstance(path_text, str):
        raise bad(ScimType.INVALID_PATH, f"{where}.path must be a string")
    if op is not Op.REMOVE and "value" not in operation:
        raise bad(ScimType.INVALID_VALUE, f"{where}: {op} needs a value")  # §3.5.2.1
    return [Change(op, _path(path_text, core_schema, where), value)]


def _attributes(op: Op, values: Mapping[str, object], core_schema: str, where: str) -> list[Change]:
    changes: list[Change] = []
    for key, value in values.items():
        if key.lower() == core_schema.lower() and isinstance(value, Mapping):
            changes.extend(_attributes(op, value, core_schema, where))  # fully qualified
        else:
            changes.append(Change(op, _path(key, core_schema, where), value))
    return changes


def sub_changes(change: Change) -> list[Change]:
    """An object value as one change per sub-attribute; the ones not named stay (§3.5.2.3)."""
    assert isinstance(change.value, Mapping)
    changes = []
    for key, item in change.value.items():
        sub = _path(str(key), "", change.path.text)
        if sub.schema is not None or sub.sub is not None or sub.where:
            raise bad(
                ScimType.INVALID_PATH, f"{key!r} is not a sub-attribute of {change.path.text}"
            )
        path = replace(change.path, sub=sub.attr, text=f"{change.path.text}.{key}")
        changes.append(Change(change.op, path, item))
    return changes


def _path(text: str, core_schema: str, where: str) -> AttrPath:
    try:
        return parse_path(text, core_schema)
    except SyntaxProblem as exc:
        raise bad(ScimType.INVALID_PATH, f"{where}: {exc}") from None


def as_bool(value: object, attribute: str) -> bool:
    """A SCIM boolean; Entra ID sends "True" and "False" as strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise bad(ScimType.INVALID_VALUE, f"{attribute} must be true or false, not {repr(value)[:40]}")


def as_text(value: object, attribute: str, *, max_length: int = 500) -> str | None:
    """A SCIM string (None for null); refuses other types, control characters, long values."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) > max_length:
        raise bad(ScimType.INVALID_VALUE, f"{attribute} is longer than {max_length} characters")
    if isinstance(value, str) and _CONTROL.search(value):
        raise bad(ScimType.INVALID_VALUE, f"{attribute} must not contain control characters")
    if isinstance(value, str):
        return value
    raise bad(ScimType.INVALID_VALUE, f"{attribute} must be a string, not {type(value).__name__}")


def unknown_target(change: Change) -> ScimError:
    return bad(ScimType.INVALID_PATH, f"{change.path.text!r} is not an attribute zerogate knows")
