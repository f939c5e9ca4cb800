"""The gateway's audit spool: durable before shipped, shipped once, and sane after a crash.

The crash tests run a real child process that SIGKILLs itself (or is killed) in the middle
of writing, then reopen its directory the way a restarted gateway would.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from zerogate.core.audit import LINES_MEDIA_TYPE, AuditRecord, Outcome, canonical
from zerogate.core.spool_report import SPOOL_HEADER, SpoolReport
from zerogate.gateway.spool import AsyncShipper, Cursor, Spool, SpoolBusy, to_json

START = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def record(n: int, *, target: str = "app/wiki") -> AuditRecord:
    return AuditRecord(
        event_id=f"{n:032x}",
        time=START + timedelta(seconds=n, microseconds=n),
        actor="user:alice",
        action="access.decision",
        target=target,
        outcome=Outcome.SUCCESS if n % 3 else Outcome.FAILURE,
        details={"n": n, "reasons": ["ok"], "context": {"path": f"/p/{n}", "mfa": None}},
    )


def ids(records: list[AuditRecord]) -> list[int]:
    return [int(r.event_id, 16) for r in records]


def read_all(spool: Spool) -> list[AuditRecord]:
    records, _ = spool.read_unshipped(1_000_000)
    return records


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.log"))


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool") as opened:
        yield opened


def test_append_flush_read_mark(spool: Spool) -> None:
    for n in range(3):
        spool.append(record(n))
    assert spool.pending() == 3
    assert read_all(spool) == []  # not durable yet, so not shipped yet

    assert spool.flush() == 3
    assert spool.pending() == 0
    assert spool.flush() == 0
    records, cursor = spool.read_unshipped(2)
    assert records == [record(0), record(1)]  # every field survives, the time to the µs
    spool.mark_shipped(cursor)
    assert spool.shipped == cursor

    records, cursor = spool.read_unshipped(10)
    assert records == [record(2)]
    spool.mark_shipped(cursor)
    assert read_all(spool) == []
    spool.mark_shipped(Cursor(1, 0))  # a stale cursor never moves it back
    assert spool.shipped == cursor
    with pytest.raises(ValueError, match="beyond"):
        spool.mark_shipped(Cursor(cursor.segment, cursor.offset + 1))


def test_lines_are_the_events_canonical_json(spool: Spool) -> None:
    """The control plane hashes a canonical line as it comes (`core.audit.canonical`)."""
    others = [
        replace(record(2), time=datetime(2025, 3, 1, 11, 30, tzinfo=timezone(timedelta(hours=2)))),
        replace(record(3), actor="user:zoë", details={"z": "ü\x7f", "a": [1.5, 1e-07, None]}),
    ]
    for event in (record(1), *others):
        spool.append(event)
    spool.flush()
    (segment,) = segment_files(spool.directory)
    lines = segment.read_bytes().splitlines(keepends=True)
    assert lines == [canonical(event) + b"\n" for event in (record(1), *others)]
    assert [json.loads(line) for line in lines] == [to_json(e) for e in (record(1), *others)]
    assert json.loads(lines[0])["time"] == "2025-03-01T09:30:01.000001Z"
    assert json.loads(lines[1])["time"] == "2025-03-01T09:30:00.000000Z"


def test_restart_resumes_at_the_cursor(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for n in range(10):
            spool.append(record(n))
        spool.flush()
        assert spool.ship_once(lambda batch: None, batch=4) == 4
        spool.append(record(10))  # buffered only: close() makes it durable
    with Spool(tmp_path) as spool:
        assert ids(read_all(spool)) == list(range(4, 11))


def test_one_spool_per_directory(tmp_path: Path) -> None:
    with Spool(tmp_path), pytest.raises(SpoolBusy):
        Spool(tmp_path)
    spool = Spool(tmp_path)  # free again once closed
    spool.close()
    spool.close()  # and closing twice is harmless


def test_a_torn_last_line_is_cut_off(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for n in range(3):
            spool.append(record(n))
        spool.flush()
    (segment,) = segment_files(tmp_path)
    whole = segment.stat().st_size
    with segment.open("ab") as file:
        file.write(json.dumps(to_json(record(3))).encode()[:40])  # the crash hit mid-write

    with Spool(tmp_path) as spool:
        assert segment.stat().st_size == whole
        assert ids(read_all(spool)) == [0, 1, 2]
        assert spool.corrupt_lines == 0
        spool.append(record(4))
        spool.flush()
        assert ids(read_all(spool)) == [0, 1, 2, 4]  # appended after the cut, not glued to it


def test_a_corrupt_line_is_skipped_and_counted(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for n in range(3):
            spool.append(record(n))
        spool.flush()
    (segment,) = segment_files(tmp_path)
    lines = segment.read_bytes().splitlines(keepends=True)
    broken = [
        lines[0],
        b"\x00" * 17 + b"\n",  # a block the disk lost
        b'{"event_id": 7}\n',  # JSON, but not an event
        b"[1, 2]\n",
        lines[1][:60] + b"\n",  # cut short
        lines[2],
    ]
    segment.write_bytes(b"".join(broken))

    with Spool(tmp_path) as spool:
        records, cursor = spool.read_unshipped(10)
        assert ids(records) == [0, 2]
        assert spool.corrupt_lines == 4
        read_all(spool)
        assert spool.corrupt_lines == 4  # read again, counted once
        spool.mark_shipped(cursor)
        assert read_all(spool) == []


def test_corrupt_lines_alone_still_move_the_cursor(tmp_path: Path) -> None:
    (tmp_path / f"{1:012d}.log").write_bytes(b"garbage\n" * 3)
    with Spool(tmp_path) as spool:
        sent: list[list[AuditRecord]] = []
        assert spool.ship_once(sent.append) == 0
        assert sent == []  # nothing to send for them…
        assert spool.shipped == Cursor(1, 24)  # …but they no longer block the queue
        assert spool.corrupt_lines == 3


def test_segments_roll_and_shipped_ones_are_deleted(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=1000) as spool:
        for n in range(40):
            spool.append(record(n))
            if n % 3 == 0:
                spool.flush()
        spool.flush()
        assert len(segment_files(tmp_path)) > 5
        assert all(p.stat().st_size < 1000 + 3 * 400 for p in segment_files(tmp_path))

        shipped: list[int] = []
        assert spool.ship_once(lambda batch: shipped.extend(ids(batch)), batch=7) == 7
    with Spool(tmp_path, segment_bytes=1000) as spool:  # the cursor is mid-segment
        while spool.ship_once(lambda batch: shipped.extend(ids(batch)), batch=7):
            pass
        assert shipped == list(range(40))
        (last,) = segment_files(tmp_path)  # only the segment still being written is left
        spool.append(record(40))
        spool.flush()
        assert ids(read_all(spool)) == [40]
        assert segment_files(tmp_path)[0] == last


def test_a_failed_send_marks_nothing(spool: Spool) -> None:
    for n in range(5):
        spool.append(record(n))
    spool.flush()
    before = spool.shipped

    def unreachable(batch: list[AuditRecord]) -> None:
        raise ConnectionError("control plane down")

    with pytest.raises(ConnectionError):
        spool.ship_once(unreachable, batch=3)
    assert spool.shipped == before
    sent: list[int] = []
    assert spool.ship_once(lambda batch: sent.extend(ids(batch)), batch=3) == 3
    assert sent == [0, 1, 2]


def test_a_failed_write_keeps_the_events(spool: Spool, monkeypatch: pytest.MonkeyPatch) -> None:
    spool.append(record(0))
    spool.flush()
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data)[:25])  # part of a line reaches the file first
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    spool.append(record(1))  # the write fails: held in memory, the torn bytes cut away
    spool.append(record(2))  # and the next waits behind it, to keep the order
    with pytest.raises(OSError, match="No space"):
        spool.flush()
    monkeypatch.undo()
    assert spool.pending() == 2
    assert ids(read_all(spool)) == [0]
    assert spool.flush() == 2
    assert ids(read_all(spool)) == [0, 1, 2]  # no half line in between


def test_appended_events_reach_the_kernel_before_any_flush(spool: Spool, tmp_path: Path) -> None:
    spool.append(record(7))
    assert spool.pending() == 1
    on_disk = b"".join(p.read_bytes() for p in sorted((tmp_path / "spool").glob("*.log")))
    assert record(7).event_id.encode() in on_disk  # a SIGKILL now would not lose it


def test_an_unreadable_cursor_means_shipping_again(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for n in range(4):
            spool.append(record(n))
        spool.flush()
        spool.ship_once(lambda batch: None, batch=2)
    (tmp_path / "shipped").write_text("{not json")
    with Spool(tmp_path) as spool:
        # At least once: the control plane drops the repeats by event_id.
        assert ids(read_all(spool)) == [0, 1, 2, 3]


# --- crashes ----------------------------------------------------------------------------------

_CHILD_PRELUDE = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from zerogate.core.audit import AuditRecord
    from zerogate.gateway.spool import Spool

    def record(n):
        return AuditRecord(
            event_id=f"{n:032x}",
            time=datetime(2025, 3, 1, tzinfo=UTC) + timedelta(seconds=n),
            actor="user:alice",
            action="access.decision",
            target="app/wiki",
            details={"n": n, "pad": "x" * 150},
        )

    spool = Spool(Path(sys.argv[1]), segment_bytes=4096)
    """
)

