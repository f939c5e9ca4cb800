"""The inventory in the database: create, read, update, delete and bulk import of every kind.

One generic repository drives all kinds from the table in `zerogate.core.inventory.kinds`;
model attributes carry the same names as the schema fields, so converting between a stored
row and its schema needs no per-kind code. Every change appends an audit event with the
object before and after, in the same transaction as the change itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from zerogate.core.audit import AuditAction, AuditRecord
from zerogate.core.inventory.document import Document, Existing, Problem, plain_message
from zerogate.core.inventory.kinds import KINDS, KINDS_BY_NAME, Kind
from zerogate.store import audit
from zerogate.store.errors import Conflict, Invalid, NotFound
from zerogate.store.models import (
    Application,
    Base,
    Connector,
    ConnectorGroup,
    Department,
    Device,
    Gateway,
    Group,
    Office,
    User,
)

MODELS: Mapping[str, type[Base]] = {
    "department": Department,
    "office": Office,
    "group": Group,
    "connector_group": ConnectorGroup,
    "connector": Connector,
    "gateway": Gateway,
    "user": User,
    "app": Application,
    "device": Device,
}

Row = dict[str, object]
Progress = Callable[[int], None]


def to_row(kind: Kind, obj: Base) -> Row:
    """A stored object as its schema's plain dict (names for references)."""
    row: Row = {}
    for field in kind.spec.model_fields:
        value = getattr(obj, field)
        if field in kind.refs:
            target = KINDS_BY_NAME[kind.refs[field]]
            row[field] = None if value is None else getattr(value, target.key)
        elif field in kind.multi_refs:
            target = KINDS_BY_NAME[kind.multi_refs[field]]
            row[field] = sorted(getattr(item, target.key) for item in value)
        else:
            row[field] = list(value) if isinstance(value, list) else value
    return row


def _spec_row(spec: BaseModel) -> Row:
    return spec.model_dump(mode="json")


def _column(kind: Kind, field: str) -> Any:
    """A model attribute by schema field name (typed Any: SQLAlchemy columns vary by kind)."""
    return getattr(MODELS[kind.name], field)


def _key_column(kind: Kind) -> Any:
    return _column(kind, kind.key)


