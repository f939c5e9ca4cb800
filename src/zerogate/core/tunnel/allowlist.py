"""The connector's own allow-list: the networks and ports it will ever dial, whatever a grant says.

Defence in depth: a compromised gateway can sign any grant, but the connector connects only to
addresses inside these networks on these ports. Names are resolved first and each resolved
address is checked (and dialled) as an address, so DNS cannot smuggle a target past the list.

Syntax, one entry per `--allow`: `CIDR` (any port), `CIDR:PORTS` or `[IPv6-CIDR]:PORTS`, where
PORTS is `*`, a port, a range `a-b`, or a comma list of those: `10.1.0.0/16:80,443,8000-8099`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AllowListError(ValueError):
    """An entry that does not parse; the message names the entry and the problem."""


@dataclass(frozen=True, slots=True)
class Rule:
    network: Network
    ports: tuple[tuple[int, int], ...]  # inclusive ranges; (1, 65535) for any

    def permits(self, address: Address, port: int) -> bool:
        return address in self.network and any(low <= port <= high for low, high in self.ports)


@dataclass(frozen=True, slots=True)
class AllowList:
    rules: tuple[Rule, ...]

    def permits(self, address: Address, port: int) -> bool:
        # An IPv4-mapped IPv6 address is the IPv4 host it names.
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(rule.permits(address, port) for rule in self.rules)


def parse_allowlist(entries: Iterable[str]) -> AllowList:
    return AllowList(tuple(parse_rule(entry) for entry in entries))


def parse_rule(entry: str) -> Rule:
    text = entry.strip()
    if text.startswith("["):
        network_text, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise AllowListError(f"{entry!r}: expected ']:PORTS' after an IPv6 network")
        ports_text = rest[1:] if rest else "*"
    elif text.count(":") == 1:
        network_text, ports_text = text.split(":")
    else:
        network_text, ports_text = text, "*"  # a bare IPv4 or IPv6 network
    try:
        network = ipaddress.ip_network(network_text, strict=True)
    except ValueError as exc:
        raise AllowListError(f"{entry!r}: {exc}") from None
    return Rule(network, _ports(entry, ports_text))


def _ports(entry: str, text: str) -> tuple[tuple[int, int], ...]:
    if text == "*":
        return ((1, 65535),)
    ranges = []
    for part in text.split(","):
        low_text, _, high_text = part.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if high_text else low
        except ValueError:
            raise AllowListError(f"{entry!r}: {part!r} is not a port or a port range") from None
        if not 1 <= low <= high <= 65535:
            raise AllowListError(f"{entry!r}: ports run from 1 to 65535, low to high")
        ranges.append((low, high))
    return tuple(ranges)


def split_target(target: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` as (host, port); ValueError if it is neither."""
    host, sep, port_text = target.rpartition(":")
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{target!r} is not host:port")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        raise ValueError(f"{target!r} has no host")
    return host, int(port_text)
