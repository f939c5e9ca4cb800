"""The connector's allow-list: its syntax, its errors, and what it lets through."""

from __future__ import annotations

import ipaddress

import pytest

from zerogate.core.tunnel.allowlist import AllowListError, parse_allowlist, split_target


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_networks_and_ports() -> None:
    allow = parse_allowlist(
        ["198.18.2.0/24:80,443,8000-8099", "198.19.0.7/32", "[2001:db8::/32]:22"]
    )
    assert allow.permits(ip("198.18.2.9"), 443)
    assert allow.permits(ip("198.18.2.9"), 8050)
    assert not allow.permits(ip("198.18.2.9"), 22)
    assert not allow.permits(ip("198.18.3.9"), 80)
    assert allow.permits(ip("198.19.0.7"), 5432)  # no ports: any port
    assert not allow.permits(ip("198.19.0.8"), 5432)
    assert allow.permits(ip("2001:db8::1"), 22)
    assert not allow.permits(ip("2001:db9::1"), 22)
    # An IPv4-mapped IPv6 address is judged as the IPv4 address it is.
    assert allow.permits(ip("::ffff:198.18.2.1"), 80)
    assert not allow.permits(ip("::ffff:10.0.0.1"), 80)


def test_empty_list_allows_nothing() -> None:
    assert not parse_allowlist([]).permits(ip("127.0.0.1"), 80)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("10.0.0.1/8:80", "host bits set"),
        ("10.0.0.0/8:http", "not a port"),
        ("10.0.0.0/8:0", "1 to 65535"),
        ("10.0.0.0/8:90-80", "low to high"),
        ("[2001:db8::/32]22", "expected"),
        ("db.internal:5432", "does not appear to be"),
    ],
)
def test_errors_name_the_entry(entry: str, message: str) -> None:
    with pytest.raises(AllowListError, match=message) as caught:
        parse_allowlist([entry])
    assert repr(entry) in str(caught.value)


def test_split_target() -> None:
    assert split_target("db.internal:5432") == ("db.internal", 5432)
    assert split_target("[2001:db8::1]:443") == ("2001:db8::1", 443)
    for bad in ("db.internal", "db:0", ":80", "db:99999"):
        with pytest.raises(ValueError):
            split_target(bad)