class Inventory:
    """Inventory operations inside one transaction, on behalf of one actor."""

    def __init__(self, session: Session, actor: str) -> None:
        self.session = session
        self.actor = actor
        # During a bulk import, audit records are collected and chained in one go at the end.
        self._bulk = False
        self._pending: list[AuditRecord] = []

    # -- reading ---------------------------------------------------------------------------

    def _load(self, kind: Kind, key: str) -> Base:
        model = MODELS[kind.name]
        obj = self.session.scalars(select(model).where(_key_column(kind) == key)).first()
        if obj is None:
            raise NotFound(kind.title, key)
        return obj

    def get(self, kind: Kind, key: str) -> Row:
        return to_row(kind, self._load(kind, key))

    def page(self, kind: Kind, *, limit: int, offset: int) -> tuple[list[Row], int]:
        model = MODELS[kind.name]
        statement = select(model).order_by(_key_column(kind)).limit(limit).offset(offset)
        if kind.multi_refs:
            statement = statement.options(
                *(selectinload(getattr(model, field)) for field in kind.multi_refs)
            )
        total = self.session.scalar(select(func.count()).select_from(model)) or 0
        rows = [to_row(kind, obj) for obj in self.session.scalars(statement).unique()]
        return rows, total

    def existing(self, kinds: Sequence[Kind] = KINDS) -> Existing:
        result: dict[str, dict[str, Mapping[str, object]]] = {}
        for kind in kinds:
            rows, _ = self.page(kind, limit=10**9, offset=0)
            result[kind.name] = {str(row[kind.key]): row for row in rows}
        return result

    # -- writing ---------------------------------------------------------------------------

    def create(self, kind: Kind, spec: BaseModel) -> Row:
        key = str(getattr(spec, kind.key))
        if self.session.scalars(select(_key_column(kind)).where(_key_column(kind) == key)).first():
            raise Conflict(f"{kind.title} {key!r} already exists")
        obj = MODELS[kind.name]()
        self._assign(kind, obj, spec, self._resolve_one)
        self.session.add(obj)
        self.session.flush()
        after = to_row(kind, obj)
        self._audit(AuditAction.CREATE, kind, key, None, after)
        return after

    def update(self, kind: Kind, key: str, patch: Mapping[str, object]) -> Row:
        obj = self._load(kind, key)
        before = to_row(kind, obj)
        try:
            spec = kind.spec.model_validate({**before, **patch})
        except ValidationError as exc:
            raise Invalid(_problems(exc)) from None
        new_key = str(getattr(spec, kind.key))
        if (
            new_key != key
            and self.session.scalars(
                select(_key_column(kind)).where(_key_column(kind) == new_key)
            ).first()
        ):
            raise Conflict(f"{kind.title} {new_key!r} already exists")
        self._assign(kind, obj, spec, self._resolve_one)
        self.session.flush()
        after = to_row(kind, obj)
        if after != before:
            self._audit(AuditAction.UPDATE, kind, key, before, after)
        return after

    def delete(self, kind: Kind, key: str) -> None:
        obj = self._load(kind, key)
        self._refuse_if_used(kind, obj, key)
        before = to_row(kind, obj)
        self.session.delete(obj)
        self.session.flush()
        self._audit(AuditAction.DELETE, kind, key, before, None)

    def _refuse_if_used(self, kind: Kind, obj: Base, key: str) -> None:
        obj_id = _object_id(obj)
        for other in KINDS:
            for field, target in other.refs.items():
                if target != kind.name:
                    continue
                column = _column(other, f"{field}_id")
                count = self.session.scalar(
                    select(func.count()).select_from(MODELS[other.name]).where(column == obj_id)
                )
                if count:
                    raise Conflict(
                        f"{kind.title} {key!r} is still used by {count} {other.plural}; "
                        f"change their {field} first"
                    )

    # -- shared by single changes and the import ---------------------------------------------

    def _assign(
        self, kind: Kind, obj: Base, spec: BaseModel, resolve: Callable[[str, str, str], Base]
    ) -> None:
        self._check_unique(kind, obj, spec)
        for field in kind.spec.model_fields:
            value = getattr(spec, field)
            if field in kind.refs:
                value = None if value is None else resolve(kind.refs[field], value, field)
            elif field in kind.multi_refs:
                value = [resolve(kind.multi_refs[field], name, field) for name in value]
            elif isinstance(value, list):
                value = list(value)
            elif hasattr(value, "value"):  # enums are stored as their string value
                value = value.value
            setattr(obj, field, value)

    def _resolve_one(self, kind_name: str, key: str, field: str) -> Base:
        target = KINDS_BY_NAME[kind_name]
        try:
            return self._load(target, key)
        except NotFound:
            raise Invalid([Problem((field,), f"unknown {target.title} {key!r}")]) from None

    def _check_unique(self, kind: Kind, obj: Base, spec: BaseModel) -> None:
        if self._bulk:
            return  # the import checked uniqueness over the whole document beforehand
        model, obj_id = MODELS[kind.name], _object_id(obj)
        for field in kind.unique:
            value = getattr(spec, field)
            if not value:
                continue
            clash = self.session.scalars(
                select(model).where(_column(kind, field) == value, _column(kind, "id") != obj_id)
            ).first()
            if clash is not None:
                owner = getattr(clash, kind.key)
                raise Conflict(f"{field} {value!r} is already used by {kind.title} {owner!r}")

    def _audit(
        self, action: AuditAction, kind: Kind, key: str, before: Row | None, after: Row | None
    ) -> None:
        record = audit.new_record(
            self.actor, action, f"{kind.name}/{key}", {"before": before, "after": after}
        )
        if self._bulk:
            self._pending.append(record)
        else:
            audit.append(self.session, [record])

    # -- bulk import -------------------------------------------------------------------------

    def apply_document(
        self, document: Document, progress: Progress | None = None
    ) -> dict[str, dict[str, int]]:
        """Create or update every object of a validated document; returns counts per kind."""
        self._bulk, self._pending = True, []
        cache: dict[str, dict[str, Base]] = {}
        counts: dict[str, dict[str, int]] = {}
        done = 0
        try:
            for kind_name, specs in document.objects.items():
                kind = KINDS_BY_NAME[kind_name]
                known = self._cached(cache, kind_name)
                counts[kind.plural] = {"created": 0, "updated": 0, "unchanged": 0}

                def resolve(target: str, key: str, _field: str) -> Base:
                    return self._cached(cache, target)[key]

                for spec in specs:
                    outcome = self._upsert(kind, spec, known, resolve)
                    counts[kind.plural][outcome] += 1
                    done += 1
                    if progress and done % 500 == 0:
                        progress(done)
                self.session.flush()
            audit.append(self.session, self._pending)
        finally:
            self._bulk, self._pending = False, []
        if progress:
            progress(done)
        return counts

    def _cached(self, cache: dict[str, dict[str, Base]], kind_name: str) -> dict[str, Base]:
        """Every object of a kind by key, loaded once per import (not once per reference)."""
        if kind_name not in cache:
            cache[kind_name] = self._all_by_key(KINDS_BY_NAME[kind_name])
        return cache[kind_name]

    def _all_by_key(self, kind: Kind) -> dict[str, Base]:
        model = MODELS[kind.name]
        statement = select(model)
        for field in kind.multi_refs:
            statement = statement.options(selectinload(getattr(model, field)))
        return {getattr(obj, kind.key): obj for obj in self.session.scalars(statement).unique()}

    def _upsert(
        self,
        kind: Kind,
        spec: BaseModel,
        known: dict[str, Base],
        resolve: Callable[[str, str, str], Base],
    ) -> str:
        key = str(getattr(spec, kind.key))
        obj = known.get(key)
        if obj is None:
            obj = MODELS[kind.name]()
            self._assign(kind, obj, spec, resolve)
            self.session.add(obj)
            known[key] = obj
            self._audit(AuditAction.CREATE, kind, key, None, _spec_row(spec))
            return "created"
        before = to_row(kind, obj)
        after = _spec_row(spec)
        if before == after:
            return "unchanged"
        self._assign(kind, obj, spec, resolve)
        self._audit(AuditAction.UPDATE, kind, key, before, after)
        return "updated"


def _object_id(obj: Base) -> int | None:
    value: int | None = getattr(obj, "id", None)
    return value


def _problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if isinstance(part, str | int))
        message = "unknown field" if error["type"] == "extra_forbidden" else plain_message(error)
        problems.append(Problem(loc, message))
    return problems
