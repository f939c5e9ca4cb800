"""SCIM attribute paths and filters (RFC 7644 §3.10, §3.4.2.2): text in, parsed terms out.

Pure. The resources (`users`, `groups`) turn the terms into SQL; this module only reads.
Identity providers send little of the grammar — `userName eq "alice@example.com"`, sometimes
two comparisons joined by `and`, sometimes a value filter like `emails[type eq "work"].value`
— so that is what is understood. Everything else (`or`, `not`, parentheses, `co`, `sw`, `pr`,
…) is refused with the reason, so an unsupported filter never silently matches everything.

Attribute names are case-insensitive (RFC 7643 §2.1): paths are kept lower-cased.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

Value = str | int | float | bool | None

_NAME = r"[A-Za-z$][A-Za-z0-9_$-]*"  # ATTRNAME, RFC 7643 §2.1 ("$ref" included)
# [URN ":"] ATTRNAME ["[" valFilter "]"] ["." subAttr]  — RFC 7644 §3.10 and the PATCH PATH
# rule of §3.5.2. The URN is greedy, so it ends at the last colon: the attribute follows it.
_PATH = re.compile(
    rf"(?:(?P<urn>urn:[A-Za-z0-9:._-]+):)?(?P<attr>{_NAME})"
    rf"(?:\[(?P<where>[^\[\]]*)\])?(?:\.(?P<sub>{_NAME}))?"
)
_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<paren>[()])'
    r'|(?P<word>[^\s()"\[\]]+(?:\[[^\]]*\][^\s()"]*)?))'
)
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERALS: dict[str, Value] = {"true": True, "false": False, "null": None}
_OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"})


class SyntaxProblem(ValueError):
    """The text is not a path or filter this service provider understands; says why."""


@dataclass(frozen=True, slots=True)
class AttrPath:
    attr: str  # lower-cased top-level attribute: "emails"
    sub: str | None = None  # lower-cased sub-attribute: "value"
    where: tuple[Term, ...] = ()  # the value filter in brackets: [type eq "work"]
    schema: str | None = None  # an extension's URN; None for the resource's core schema
    text: str = field(default="", compare=False)  # as written, for messages


@dataclass(frozen=True, slots=True)
class Equals:
    """`path eq value`: the one comparison operator supported."""

    path: AttrPath
    value: Value


@dataclass(frozen=True, slots=True)
class Present:
    """A value path standing alone as a filter: `members[value eq "12"]` (RFC 7644 §3.4.2.2)."""

    path: AttrPath


Term = Equals | Present
Filter = tuple[Term, ...]  # terms joined by `and`


def parse_path(text: str, core_schema: str = "") -> AttrPath:
    """An attribute path; a prefix naming `core_schema` is dropped (RFC 7644 §3.10)."""
    match = _PATH.fullmatch(text.strip())
    if match is None:
        raise SyntaxProblem(f"{text!r} is not an attribute path")
    urn = match.group("urn")
    schema = None if urn is None or urn.lower() == core_schema.lower() else urn.lower()
    where: tuple[Term, ...] = ()
    if match.group("where") is not None:
        where = parse_filter(match.group("where"))
        if any(term.path.where for term in where):
            raise SyntaxProblem(f"{text!r}: value filters cannot be nested")
    sub = match.group("sub")
    return AttrPath(
        attr=match.group("attr").lower(),
        sub=sub.lower() if sub else None,
        where=where,
        schema=schema,
        text=text.strip(),
    )


def parse_filter(text: str, core_schema: str = "") -> Filter:
    tokens = _tokens(text)
    if not tokens:
        raise SyntaxProblem("the filter is empty")
    terms: list[Term] = []
    position = 0
    while True:
        term, position = _term(tokens, position, core_schema)
        terms.append(term)
        if position == len(tokens):
            return tuple(terms)
        joiner = tokens[position][1]
        if joiner.lower() != "and":
            raise SyntaxProblem(f"{joiner!r}: only `and` may join comparisons here")
        position += 1
        if position == len(tokens):
            raise SyntaxProblem("`and` must be followed by another comparison")


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position:].strip():
                raise SyntaxProblem(f"cannot read the filter at {text[position:][:30]!r}")
            break
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _term(tokens: list[tuple[str, str]], position: int, core_schema: str) -> tuple[Term, int]:
    kind, text = tokens[position]
    if kind == "paren" or text.lower() == "not":
        raise SyntaxProblem("`not` and parentheses are not supported")
    if kind != "word":
        raise SyntaxProblem(f"expected an attribute name, found {text}")
    path = parse_path(text, core_schema)
    rest = tokens[position + 1 :]
    if path.where and path.sub is None and (not rest or rest[0][1].lower() == "and"):
        return Present(path), position + 1
    if not rest:
        raise SyntaxProblem(f'expected `{text} eq "value"`')
    operator = rest[0][1]
    if operator.lower() != "eq":
        known = "is not supported" if operator.lower() in _OPERATORS else "is not an operator"
        raise SyntaxProblem(f"{operator!r} {known}; use eq (joined by and)")
    if len(rest) < 2:
        raise SyntaxProblem(f"`{text} {operator}` needs a value")
    return Equals(path, _value(*tokens[position + 2])), position + 3


def _value(kind: str, text: str) -> Value:
    if kind == "string":
        try:  # compValue strings are JSON strings (RFC 7644 §3.4.2.2)
            value: str = json.loads(text)
        except ValueError:
            raise SyntaxProblem(f"{text} is not a valid JSON string") from None
        return value
    if kind == "word" and text.lower() in _LITERALS:
        return _LITERALS[text.lower()]
    if kind == "word" and _NUMBER.fullmatch(text):
        number: int | float = json.loads(text)
        return number
    raise SyntaxProblem(f"{text!r} is not a value; put strings in double quotes")
