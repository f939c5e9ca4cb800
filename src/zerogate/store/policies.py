"""Policy versions in the database: every change is a new, immutable, numbered version.

A push is parsed and validated against the current inventory first (every error with its
line and column; nothing stored on any error). Rollback is a push of an older version's
source, so history only ever grows. The diff is computed when read, from the sources.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zerogate.core.audit import AuditAction
from zerogate.core.policy.compile import CompiledPolicy, compile_policy
from zerogate.core.policy.model import App, Mode, Policy
from zerogate.core.policy.parse import KnownNames, parse_policy
from zerogate.store import audit
from zerogate.store.errors import NotFound
from zerogate.store.models import Application, Department, Group, Office, PolicyVersion, User

FILENAME = "policy.yaml"


def known_names(session: Session) -> KnownNames:
    def names(column: object) -> set[str]:
        return {str(name) for name in session.scalars(select(column)) if name}  # type: ignore[call-overload]

    return KnownNames(
        users=names(User.username),
        groups=names(Group.name),
        departments=names(Department.name),
        offices=names(Office.name),
        apps=names(Application.name),
    )


def inventory_apps(session: Session) -> tuple[App, ...]:
    """The applications as the policy sees them (name, tags, mode), by name."""
    rows = session.scalars(select(Application).order_by(Application.name))
    return tuple(App(name=r.name, tags=frozenset(r.tags), mode=Mode(r.mode)) for r in rows)


def push(session: Session, source: str, *, comment: str, author: str) -> PolicyVersion:
    """Validate and store a new version (PolicyErrors when the source is refused)."""
    parse_policy(source, FILENAME, known_names(session))
    number = (session.scalar(select(func.max(PolicyVersion.version))) or 0) + 1
    row = PolicyVersion(version=number, author=author, comment=comment, source=source)
    session.add(row)
    session.flush()
    audit.record(session, author, AuditAction.POLICY_PUSH, f"policy/{number}", comment=comment)
    return row


def versions(session: Session, limit: int) -> Sequence[PolicyVersion]:
    return session.scalars(
        select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(limit)
    ).all()


def get(session: Session, number: int) -> PolicyVersion:
    row = session.scalars(select(PolicyVersion).where(PolicyVersion.version == number)).first()
    if row is None:
        raise NotFound("policy version", str(number))
    return row


def current(session: Session) -> PolicyVersion | None:
    return session.scalars(
        select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1)
    ).first()


def current_policy(session: Session) -> tuple[int, Policy]:
    """The policy in force and its version; version 0 is the empty policy (deny everything)."""
    row = current(session)
    if row is None:
        return 0, Policy()
    return row.version, _parsed(row.version, row.source)


def current_compiled(session: Session) -> tuple[int, CompiledPolicy]:
    """The policy in force, compiled once per version (for what-if questions)."""
    row = current(session)
    if row is None:
        return 0, compile_policy(Policy())
    return row.version, _compiled(row.version, row.source)


@functools.lru_cache(maxsize=4)
def _compiled(version: int, source: str) -> CompiledPolicy:
    # Compiled without the inventory: an app no rule names by name is resolved per decision,
    # which decides the same (property-tested) and stays right when the inventory changes.
    return compile_policy(_parsed(version, source))


@functools.lru_cache(maxsize=4)
def _parsed(version: int, source: str) -> Policy:
    # Versions are immutable and a Policy is a frozen value, so one parse serves every caller;
    # the source is part of the key so two databases (tests, replicas) never share a stale one.
    return parse_policy(source, f"policy v{version}")


def diff(session: Session, row: PolicyVersion) -> str:
    previous = session.scalars(
        select(PolicyVersion)
        .where(PolicyVersion.version < row.version)
        .order_by(PolicyVersion.version.desc())
        .limit(1)
    ).first()
    before = previous.source if previous else ""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        row.source.splitlines(keepends=True),
        fromfile=f"v{previous.version}" if previous else "empty",
        tofile=f"v{row.version}",
    )
    return "".join(lines)


def rollback(session: Session, number: int, *, author: str) -> PolicyVersion:
    old = get(session, number)
    return push(session, old.source, comment=f"rollback to version {number}", author=author)