_SELF_KILL = _CHILD_PRELUDE + textwrap.dedent(
    """
    flushed, shipped = int(sys.argv[2]), int(sys.argv[3])
    for n in range(flushed):
        spool.append(record(n))
        if n % 7 == 6:
            spool.flush()
    spool.flush()
    spool.ship_once(lambda batch: None, batch=shipped)
    print(f"flushed {flushed}", flush=True)

    real_write = os.write
    def dying_write(fd, data):
        real_write(fd, bytes(data)[: len(data) // 2 + 7])  # some whole lines and a torn one
        os.kill(os.getpid(), signal.SIGKILL)
    os.write = dying_write
    for n in range(flushed, flushed + 50):
        spool.append(record(n))
    spool.flush()
    print("still alive", flush=True)
    """
)

_FOREVER = _CHILD_PRELUDE + textwrap.dedent(
    """
    n = 0
    while True:
        for _ in range(5):
            spool.append(record(n))
            n += 1
        spool.flush()
        print(n, flush=True)
    """
)


def test_sigkill_mid_write_loses_no_flushed_event(tmp_path: Path) -> None:
    flushed, shipped = 300, 120
    child = subprocess.run(
        [sys.executable, "-c", _SELF_KILL, str(tmp_path), str(flushed), str(shipped)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.splitlines() == [f"flushed {flushed}"]
    assert len(segment_files(tmp_path)) > 1  # the crash is not in the first segment

    with Spool(tmp_path, segment_bytes=4096) as spool:
        found = ids(read_all(spool))
        # Everything fsynced and not shipped, once and in order; past it at most the whole
        # lines the dying write got into the page cache, and no torn or corrupt line.
        assert found[: flushed - shipped] == list(range(shipped, flushed))
        assert found == list(range(shipped, shipped + len(found)))
        assert len(found) < flushed - shipped + 50
        assert spool.corrupt_lines == 0


def test_sigkill_from_outside_loses_no_flushed_event(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _FOREVER, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        deadline, flushed = time.monotonic() + 60, 0
        while flushed < 400 and time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else ""
            flushed = int(line)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=60)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert flushed >= 400

    with Spool(tmp_path) as spool:
        found = ids(read_all(spool))
        assert found[:flushed] == list(range(flushed))
        assert found == list(range(len(found)))
        assert spool.corrupt_lines == 0


# --- the shipper ------------------------------------------------------------------------------


def to_control_plane(
    spool: Spool, control_plane: Callable[[httpx.Request], httpx.Response], **options: Any
) -> AsyncShipper:
    """A shipper whose control plane is `control_plane`, called in-process for each request."""
    return AsyncShipper(
        spool,
        "https://control.test/",
        "zgt_gw",
        ssl.create_default_context(),
        transport=httpx.MockTransport(control_plane),
        **options,
    )


def test_async_shipper_posts_retries_and_isolates_a_bad_event(tmp_path: Path) -> None:
    stored: list[int] = []
    requests = 0

    def control_plane(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        assert request.url == "https://control.test/api/v1/audit/events"
        assert request.headers["Authorization"] == "Bearer zgt_gw"
        if requests == 1:
            return httpx.Response(503, json={"detail": "database unavailable"})
        events = json.loads(request.content)["events"]
        if any(event["target"] == "app/poison" for event in events):
            return httpx.Response(422, json={"detail": "invalid request"})
        stored.extend(int(event["event_id"], 16) for event in events)
        return httpx.Response(200, json={"accepted": len(events), "stored": len(events)})

    async def scenario() -> AsyncShipper:
        spool = Spool(tmp_path)
        shipper = to_control_plane(
            spool,
            control_plane,
            interval=0.01,
            batch=4,
            max_backoff=0.05,
        )
        shipper.start(asyncio.get_running_loop())
        for n in range(10):
            spool.append(record(n, target="app/poison" if n == 6 else "app/wiki"))
        while spool.pending() or spool.read_unshipped(1)[0]:
            await asyncio.sleep(0.01)
        spool.append(record(10))
        await shipper.stop()
        spool.close()
        return shipper

    shipper = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert stored == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert shipper.rejected == 1
    with Spool(tmp_path) as spool:
        assert ids(read_all(spool)) == [10]  # stop() made it durable for the next start


def shipped_line(n: int) -> bytes:
    """An event's line as the gateway writes it (canonical: what the shipper recognises)."""
    return canonical(record(n)) + b"\n"


def test_async_shipper_sends_its_lines_as_they_are_to_a_control_plane_that_reads_them(
    tmp_path: Path,
) -> None:
    """Lines once the control plane lists them in Accept-Post; an older one (here, the same
    address answering as one) loses nothing: a refused line is offered again as JSON."""
    reads_lines = True
    stored: list[tuple[int, str]] = []  # (event, the form it came in)
    posts = 0

    def control_plane(request: httpx.Request) -> httpx.Response:
        nonlocal posts
        posts += 1
        if request.headers["content-type"] == LINES_MEDIA_TYPE:
            if not reads_lines:  # an older control plane: the body is not its JSON
                return httpx.Response(422, json={"detail": "not JSON"})
            lines = request.content.split(b"\n")
            events, form = [json.loads(line) for line in lines], "lines"
            for line, event in zip(lines, events, strict=True):  # as they were written
                assert line == canonical(record(int(event["event_id"], 16), target=event["target"]))
        else:
            events, form = json.loads(request.content)["events"], "json"
        if any(event["target"] == "app/poison" for event in events):
            return httpx.Response(422, json={"detail": "invalid request"})
        stored.extend((int(event["event_id"], 16), form) for event in events)
        accept = {"accept-post": f"application/json, {LINES_MEDIA_TYPE}"} if reads_lines else {}
        return httpx.Response(200, headers=accept, json={"accepted": len(events), "stored": 0})

    async def until(condition: Callable[[], bool]) -> None:
        while not condition():
            await asyncio.sleep(0.01)

    async def scenario() -> AsyncShipper:
        nonlocal reads_lines
        spool = Spool(tmp_path)
        shipper = to_control_plane(spool, control_plane, interval=0.01, max_backoff=0.05)
        shipper.start(asyncio.get_running_loop())
        await until(lambda: posts >= 1)  # the first report, in JSON: its answer lists lines
        for n in range(5):
            spool.append_line(
                canonical(record(n, target="app/poison" if n == 4 else "app/wiki")) + b"\n"
            )
        await until(lambda: len(stored) == 4 and shipper.rejected == 1)
        reads_lines = False
        spool.append_line(shipped_line(5))
        spool.append_line(shipped_line(6))
        await until(lambda: len(stored) == 6)
        spool.append_line(shipped_line(7))
        await until(lambda: len(stored) == 7)
        await shipper.stop()
        spool.close()
        return shipper

    shipper = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert sorted(stored) == [(0, "lines"), (1, "lines"), (2, "lines"), (3, "lines"),
                              (5, "json"), (6, "json"), (7, "json")]  # fmt: skip
    assert shipper.rejected == 1  # the poisoned event, refused as a line and as JSON


def test_async_shipper_reports_the_spool_state_with_events_and_on_every_change(
    tmp_path: Path,
) -> None:
    posts: list[tuple[int, dict[str, object]]] = []  # (events, the spool header)

    def control_plane(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        posts.append((len(events), json.loads(request.headers[SPOOL_HEADER])))
        return httpx.Response(200, json={"accepted": len(events), "stored": len(events)})

    async def until(condition: Callable[[], bool]) -> None:
        while not condition():
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        spool = Spool(tmp_path, max_bytes=1 << 20)
        shipper = to_control_plane(
            spool,
            control_plane,
            gateway="edge",
            worker=3,
            interval=0.01,
            report_every=3600,  # only the first round's report and the changes are due
        )
        shipper.start(asyncio.get_running_loop())
        await until(lambda: len(posts) == 1)  # the first round: the state alone
        spool.append_line(shipped_line(1))
        await until(lambda: len(posts) == 2)  # the event, with the state
        good_fd = spool._fd
        spool._fd = os.open(os.devnull, os.O_RDONLY)  # writes fail with EBADF
        spool.hold_line(shipped_line(2))
        assert spool.write_through() is False
        await until(lambda: len(posts) == 3)  # refusing: reported at once
        os.close(spool._fd)
        spool._fd = good_fd
        await until(lambda: len(posts) == 4)  # the held event, accepting again
        await asyncio.sleep(0.1)
        await shipper.stop()
        spool.close()

    asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    first, event, refusing, held = posts
    assert first == (
        0,
        {
            "gateway": "edge", "worker": 3, "accepting": True, "refusal": None,
            "backlog_bytes": 0, "max_bytes": 1 << 20, "refused": 0, "corrupt_lines": 0,
            "rejected": 0,
        },
    )  # fmt: skip
    assert event == (1, {**first[1], "backlog_bytes": len(shipped_line(1))})  # not confirmed yet
    assert refusing[0] == 0 and refusing[1]["accepting"] is False
    assert refusing[1]["refusal"] == "the audit spool cannot be written"
    assert held[0] == 1 and held[1]["accepting"] is True  # which says so: no report of its own
    SpoolReport.model_validate(first[1])  # what the control plane accepts


def test_a_control_plane_that_does_not_answer_cannot_hold_back_the_disk_s_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report that the spool refuses goes out while the disk is failing; a control plane
    that never answers it (a black-holed network) must not delay the next fsync, which is
    what lets the gateway accept requests again."""
    reports: list[dict[str, object]] = []
    answer = asyncio.Event()

    async def control_plane(request: httpx.Request) -> httpx.Response:
        reports.append(json.loads(request.headers[SPOOL_HEADER]))
        await answer.wait()  # never, until the end: the network swallows the request
        return httpx.Response(200, json={"accepted": 0, "stored": 0})

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    async def until(condition: Callable[[], bool]) -> None:
        while not condition():
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        with Spool(tmp_path) as spool:
            spool.append_line(line(1))
            monkeypatch.setattr(os, "fsync", failing)
            shipper = to_control_plane(spool, control_plane, interval=0.01)  # type: ignore[arg-type]
            shipper.start(asyncio.get_running_loop())
            await until(lambda: not spool.accepting and len(reports) == 1)
            assert reports[0]["accepting"] is False  # in flight, and it stays so
            monkeypatch.undo()  # the disk works again: the next retry's fsync succeeds
            await asyncio.wait_for(until(lambda: spool.accepting), timeout=5)
            # One report of refusing in flight at a time, not one per retry (the shipment of
            # event 1, now durable, may have followed: it says that the spool accepts).
            assert [r["accepting"] for r in reports] in ([False], [False, True])
            answer.set()
            await shipper.stop()

    asyncio.run(asyncio.wait_for(scenario(), timeout=30))


def test_async_shipper_reports_when_it_has_been_silent(tmp_path: Path) -> None:
    reports = 0

    def control_plane(request: httpx.Request) -> httpx.Response:
        nonlocal reports
        assert json.loads(request.content) == {"events": []}
        reports += 1
        return httpx.Response(200, json={"accepted": 0, "stored": 0})

    async def scenario() -> None:
        with Spool(tmp_path) as spool:
            shipper = to_control_plane(
                spool,
                control_plane,
                interval=0.01,
                report_every=0.1,
            )
            shipper.start(asyncio.get_running_loop())
            while reports < 3:
                await asyncio.sleep(0.01)
            await shipper.stop()

    asyncio.run(asyncio.wait_for(scenario(), timeout=30))


def test_held_lines_reach_the_file_together_at_write_through(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool") as spool:
        spool.append(record(1))
        for n in (2, 3, 4):
            spool.hold_line(json.dumps(to_json(record(n))).encode() + b"\n")
        (segment,) = segment_files(tmp_path / "spool")
        assert segment.read_bytes().count(b"\n") == 1  # held: not yet in the kernel
        spool.append(record(5))  # behind held lines, so it waits for them: order is kept
        assert segment.read_bytes().count(b"\n") == 1
        spool.write_through()
        assert segment.read_bytes().count(b"\n") == 5  # what a SIGKILL now would leave
        assert spool.pending() == 5  # written, not yet fsynced
        assert spool.flush() == 5
        assert ids(read_all(spool)) == [1, 2, 3, 4, 5]
        spool.write_through()  # nothing held: nothing written
        assert segment.read_bytes().count(b"\n") == 5


def test_a_failed_write_through_keeps_the_lines_and_refuses_until_a_write_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(tmp_path / "spool") as spool:
        spool.hold_line(json.dumps(to_json(record(1))).encode() + b"\n")
        good_fd = spool._fd
        spool._fd = os.open(os.devnull, os.O_RDONLY)  # writes fail with EBADF
        try:
            assert spool.write_through() is False  # never raised: the caller cuts the answers
            assert not spool.accepting
            assert spool.refusal == "the audit spool cannot be written"
            spool.hold_line(json.dumps(to_json(record(2))).encode() + b"\n")
            assert spool.write_through() is False  # too soon to try the disk again
        finally:
            os.close(spool._fd)
            spool._fd = good_fd
        assert [r.levelname for r in caplog.records] == ["ERROR"]  # logged once, not per try
        monkeypatch.setattr("zerogate.gateway.spool._RETRY_SECONDS", 0.0)
        spool._retry_at = 0.0
        spool.refused = 7
        assert spool.write_through() is True
        assert spool.accepting and spool.refusal is None
        assert "accepting requests again (7 refused meanwhile)" in caplog.text
        assert ids(read_all(spool)) == [] and spool.flush() == 2
        assert ids(read_all(spool)) == [1, 2]


def line(n: int) -> bytes:
    return json.dumps(to_json(record(n))).encode() + b"\n"


def test_a_failed_fsync_refuses_until_one_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(tmp_path / "spool") as spool:
        spool.append_line(line(1))

        def failing(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(os, "fsync", failing)
        for _ in range(2):
            with pytest.raises(OSError, match="Input/output"):
                spool.flush()
            assert not spool.accepting
            assert spool.refusal == "the audit spool cannot make events durable"
        assert spool.pending() == 1  # not counted as durable
        assert spool.read_unshipped(10)[0] == []  # nor shipped while it is not
        assert [r.levelname for r in caplog.records] == ["ERROR"]  # logged once, not per try
        monkeypatch.undo()
        spool.refused = 3
        assert spool.flush() == 1
        assert spool.accepting
        assert spool.refusal is None
        assert ids(read_all(spool)) == [1]
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING", "WARNING"]
    assert "3 refused meanwhile" in caplog.text


def test_the_backlog_counts_what_is_not_confirmed_across_segments(tmp_path: Path) -> None:
    size = len(line(10))
    with Spool(tmp_path / "spool", segment_bytes=3 * size) as spool:
        assert spool.backlog_bytes() == 0
        for n in range(10, 17):
            spool.append_line(line(n))
            spool.flush()  # rolls after every third line
        assert len(segment_files(tmp_path / "spool")) == 3
        assert spool.backlog_bytes() == 7 * size
        spool.hold_line(line(17))
        assert spool.backlog_bytes() == 8 * size  # held in memory counts too
        spool.flush()
        _, cursor = spool.read_unshipped(4)
        spool.mark_shipped(cursor)
        assert spool.backlog_bytes() == 4 * size
        assert len(segment_files(tmp_path / "spool")) == 2  # the first is gone, and counted so
    with Spool(tmp_path / "spool", segment_bytes=3 * size) as reopened:
        assert reopened.backlog_bytes() == 4 * size  # measured again from the files


def test_a_full_backlog_refuses_until_it_drains_below_ninety_percent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    size = len(line(10))
    limit = 10 * size
    with Spool(tmp_path / "spool", max_bytes=limit) as spool:
        for n in range(10, 15):
            spool.append_line(line(n))
        spool.flush()
        assert spool.accepting
        assert "not yet taken by the control plane (the limit is" in caplog.text  # half: warned
        for n in range(15, 20):
            spool.append_line(line(n))
        assert spool.accepting  # measured at the flush, not at every append
        spool.flush()
        assert not spool.accepting and spool.refusal == "the audit spool is full"
        assert "refusing requests until it drains" in caplog.text

        _, cursor = spool.read_unshipped(1)
        spool.mark_shipped(cursor)  # 90 % of the limit: still refused, no flapping at the edge
        assert not spool.accepting
        _, cursor = spool.read_unshipped(1)
        spool.mark_shipped(cursor)  # 80 %
        assert spool.accepting
        assert "accepting requests again" in caplog.text

    with Spool(tmp_path / "spool", max_bytes=5 * size) as small:
        assert not small.accepting  # a backlog left by the last run counts from the start
    with Spool(tmp_path / "spool", max_bytes=None) as unlimited:
        assert unlimited.accepting


@pytest.mark.parametrize("chunk", [7, 100, 1 << 20])
def test_reading_in_chunks_finds_every_line_whatever_the_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Lines cut by chunk boundaries, a limit inside a chunk, and the cursor right after."""
    monkeypatch.setattr("zerogate.gateway.spool._READ_CHUNK", chunk)
    with Spool(tmp_path / "spool") as spool:
        for n in range(30):
            spool.append(record(n, target="app/" + "w" * n))  # lines of different lengths
        spool.flush()
        (segment,) = segment_files(tmp_path / "spool")
        on_disk = segment.read_bytes().split(b"\n")[:-1]
        first, cursor = spool.read_unshipped(11)
        assert ids(first) == list(range(11))
        assert cursor.offset == sum(len(line) + 1 for line in on_disk[:11])
        spool.mark_shipped(cursor)
        lines, end = spool.read_unshipped_lines(1000)
        assert lines == on_disk[11:]  # as written, without their newlines
        assert end.offset == segment.stat().st_size
        assert ids(read_all(spool)) == list(range(11, 30))


def test_lines_that_are_not_events_are_not_shipped(tmp_path: Path) -> None:
    (tmp_path / f"{1:012d}.log").write_bytes(
        json.dumps(to_json(record(1)), separators=(",", ":")).encode()
        + b"\n\x00\x00\x00\nnot an event\n"
        + json.dumps(to_json(record(2)), separators=(",", ":")).encode()[:50]
        + b"\n"
    )
    with Spool(tmp_path) as spool:
        lines, _ = spool.read_unshipped_lines(10)
        assert [json.loads(line)["event_id"] for line in lines] == [f"{1:032x}"]
        assert spool.corrupt_lines == 3
