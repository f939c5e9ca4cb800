"""The audit log in the database: appending links to the hash chain and reading them back.

Appends take the chain head row under a lock (`SELECT … FOR UPDATE` on PostgreSQL; SQLite
has one writer anyway), so concurrent writers and replicas extend one chain, never two.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from zerogate.core.audit import (
    GENESIS_HASH,
    AuditAction,
    AuditRecord,
    Canonical,
    ChainedRecord,
    Outcome,
    canonicalise,
    chain_hash_of,
    moves_state,
    verify_chain,
)
from zerogate.store.db import JsonText
from zerogate.store.models import AuditEvent, AuditHead, utcnow


def _plain(details: Mapping[str, object]) -> dict[str, object]:
    # Hash exactly what the JSON column will give back, so verification later matches.
    result: dict[str, object] = json.loads(json.dumps(details, default=str))
    return result


def _head(session: Session) -> AuditHead:
    # Take the write lock before reading the tip. PostgreSQL's FOR UPDATE alone would do, but
    # SQLite ignores it and its driver opens the transaction only at the first write: a tip
    # read before that could be stale by the time this transaction may write, and two writers
    # would then both claim the same sequence number. The no-op UPDATE is that first write.
    session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq)
        .execution_options(synchronize_session=False)
    )
    head = session.execute(
        select(AuditHead).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS_HASH)
        session.add(head)
        session.flush()
    return head


def state_seq(session: Session) -> int:
    """The seq of the newest event that is not an access decision (0 before the first).

    It grows with every change to the inventory, identities or policy (each is audited in
    its own transaction), not with traffic nor with gateways' reports (`moves_state`): the
    policy snapshot's serial.
    """
    return session.scalar(select(AuditHead.state_seq).where(AuditHead.id == 1)) or 0


def new_record(
    actor: str,
    action: str,
    target: str,
    details: Mapping[str, object] | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    now: datetime | None = None,
) -> AuditRecord:
    return AuditRecord(
        event_id=uuid.uuid4().hex,
        time=now or utcnow(),
        actor=actor,
        action=str(action),
        target=target,
        outcome=outcome,
        details=_plain(details or {}),
    )


def append(session: Session, records: Sequence[AuditRecord]) -> None:
    """Add records to the chain inside the caller's transaction (they commit with the change)."""
    _append(session, [canonicalise(record) for record in records])


def _append(session: Session, events: Sequence[Canonical]) -> None:
    if not events:
        return
    head = _head(session)
    seq, previous = head.seq, head.hash
    links: list[_Link] = []
    for event in events:
        seq += 1
        digest = chain_hash_of(previous, seq, event.text)
        links.append((seq, event, previous, digest))
        previous = digest
        if moves_state(event.action):
            head.state_seq = seq
    _insert(session, links)
    head.seq, head.hash = seq, previous


_Link = tuple[int, Canonical, str, str]  # seq, the event, the previous link's hash, its own


