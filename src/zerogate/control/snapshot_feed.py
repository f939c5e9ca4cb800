"""The long-lived snapshot feed: gateways wait here until the state they hold changes.

Where it sits: `GET /api/v1/policy/snapshot?since=S&wait=W` asks `SerialWatch.wait_past(S, W)`.
One task per control-plane process reads the state serial every `interval` and wakes every
waiting gateway at once, so a thousand waiting gateways cost one small query per interval,
and a change (a new policy, an ended session) reaches them all within about `interval`.
Reading the database (not an in-process event) keeps it right with several control-plane
replicas writing to one PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.concurrency import run_in_threadpool

from zerogate.store import snapshots
from zerogate.store.db import Database

log = logging.getLogger("zerogate.control")
IDLE_STOP_SECONDS = 30.0


class SerialWatch:
    def __init__(self, db: Database, interval: float = 0.1) -> None:
        self.db = db
        self.interval = interval
        self.serial = -1
        self._changed: asyncio.Condition | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting = 0
        self._closing = False

    async def wait_past(self, since: int, seconds: float) -> int:
        """The current serial once it is above `since`, or after `seconds` whatever it is."""
        if seconds <= 0:
            return await run_in_threadpool(self._read)
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or a new event loop (tests start several)
            self._loop, self._changed, self._task = loop, asyncio.Condition(), None
        if self._task is None or self._task.done():
            self.serial = await run_in_threadpool(self._read)
            self._task = asyncio.get_running_loop().create_task(self._watch())
        assert self._changed is not None
        self._waiting += 1
        try:
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: self.serial > since or self._closing),
                        seconds,
                    )
        finally:
            self._waiting -= 1
        return self.serial

    def _read(self) -> int:
        with self.db.transaction() as session:
            return snapshots.serial(session)

    async def _watch(self) -> None:
        assert self._changed is not None
        idle = 0.0
        while idle < IDLE_STOP_SECONDS:  # nobody has waited for a while: stop reading
            await asyncio.sleep(self.interval)
            idle = 0.0 if self._waiting else idle + self.interval
            try:
                serial = await run_in_threadpool(self._read)
            except Exception as exc:  # the database went away: keep waiting, keep trying
                log.warning("snapshot feed cannot read the state serial: %s", exc)
                continue
            if serial != self.serial:
                async with self._changed:
                    self.serial = serial
                    self._changed.notify_all()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def release_all(self) -> None:
        """The server is stopping: answer every waiting gateway now (204; it asks again
        elsewhere or later) instead of holding the shutdown for a long poll. Thread-safe."""
        self._closing = True
        loop, changed = self._loop, self._changed
        if loop is None or changed is None or loop.is_closed():
            return

        async def wake() -> None:
            async with changed:
                changed.notify_all()

        asyncio.run_coroutine_threadsafe(wake(), loop)
