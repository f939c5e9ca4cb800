"""Driving the login portal from tests: a cookie-keeping HTTPS client, CSRF, users, audit."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"


def browser(control: Any) -> TestClient:
    return TestClient(control.app, base_url="https://portal.test", follow_redirects=False)


def csrf_of(client: TestClient, path: str = "/portal/login") -> str:
    page = client.get(path)
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def make_user(control: Any, username: str = "alice", **fields: object) -> None:
    c, h = control.client, control.admin
    assert (
        c.post("/api/v1/users", json={"username": username, **fields}, headers=h).status_code == 201
    )
    assert (
        c.post(
            f"/api/v1/users/{username}/password", json={"password": PASSWORD}, headers=h
        ).status_code
        == 204
    )


def login(
    client: TestClient, username: str = "alice", password: str = PASSWORD, next_url: str = ""
) -> object:
    token = csrf_of(client)
    form = {"username": username, "password": password, "csrf": token, "next": next_url}
    return client.post("/portal/login", data=form)


def events(control: Any, action: str) -> list[dict[str, object]]:
    response = control.client.get(
        "/api/v1/audit/events", params={"action": action}, headers=control.admin
    )
    return response.json()  # type: ignore[no-any-return]
