"""validate_document: a whole import file checked at once, every problem with its path."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zerogate.core.inventory import KINDS, AppSpec, DepartmentSpec, UserSpec
from zerogate.core.inventory.document import (
    IMPORTABLE,
    SECTIONS,
    Document,
    Existing,
    Problem,
    validate_document,
)

NOTHING: Existing = {}


def problems_of(data: object, existing: Existing = NOTHING) -> dict[tuple[str | int, ...], str]:
    document, problems = validate_document(data, existing)
    assert document is None
    assert problems
    return {problem.path: problem.message for problem in problems}


def valid(data: object, existing: Existing = NOTHING) -> Document:
    document, problems = validate_document(data, existing)
    assert problems == []
    assert document is not None
    return document


def app(name: str, hostname: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "kind": "http", "hostname": hostname, "target": "http://up:80"} | fields


# --- shape -----------------------------------------------------------------------------------


def test_sections_use_underscores() -> None:
    assert "connector_groups" in SECTIONS
    assert "devices" not in SECTIONS  # devices enrol themselves; they are not imported


def test_empty_document_is_valid() -> None:
    document = valid({})
    assert document.count() == 0
    assert dict(document.objects) == {}


def test_document_must_be_a_mapping() -> None:
    assert problems_of(["users"]) == {(): "the document must be a mapping of sections like `apps:`"}


def test_unknown_section() -> None:
    found = problems_of({"usres": [], "departments": []})
    assert list(found) == [("usres",)]
    assert found[("usres",)].startswith("unknown section (known: departments, offices, groups")


def test_devices_section_is_unknown() -> None:
    assert list(problems_of({"devices": [{"name": "d"}]})) == [("devices",)]


def test_section_must_be_a_list() -> None:
    assert problems_of({"groups": {"name": "g"}}) == {("groups",): "must be a list"}


def test_item_must_be_a_mapping() -> None:
    found = problems_of({"groups": [{"name": "ok"}, "just-a-name"]})
    assert list(found) == [("groups", 1)]


# --- every problem at once, with exact paths --------------------------------------------------


def test_every_problem_reported_with_its_path() -> None:
    data = {
        "departments": [{"name": "eng"}, {"name": "bad name"}],
        "users": [
            {"username": "ann", "department": "eng"},
            {"username": "bob", "department": "sales"},
            {"username": "cat", "email": "not-an-email", "colour": "red"},
        ],
        "apps": [app("wiki", "wiki.example.com", tags=["ok", "Bad"])],
        "offices": "nope",
        "planets": [],
    }
    found = problems_of(data)
    assert set(found) == {
        ("departments", 1, "name"),
        ("users", 1, "department"),
        ("users", 2, "email"),
        ("users", 2, "colour"),
        ("apps", 0, "tags", 1),
        ("offices",),
        ("planets",),
    }
    assert found[("users", 1, "department")] == "unknown department 'sales'"
    assert found[("users", 2, "colour")] == "unknown field"
    assert not found[("users", 2, "email")].startswith("Value error")


def test_problem_text() -> None:
    assert str(Problem(("users", 1, "department"), "unknown department 'x'")) == (
        "users.1.department: unknown department 'x'"
    )
    assert str(Problem((), "broken")) == "(document): broken"


def test_duplicates_within_a_section() -> None:
    data = {
        "groups": [{"name": "a"}, {"name": "b"}, {"name": "a"}, {"name": "a"}],
        "users": [{"username": "ann"}, {"username": "ann"}],
    }
    found = problems_of(data)
    assert found == {
        ("groups", 2, "name"): "duplicate group 'a' (first at index 0)",
        ("groups", 3, "name"): "duplicate group 'a' (first at index 0)",
        ("users", 1, "username"): "duplicate user 'ann' (first at index 0)",
    }


def test_same_name_in_different_sections_is_fine() -> None:
    document = valid({"groups": [{"name": "ops"}], "departments": [{"name": "ops"}]})
    assert document.count() == 2


# --- references ------------------------------------------------------------------------------


def test_references_to_objects_in_the_file() -> None:
    data = {
        "users": [{"username": "ann", "department": "eng", "office": "hq", "groups": ["a", "b"]}],
        "departments": [{"name": "eng"}],
        "offices": [{"name": "hq"}],
        "groups": [{"name": "a"}, {"name": "b"}],
        "apps": [app("wiki", "wiki.example.com", connector_group="dc1")],
        "connector_groups": [{"name": "dc1"}],
        "connectors": [{"name": "c1", "connector_group": "dc1"}],
    }
    assert valid(data).count() == 8


def test_references_to_existing_objects() -> None:
    existing: Existing = {
        "department": {"eng": {"name": "eng"}},
        "group": {"a": {"name": "a"}},
        "connector_group": {"dc1": {"name": "dc1"}},
    }
    data = {
        "users": [{"username": "ann", "department": "eng", "groups": ["a"]}],
        "connectors": [{"name": "c1", "connector_group": "dc1"}],
    }
    assert valid(data, existing).count() == 2
    # without what exists, the same file points at nothing
    assert set(problems_of(data)) == {
        ("users", 0, "department"),
        ("users", 0, "groups", 0),
        ("connectors", 0, "connector_group"),
    }


def test_unknown_references_in_lists_carry_their_position() -> None:
    data = {"groups": [{"name": "a"}], "users": [{"username": "ann", "groups": ["a", "x", "y"]}]}
    assert problems_of(data) == {
        ("users", 0, "groups", 1): "unknown group 'x'",
        ("users", 0, "groups", 2): "unknown group 'y'",
    }


def test_reference_to_wrong_kind_is_unknown() -> None:
    data = {"groups": [{"name": "eng"}], "users": [{"username": "ann", "department": "eng"}]}
    assert problems_of(data) == {("users", 0, "department"): "unknown department 'eng'"}


def test_app_connector_group_reference() -> None:
    found = problems_of({"apps": [app("wiki", "wiki.example.com", connector_group="nope")]})
    assert found == {("apps", 0, "connector_group"): "unknown connector group 'nope'"}


# --- unique values ---------------------------------------------------------------------------


def test_hostname_clash_within_the_file() -> None:
    data = {
        "apps": [app("a", "x.example.com"), app("b", "y.example.com"), app("c", "X.example.com")]
    }
    assert problems_of(data) == {
        ("apps", 2, "hostname"): "hostname 'x.example.com' is already used by application 'a'"
    }


def test_email_clash_within_the_file() -> None:
    data = {
        "users": [
            {"username": "ann", "email": "team@example.com"},
            {"username": "bob", "email": "team@example.com"},
        ]
    }
    assert problems_of(data) == {
        ("users", 1, "email"): "email 'team@example.com' is already used by user 'ann'"
    }


def test_users_without_email_do_not_clash() -> None:
    assert valid({"users": [{"username": "ann"}, {"username": "bob"}]}).count() == 2


def test_hostname_clash_with_existing() -> None:
    existing: Existing = {"app": {"old": {"name": "old", "hostname": "x.example.com"}}}
    data = {"apps": [app("new", "x.example.com")]}
    assert problems_of(data, existing) == {
        ("apps", 0, "hostname"): "hostname 'x.example.com' is already used by application 'old'"
    }


def test_email_clash_with_existing() -> None:
    existing: Existing = {"user": {"ann": {"username": "ann", "email": "a@example.com"}}}
    data = {"users": [{"username": "bob", "email": "a@example.com"}]}
    assert problems_of(data, existing) == {
        ("users", 0, "email"): "email 'a@example.com' is already used by user 'ann'"
    }


def test_replacing_an_existing_object_is_not_a_clash() -> None:
    existing: Existing = {"app": {"wiki": {"name": "wiki", "hostname": "wiki.example.com"}}}
    document = valid({"apps": [app("wiki", "wiki.example.com")]}, existing)
    assert document.count() == 1


def test_value_freed_by_a_replaced_object_can_be_taken() -> None:
    existing: Existing = {
        "user": {
            "ann": {"username": "ann", "email": "shared@example.com"},
            "cat": {"username": "cat", "email": None},
        }
    }
    data = {
        "users": [
            {"username": "ann", "email": "ann@example.com"},
            {"username": "bob", "email": "shared@example.com"},
        ]
    }
    assert valid(data, existing).count() == 2


def test_existing_object_not_in_file_still_holds_its_value() -> None:
    existing: Existing = {
        "app": {
            "wiki": {"name": "wiki", "hostname": "wiki.example.com"},
            "mail": {"name": "mail", "hostname": "mail.example.com"},
        }
    }
    data = {"apps": [app("wiki", "wiki.example.com"), app("new", "mail.example.com")]}
    assert set(problems_of(data, existing)) == {("apps", 1, "hostname")}


# --- success ---------------------------------------------------------------------------------


def test_success_returns_objects_in_kinds_order() -> None:
    data = {
        "apps": [app("wiki", "wiki.example.com", connector_group="dc1")],
        "users": [{"username": "ann", "department": "eng", "groups": ["g"]}],
        "connectors": [{"name": "c1", "connector_group": "dc1"}],
        "groups": [{"name": "g"}],
        "connector_groups": [{"name": "dc1"}],
        "departments": [{"name": "eng"}, {"name": "ops"}],
    }
    document = valid(data)
    kind_order = [kind.name for kind in KINDS]
    assert list(document.objects) == sorted(document.objects, key=kind_order.index)
    assert list(document.objects) == [
        "department",
        "group",
        "connector_group",
        "connector",
        "user",
        "app",
    ]
    assert document.count() == 7
    departments = document.objects["department"]
    assert [type(item) for item in departments] == [DepartmentSpec, DepartmentSpec]
    assert [item.name for item in departments] == ["eng", "ops"]  # type: ignore[attr-defined]
    [user] = document.objects["user"]
    assert isinstance(user, UserSpec)
    assert user.groups == ["g"]
    [wiki] = document.objects["app"]
    assert isinstance(wiki, AppSpec)
    assert wiki.hostname == "wiki.example.com"


def test_empty_sections_are_kept() -> None:
    document = valid({"groups": []})
    assert dict(document.objects) == {"group": []}


# --- property: never crashes -----------------------------------------------------------------

_FIELD_NAMES = sorted(
    {field for kind in IMPORTABLE for field in kind.spec.model_fields} | set(SECTIONS)
)
_keys = st.sampled_from(_FIELD_NAMES) | st.text(max_size=8)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from(["a", "eng", "http", "tcp", "x.example.com", "http://up:80", "db:5432"])
    | st.text(max_size=12)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=25,
)
_documents = st.dictionaries(st.sampled_from(sorted(SECTIONS)) | _keys, _json, max_size=4) | _json


@settings(max_examples=150, deadline=None, database=None)
@given(data=_documents)
def test_never_raises_and_answers_one_way(data: object) -> None:
    existing: Existing = {"department": {"eng": {"name": "eng"}}, "app": {"a": {"hostname": "a.b"}}}
    document, problems = validate_document(data, existing)
    if document is None:
        assert problems
        assert all(isinstance(problem, Problem) for problem in problems)
        assert all(isinstance(problem.message, str) and problem.message for problem in problems)
    else:
        assert problems == []
        assert isinstance(data, dict)
        assert set(document.objects) <= {kind.name for kind in IMPORTABLE}


_pool = st.sampled_from(["eng", "ops", "hq"])
_users = st.fixed_dictionaries(
    {"username": st.sampled_from(["ann", "bob", "cat"])},
    optional={
        "department": _pool,
        "email": st.sampled_from(["a@example.com", "b@example.com"]),
        "groups": st.lists(_pool, max_size=2, unique=True),
    },
)
_apps = st.builds(
    app,
    name=st.sampled_from(["wiki", "mail"]),
    hostname=st.sampled_from(["w.example.com", "m.example.com"]),
)
_near_valid = st.fixed_dictionaries(
    {},
    optional={
        "departments": st.lists(st.builds(dict, name=_pool), max_size=3),
        "groups": st.lists(st.builds(dict, name=_pool), max_size=3),
        "users": st.lists(_users, max_size=3),
        "apps": st.lists(_apps, max_size=2),
    },
)


@settings(max_examples=150, deadline=None, database=None)
@given(data=_near_valid, existing_email_owner=st.sampled_from(["ann", "zed"]))
def test_verdict_matches_a_simple_model(data: dict[str, Any], existing_email_owner: str) -> None:
    existing: Existing = {
        "department": {"eng": {"name": "eng"}},
        "user": {
            existing_email_owner: {"username": existing_email_owner, "email": "a@example.com"}
        },
    }
    keys = {
        section: [item.get("name", item.get("username")) for item in items]
        for section, items in data.items()
    }
    departments = set(keys.get("departments", [])) | {"eng"}
    groups = set(keys.get("groups", []))
    users = data.get("users", [])
    in_file = set(keys.get("users", []))
    email_owners = (
        {"a@example.com": existing_email_owner} if existing_email_owner not in in_file else {}
    )
    clash = False
    for user in users:
        email = user.get("email")
        if email is not None:
            clash |= email_owners.setdefault(email, user["username"]) != user["username"]
    hostname_owners: dict[str, str] = {}
    for item in data.get("apps", []):
        clash |= hostname_owners.setdefault(item["hostname"], item["name"]) != item["name"]
    expect_valid = (
        all(len(set(names)) == len(names) for names in keys.values())
        and all(user.get("department", "eng") in departments for user in users)
        and all(set(user.get("groups", [])) <= groups for user in users)
        and not clash
    )
    document, problems = validate_document(data, existing)
    assert (document is not None) == expect_valid, problems
    assert all(problem.path[0] in data for problem in problems)
