"""Network namespaces for multi-host tests: hosts joined by veth pairs, removed afterwards.

Addresses come from 198.18.0.0/15 (the benchmarking range), never from the private ranges.
Each `Lab` picks its own /24 inside it, so a leftover from a crashed run cannot collide.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field


def can_run() -> str | None:
    """Why namespace tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    return None


def sh(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=check)


@dataclass
class Lab:
    """Namespaces named `zg<tag>-<host>` and point-to-point links between them (or the root)."""

    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    third: int = field(default_factory=lambda: 16 + secrets.randbelow(200))
    hosts: list[str] = field(default_factory=list)
    links: int = 0

    def ns(self, host: str) -> str:
        return f"zg{self.tag}-{host}"

    def wrap(self, host: str) -> list[str]:
        """The prefix that runs a command on `host`."""
        return ["ip", "netns", "exec", self.ns(host)]

    def add_host(self, host: str) -> None:
        sh("ip", "netns", "add", self.ns(host))
        self.hosts.append(host)
        sh(*self.wrap(host), "ip", "link", "set", "lo", "up")

    def link(self, a: str | None, b: str) -> tuple[str, str]:
        """A /30 between `a` (None: the root namespace) and `b`; returns their addresses."""
        n = self.links
        self.links += 1
        left, right = f"zv{self.tag}{n}a", f"zv{self.tag}{n}b"
        base = 4 * n
        addr_a, addr_b = f"198.18.{self.third}.{base + 1}", f"198.18.{self.third}.{base + 2}"
        sh("ip", "link", "add", left, "type", "veth", "peer", "name", right)
        for end, host, address in ((left, a, addr_a), (right, b, addr_b)):
            prefix: list[str] = []
            if host is not None:
                sh("ip", "link", "set", end, "netns", self.ns(host))
                prefix = self.wrap(host)
            sh(*prefix, "ip", "addr", "add", f"{address}/30", "dev", end)
            sh(*prefix, "ip", "link", "set", end, "up")
        return addr_a, addr_b

    def run(
        self, host: str, *command: str, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.wrap(host), *command], capture_output=True, text=True, timeout=timeout
        )

    def close(self) -> None:
        for n in range(self.links):
            sh("ip", "link", "del", f"zv{self.tag}{n}a", check=False)  # root-side ends
        for host in self.hosts:
            sh("ip", "netns", "del", self.ns(host), check=False)


def popen(lab: Lab, host: str, command: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*lab.wrap(host), *command], stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
