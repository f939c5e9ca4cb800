"""Value rules for inventory fields: names, host names, targets, free text.

Everything a client can write is checked here, once, so the API, the import file and the
store agree; the database never sees a control character or an over-long string (PostgreSQL
rejects NUL bytes, which would otherwise surface as a 500).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$"
TAG_PATTERN = r"^[a-z0-9][a-z0-9_.:-]{0,62}$"
# \Z, not $: `$` also matches before a final newline, which would let "\n" through.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\Z")

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]


def _plain_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[str, Field(max_length=500), AfterValidator(_plain_text)]


def check_dns_name(value: str) -> str:
    """A fully qualified DNS name (at least two labels), lower-cased, no wildcard."""
    host = value.lower().rstrip(".")
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{value!r} is not a valid DNS name (like app.example.com)")
    return host


def _host(value: str) -> str:
    """A DNS name, an IP literal, or a single-label name resolved inside a private network."""
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    host = value.lower().rstrip(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
        raise ValueError(f"{value!r} is not a valid host name or IP address")
    return host


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_host_port(value: str) -> str:
    """`host:port` as a connector would dial it; IPv6 literals in brackets."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} must be host:port")
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise ValueError(f"port in {value!r} must be a number from 1 to 65535")
    if ":" in host and not host.startswith("[") and _is_ip(host):
        raise ValueError(f"{value!r}: write an IPv6 address in brackets, like [2001:db8::1]:22")
    checked = _host(host)
    if ":" in checked:
        checked = f"[{checked}]"
    return f"{checked}:{int(port)}"


def check_http_url(value: str) -> str:
    """An upstream URL: http or https, a host, an optional port and path; no credentials."""
    if _CONTROL.search(value) or " " in value:
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{value!r} must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"{value!r} has no host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials; give them to the app, not the URL")
    if "?" in value or "#" in value:
        raise ValueError("must not have a query or fragment")
    _host(parts.hostname)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"port in {value!r} must be a number from 1 to 65535") from None
    if port == 0:
        raise ValueError(f"port in {value!r} must be a number from 1 to 65535")
    return value


def check_email(value: str) -> str:
    if _CONTROL.search(value) or not _EMAIL.match(value) or len(value) > 320:
        raise ValueError(f"{value!r} is not a valid e-mail address")
    return value


def check_address(value: str) -> str:
    """A gateway's public address: an https URL or host:port."""
    if value.startswith("https://"):
        return check_http_url(value)
    return check_host_port(value)


Hostname = Annotated[str, StringConstraints(max_length=253), AfterValidator(check_dns_name)]
HostPort = Annotated[str, StringConstraints(max_length=300), AfterValidator(check_host_port)]
HttpUrl = Annotated[str, StringConstraints(max_length=2000), AfterValidator(check_http_url)]
Email = Annotated[str, AfterValidator(check_email)]
Address = Annotated[str, StringConstraints(max_length=2000), AfterValidator(check_address)]
