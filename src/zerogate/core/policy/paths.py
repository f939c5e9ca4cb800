"""Path prefixes in rules: matched against the path as the gateway forwards it *and* as the
most lenient server behind it might read it.

Why two readings: the gateway forwards one normalised path (`core/http/paths.py`), but the
application decides what that path names. Servers differ: IIS and ASP.NET compare paths without
case, some fold Unicode compatibility forms (fullwidth letters, the long s, the Kelvin sign),
Tomcat and Spring drop ";parameters" from segments (so "/public/..;/admin" reaches "/admin"),
Windows drops trailing dots and spaces, and some decode twice. A rule must not be dodged by
any of these:

- a rule that *restricts* (`deny`, `step_up`) applies when either reading is under its prefix;
- a rule that *grants* (`allow`) applies only when both are.

So the policy errs towards the safe side on every server, and an app that reads paths
exactly, as most do, sees exactly the decisions the plain prefixes say.
"""

from __future__ import annotations

import functools
import unicodedata
from urllib.parse import unquote

# A path that a server could read differently after this many rounds of decoding and folding
# is odd enough on purpose: it is covered by every restriction and by no grant. The cap also
# bounds the work (each round is linear in the path).
_ROUNDS = 5


def path_matches(prefix: str, path: str) -> bool:
    """'/api' covers '/api' and '/api/x' but not '/apix'; '/api/' covers '/api/x' only."""
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def covers(prefix: str, path: str, *, restricts: bool) -> bool:
    """Whether a rule's prefix covers a request's path: any reading for a rule that
    restricts, every reading for one that grants."""
    exact = path_matches(prefix, path)
    if exact is restricts:  # already settled: a restricting rule covers it, a granting one not
        return exact
    lenient = lenient_path(path)
    if lenient is None:
        return restricts
    return path_matches(lenient_path(prefix) or prefix, lenient)


def lenient_path(path: str) -> str | None:
    """The path as the most lenient server reads it: escapes decoded and Unicode
    compatibility forms and case folded until nothing changes, backslashes as slashes,
    ";parameters" and trailing dots and spaces cut from segments, dot-segments removed.
    None when decoding and folding still change it after `_ROUNDS` rounds."""
    # Only short paths are remembered: long ones would let a client fill the memory.
    return _remembered(path) if len(path) <= _REMEMBERED_LENGTH else _lenient(path)


_REMEMBERED_LENGTH = 512


@functools.lru_cache(maxsize=4096)
def _remembered(path: str) -> str | None:
    return _lenient(path)


def _lenient(path: str) -> str | None:
    text = path
    for _ in range(_ROUNDS):
        folded = _fold(unquote(text, errors="replace"))
        if folded == text:
            break
        text = folded
    else:
        return None
    kept: list[str] = []
    segments = text.replace("\\", "/").split("/")[1:]
    for raw in segments:
        segment = raw.split(";", 1)[0]
        if segment not in (".", ".."):
            segment = segment.rstrip(" .")
        if segment == "..":
            if kept:
                kept.pop()
        elif segment not in ("", "."):
            kept.append(segment)
    last = segments[-1].split(";", 1)[0] if segments else ""
    trailing = last in ("", ".", "..") and bool(kept)
    return "/" + "/".join(kept) + ("/" if trailing else "")


# Case folding leaves two letters that simple case mappings (.NET's OrdinalIgnoreCase, Java's
# equalsIgnoreCase) still match with an ASCII one: dotless i upper-cases to "I", dotted
# capital I lower-cases to "i".
_DOTTED_I = str.maketrans({"\u0131": "i", "\u0307": None})


def _fold(text: str) -> str:
    # NFKC first so that compatibility forms fold like the letters they stand for, and
    # again after casefold, which can leave a string that is not in NFKC.
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return folded.translate(_DOTTED_I) if not folded.isascii() else folded
