"""Path rules against the tricks that make a server read a path differently from its text:
case, ";parameters", Unicode compatibility forms, trailing dots, double encoding, HEAD for
GET. A rule that restricts must cover every reading; a rule that grants, only paths that all
readings agree on (docs/policy.md, "Paths")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policykit import ctx, rule

from pathkit import normalised_or_none, plain_paths
from zerogate.core.http.paths import normalise_path
from zerogate.core.policy.compile import compile_policy
from zerogate.core.policy.decide import decide_naive
from zerogate.core.policy.model import (
    AuthConditions,
    Conditions,
    Decision,
    Effect,
    Policy,
    RequestContext,
    Targets,
)
from zerogate.core.policy.paths import covers, lenient_path, path_matches

PROPERTIES = settings(max_examples=300, deadline=None)
ADMIN = Targets(apps=frozenset({"grafana"}), path_prefixes=("/admin",))
PUBLIC = Targets(apps=frozenset({"grafana"}), path_prefixes=("/public",))

# Each is the text a client sends; the gateway normalises it before policy sees it.
DODGES_OF_ADMIN = [
    "/ADMIN",
    "/Admin/users",
    "/admin;jsessionid=0A1B",
    "/admin;/users",
    "/public/..;/admin",
    "/public/%2e%2e;/admin/users",
    "/admin.",
    "/admin%20",
    "/admin./users",
    "/%EF%BD%81dmin",  # fullwidth a
    "/adm%C4%B1n",  # dotless i: "ADMIN" to .NET's OrdinalIgnoreCase
    "/adm%C4%B0n",  # capital I with a dot: "admin" to a simple lower-casing
    "/%2561dmin",  # %61 encoded again
    "/public/%252e%252e/admin",
    "/adm%C3%AFn",  # i with diaeresis: no server reads it as "i"; the control
]
NOT_DODGES = {"/adm%C3%AFn"}


def both(policy: Policy, request: RequestContext) -> Decision:
    decision = decide_naive(policy, request)
    assert compile_policy(policy, [request.app]).decide(request) == decision
    return decision


def at(path: str, method: str = "GET", **changes: object) -> RequestContext:
    return ctx(method=method, path=normalise_path(path), **changes)


@pytest.mark.parametrize(
    ("path", "lenient"),
    [
        ("/", "/"),
        ("/admin", "/admin"),
        ("/ADMIN/Users/", "/admin/users/"),
        ("/admin;jsessionid=1", "/admin"),
        ("/public/..;/admin", "/admin"),
        ("/admin.", "/admin"),
        ("/admin. . /x", "/admin/x"),
        ("/a/...", "/a"),
        ("/%EF%BD%81dmin", "/admin"),
        ("/%C5%BFecret", "/secret"),  # the long s
        ("/%E2%84%AAey", "/key"),  # the Kelvin sign
        ("/adm%C4%B1n/%C4%B0D", "/admin/id"),  # dotless i, dotted capital I
        ("/%2561dmin", "/admin"),
        ("/%25252561", "/a"),
        ("/a/b/..", "/a/"),
        ("/a/b/..;", "/a/"),
        ("/%FF/x", "/\ufffd/x"),
        ("/%2525252561", None),  # still decoding after five rounds
    ],
)
def test_the_lenient_reading(path: str, lenient: str | None) -> None:
    assert lenient_path(path) == lenient


def test_a_path_that_never_settles_is_restricted_and_not_granted() -> None:
    path = normalise_path("/public/%2525252561")
    assert covers("/admin", path, restricts=True)
    assert not covers("/public", path, restricts=False)


@pytest.mark.parametrize("path", DODGES_OF_ADMIN)
def test_a_deny_on_a_path_is_not_dodged(path: str) -> None:
    policy = Policy((rule("all"), rule("no-admin", targets=ADMIN, effect=Effect.DENY)))
    expected = Effect.ALLOW if path in NOT_DODGES else Effect.DENY
    assert both(policy, at(path)).effect is expected
    assert both(policy, at("/other")).effect is Effect.ALLOW


@pytest.mark.parametrize("path", DODGES_OF_ADMIN)
def test_a_step_up_on_a_path_is_not_dodged(path: str) -> None:
    step_up = rule(
        "admin-mfa",
        targets=ADMIN,
        effect=Effect.STEP_UP,
        conditions=Conditions(auth=AuthConditions(mfa=True)),
    )
    policy = Policy((rule("all"), step_up))
    expected = Effect.ALLOW if path in NOT_DODGES else Effect.STEP_UP
    assert both(policy, at(path, mfa_time=None)).effect is expected
    assert both(policy, at("/other", mfa_time=None)).effect is Effect.ALLOW


@pytest.mark.parametrize(
    ("path", "granted"),
    [
        ("/public", True),
        ("/public/report.pdf", True),
        ("/public/a;v=2/b", True),
        ("/Public/x", False),  # the exact reading is outside: as before
        ("/public/..;/admin", False),
        ("/public/%2e%2e;/admin", False),
        ("/public/%252e%252e/admin", False),
        ("/public/%252E%252E/%252E%252E/admin", False),
    ],
)
def test_a_grant_on_a_path_needs_every_reading_inside(path: str, granted: bool) -> None:
    policy = Policy((rule("public", targets=PUBLIC),))
    assert (both(policy, at(path)).effect is Effect.ALLOW) is granted


def test_a_restriction_on_get_covers_head_and_a_grant_does_not() -> None:
    gets = Targets(apps=frozenset({"grafana"}), methods=frozenset({"GET"}))
    deny = Policy((rule("all"), rule("no-reads", targets=gets, effect=Effect.DENY)))
    assert both(deny, at("/x", "HEAD")).effect is Effect.DENY
    assert both(deny, at("/x", "POST")).effect is Effect.ALLOW
    grant = Policy((rule("reads", targets=gets),))
    assert both(grant, at("/x", "GET")).effect is Effect.ALLOW
    assert both(grant, at("/x", "HEAD")).effect is Effect.DENY


# --- properties ----------------------------------------------------------------------------

_PIECES = st.one_of(
    st.sampled_from(["/", "//", "/.", "/..", "/..;", ";", ".", " ", "%20", "%2e", "%252e"]),
    st.sampled_from(
        ["%41", "%61", "%EF%BD%81", "%C5%BF", "%E2%84%AA", "%C4%B1", "%C4%B0", "%FF", "%25"]
    ),
    st.text("abcABCsSkK-_~", min_size=1, max_size=4),
)
raw_paths = st.lists(_PIECES, max_size=16).map(lambda pieces: "/" + "".join(pieces))


@PROPERTIES
@given(plain_paths, raw_paths)
def test_restricting_covers_more_and_granting_less_than_the_exact_match(
    prefix: str, raw: str
) -> None:
    path = normalised_or_none(raw)
    if path is None:
        return
    exact = path_matches(prefix, path)
    assert covers(prefix, path, restricts=True) >= exact >= covers(prefix, path, restricts=False)


@PROPERTIES
@given(plain_paths, plain_paths)
def test_plain_paths_match_exactly_as_before(prefix: str, path: str) -> None:
    exact = path_matches(prefix, path)
    assert covers(prefix, path, restricts=True) is exact
    assert covers(prefix, path, restricts=False) is exact


@PROPERTIES
@given(raw_paths)
def test_the_lenient_reading_is_a_fixed_point(raw: str) -> None:
    once = lenient_path(raw)
    if once is None:
        return
    assert lenient_path(once) == once
    assert once.startswith("/") and "//" not in once


# Letters some server matches with an ASCII one: fullwidth forms, the long s, the Kelvin sign,
# dotless i and dotted capital I (percent-encoded UTF-8, as a client sends them).
_LOOK_ALIKES = {
    "a": ("%EF%BD%81",),
    "i": ("%C4%B1", "%C4%B0"),
    "k": ("%E2%84%AA",),
    "s": ("%C5%BF",),
}


def _mangle(path: str, data: st.DataObject) -> str:
    """Rewrite a plain path the way a lenient server would read back as the same one."""
    out = []
    for segment in path.split("/")[1:]:
        chars = [
            data.draw(
                st.sampled_from(
                    [c, c.upper(), f"%{ord(c):02X}", f"%25{ord(c):02X}", *_LOOK_ALIKES.get(c, ())]
                )
            )
            if c.isalpha()
            else c
            for c in segment
        ]
        tail = data.draw(st.sampled_from(["", ";x=1", ".", "%20", ";"])) if segment else ""
        out.append("".join(chars) + tail)
    return "/" + "/".join(out)


@PROPERTIES
@given(plain_paths, plain_paths, st.data())
def test_no_spelling_of_a_covered_path_dodges_a_restriction(
    prefix: str, path: str, data: st.DataObject
) -> None:
    if not path_matches(prefix, path):
        return
    mangled = normalised_or_none(_mangle(path, data))
    assert mangled is not None
    assert covers(prefix, mangled, restricts=True)
