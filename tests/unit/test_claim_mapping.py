"""Claim mapping: provider claims → zerogate groups, department and office (pure rules)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerogate.core.identity.claim_mapping import ClaimRule, MappedIdentity, map_claims

ALICE = {
    "sub": "alice",
    "email": "alice@example.com",
    "email_verified": True,
    "hd": "example.com",
    "groups": ["eng", "admins"],
}


def test_copies_provider_groups_sorted() -> None:
    assert map_claims(ALICE, []) == MappedIdentity(("admins", "eng"), None, None)


def test_copy_can_be_turned_off_or_read_elsewhere() -> None:
    assert map_claims(ALICE, [], copy_groups_claim=None).groups == ()
    claims = {"roles": ["ops"], "groups": ["eng"]}
    assert map_claims(claims, [], copy_groups_claim="roles").groups == ("ops",)


def test_copy_keeps_only_valid_names() -> None:
    claims = {
        "groups": [
            "eng",
            "Domain Users",  # space
            "-lead",  # must start with a letter or digit
            "x" * 65,  # too long
            "ok\n",  # a trailing newline must not slip past `$`
            7,
            None,
            ["nested"],
            "a.b_c-d",
        ]
    }
    assert map_claims(claims, []).groups == ("a.b_c-d", "eng")


def test_copy_accepts_a_lone_string() -> None:
    assert map_claims({"groups": "eng"}, []).groups == ("eng",)


def test_copy_ignores_non_lists() -> None:
    assert map_claims({"groups": {"eng": True}}, []).groups == ()
    assert map_claims({"groups": 3}, []).groups == ()


def test_equals_on_string_and_list_claims() -> None:
    rules = [
        ClaimRule(claim="groups", equals="admins", add_groups=("zg-admins",)),
        ClaimRule(claim="sub", equals="alice", add_groups=("alice-only",)),
        ClaimRule(claim="sub", equals="bob", add_groups=("never",)),
    ]
    got = map_claims(ALICE, rules, copy_groups_claim=None)
    assert got.groups == ("alice-only", "zg-admins")


def test_suffix_matches_email_domain() -> None:
    rule = ClaimRule(claim="email", suffix="@example.com", add_groups=("staff",), office="berlin")
    assert map_claims(ALICE, [rule]) == MappedIdentity(("admins", "eng", "staff"), None, "berlin")
    other = {"email": "mallory@example.com.evil.test"}
    assert map_claims(other, [rule]) == MappedIdentity((), None, None)


def test_comparisons_are_exact() -> None:
    rule = ClaimRule(claim="email", suffix="@example.com", add_groups=("staff",))
    assert map_claims({"email": "alice@EXAMPLE.com"}, [rule]).groups == ()
    assert map_claims({"hd": "Example.com"}, [ClaimRule("hd", equals="example.com")]).groups == ()


def test_equals_and_suffix_both_must_hold() -> None:
    rule = ClaimRule(claim="email", equals="alice@example.com", suffix="@example.com", office="x")
    assert map_claims(ALICE, [rule]).office == "x"
    assert map_claims({"email": "bob@example.com"}, [rule]).office is None


def test_empty_suffix_matches_any_string_value() -> None:
    rule = ClaimRule(claim="sub", suffix="", add_groups=("sso-users",))
    assert map_claims({"sub": "anyone"}, [rule]).groups == ("sso-users",)
    assert map_claims({}, [rule]).groups == ()
    assert map_claims({"sub": None}, [rule]).groups == ()


def test_booleans_and_integers_compare_in_json_spelling() -> None:
    verified = ClaimRule(claim="email_verified", equals="true", add_groups=("verified",))
    assert map_claims(ALICE, [verified]).groups == ("admins", "eng", "verified")
    assert map_claims({"email_verified": False}, [verified]).groups == ()
    level = ClaimRule(claim="level", equals="3", add_groups=("l3",))
    assert map_claims({"level": 3}, [level]).groups == ("l3",)
    assert map_claims({"level": 3.0}, [level]).groups == ()


def test_groups_accumulate_without_duplicates() -> None:
    rules = [
        ClaimRule(claim="hd", equals="example.com", add_groups=("staff", "eng")),
        ClaimRule(claim="groups", equals="eng", add_groups=("staff",)),
    ]
    assert map_claims(ALICE, rules).groups == ("admins", "eng", "staff")


def test_last_matching_rule_sets_department_and_office() -> None:
    rules = [
        ClaimRule(claim="hd", equals="example.com", department="general", office="hq"),
        ClaimRule(claim="groups", equals="eng", department="engineering"),
        ClaimRule(claim="groups", equals="sales", department="sales", office="paris"),
    ]
    # The third rule does not match, and the second sets no office: hq stays.
    assert map_claims(ALICE, rules) == MappedIdentity(("admins", "eng"), "engineering", "hq")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"claim": "groups"}, "needs `equals` or `suffix`"),
        ({"claim": "", "equals": "x"}, "needs a claim name"),
        ({"claim": "groups", "equals": "x", "add_groups": ("bad name",)}, "not a valid name"),
        ({"claim": "groups", "equals": "x", "department": "a/b"}, "not a valid name"),
        ({"claim": "groups", "equals": "x", "office": ""}, "not a valid name"),
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ClaimRule(**kwargs)  # type: ignore[arg-type]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
claim_names = st.sampled_from(["groups", "email", "hd", "sub", "roles"]) | st.text(max_size=8)
rules = st.builds(
    ClaimRule,
    claim=st.sampled_from(["groups", "email", "hd", "sub", "roles"]),
    equals=st.none() | st.text(max_size=10),
    suffix=st.just(""),
    add_groups=st.lists(st.sampled_from(["a", "b", "eng", "ops"]), max_size=3).map(tuple),
    department=st.none() | st.sampled_from(["d1", "d2"]),
    office=st.none() | st.sampled_from(["o1", "o2"]),
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    claims=st.dictionaries(claim_names, json_values, max_size=6),
    rule_list=st.lists(rules, max_size=5),
    copy=st.none() | claim_names,
)
def test_never_raises_and_output_is_canonical(
    claims: dict[str, object], rule_list: list[ClaimRule], copy: str | None
) -> None:
    got = map_claims(claims, rule_list, copy_groups_claim=copy)
    assert list(got.groups) == sorted(set(got.groups))
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", g) for g in got.groups)
    # Rule groups are added exactly when their rule matches.
    for rule in rule_list:
        if rule.matches(claims):
            assert set(rule.add_groups) <= set(got.groups)


@settings(max_examples=100, deadline=None, database=None)
@given(groups=st.lists(st.text(max_size=70), max_size=8))
def test_copied_groups_are_a_subset_of_the_claim(groups: list[str]) -> None:
    got = map_claims({"groups": groups}, [])
    assert set(got.groups) <= set(groups)
