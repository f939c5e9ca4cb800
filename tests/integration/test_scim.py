"""SCIM 2.0 provisioning on SQLite and PostgreSQL, driven the way Okta and Microsoft Entra ID
drive it: users and groups created, found, patched, replaced and deleted through /scim/v2,
every change audited, and deactivation cutting a live portal session at once."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Control  # type: ignore[import-not-found]
from zerogate.control.scim.filters import SyntaxProblem, parse_filter

SCIM = "/scim/v2"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PASSWORD = "correct horse battery"


@dataclass
class Scim:
    control: Control
    token: str
    actor: str

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        params: dict[str, str] | None = None,
        token: str | None = None,
    ) -> httpx2.Response:
        headers = {"Content-Type": "application/scim+json", "Accept": "application/scim+json"}
        if token != "":
            headers["Authorization"] = f"Bearer {token or self.token}"
        content = None if body is None else json.dumps(body)
        return self.control.client.request(
            method, SCIM + path, content=content, headers=headers, params=params
        )

    def create_user(self, username: str, **attributes: object) -> dict[str, Any]:
        response = self.call(
            "POST", "/Users", {"schemas": [USER_SCHEMA], "userName": username, **attributes}
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def find(self, filter_text: str, resource: str = "/Users") -> list[dict[str, Any]]:
        response = self.call("GET", resource, params={"filter": filter_text})
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["Resources"]
        return found

    def patch(self, path: str, *operations: dict[str, Any]) -> httpx2.Response:
        return self.call("PATCH", path, {"schemas": [PATCH_OP], "Operations": list(operations)})

    def events(self, action: str) -> list[dict[str, Any]]:
        response = self.control.client.get(
            "/api/v1/audit/events",
            params={"actor": self.actor, "action": action},
            headers=self.control.admin,
        )
        assert response.status_code == 200
        events: list[dict[str, Any]] = response.json()
        return events


@pytest.fixture
def scim(control: Control) -> Scim:
    response = control.client.post(
        "/api/v1/tokens", json={"name": "okta", "scope": "scim"}, headers=control.admin
    )
    assert response.status_code == 201, response.text
    token = response.json()
    return Scim(control, token["token"], f"token:okta:{token['id']}")


def okta_user(username: str = "alice@example.com") -> dict[str, Any]:
    """A user as Okta's SCIM 2.0 integration creates one."""
    return {
        "schemas": [USER_SCHEMA],
        "userName": username,
        "name": {"givenName": "Alice", "familyName": "Smith"},
        "emails": [{"primary": True, "value": username, "type": "work"}],
        "displayName": "Alice Smith",
        "locale": "en-US",
        "externalId": "00u1okta",
        "groups": [],
        "password": "never stored",
        "active": True,
    }


