"""Checks for everything a caller or requester wants written into a certificate.

Common name, DNS names (IDNA, then LDH rules), IP addresses and URIs are validated and put in
the exact form the certificate will hold; anything else is a `PkiError` with a clear message.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import idna
from cryptography import x509

from zerogate.pki.errors import PkiError
from zerogate.pki.kinds import SERVING, CertKind

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_NAMES = 100  # bounds the certificate's size; the API asks for far fewer
_LDH_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[!-~]+\Z")  # RFC 3986 §3.1 scheme, printable ASCII


@dataclass(frozen=True, slots=True)
class LeafNames:
    """Subject and SANs after validation, in the form written into the certificate."""

    common_name: str
    dns: tuple[str, ...]
    ips: tuple[IPAddress, ...]
    uris: tuple[str, ...]

    def general_names(self) -> list[x509.GeneralName]:
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in self.dns]
        names += [x509.IPAddress(ip) for ip in self.ips]
        names += [x509.UniformResourceIdentifier(uri) for uri in self.uris]
        return names


def check_common_name(name: str) -> str:
    # Category C* covers controls, lone surrogates (unencodable) and format characters such as
    # U+202E, which would let a name display as something else.
    if not name.strip() or any(unicodedata.category(ch).startswith("C") for ch in name):
        raise PkiError("common name must be non-empty text without control or format characters")
    if len(name.encode("utf-8")) > 64:  # RFC 5280 ub-common-name, as cryptography counts it
        raise PkiError("common name must be at most 64 bytes in UTF-8")
    return name


def _dns_name(name: str, kind: CertKind) -> str:
    """The A-label form a browser compares against: IDNA (UTS #46) then LDH rules."""
    wildcard = name.startswith("*.")
    if wildcard and kind not in SERVING:
        raise PkiError(f"wildcard name {name!r} is allowed only in server and gateway certificates")
    try:
        host = idna.encode(name[2:] if wildcard else name, uts46=True).decode("ascii")
    except ValueError:  # idna.IDNAError is a ValueError
        raise PkiError(f"{name!r} is not a valid DNS name") from None
    labels = host.split(".")
    if len(host) > 253 or not all(_LDH_LABEL.match(label) for label in labels):
        raise PkiError(f"{name!r} is not a valid DNS name")
    if labels[-1].isdigit():
        raise PkiError(f"{name!r} looks like an IP address; pass it as an IP address")
    if wildcard and len(labels) < 2:
        raise PkiError(f"wildcard {name!r} must cover at least two labels, as in *.apps.example")
    return f"*.{host}" if wildcard else host


def _ip_address(text: str) -> IPAddress:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise PkiError(f"{text!r} is not a valid IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise PkiError(f"{text!r} has a zone; certificates hold bare IP addresses")
    return address


def _uri(text: str) -> str:
    if len(text) > 2048 or not _URI.match(text):
        raise PkiError(f"{text!r} is not an absolute URI in printable ASCII, like spiffe://...")
    return text


def leaf_names(
    kind: CertKind,
    common_name: str,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    uris: Sequence[str],
) -> LeafNames:
    if isinstance(dns_names, str) or isinstance(ip_addresses, str) or isinstance(uris, str):
        raise TypeError("dns_names, ip_addresses and uris are sequences of strings")
    names = LeafNames(
        common_name=check_common_name(common_name),
        dns=tuple(dict.fromkeys(_dns_name(name, kind) for name in dns_names)),
        ips=tuple(dict.fromkeys(_ip_address(ip) for ip in ip_addresses)),
        uris=tuple(dict.fromkeys(_uri(uri) for uri in uris)),
    )
    if kind in SERVING and not (names.dns or names.ips):
        raise PkiError(f"a {kind} certificate needs at least one DNS name or IP address")
    if len(names.dns) + len(names.ips) + len(names.uris) > MAX_NAMES:
        raise PkiError(f"a certificate holds at most {MAX_NAMES} names")
    return names
