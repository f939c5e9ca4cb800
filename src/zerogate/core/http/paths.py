"""The one canonical request path: what policy matches is exactly what the upstream receives.

Where it sits: after `framing.check_request_head` has split the target, the gateway calls
`normalise_path` on the raw path, matches policy path prefixes against the result and
forwards the result upstream — never the raw path. A rule on "/admin" must not be dodged by
"/%61dmin", "//admin", "/x/../admin" or "/%2e%2e/admin", and an upstream must not find a
different resource than the one policy judged.

Rules (RFC 3986 §6.2.2 and §5.2.4, made strict where servers disagree):
- escapes of unreserved characters are decoded; all other escapes are kept, hex upper-cased;
- escapes servers read differently are refused: %00, %2F ("/"), %5C ("\\"); so are raw
  backslashes, spaces, controls, non-ASCII and malformed escapes;
- empty segments collapse ("//a" -> "/a"); dot-segments are removed after decoding and ".."
  stops at the root; a final "." or ".." segment leaves a trailing slash;
- case is preserved.
Invariants of the result: starts with "/", has no "//", no "." or ".." segment, no escape of
an unreserved character, and `normalise_path` of it returns it unchanged.
"""

from __future__ import annotations

import string

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_HEX = frozenset(string.hexdigits)
# NUL ends strings in C servers; encoded slashes and backslashes split segments on some
# servers and not on others, so the policy's view and the upstream's could differ.
_REFUSED_ESCAPES = frozenset({0x00, 0x2F, 0x5C})
# A raw '?' or '#' cannot be part of a path: the caller split them off, or something is wrong.
_REFUSED_RAW = frozenset("\\?#")


class PathError(ValueError):
    """A path the gateway refuses (answered with 400); `reason` is safe to show a client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalise_path(raw: str) -> str:
    if not raw.startswith("/"):
        raise PathError("path must start with '/'")
    return _remove_dot_segments(_decode(raw))


def _decode(raw: str) -> str:
    """Decode unreserved escapes and upper-case the rest; refuse ambiguous characters."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "%":
            out.append(_escape(raw[i + 1 : i + 3]))
            i += 3
            continue
        if not "\x21" <= char <= "\x7e" or char in _REFUSED_RAW:
            raise PathError("invalid character in path")
        out.append(char)
        i += 1
    return "".join(out)


def _escape(digits: str) -> str:
    if len(digits) != 2 or not set(digits) <= _HEX:
        raise PathError("invalid percent-escape in path")
    value = int(digits, 16)
    if value in _REFUSED_ESCAPES:
        raise PathError("forbidden percent-escape in path")
    char = chr(value)
    return char if char in _UNRESERVED else "%" + digits.upper()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 over "/"-separated segments, with empty segments dropped."""
    kept: list[str] = []
    segments = path.split("/")[1:]
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment not in ("", "."):
            kept.append(segment)
    # "/a/", "/a/." and "/a/b/.." all name a directory: keep the slash that says so.
    trailing = segments[-1] in ("", ".", "..") and bool(kept)
    return "/" + "/".join(kept) + ("/" if trailing else "")
