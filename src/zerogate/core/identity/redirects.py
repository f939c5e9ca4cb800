"""Safe `next` redirects after login: only to configured application hosts or the portal.

An open redirect turns the login page into a phishing tool, so anything else — other hosts,
other schemes, `//evil.example`, backslashes, user-info tricks, control characters — falls
back to the portal's own start page.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

DEFAULT = "/portal/"


def safe_next(target: str | None, *, allowed_hosts: Collection[str]) -> str:
    if not target or len(target) > 2000 or any(ord(ch) < 33 or ch == "\\" for ch in target):
        return DEFAULT
    parts = urlsplit(target)
    if not parts.scheme and not parts.netloc:
        # A relative path on the portal itself; "//host" would be protocol-relative.
        return target if target.startswith("/") and not target.startswith("//") else DEFAULT
    if parts.scheme != "https" or parts.username or parts.password or not parts.hostname:
        return DEFAULT
    return target if parts.hostname.lower() in allowed_hosts else DEFAULT
