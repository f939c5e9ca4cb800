"""Several gateway processes on one port: the kernel spreads connections (SO_REUSEPORT).

Where it sits: `zerogate gateway --workers N` with N > 1 runs `supervise`, which starts N
copies of the same command, each with `--workers 1 --worker-index I` and its own data
directory (its own spool and saved snapshot: a spool is one process's), restarts a worker
that dies, and stops them all on SIGINT or SIGTERM. Python runs one core per process, so
this is how a gateway uses a machine's cores.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger("zerogate.gateway")
RESTART_DELAY = 1.0


def supervise(count: int, argv: Sequence[str]) -> int:
    """Run `count` workers of `zerogate gateway` (argv: the arguments after `gateway`)."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    workers = {index: _spawn(index, count, argv) for index in range(count)}
    try:
        while not stopping:
            time.sleep(0.2)
            for index, process in list(workers.items()):
                if process.poll() is not None and not stopping:
                    log.error(
                        "gateway worker %d exited (%s); restarting", index, process.returncode
                    )
                    time.sleep(RESTART_DELAY)
                    workers[index] = _spawn(index, count, argv)
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.terminate()
        for process in workers.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _spawn(index: int, count: int, argv: Sequence[str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "zerogate", "gateway", *argv]
    command += ["--workers", "1", "--worker-index", str(index), "--worker-count", str(count)]
    command += ["--exit-with-parent"]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)
