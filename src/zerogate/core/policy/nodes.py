"""Typed reading of a YAML node tree with located errors: the parser's only view of YAML.

Where it sits: `parse.py` composes the file with `yaml.compose(..., yaml.SafeLoader)` (a
node tree keeps every value's line and column, which `yaml.safe_load` throws away) and reads
it through a `Reader`. Each read either returns a typed value or records a `PolicyError` at
the offending node and returns None, so one pass collects *every* error in the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import yaml

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_KIND_BY_TAG = {
    _STR: "a string",
    _INT: "an integer",
    _BOOL: "a boolean",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:null": "null",
}


@dataclass(frozen=True, slots=True)
class PolicyError:
    line: int  # 1-based
    column: int  # 1-based
    path: str  # "rules[3].when.device.os"; "" for the document itself
    message: str

    def format(self, filename: str) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{filename}:{self.line}:{self.column}: {where}{self.message}"


class PolicyErrors(Exception):
    """The whole file is rejected: every error found, in file order."""

    def __init__(self, errors: Sequence[PolicyError], filename: str = "policy.yaml") -> None:
        self.errors = tuple(sorted(errors, key=lambda e: (e.line, e.column, e.path)))
        self.filename = filename
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(error.format(self.filename) for error in self.errors)


def describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return _KIND_BY_TAG.get(str(node.tag), f"a value tagged {node.tag}")


@dataclass(slots=True)
class Reader:
    errors: list[PolicyError] = field(default_factory=list)

    def error(self, node: yaml.Node, path: str, message: str) -> None:
        mark = node.start_mark
        self.errors.append(PolicyError(mark.line + 1, mark.column + 1, path, message))

    def mapping(
        self, node: yaml.Node, path: str, allowed: Iterable[str]
    ) -> dict[str, yaml.Node] | None:
        """The mapping's values by key; unknown and duplicate keys are errors (and dropped)."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, path, f"expected a mapping, got {describe(node)}")
            return None
        known = tuple(allowed)
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar_text(key_node)
            if key is None:
                self.error(key_node, path, f"keys must be strings, got {describe(key_node)}")
            elif key in out:
                self.error(key_node, f"{path}.{key}".lstrip("."), f"duplicate key {key!r}")
            elif key not in known:
                expected = ", ".join(known)
                self.error(key_node, path, f"unknown key {key!r} (expected one of: {expected})")
            else:
                out[key] = value_node
        return out

    def require(self, node: yaml.Node, path: str, values: dict[str, yaml.Node], key: str) -> bool:
        if key in values:
            return True
        self.error(node, path, f"missing required key {key!r}")
        return False

    @staticmethod
    def scalar_text(node: yaml.Node) -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR:
            return str(node.value)
        return None

    def string(self, node: yaml.Node, path: str) -> str | None:
        text = self.scalar_text(node)
        if text is None:
            self.error(node, path, f"expected a string, got {describe(node)}")
        elif not text:
            self.error(node, path, "must not be empty")
            return None
        return text

    def true(self, node: yaml.Node, path: str) -> bool:
        """A requirement flag: only `true` is meaningful; omit the key to not require it."""
        if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL:
            if str(node.value).lower() == "true":
                return True
            self.error(node, path, "must be true (leave the key out to not require it)")
            return False
        self.error(node, path, f"expected true, got {describe(node)}")
        return False

    def integer(self, node: yaml.Node, path: str, minimum: int, maximum: int) -> int | None:
        if not (isinstance(node, yaml.ScalarNode) and node.tag == _INT):
            self.error(node, path, f"expected an integer, got {describe(node)}")
            return None
        value = int(str(node.value).replace("_", ""), 0)
        if not minimum <= value <= maximum:
            self.error(node, path, f"must be between {minimum} and {maximum}, got {value}")
            return None
        return value

    def strings(self, node: yaml.Node, path: str) -> list[tuple[str, yaml.Node, str]]:
        """A list of strings (a single string counts as a list of one): (value, node, path)."""
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR:
            text = self.string(node, path)
            return [] if text is None else [(text, node, path)]
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, path, f"expected a list of strings, got {describe(node)}")
            return []
        out: list[tuple[str, yaml.Node, str]] = []
        for index, item in enumerate(node.value):
            item_path = f"{path}[{index}]"
            text = self.string(item, item_path)
            if text is not None:
                out.append((text, item, item_path))
        return out
