"""The audit spool: every decision's event on local disk first, then shipped to the control plane.

Where it sits: the enforcement hook hands each `AuditRecord` to `Spool.append`, which writes
it through to the kernel before the client's answer leaves (one small `write`, no fsync);
`AsyncShipper` fsyncs every few hundred milliseconds, once for the whole batch, then posts what is durable to
`POST /api/v1/audit/events` and advances the `shipped` cursor. A control-plane outage only
makes the spool grow; the gateway keeps deciding.

Theory of operation: the directory holds segment files `000000000001.log`, … of JSON lines,
one event per line, and a `shipped` file with the (segment, byte offset) up to which the
control plane has confirmed the events. Writes only ever append to the newest segment; a
segment that has reached `segment_bytes` is closed and a new one started; segments wholly
before the cursor are deleted. Shipping is at-least-once (a crash between the control
plane's answer and the cursor update sends a batch again) and the control plane stores each
`event_id` once, so together every fsynced event is stored exactly once.

Invariants:
1. `flush` returns only after the lines are fsynced; on a write or fsync error the segment is
   cut back to its previous end and the lines stay buffered, so the file always ends at a
   line boundary while the process lives.
2. Only fsynced lines are read for shipping, and the cursor only moves forward, over lines
   that were sent (or were unreadable).
3. After a crash, a partial last line (the torn tail of an unfinished write) is cut off on
   open; an unreadable line elsewhere is skipped and counted, never fatal.
4. One process per directory: an exclusive `flock` on `lock`, released by the kernel when
   the process dies, however it dies. Gateway worker processes each need their own directory.
5. `accepting` is False while events cannot be written or made durable (disk full, I/O
   error, a failed fsync) or while the backlog the control plane has not confirmed is at `max_bytes`; the gateway then refuses
   new requests (fail closed) instead of serving what it could not record. The backlog is
   measured at every flush and every confirmation; accepting resumes below 90 % of the
   limit, so the gateway does not flap at its edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import math
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, TypeVar

import httpx

from zerogate.core.audit import LINES_MEDIA_TYPE, AuditRecord, Outcome, canonical_time
from zerogate.core.spool_report import REPORT_SECONDS, SPOOL_HEADER, SpoolReport

log = logging.getLogger("zerogate.gateway.spool")

T = TypeVar("T")

SEGMENT_BYTES: Final = 8 * 1024 * 1024
INGEST_PATH: Final = "/api/v1/audit/events"
_SEGMENT_NAME: Final = re.compile(r"^(\d{12})\.log$")
_CURSOR_FILE: Final = "shipped"
_LOCK_FILE: Final = "lock"
_RESUME_BELOW: Final = 0.9  # of max_bytes: where a full spool accepts again
_RETRY_SECONDS: Final = 0.1  # a failing disk is tried again at most this often per caller
_DISK_RETRY_SECONDS: Final = 0.5  # the shipper's next flush after the disk failed


class SpoolBusy(Exception):
    """Another process (or another `Spool` in this one) has this directory open."""


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """A position in the spool: just after the last byte of a whole line (or a segment's start)."""

    segment: int
    offset: int


def to_json(record: AuditRecord) -> dict[str, object]:
    """The wire and disk form of an event: every field, the time in ISO-8601 UTC as the
    audit chain writes it (`canonical_time`)."""
    # A naive time is taken as UTC (the house clock is `datetime.now(UTC)`); astimezone on
    # a naive value would silently apply the host's local zone instead.
    time = record.time if record.time.tzinfo else record.time.replace(tzinfo=UTC)
    return {
        "event_id": record.event_id,
        "time": canonical_time(time),
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "outcome": str(record.outcome),
        "details": dict(record.details),
    }


# ASCII-only (the default) and no raw newline inside (JSON escapes them): one event is
# exactly one line. Sorted keys and no spaces: the audit chain's canonical form, which the
# control plane takes as it comes (a test holds the two equal). NaN is refused here, where the
# bug is, rather than by the control plane later. One encoder for every event: `json.dumps`
# with options builds one per call.
_ENCODER: Final = json.JSONEncoder(
    separators=(",", ":"), default=str, allow_nan=False, sort_keys=True
)


def _encode(record: AuditRecord) -> bytes:
    return _ENCODER.encode(to_json(record)).encode("ascii") + b"\n"


def decode_line(line: bytes) -> AuditRecord | None:
    """The event on one line, or None when the line is not one (corruption)."""
    try:
        raw = json.loads(line)
        if not isinstance(raw, dict):
            return None
        texts = [raw[key] for key in ("event_id", "time", "actor", "action", "target")]
        details = raw["details"]
        if not all(isinstance(text, str) for text in texts) or not isinstance(details, dict):
            return None
        time = datetime.fromisoformat(raw["time"])
        if time.tzinfo is None:
            return None
        return AuditRecord(
            event_id=raw["event_id"],
            time=time,
            actor=raw["actor"],
            action=raw["action"],
            target=raw["target"],
            outcome=Outcome(raw["outcome"]),
            details=details,
        )
    except (ValueError, KeyError, TypeError):  # UnicodeDecodeError and JSONDecodeError included
        return None


_READ_CHUNK: Final = 1 << 20
_LINE_STARTS: Final = (b'{"action":"', b'{"event_id":"')


def _event_line(line: bytes) -> bytes | None:
    """The line (without its newline) if it looks like an event as this spool writes them
    (`{"action":"` … `}`, or `{"event_id":"` … `}` as spools wrote them before events were
    canonical; no NUL); None when it is not one (a lost block, a torn line).
    Shipping sends the lines as they are: the control plane validates every event anyway,
    and refuses a malformed one with 422, which `AsyncShipper` isolates and drops. Decoding
    each line here, only to send it unchanged, cost the gateway as much as a decision."""
    if line.startswith(_LINE_STARTS) and line.endswith(b"}") and b"\x00" not in line:
        return line
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    # A created, renamed or deleted file is durable only once its directory entry is.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """An append-only, crash-safe queue of audit events in one directory (see the module doc).

    Thread-safe: `append` may run on the event loop while `flush`, `read_unshipped` and
    `mark_shipped` (which do blocking disk I/O) run in a worker thread. One shipper at a time.
    """

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        max_bytes: int | None = None,  # unconfirmed backlog at which `accepting` turns False
    ) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory = directory
        self._segment_bytes = segment_bytes
        self._max_bytes = max_bytes
        # Fail closed (invariant 5). `accepting` is `refusal is None`, kept as a plain
        # attribute because the gateway reads it for every request; it changes under `_lock`.
        self.accepting = True
        self._write_error: OSError | None = None  # the last write failed with this
        self._sync_error: OSError | None = None  # the last fsync failed with this
        self._retry_at = 0.0  # monotonic: `write_through` does not try a failing disk before
        self._full = False  # the backlog reached max_bytes and has not yet drained below 90 %
        self._warned = False  # the backlog passed half the limit (warned once per crossing)
        self.refused = 0  # requests refused while not accepting (counted by the gateway)
        self._lock = threading.Lock()  # the buffer, `_end` and `_shipped`
        self._write_lock = threading.Lock()  # one flush at a time: they append to one file
        self._buffer: list[bytes] = []
        self._corrupt: set[Cursor] = set()  # where unreadable lines start, each counted once
        self._closed = False
        self._lock_fd = self._take_lock()
        self._fd = -1
        try:
            segments = self._segments()
            if not segments:
                segments = [1]
                self._create_segment(1)
            self._end = Cursor(segments[-1], self._cut_torn_tail(segments[-1]))
            # The closed segments' lengths, for the backlog; the open one's is `_written`.
            self._sizes = {n: self._path(n).stat().st_size for n in segments[:-1]}
            self._written = self._end.offset  # what the kernel holds; `_end`: what is fsynced
            self._unsynced = 0
            self._shipped = self._load_cursor(segments[0])
            self._delete_before(self._shipped.segment)
            self._fd = os.open(
                self._path(self._end.segment), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
            )
            with self._lock:
                self._check_backlog()
        except BaseException:
            os.close(self._lock_fd)
            raise

    # --- writing ------------------------------------------------------------------------------

    def append(self, record: AuditRecord) -> None:
        """Write one event through to the operating system now; durable after the next `flush`.

        Written at once (one small `write`, no fsync) so that a killed process, even by
        SIGKILL, cannot take an event with it once its answer has left: the kernel holds it.
        Only a power cut before the next `flush` can. If the write fails (disk full), the
        event waits in memory, and so do the ones after it, to keep their order.
        ValueError if the record cannot be serialised (a NaN in its details).
        """
        self.append_line(_encode(record))

    def append_line(self, line: bytes) -> None:
        """`append` for an event already written as its JSON line (see `core.policy.event_line`):
        ASCII, ending in its only newline."""
        with self._lock:
            self._unsynced += 1
            if not self._buffer and self._write_locked(line) is None:
                return
            self._buffer.append(line)

    def hold_line(self, line: bytes) -> None:
        """`append_line`, but written by the next `write_through` (or `flush`), with the lines
        held before it in one system call. The caller must call `write_through` before anyone
        may learn that the event happened (the gateway: before the answer leaves)."""
        with self._lock:
            self._unsynced += 1
            self._buffer.append(line)

    def write_through(self) -> bool:
        """Write the held lines to the operating system now (no fsync): from then on they
        outlive the process. True when nothing is left held; False when the write failed
        (the lines stay held for the next try, and the caller must not let anyone learn of
        their events: the gateway cuts the connections whose answers they record)."""
        with self._lock:
            if not self._buffer:
                return True
            if self._write_error is not None and time.monotonic() < self._retry_at:
                return False  # a failing disk: not one failed system call per answer
            lines, self._buffer = self._buffer, []
            if self._write_locked(lines[0] if len(lines) == 1 else b"".join(lines)) is None:
                return True
            self._buffer[:0] = lines
            return False

    def _write_locked(self, data: bytes) -> OSError | None:
        """Append `data` to the segment (the caller holds the lock). On failure the segment
        is cut back to its last whole line, so no torn line is left behind, the spool stops
        accepting, and the error is returned for the caller to keep its lines."""
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._written)
            self._retry_at = time.monotonic() + _RETRY_SECONDS
            if self._write_error is None:
                self._write_error = exc
                log.error(
                    "audit spool: cannot write to %s (%s): refusing requests, events held in "
                    "memory until it can", self.directory, exc.strerror or exc,
                )  # fmt: skip
                self._update_accepting()
            return exc
        self._written += len(data)
        if self._write_error is not None:
            self._write_error = None
            log.warning("audit spool: writing to %s again", self.directory)
            self._update_accepting()
        return None

    # --- fail closed (invariant 5) ------------------------------------------------------------

    def _sync_failed(self, exc: OSError) -> None:
        """An fsync failed (the caller holds the lock): refuse until one succeeds.

        The written events are in the kernel, so they outlive the process, but no longer surely
        on the disk: Linux may drop the pages that failed to reach it, and then reports the
        error once, not at every later fsync. Once an fsync succeeds again, they are shipped as
        read back from the page cache; what this prevents is answering more requests on a disk
        that cannot keep their events."""
        if self._sync_error is None:
            log.error(
                "audit spool: cannot make events durable in %s (%s): refusing requests until "
                "it can", self.directory, exc.strerror or exc,
            )  # fmt: skip
        self._sync_error = exc
        self._update_accepting()

    def backlog_bytes(self) -> int:
        """Bytes of events the control plane has not confirmed: on disk and held in memory."""
        with self._lock:
            return self._backlog()

    def _backlog(self) -> int:
        shipped = self._shipped
        closed = sum(size for n, size in self._sizes.items() if n >= shipped.segment)
        return closed + self._written - shipped.offset + sum(map(len, self._buffer))

    def _check_backlog(self) -> None:
        """Compare the backlog with the limit (the caller holds the lock)."""
        if self._max_bytes is None:
            return
        backlog, limit = self._backlog(), self._max_bytes
        mb = (backlog >> 20, limit >> 20)
        if not self._warned and backlog >= limit // 2:
            self._warned = True
            log.warning(
                "audit spool: %d MB of events not yet taken by the control plane (the limit "
                "is %d MB, where this gateway refuses requests)", *mb,
            )  # fmt: skip
        elif self._warned and backlog < limit // 4:
            self._warned = False
        if not self._full and backlog >= limit:
            self._full = True
            log.error(
                "audit spool: %d MB of events not yet taken by the control plane, the limit "
                "is %d MB: refusing requests until it drains", *mb,
            )  # fmt: skip
            self._update_accepting()
        elif self._full and backlog < limit * _RESUME_BELOW:
            self._full = False
            self._update_accepting()

    @property
    def refusal(self) -> str | None:
        """Why the spool is not accepting, or None."""
        if self._write_error is not None:
            return "the audit spool cannot be written"
        if self._sync_error is not None:
            return "the audit spool cannot make events durable"
        return "the audit spool is full" if self._full else None

    def _update_accepting(self) -> None:
        accepting = self.refusal is None
        if accepting and not self.accepting:
            log.warning(
                "audit spool: accepting requests again (%d refused meanwhile)", self.refused
            )
            self.refused = 0
        self.accepting = accepting

    def state(self) -> dict[str, object]:
        """What the control plane is told of this spool (`core.spool_report`, less the
        gateway's name and worker)."""
        with self._lock:
            return {
                "accepting": self.accepting,
                "refusal": self.refusal,
                "backlog_bytes": self._backlog(),
                "max_bytes": self._max_bytes,
                "refused": self.refused,
                "corrupt_lines": len(self._corrupt),
            }

    def pending(self) -> int:
        """Events appended but not yet fsynced."""
        with self._lock:
            return self._unsynced

    def flush(self) -> int:
        """Write what waits in memory, fsync once; the number of events made durable.

        On OSError (disk full, I/O error) nothing is lost from memory: the events stay
        buffered for the next attempt and the segment is cut back to its last whole line.
        """
        with self._write_lock:
            with self._lock:
                lines, self._buffer = self._buffer, []
                if lines:
                    error = self._write_locked(b"".join(lines))
                    if error is not None:
                        self._buffer[:0] = lines
                        raise error
                fd, end = self._fd, Cursor(self._end.segment, self._written)
                count, self._unsynced = self._unsynced, 0
            if count == 0:
                return 0
            try:
                os.fsync(fd)  # outside the lock: the event loop keeps appending meanwhile
            except OSError as exc:
                with self._lock:
                    self._unsynced += count
                    self._sync_failed(exc)
                raise
            with self._lock:
                self._end = end
                if self._sync_error is not None:
                    self._sync_error = None
                    log.warning("audit spool: events in %s are durable again", self.directory)
                    self._update_accepting()
                self._check_backlog()
            if end.offset >= self._segment_bytes:
                try:
                    self._roll(end.segment + 1)
                except OSError as exc:  # the events are durable; the next flush tries again
                    log.warning("audit spool: cannot start a new segment: %s", exc)
            return count

    def _roll(self, number: int) -> None:
        self._create_segment(number)
        fd = os.open(self._path(number), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        with self._lock:
            old, self._fd = self._fd, fd
            self._sizes[self._end.segment] = self._written
            self._written = 0
        os.fsync(old)  # what was appended to it since the flush that decided to roll
        os.close(old)
        with self._lock:
            self._end = Cursor(number, 0)

    # --- shipping -----------------------------------------------------------------------------

    @property
    def shipped(self) -> Cursor:
        with self._lock:
            return self._shipped

    @property
    def corrupt_lines(self) -> int:
        """Unreadable lines met so far (skipped by shipping; counted when first read)."""
        with self._lock:
            return len(self._corrupt)

    def read_unshipped(self, limit: int) -> tuple[list[AuditRecord], Cursor]:
        """Up to `limit` fsynced events after the cursor, and the cursor just after them.

        The cursor also moves over unreadable lines, so a corrupt line cannot block the queue.
        """
        return self._read_unshipped(limit, decode_line)

    def read_unshipped_lines(self, limit: int) -> tuple[list[bytes], Cursor]:
        """As `read_unshipped`, but each event as its JSON text (what `AsyncShipper` posts)."""
        return self._read_unshipped(limit, _event_line)

    def _read_unshipped(
        self, limit: int, parse: Callable[[bytes], T | None]
    ) -> tuple[list[T], Cursor]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._lock:
            end, position = self._end, self._shipped
        events: list[T] = []
        for number in self._segments():
            if number < position.segment:
                continue
            if number > end.segment or len(events) >= limit:
                break
            offset = position.offset if number == position.segment else 0
            stop = end.offset if number == end.segment else None
            offset = self._read_segment(number, offset, stop, limit, parse, events)
            position = Cursor(number, offset)
        return events, position

    def _read_segment(
        self,
        number: int,
        offset: int,
        stop: int | None,
        limit: int,
        parse: Callable[[bytes], T | None],
        into: list[T],
    ) -> int:
        # Read in large chunks and split: a readline call per event showed in the profile.
        with self._path(number).open("rb") as segment:
            segment.seek(offset)
            cut = b""  # the start of a line the previous chunk ended inside
            while len(into) < limit and (stop is None or offset < stop):
                want = _READ_CHUNK if stop is None else min(_READ_CHUNK, stop - offset - len(cut))
                chunk = segment.read(want) if want > 0 else b""
                if not chunk:
                    if cut:
                        # A line without its newline in a closed segment: torn before a roll
                        # that can no longer be told apart from corruption. Skip it the same way.
                        self._count_corrupt(Cursor(number, offset))
                        offset += len(cut)
                    break
                lines = (cut + chunk).split(b"\n")
                cut = lines.pop()  # what follows the last newline
                for line in lines:
                    if len(into) >= limit:
                        return offset
                    event = parse(line)
                    if event is None:
                        self._count_corrupt(Cursor(number, offset))
                    else:
                        into.append(event)
                    offset += len(line) + 1
        return offset

    def _count_corrupt(self, where: Cursor) -> None:
        with self._lock:
            self._corrupt.add(where)

    def mark_shipped(self, cursor: Cursor) -> None:
        """The control plane holds everything before `cursor`: persist it, drop old segments."""
        with self._lock:
            if cursor <= self._shipped:
                return
            if cursor > self._end:
                raise ValueError(f"{cursor} is beyond the durable end {self._end}")
        temporary = self.directory / f"{_CURSOR_FILE}.tmp"
        with temporary.open("w") as file:
            json.dump({"segment": cursor.segment, "offset": cursor.offset}, file)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(self.directory / _CURSOR_FILE)
        _fsync_dir(self.directory)
        with self._lock:
            self._shipped = cursor
            self._check_backlog()
        self._delete_before(cursor.segment)

    def ship_once(self, send: Callable[[list[AuditRecord]], None], batch: int = 500) -> int:
        """Send the next batch and advance the cursor; the number of events sent.

        If `send` raises, nothing is marked: the same events are offered again next time.
        """
        records, cursor = self.read_unshipped(batch)
        if records:
            send(records)
        self.mark_shipped(cursor)
        return len(records)

    # --- files --------------------------------------------------------------------------------

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:012d}.log"

    def _segments(self) -> list[int]:
        found = (_SEGMENT_NAME.match(path.name) for path in self.directory.iterdir())
        return sorted(int(match[1]) for match in found if match)

    def _create_segment(self, number: int) -> None:
        fd = os.open(self._path(number), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.close(fd)
        _fsync_dir(self.directory)

    def _take_lock(self) -> int:
        fd = os.open(self.directory / _LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolBusy(f"the audit spool {self.directory} is in use") from None
        return fd

    def _cut_torn_tail(self, number: int) -> int:
        """Cut the newest segment back to its last whole line; its length afterwards."""
        path = self._path(number)
        data = path.read_bytes()
        length = data.rfind(b"\n") + 1
        if length < len(data):
            log.warning(
                "audit spool: dropping %d bytes of a torn line in %s", len(data) - length, path
            )
            with path.open("r+b") as segment:
                segment.truncate(length)
                os.fsync(segment.fileno())
        return length

    def _load_cursor(self, oldest: int) -> Cursor:
        start = Cursor(oldest, 0)
        try:
            raw = json.loads((self.directory / _CURSOR_FILE).read_text())
            cursor = Cursor(int(raw["segment"]), int(raw["offset"]))
        except FileNotFoundError:
            return start
        except (OSError, ValueError, KeyError, TypeError):
            # Starting over re-sends what was shipped; the control plane drops the repeats.
            log.warning("audit spool: unreadable cursor in %s, shipping again", self.directory)
            return start
        if cursor < start or cursor > self._end:
            # Behind: its segments are gone. Ahead of what exists: the segments were replaced
            # by someone; trusting it would skip new events, re-sending only costs bandwidth.
            return start
        return cursor

    def _delete_before(self, number: int) -> None:
        old = [n for n in self._segments() if n < number]
        for n in old:
            self._path(n).unlink(missing_ok=True)
            with self._lock:
                self._sizes.pop(n, None)
        if old:
            _fsync_dir(self.directory)

    # --- life cycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Flush what is buffered, then release the files and the directory lock."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            os.close(self._fd)
            os.close(self._lock_fd)

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncShipper:
    """The spool's background task: flush every `interval`, then ship until nothing is left.

    Failures (control plane unreachable, 5xx, disk errors) back off exponentially with jitter
    up to `max_backoff`, so a fleet of gateways does not stampede a recovering control plane.
    A batch the control plane refuses as invalid (422) is split in halves until the bad
    events are isolated; those are logged and dropped (`rejected`), or one malformed event
    would block the spool forever. Batches go as the spool's lines, one per line
    (`LINES_MEDIA_TYPE`), once the control plane has said in `Accept-Post` that it reads
    them, else in a JSON envelope; a line refused alone is offered once more in the envelope
    before it is dropped, so an older control plane behind the same address loses nothing.
    """

    def __init__(
        self,
        spool: Spool,
        control_url: str,
        token: str,
        tls: ssl.SSLContext,
        *,
        gateway: str = "gateway",  # the name and worker it reports its spool's state under
        worker: int = 0,
        interval: float = 0.2,
        batch: int = 2000,  # one POST per round at several thousand requests a second
        max_backoff: float = 30.0,
        report_every: float = REPORT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.spool = spool
        self.rejected = 0
        self._who: dict[str, object] = {"gateway": gateway, "worker": worker}
        self._report_every = report_every
        self._reported_at = -math.inf  # monotonic; -inf: report at the first round
        self._reported_accepting = True
        self._as_lines = False  # the control plane listed LINES_MEDIA_TYPE in Accept-Post
        self._url = control_url.rstrip("/") + INGEST_PATH
        self._interval, self._batch, self._max_backoff = interval, batch, max_backoff
        self._client = httpx.AsyncClient(
            verify=tls,
            transport=transport,
            timeout=httpx.Timeout(10.0),
            headers={"Authorization": f"Bearer {token}"},
        )
        self._task: asyncio.Task[None] | None = None
        self._aside: asyncio.Task[None] | None = None  # a report sent while the disk fails

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._run(), name="audit-shipper")

    async def stop(self) -> None:
        """Stop shipping and make the buffered events durable; the next start ships them."""
        for task in (self._task, self._aside):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._aside = None
        await self._client.aclose()
        await asyncio.to_thread(self.spool.flush)

    async def _run(self) -> None:
        delay = self._interval
        while True:
            await asyncio.sleep(delay)
            try:
                await asyncio.to_thread(self.spool.flush)
            except OSError as exc:  # the local disk: no fleet to spare, so no long backoff
                log.debug("audit spool: flush failed (%s)", exc)  # the spool logged the state
                delay = _DISK_RETRY_SECONDS
                self._report_aside()  # the control plane learns that it refuses
                continue
            try:
                while await self._ship_batch() == self._batch:
                    pass  # a backlog (after an outage): drain it without waiting a tick each
                await self._report_if_due()
                delay = self._interval
            except Exception as exc:  # the loop must outlive any one failure
                delay = min(max(delay * 2, 1.0), self._max_backoff)
                log.warning("audit shipping failed (%s), retrying in %.1f s", exc, delay)
                delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret

    async def _ship_batch(self) -> int:
        lines, cursor = await asyncio.to_thread(self.spool.read_unshipped_lines, self._batch)
        if lines:
            await self._post(lines)
        await asyncio.to_thread(self.spool.mark_shipped, cursor)
        return len(lines)

    def _report_aside(self) -> None:
        """`_report_if_due` without waiting for it, one at a time: while the disk fails, its
        retries (each fsync that could let the gateway accept again) keep their pace even
        when the control plane does not answer (a black-holed network holds a request for
        the client's whole timeout)."""
        if self._aside is None or self._aside.done():
            self._aside = asyncio.get_running_loop().create_task(self._report_quietly())

    async def _report_quietly(self) -> None:
        with contextlib.suppress(Exception):  # a report that failed is tried when next due
            await self._report_if_due()

    async def _report_if_due(self) -> None:
        """An empty batch, for the spool's state alone: when nothing was sent for
        `report_every`, or at once when the spool started or stopped accepting."""
        due = time.monotonic() - self._reported_at >= self._report_every
        if due or self.spool.accepting != self._reported_accepting:
            await self._post([])

    async def _post(self, lines: list[bytes], *, as_json: bool = False) -> None:
        report = SpoolReport.model_validate(
            {**self._who, **self.spool.state(), "rejected": self.rejected}
        )
        # Counted as told when tried: a report that failed is tried again when next due, not
        # every round (the disk-failure rounds skip the shipping's backoff).
        self._reported_at, self._reported_accepting = time.monotonic(), report.accepting
        # The lines as they are, one per line, to a control plane that said it reads them so;
        # else (an older one, or before its first answer) in a JSON envelope.
        as_lines = self._as_lines and bool(lines) and not as_json
        response = await self._client.post(
            self._url,
            content=b"\n".join(lines) if as_lines else b'{"events":[' + b",".join(lines) + b"]}",
            headers={
                "content-type": LINES_MEDIA_TYPE if as_lines else "application/json",
                SPOOL_HEADER: report.model_dump_json(),
            },
        )
        if response.is_success:
            self._as_lines = LINES_MEDIA_TYPE in response.headers.get("accept-post", "")
        if response.status_code != 422 or not lines:
            if response.status_code == 403:  # a token for another gateway: say what to fix
                raise RuntimeError(f"the control plane refused the batch: {response.text[:500]}")
            response.raise_for_status()
            return
        if len(lines) > 1:
            half = len(lines) // 2
            await self._post(lines[:half], as_json=as_json)
            await self._post(lines[half:], as_json=as_json)
            return
        if as_lines:  # refused as a line: perhaps by a control plane that reads only JSON
            await self._post(lines, as_json=True)
            return
        self.rejected += 1
        log.error(
            "the control plane refused audit event %s, dropping it: %s",
            json.loads(lines[0]).get("event_id"),
            response.text[:500],
        )
