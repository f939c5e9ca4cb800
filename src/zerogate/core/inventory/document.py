"""Validation of a whole inventory document (an import file or an API import body).

Pure: it is handed the parsed document and what the store already holds, and returns either
the validated objects in dependency order or *every* problem found, each with its path in the
document (`("users", 12, "department")`) so a caller can point at the file's line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from zerogate.core.inventory.kinds import KINDS, KINDS_BY_NAME, Kind, file_section

PathPart = str | int
# kind name -> key -> the object as a plain dict (the store's current view)
Existing = Mapping[str, Mapping[str, Mapping[str, object]]]


@dataclass(frozen=True, slots=True)
class Problem:
    path: tuple[PathPart, ...]
    message: str

    def __str__(self) -> str:
        where = ".".join(str(part) for part in self.path) or "(document)"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Document:
    """Validated objects per kind name, in the order of `KINDS`."""

    objects: Mapping[str, Sequence[BaseModel]]

    def count(self) -> int:
        return sum(len(items) for items in self.objects.values())


IMPORTABLE: tuple[Kind, ...] = tuple(kind for kind in KINDS if kind.importable)
SECTIONS: Mapping[str, Kind] = {file_section(kind): kind for kind in IMPORTABLE}


def plain_message(error: Mapping[str, object]) -> str:
    """Pydantic's message without its "Value error, " prefix, which says nothing to a person."""
    return str(error["msg"]).removeprefix("Value error, ")


def _schema_problems(section: str, index: int, exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if isinstance(part, str | int))
        message = "unknown field" if error["type"] == "extra_forbidden" else plain_message(error)
        problems.append(Problem((section, index, *loc), message))
    return problems


def _parse_sections(data: object) -> tuple[dict[str, list[BaseModel]], list[Problem]]:
    if not isinstance(data, Mapping):
        return {}, [Problem((), "the document must be a mapping of sections like `apps:`")]
    parsed: dict[str, list[BaseModel]] = {}
    problems: list[Problem] = []
    for section, items in data.items():
        kind = SECTIONS.get(str(section))
        if kind is None:
            known = ", ".join(SECTIONS)
            problems.append(Problem((str(section),), f"unknown section (known: {known})"))
            continue
        if not isinstance(items, list):
            problems.append(Problem((section,), "must be a list"))
            continue
        parsed[kind.name] = []
        for index, item in enumerate(items):
            try:
                parsed[kind.name].append(kind.spec.model_validate(item))
            except ValidationError as exc:
                problems.extend(_schema_problems(section, index, exc))
    return parsed, problems


def _duplicate_keys(parsed: Mapping[str, list[BaseModel]]) -> list[Problem]:
    problems = []
    for kind_name, items in parsed.items():
        kind = KINDS_BY_NAME[kind_name]
        first: dict[object, int] = {}
        for index, item in enumerate(items):
            key = getattr(item, kind.key)
            if key in first:
                message = f"duplicate {kind.title} {key!r} (first at index {first[key]})"
                problems.append(Problem((file_section(kind), index, kind.key), message))
            else:
                first[key] = index
    return problems


def _reference_problems(parsed: Mapping[str, list[BaseModel]], existing: Existing) -> list[Problem]:
    names = {
        kind.name: {str(getattr(item, kind.key)) for item in parsed.get(kind.name, [])}
        | set(existing.get(kind.name, {}))
        for kind in KINDS
    }
    problems = []
    for kind_name, items in parsed.items():
        kind = KINDS_BY_NAME[kind_name]
        fields = {**{f: (t, False) for f, t in kind.refs.items()}}
        fields |= {f: (t, True) for f, t in kind.multi_refs.items()}
        for index, item in enumerate(items):
            for field, (target, many) in fields.items():
                value = getattr(item, field)
                values = value if many else ([] if value is None else [value])
                for position, ref in enumerate(values):
                    if ref not in names[target]:
                        title = KINDS_BY_NAME[target].title
                        extra: tuple[PathPart, ...] = (position,) if many else ()
                        path = (file_section(kind), index, field, *extra)
                        problems.append(Problem(path, f"unknown {title} {ref!r}"))
    return problems


def _unique_problems(parsed: Mapping[str, list[BaseModel]], existing: Existing) -> list[Problem]:
    problems = []
    for kind_name, items in parsed.items():
        kind = KINDS_BY_NAME[kind_name]
        in_file = {str(getattr(item, kind.key)) for item in items}
        for field in kind.unique:
            owners: dict[object, str] = {
                obj[field]: key
                for key, obj in existing.get(kind_name, {}).items()
                if key not in in_file and obj.get(field)
            }
            for index, item in enumerate(items):
                value, key = getattr(item, field), str(getattr(item, kind.key))
                if not value:
                    continue
                owner = owners.setdefault(value, key)
                if owner != key:
                    message = f"{field} {value!r} is already used by {kind.title} {owner!r}"
                    problems.append(Problem((file_section(kind), index, field), message))
    return problems


def validate_document(data: object, existing: Existing) -> tuple[Document | None, list[Problem]]:
    """Check a document against the schemas, itself and what exists; all problems at once."""
    parsed, problems = _parse_sections(data)
    problems += _duplicate_keys(parsed)
    problems += _reference_problems(parsed, existing)
    problems += _unique_problems(parsed, existing)
    if problems:
        return None, problems
    ordered = {kind.name: parsed[kind.name] for kind in IMPORTABLE if kind.name in parsed}
    return Document(ordered), []