def _insert(session: Session, links: list[_Link]) -> None:
    """A bulk INSERT of the table, not ORM objects: gateways send thousands of events a
    second, and the unit of work cost more than the hashing. The rows are in the table at once.

    On SQLite the rows go to the driver as they are stored, straight from the links, without
    SQLAlchemy's per-value processing (a third of the insert's cost) or a dict per row: the
    time as SQLAlchemy's SQLite DateTime writes it, the details as their JSON text. A test
    holds both paths' rows equal."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        connection.execute(insert(_EVENTS), [_row(*link) for link in links])
        return
    values = [
        (
            seq,
            event.event_id,
            _sqlite_time(event.time),
            event.actor,
            event.action,
            event.target,
            str(event.outcome),
            event.details,
            previous,
            digest,
        )
        for seq, event, previous, digest in links
    ]
    connection.exec_driver_sql(_SQLITE_INSERT, values)


_EVENTS = cast(Table, AuditEvent.__table__)
_SQLITE_INSERT = (
    "INSERT INTO audit_events (seq, event_id, time, actor, action, target, outcome, details,"
    " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _sqlite_time(when: datetime) -> str:
    """What `UtcDateTime` stores on SQLite: UTC, no offset, always six fractional digits."""
    if when.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    if when.tzinfo is not UTC:  # gateways' events come in UTC: the conversion is rare
        when = when.astimezone(UTC)
    # isoformat pads every year to four digits, as the SQLite DateTime type does.
    return when.isoformat(" ", "microseconds")[:-6]


def ingest(session: Session, events: Sequence[Canonical]) -> int:
    """Append the events whose event_id is not stored yet, as they are; how many were new.

    For events built elsewhere (a gateway's decisions), which arrive at least once: a batch
    sent again after a lost answer stores nothing twice.
    """
    unique: dict[str, Canonical] = {}
    for event in events:
        unique.setdefault(event.event_id, event)  # a repeat inside the batch, too
    if not unique:
        return 0
    # Lock the chain head before looking: a concurrent ingest of the same retried batch then
    # waits, and (READ COMMITTED) sees the other's rows once it gets the lock, instead of
    # both finding the ids absent and the second failing on the unique constraint.
    _head(session)
    stored = set(
        session.scalars(select(AuditEvent.event_id).where(AuditEvent.event_id.in_(list(unique))))
    )
    new = [event for event_id, event in unique.items() if event_id not in stored]
    _append(session, new)
    return len(new)


def _row(seq: int, event: Canonical, previous: str, digest: str) -> dict[str, object]:
    return {
        "seq": seq,
        "event_id": event.event_id,
        "time": event.time,
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "outcome": str(event.outcome),
        "details": JsonText(event.details),  # the very text the hash covers
        "prev_hash": previous,
        "hash": digest,
    }


def record(session: Session, actor: str, action: str, target: str, **details: object) -> None:
    append(session, [new_record(actor, action, target, details)])


def to_chained(row: AuditEvent) -> ChainedRecord:
    rec = AuditRecord(
        event_id=row.event_id,
        time=row.time,
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=Outcome(row.outcome),
        details=row.details,
    )
    return ChainedRecord(seq=row.seq, record=rec, prev_hash=row.prev_hash, hash=row.hash)


def _all(session: Session, batch: int = 5000) -> Iterator[ChainedRecord]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from (to_chained(row) for row in rows)
        last = rows[-1].seq


def access_decisions(
    session: Session, since: datetime, batch: int = 5000
) -> Iterator[Mapping[str, object]]:
    """The details of every access decision recorded since `since`, oldest first."""
    first = session.scalar(select(func.min(AuditEvent.seq)).where(AuditEvent.time >= since))
    if first is None:
        return
    last = first - 1
    while True:
        rows = session.execute(
            select(AuditEvent.seq, AuditEvent.details)
            .where(AuditEvent.seq > last)
            .where(AuditEvent.action == AuditAction.ACCESS_DECISION)
            .order_by(AuditEvent.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from (details for _, details in rows)
        last = rows[-1][0]


def verify(session: Session) -> int | None:
    """The first broken sequence number, or None when the whole stored chain holds."""
    broken = verify_chain(_all(session))
    if broken is not None:
        return broken
    head = session.get(AuditHead, 1)
    last = session.scalar(select(func.max(AuditEvent.seq))) or 0
    if head is not None and head.seq != last:
        return last + 1  # events were removed from the end
    return None


def query(
    session: Session,
    *,
    limit: int,
    before_seq: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
) -> Sequence[AuditEvent]:
    statement = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
    if before_seq is not None:
        statement = statement.where(AuditEvent.seq < before_seq)
    if actor:
        statement = statement.where(AuditEvent.actor == actor)
    if action:
        statement = statement.where(AuditEvent.action == action)
    if target:
        statement = statement.where(AuditEvent.target == target)
    return session.scalars(statement).all()