def assert_error(response: httpx2.Response, status: int, scim_type: str | None = None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    assert body.get("scimType") == scim_type
    return str(body["detail"])


def portal_session(control: Control, username: str) -> TestClient:
    """A browser signed in to the portal as `username` (a password set by the admin API)."""
    set_password = control.client.post(
        f"/api/v1/users/{username}/password", json={"password": PASSWORD}, headers=control.admin
    )
    assert set_password.status_code == 204, set_password.text
    browser = TestClient(control.app, base_url="https://portal.test", follow_redirects=False)
    page = browser.get("/portal/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    form = {"username": username, "password": PASSWORD, "csrf": csrf.group(1), "next": ""}
    assert browser.post("/portal/login", data=form).status_code == 303
    assert browser.get("/portal/account").status_code == 200
    return browser


def test_discovery_says_what_is_supported(scim: Scim) -> None:
    config = scim.call("GET", "/ServiceProviderConfig")
    assert config.status_code == 200
    assert config.headers["content-type"].startswith("application/scim+json")
    body = config.json()
    assert body["patch"] == {"supported": True} and body["filter"]["maxResults"] == 200
    assert not body["bulk"]["supported"] and not body["sort"]["supported"]
    assert not body["etag"]["supported"]
    assert body["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    types = scim.call("GET", "/ResourceTypes").json()
    assert types["schemas"] == [LIST]
    assert {t["endpoint"] for t in types["Resources"]} == {"/Users", "/Groups"}
    schemas = scim.call("GET", "/Schemas").json()["Resources"]
    assert {s["id"] for s in schemas} == {USER_SCHEMA, GROUP_SCHEMA}
    user_schema = scim.call("GET", f"/Schemas/{USER_SCHEMA}").json()
    assert "userName" in {a["name"] for a in user_schema["attributes"]}
    paths = scim.control.client.get("/api/v1/openapi.json").json()["paths"]
    assert not [path for path in paths if "scim" in path.lower()]


def test_okta_creates_a_user_then_finds_it_by_filter(scim: Scim) -> None:
    created = scim.call("POST", "/Users", okta_user())
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/scim+json")
    user = created.json()
    assert created.headers["location"] == user["meta"]["location"]
    assert user["meta"]["location"].endswith(f"/scim/v2/Users/{user['id']}")
    assert user["userName"] == "alice@example.com" and user["displayName"] == "Alice Smith"
    assert user["emails"] == [{"value": "alice@example.com", "type": "work", "primary": True}]
    assert user["active"] is True and user["externalId"] == "00u1okta"
    assert user["meta"]["resourceType"] == "User" and user["groups"] == []
    assert scim.call("GET", f"/Users/{user['id']}").json() == user

    # Okta looks a user up before creating it; userName is caseExact false (RFC 7643 §4.1.1).
    assert [u["id"] for u in scim.find('userName eq "ALICE@example.com"')] == [user["id"]]
    assert scim.find('externalId eq "00u1okta"')[0]["id"] == user["id"]
    assert scim.find('externalId eq "00U1OKTA"') == []  # externalId is caseExact
    assert scim.find('emails[type eq "work"].value eq "alice@example.com"')[0]["id"] == user["id"]
    both = 'userName eq "alice@example.com" and emails.value eq "Alice@Example.com"'
    assert len(scim.find(both)) == 1
    assert scim.find('displayName eq "alice smith" and userName eq "bob"') == []
    listed = scim.call("GET", "/Users", params={"filter": 'userName eq "nobody"'}).json()
    assert listed == {
        "schemas": [LIST],
        "totalResults": 0,
        "itemsPerPage": 0,
        "startIndex": 1,
        "Resources": [],
    }
    narrow = scim.call("GET", f"/Users/{user['id']}", params={"attributes": "userName"}).json()
    assert narrow == {"schemas": [USER_SCHEMA], "id": user["id"], "userName": "alice@example.com"}

    # Written through the inventory, audited as the SCIM token's change.
    admin_view = scim.control.client.get(
        "/api/v1/users/alice@example.com", headers=scim.control.admin
    ).json()
    assert admin_view["display_name"] == "Alice Smith" and admin_view["email"] == user["userName"]
    [event] = scim.events("inventory.create")
    assert event["target"] == "user/alice@example.com"


def test_pagination_counts_from_one_and_caps_the_page(scim: Scim) -> None:
    ids = [scim.create_user(f"user{n}")["id"] for n in range(5)]

    def page(**params: str) -> dict[str, Any]:
        response = scim.call("GET", "/Users", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    second = page(startIndex="2", count="2")
    assert second["totalResults"] == 5 and second["itemsPerPage"] == 2
    assert second["startIndex"] == 2
    assert [u["id"] for u in second["Resources"]] == ids[1:3]
    assert [u["id"] for u in page(startIndex="5")["Resources"]] == ids[4:]
    assert page(startIndex="9")["Resources"] == []
    assert page(startIndex="0", count="1")["startIndex"] == 1  # below 1 means 1 (§3.4.2.4)
    assert page(count="0") == {**page(count="0"), "totalResults": 5, "Resources": []}
    assert page(count="-4")["itemsPerPage"] == 0
    assert page(count="100000")["itemsPerPage"] == 5
    assert_error(scim.call("GET", "/Users", params={"count": "ten"}), 400, "invalidValue")


def test_duplicates_are_uniqueness_conflicts(scim: Scim) -> None:
    scim.create_user("alice@example.com", emails=[{"value": "alice@example.com"}])
    again = scim.call("POST", "/Users", okta_user())
    assert "already exists" in assert_error(again, 409, "uniqueness")
    other_case = scim.call("POST", "/Users", okta_user("Alice@Example.com"))
    assert "ignore case" in assert_error(other_case, 409, "uniqueness")
    same_email = scim.call(
        "POST", "/Users", {"userName": "alice2", "emails": [{"value": "alice@example.com"}]}
    )
    assert "email" in assert_error(same_email, 409, "uniqueness")
    assert len(scim.call("GET", "/Users").json()["Resources"]) == 1


def test_entra_deactivation_disables_the_user_and_revokes_sessions(scim: Scim) -> None:
    control = scim.control
    user = scim.create_user("alice@example.com")
    browser = portal_session(control, "alice@example.com")

    # Microsoft Entra ID: capitalised op, the boolean as a string.
    response = scim.patch(
        f"/Users/{user['id']}", {"op": "Replace", "path": "active", "value": "False"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    assert browser.get("/portal/account").status_code == 303  # back to the login page
    sessions = control.client.get(
        "/api/v1/sessions", params={"username": "alice@example.com"}, headers=control.admin
    )
    assert sessions.json() == []
    [cut] = scim.events("session.logout_everywhere")
    assert cut["target"] == "user/alice@example.com" and cut["details"]["sessions"] == 1
    [update] = scim.events("inventory.update")
    assert update["details"]["after"]["disabled"] is True

    # Okta re-activates without a path; the old session stays revoked, not just suspended.
    again = scim.patch(f"/Users/{user['id']}", {"op": "replace", "value": {"active": True}})
    assert again.status_code == 200 and again.json()["active"] is True
    assert browser.get("/portal/account").status_code == 303
    assert len(scim.events("session.logout_everywhere")) == 1


def test_patch_paths_as_identity_providers_send_them(scim: Scim) -> None:
    user = scim.create_user("alice@example.com", name={"givenName": "Alice", "familyName": "Smith"})
    assert user["displayName"] == "Alice Smith"
    path = f"/Users/{user['id']}"
    response = scim.patch(
        path,
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "alice@corp.example"},
        {"op": "Replace", "path": "name.givenName", "value": "Alicia"},
        {"op": "Add", "path": "externalId", "value": "8f2a-entra"},
        {
            "op": "Replace",
            "path": "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            "value": "alicia@example.com",
        },
        {
            "op": "Add",
            "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "value": "ignored",
        },
        {"op": "Replace", "path": "title", "value": "ignored"},
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["id"] == user["id"]  # stable across a rename
    assert patched["userName"] == "alicia@example.com" and patched["displayName"] == "Alicia Smith"
    assert patched["emails"][0]["value"] == "alice@corp.example"
    assert patched["externalId"] == "8f2a-entra"

    no_path = scim.patch(
        path, {"op": "replace", "value": {"displayName": "A. Smith", "name": {"familyName": "X"}}}
    )
    assert no_path.json()["displayName"] == "A. Smith"  # displayName wins over name parts
    selected = scim.patch(
        path, {"op": "add", "path": 'emails[type eq "work"]', "value": {"value": "a@corp.example"}}
    )
    assert selected.json()["emails"][0]["value"] == "a@corp.example"
    home = scim.patch(
        path, {"op": "add", "path": 'emails[type eq "home"].value', "value": "h@x.io"}
    )
    assert home.json()["emails"][0]["value"] == "a@corp.example"  # only the work address is kept
    removed = scim.patch(
        path,
        {"op": "remove", "path": 'emails[type eq "work"]'},
        {"op": "remove", "path": "externalId"},
        {"op": "remove", "path": "displayName"},
    )
    body = removed.json()
    assert "emails" not in body and "externalId" not in body and "displayName" not in body
    external = scim.events("inventory.update")
    assert any(e["details"].get("after") == {"external_id": "8f2a-entra"} for e in external)


def test_a_failing_patch_changes_nothing(scim: Scim) -> None:
    user = scim.create_user("alice@example.com", displayName="Alice")
    path = f"/Users/{user['id']}"
    before = len(scim.events("inventory.update"))
    response = scim.patch(
        path,
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "replace", "path": "active", "value": "maybe"},
    )
    assert "active" in assert_error(response, 400, "invalidValue")
    assert scim.call("GET", path).json()["displayName"] == "Alice"
    half_done = scim.patch(
        path,
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "replace", "path": "userName", "value": "not a valid name"},
    )
    assert_error(half_done, 400, "invalidValue")
    assert scim.call("GET", path).json()["displayName"] == "Alice"
    assert len(scim.events("inventory.update")) == before


def test_put_replaces_the_user(scim: Scim) -> None:
    user = scim.call("POST", "/Users", okta_user()).json()
    path = f"/Users/{user['id']}"
    replaced = scim.call(
        "PUT",
        path,
        {
            "schemas": [USER_SCHEMA],
            "id": user["id"],
            "userName": "alice.smith@example.com",
            "name": {"givenName": "Alicia", "familyName": "Smith"},
            "emails": [
                {"value": "home@example.net", "type": "home"},
                {"value": "alicia@example.com", "type": "work", "primary": True},
            ],
            "active": False,
        },
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["userName"] == "alice.smith@example.com" and body["displayName"] == "Alicia Smith"
    assert body["emails"][0]["value"] == "alicia@example.com" and body["active"] is False
    assert body["externalId"] == "00u1okta"  # not in the PUT: not asserted, kept (§3.5.1)
    assert scim.events("session.logout_everywhere")
    missing = scim.call("PUT", path, {"schemas": [USER_SCHEMA], "displayName": "x"})
    assert "userName" in assert_error(missing, 400, "invalidValue")


def test_groups_and_their_members(scim: Scim) -> None:
    alice, bob, carol = (scim.create_user(name)["id"] for name in ("alice", "bob", "carol"))
    created = scim.call(
        "POST",
        "/Groups",
        {
            "schemas": [GROUP_SCHEMA],
            "displayName": "engineering",
            "externalId": "g-1",
            "members": [{"value": alice, "display": "alice"}],
        },
    )
    assert created.status_code == 201, created.text
    group = created.json()
    assert created.headers["location"].endswith(f"/scim/v2/Groups/{group['id']}")
    assert [m["value"] for m in group["members"]] == [alice]
    path = f"/Groups/{group['id']}"

    # Okta adds and removes one member at a time; Entra ID removes with a value list.
    added = scim.patch(
        path, {"op": "add", "path": "members", "value": [{"value": bob}, {"value": carol}]}
    )
    assert added.status_code == 204, added.text
    assert (
        scim.patch(path, {"op": "remove", "path": f'members[value eq "{alice}"]'}).status_code
        == 204
    )
    entra = scim.patch(path, {"op": "Remove", "path": "members", "value": [{"value": carol}]})
    assert entra.status_code == 204
    renamed = scim.patch(
        path, {"op": "replace", "value": {"id": group["id"], "displayName": "eng"}}
    )
    assert renamed.status_code == 204
    current = scim.call("GET", path).json()
    assert current["displayName"] == "eng" and [m["value"] for m in current["members"]] == [bob]
    assert current["members"][0]["display"] == "bob"

    # Entra ID's lookups: by name without members, and by membership.
    found = scim.call(
        "GET", "/Groups", params={"filter": 'displayName eq "ENG"', "excludedAttributes": "members"}
    ).json()
    assert [g["id"] for g in found["Resources"]] == [group["id"]]
    assert "members" not in found["Resources"][0]
    assert len(scim.find(f'id eq "{group["id"]}" and members[value eq "{bob}"]', "/Groups")) == 1
    assert scim.find(f'members[value eq "{alice}"]', "/Groups") == []

    # Membership is the users' field in the inventory: the admin API and the user agree.
    bob_admin = scim.control.client.get("/api/v1/users/bob", headers=scim.control.admin).json()
    assert bob_admin["groups"] == ["eng"]
    assert scim.call("GET", f"/Users/{bob}").json()["groups"][0]["display"] == "eng"
    assert scim.call("PUT", path, {"displayName": "eng", "members": []}).status_code == 200
    assert scim.call("GET", f"/Users/{bob}").json()["groups"] == []
    # All or nothing (RFC 7644 §3.5.2): the rename before the failing operation is undone.
    unknown = scim.patch(
        path,
        {"op": "replace", "path": "displayName", "value": "renamed"},
        {"op": "add", "path": "members", "value": [{"value": "999"}]},
    )
    assert "999" in assert_error(unknown, 400, "invalidValue")
    assert scim.call("GET", path).json()["displayName"] == "eng"

    assert scim.call("DELETE", path).status_code == 204
    assert_error(scim.call("GET", path), 404)
    targets = {e["target"] for e in scim.events("inventory.update")}
    assert {"user/alice", "user/bob", "user/carol", "group/engineering"} <= targets
    assert scim.events("inventory.delete")[0]["target"] == "group/eng"


def test_delete_removes_the_user_and_their_sessions(scim: Scim) -> None:
    user = scim.create_user("alice@example.com")
    browser = portal_session(scim.control, "alice@example.com")
    response = scim.call("DELETE", f"/Users/{user['id']}")
    assert response.status_code == 204 and response.content == b""
    assert_error(scim.call("GET", f"/Users/{user['id']}"), 404)
    assert browser.get("/portal/account").status_code == 303
    admin = scim.control.client.get("/api/v1/users/alice@example.com", headers=scim.control.admin)
    assert admin.status_code == 404
    assert scim.events("inventory.delete")[0]["target"] == "user/alice@example.com"
    assert scim.events("session.logout_everywhere")[0]["details"]["sessions"] == 1


def test_errors_come_in_the_scim_shape(scim: Scim) -> None:
    control = scim.control
    assert "or" in assert_error(
        scim.call("GET", "/Users", params={"filter": 'userName eq "a" or userName eq "b"'}),
        400,
        "invalidFilter",
    )
    assert "co" in assert_error(
        scim.call("GET", "/Users", params={"filter": 'userName co "a"'}), 400, "invalidFilter"
    )
    assert "title" in assert_error(
        scim.call("GET", "/Users", params={"filter": 'title eq "boss"'}), 400, "invalidFilter"
    )
    assert_error(scim.call("GET", "/Users/12345"), 404)
    assert_error(scim.call("GET", "/Users/not-a-number"), 404)
    assert_error(scim.call("PATCH", "/Groups/77", {"schemas": [PATCH_OP], "Operations": []}), 404)
    no_token = scim.call("GET", "/Users", token="")
    assert_error(no_token, 401)
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    assert_error(scim.call("GET", "/Users", token="zgt_0123456789abcdef_" + "x" * 43), 401)
    admin_token = control.admin["Authorization"].removeprefix("Bearer ")
    assert "scim" in assert_error(scim.call("GET", "/Users", token=admin_token), 403)
    assert_error(scim.call("GET", "/Nope"), 404)
    assert_error(scim.call("POST", "/ServiceProviderConfig", {}), 405)
    assert_error(scim.call("GET", "/Users", params={"sortBy": "userName"}), 400, "invalidSyntax")
    bad_json = control.client.post(
        f"{SCIM}/Users",
        content="{not json",
        headers={"Authorization": f"Bearer {scim.token}", "Content-Type": "application/json"},
    )
    assert_error(bad_json, 400, "invalidSyntax")
    assert_error(scim.call("POST", "/Users", ["a", "list"]), 400, "invalidSyntax")
    user = scim.create_user("alice")
    plain_json = control.client.post(  # application/json is as good as application/scim+json
        f"{SCIM}/Users", json={"userName": "bob"}, headers={"Authorization": f"Bearer {scim.token}"}
    )
    assert plain_json.status_code == 201, plain_json.text
    assert_error(
        scim.call("PATCH", f"/Users/{user['id']}", {"Operations": []}), 400, "invalidSyntax"
    )
    assert_error(scim.patch(f"/Users/{user['id']}", {"op": "remove"}), 400, "noTarget")
    assert_error(
        scim.patch(f"/Users/{user['id']}", {"op": "move", "path": "x"}), 400, "invalidSyntax"
    )
    assert_error(
        scim.patch(f"/Users/{user['id']}", {"op": "add", "path": "favouriteColour", "value": 1}),
        400,
        "invalidPath",
    )
    # The admin API keeps its own error shape.
    assert "errors" in control.client.get("/api/v1/users/nobody", headers=control.admin).json()


def test_names_outside_zerogate_rules_are_invalid_values(scim: Scim) -> None:
    spaced = scim.call("POST", "/Users", {"schemas": [USER_SCHEMA], "userName": "alice smith"})
    detail = assert_error(spaced, 400, "invalidValue")
    assert detail.startswith("userName 'alice smith' does not fit")
    team = scim.call("POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "Sales Team"})
    assert assert_error(team, 400, "invalidValue").startswith("displayName 'Sales Team'")
    control_char = scim.call("POST", "/Users", {"userName": "bob", "externalId": "a\u0000b"})
    assert "externalId" in assert_error(control_char, 400, "invalidValue")
    bad_email = scim.call("POST", "/Users", {"userName": "bob", "emails": [{"value": "nope"}]})
    assert "emails" in assert_error(bad_email, 400, "invalidValue")
    no_name = scim.call("POST", "/Users", {"schemas": [USER_SCHEMA], "displayName": "Bob"})
    assert "userName" in assert_error(no_name, 400, "invalidValue")
    assert scim.call("GET", "/Users").json()["totalResults"] == 0


FILTER_PIECES = st.sampled_from(
    ["userName", "emails", "[", "]", ".value", " eq ", " and ", " or ", '"a"', '"\\', "(", ")",
     "true", "12", "type", "urn:ietf:params:scim:schemas:core:2.0:User:", ":", " ", "not"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(FILTER_PIECES, max_size=12).map("".join)))
def test_the_filter_parser_refuses_rather_than_crashes(text: str) -> None:
    try:
        terms = parse_filter(text, USER_SCHEMA)
    except SyntaxProblem:
        return
    assert terms and all(term.path.attr for term in terms)
