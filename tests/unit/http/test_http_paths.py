"""Path normalisation: encoding tricks, traversal, and the invariants as properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pathkit import normalised_or_none, plain_paths, segments
from zerogate.core.http.paths import PathError, normalise_path

PROPERTIES = settings(max_examples=300, deadline=None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("/Admin/Case", "/Admin/Case"),
        # collapsed slashes
        ("//admin", "/admin"),
        ("//a///b", "/a/b"),
        ("///", "/"),
        ("/a//", "/a/"),
        # dot-segments, never above the root
        ("/a/./b", "/a/b"),
        ("/a/b/../c", "/a/c"),
        ("/../a", "/a"),
        ("/../../../etc/passwd", "/etc/passwd"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/..", "/"),
        ("/..", "/"),
        ("/.", "/"),
        ("/a/../", "/"),
        ("/public/../admin", "/admin"),
        ("/public/..//admin", "/admin"),
        ("/a/.../b", "/a/.../b"),
        ("/a/..b/c.", "/a/..b/c."),
        ("/.hidden/x", "/.hidden/x"),
        # encoded dots are dots, decoded before dot-segment removal
        ("/%2e%2e/admin", "/admin"),
        ("/%2E%2E/admin", "/admin"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/.%2e/admin", "/admin"),
        ("/public/%2e/admin", "/public/admin"),
        ("/a/%2E", "/a/"),
        # unreserved escapes decoded; others kept with upper-case hex
        ("/%61dmin", "/admin"),
        ("/%41%5a%7e%2d%5f%30", "/AZ~-_0"),
        ("/a%3ab", "/a%3Ab"),
        ("/a%3Ab", "/a%3Ab"),
        ("/%20", "/%20"),
        ("/%25", "/%25"),
        ("/%252e%252e/admin", "/%252e%252e/admin"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a%3fb", "/a%3Fb"),
        ("/a%23b", "/a%23b"),
        ("/a%0ab", "/a%0Ab"),
        # reserved characters are left raw
        ("/a;b=c/d:e@f!$&'()*+,=", "/a;b=c/d:e@f!$&'()*+,="),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise_path(raw) == expected


@pytest.mark.parametrize("raw", ["", "a/b", "%2F", "*", "..", ".", "http://h/"])
def test_path_must_start_with_slash(raw: str) -> None:
    with pytest.raises(PathError):
        normalise_path(raw)


@pytest.mark.parametrize(
    "raw",
    ["/%", "/%4", "/a%", "/%zz", "/%g0", "/%0g", "/%-1", "/% 1", "/%%41", "/%+1", "/%4%31"],
)
def test_malformed_escapes_are_refused(raw: str) -> None:
    with pytest.raises(PathError) as caught:
        normalise_path(raw)
    assert caught.value.reason == "invalid percent-escape in path"


@pytest.mark.parametrize(
    "raw",
    [
        "/%00",
        "/admin%00.png",
        "/..%2fadmin",
        "/..%2Fadmin",
        "/a%2fb",
        "/%2F%2Fadmin",
        "/..%5cadmin",
        "/..%5Cadmin",
        "/a%5cb",
    ],
)
def test_ambiguous_escapes_are_refused(raw: str) -> None:
    with pytest.raises(PathError) as caught:
        normalise_path(raw)
    assert caught.value.reason == "forbidden percent-escape in path"


@pytest.mark.parametrize(
    "raw",
    [
        "/..\\admin",
        "/a\\b",
        "/a b",
        "/a\tb",
        "/a\x00",
        "/a\r\n",
        "/a\x7f",
        "/caf\u00e9",
        "/\u2025/admin",  # two-dot leader
        "/\uff0e\uff0e/admin",  # fullwidth full stops
        "/a?b",
        "/a#b",
    ],
)
def test_raw_ambiguous_characters_are_refused(raw: str) -> None:
    with pytest.raises(PathError) as caught:
        normalise_path(raw)
    assert caught.value.reason == "invalid character in path"


def test_path_error_is_a_value_error_with_a_safe_reason() -> None:
    with pytest.raises(ValueError, match="invalid character") as caught:
        normalise_path("/<script>\x00")
    assert isinstance(caught.value, PathError)
    assert "script" not in str(caught.value)


# --- properties ---------------------------------------------------------------------------

# Printable ASCII plus every interesting escape: dots, slashes, backslashes, NUL, cases.
_PIECES = st.one_of(
    st.sampled_from(["/", "/", ".", "..", "%2e", "%2E", "%2f", "%5C", "%00", "%41", "%7e", "%3a"]),
    st.sampled_from(["%25", "%", "%4", "%zz", "\\", " ", "\x00", "é", "?", "#", ";", "~"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=4),
)
raw_paths = st.lists(_PIECES, max_size=20).map(lambda pieces: "/" + "".join(pieces))


@PROPERTIES
@given(raw_paths)
def test_normalising_is_idempotent(raw: str) -> None:
    once = normalised_or_none(raw)
    if once is not None:
        assert normalise_path(once) == once


@PROPERTIES
@given(raw_paths)
def test_output_has_no_ambiguity_left(raw: str) -> None:
    path = normalised_or_none(raw)
    if path is None:
        return
    assert path.startswith("/")
    for bad in ("//", "/./", "/../"):
        assert bad not in path
    assert not path.endswith(("/.", "/.."))
    for escape in ("%2e", "%2f", "%5c"):
        assert escape not in path.lower()
    assert all("\x21" <= char <= "\x7e" and char != "\\" for char in path)


@PROPERTIES
@given(raw_paths)
def test_refusal_or_success_is_all_there_is(raw: str) -> None:
    # Anything that is not a PathError would be a crash in the gateway's request path.
    try:
        normalise_path(raw)
    except PathError as error:
        assert error.reason


@PROPERTIES
@given(plain_paths)
def test_plain_paths_come_back_unchanged(path: str) -> None:
    assert normalise_path(path) == path


@PROPERTIES
@given(plain_paths, st.lists(segments, min_size=1, max_size=4))
def test_dot_dot_undoes_a_segment(base: str, extra: list[str]) -> None:
    # "/base/x/y/../.." names "/base/" whatever encoding the dots use.
    root = base.rstrip("/")
    dots = "/".join(["%2e%2E", "..", ".%2e", "%2E."][i % 4] for i in range(len(extra)))
    raw = root + "/" + "/".join(extra) + "/" + dots
    assert normalise_path(raw) == root + "/"
