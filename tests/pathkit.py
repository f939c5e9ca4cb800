"""Paths for property tests of path handling (`core/http/paths.py`, `core/policy/paths.py`)."""

from __future__ import annotations

from hypothesis import strategies as st

from zerogate.core.http.paths import PathError, normalise_path

segments = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
# Lower-case segments with nothing to normalise or fold, with or without a trailing slash.
plain_paths = st.builds(
    lambda segments, slash: "/" + "/".join(segments) + ("/" if slash and segments else ""),
    st.lists(segments, max_size=6),
    st.booleans(),
)


def normalised_or_none(raw: str) -> str | None:
    """The gateway's path for `raw`, or None where the gateway refuses it."""
    try:
        return normalise_path(raw)
    except PathError:
        return None
