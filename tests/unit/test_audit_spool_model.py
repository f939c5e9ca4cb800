"""The audit spool against a model: random sequences of appends (one by one and held
together), flushes, shipping rounds that succeed or fail, restarts, and crashes that leave
a torn line, with segments small enough to roll and be deleted all the time.

The model is what the spool promises (`gateway/spool.py`, module doc): every event written
through reaches the control plane exactly once and in order, whatever happens between, if
each round marks what it sent only once it was accepted; only fsynced events are offered; a
round that failed offers the same events again.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from zerogate.core.audit import AuditRecord, Outcome
from zerogate.gateway.spool import Spool, _encode

START = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
SEGMENT_BYTES = 900  # a few events per segment: rolls and deletions on most runs


def record(n: int) -> AuditRecord:
    return AuditRecord(
        event_id=f"{n:032x}",
        time=START + timedelta(milliseconds=n),
        actor="user:alice",
        action="access.decision",
        target=f"app/{n % 7}",
        outcome=Outcome.SUCCESS,
        details={"n": n, "path": "/" + "p" * (n % 40)},  # lines of different lengths
    )


def line(n: int) -> bytes:
    return _encode(record(n))  # the spool's own encoding, as `append` writes it


class SpoolModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="spool-model-")) / "spool"
        self.spool = Spool(self.directory, segment_bytes=SEGMENT_BYTES)
        self.written: list[int] = []  # events the kernel holds, in order
        self.durable = 0  # of those, how many are fsynced (offered to the shipper)
        self.delivered: list[int] = []  # what the control plane accepted, in order
        self.next = 0

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.directory.parent, ignore_errors=True)

    def _new(self, count: int) -> list[int]:
        numbers = list(range(self.next, self.next + count))
        self.next += count
        return numbers

    @rule(count=st.integers(1, 6))
    def append(self, count: int) -> None:
        for n in self._new(count):
            self.spool.append(record(n))
            self.written.append(n)

    @rule(count=st.integers(1, 6))
    def hold_then_write_through(self, count: int) -> None:
        numbers = self._new(count)
        for n in numbers:
            self.spool.hold_line(line(n))
        assert self.spool.write_through()
        self.written += numbers

    @rule()
    def flush(self) -> None:
        self.spool.flush()
        self.durable = len(self.written)

    @rule(batch=st.integers(1, 8), accepted=st.booleans())
    def ship(self, batch: int, accepted: bool) -> None:
        records, cursor = self.spool.read_unshipped(batch)
        got = [int(r.event_id, 16) for r in records]
        start = len(self.delivered)
        # Exactly the next fsynced events, as many as asked for or as there are.
        assert got == self.written[start : min(start + batch, self.durable)]
        assert records == [record(n) for n in got]
        if accepted:
            self.spool.mark_shipped(cursor)
            self.delivered += got

    @rule()
    def restart(self) -> None:
        self.spool.close()  # flushes: what the kernel holds is on disk, fsynced
        self.spool = Spool(self.directory, segment_bytes=SEGMENT_BYTES)
        self.durable = len(self.written)

    @rule(torn=st.binary(min_size=1, max_size=60).filter(lambda b: b"\n" not in b))
    def crash_mid_write(self, torn: bytes) -> None:
        """Killed while writing a line: its first bytes are in the newest segment."""
        self.spool.close()
        newest = sorted(self.directory.glob("*.log"))[-1]
        with newest.open("ab") as segment:
            segment.write(torn)
        self.spool = Spool(self.directory, segment_bytes=SEGMENT_BYTES)
        self.durable = len(self.written)

    @precondition(lambda self: self.durable == len(self.written))
    @rule()
    def drain(self) -> None:
        """A shipper that catches up: everything durable, delivered once, in order."""
        while True:
            records, cursor = self.spool.read_unshipped(5)
            self.spool.mark_shipped(cursor)
            if not records:
                break
            self.delivered += [int(r.event_id, 16) for r in records]
        assert self.delivered == self.written

    @invariant()
    def delivered_is_a_prefix_of_what_was_written(self) -> None:
        assert self.delivered == self.written[: len(self.delivered)]

    @invariant()
    def nothing_is_corrupt_and_old_segments_go(self) -> None:
        assert self.spool.corrupt_lines == 0
        segments = sorted(self.directory.glob("*.log"))
        shipped = self.spool.shipped.segment
        assert all(int(p.stem) >= shipped for p in segments), (segments, shipped)


SpoolModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_the_spool_delivers_every_event_once_in_order = SpoolModel.TestCase
