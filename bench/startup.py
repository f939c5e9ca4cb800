"""Benchmark: seconds from `zerogate up` to a 200 from /healthz over HTTPS (real curl).

Fresh data directory (creates database, CA, TLS certificate, first admin) and restart on
the same directory, each measured `--runs` times. Run: `.venv/bin/python bench/startup.py`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from harness import free_port, start, stop
from rich.console import Console
from rich.table import Table


def healthy_after(data_dir: Path, port: int) -> float:
    started = time.perf_counter()
    proc, _ = start(data_dir, port)
    try:
        command = [
            "curl",
            "-sf",
            "--max-time",
            "2",
            "--cacert",
            str(data_dir / "ca.pem"),
            f"https://localhost:{port}/healthz",
        ]
        deadline = started + 60
        while time.perf_counter() < deadline:
            if subprocess.run(command, capture_output=True, check=False).returncode == 0:
                return time.perf_counter() - started
            time.sleep(0.02)
        raise SystemExit("never healthy within 60 s")
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    fresh, again = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="zg-start-") as tmp:
            data_dir, port = Path(tmp) / "data", free_port()
            fresh.append(healthy_after(data_dir, port))
            again.append(healthy_after(data_dir, port))
    table = Table(title="zerogate up: start to healthy /healthz over HTTPS (target < 10 s)")
    for column in ("start", "median s", "max s"):
        table.add_column(column, justify="right" if column != "start" else "left")
    for name, values in (("fresh data directory", fresh), ("same directory again", again)):
        table.add_row(name, f"{statistics.median(values):.2f}", f"{max(values):.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
