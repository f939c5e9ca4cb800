"""Single sign-on in a real browser against a real OpenID Provider (npm oidc-provider on
Node 22): the user is created just in time, mapped into groups, and the session says "fed"."""

from __future__ import annotations

import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
pytest.register_assert_rewrite("oidc.fixture")
pytest_plugins = ["oidc.fixture"]

from zgproc import Running, start, stop  # noqa: E402


@pytest.fixture
def up(tmp_path: Path, port: int, oidc_provider: object) -> Iterator[Running]:
    """zerogate up with one SSO provider configured, and the group the claims map to."""
    provider = oidc_provider([f"https://localhost:{port}/portal/oidc/testidp/callback"])  # type: ignore[operator]
    config = tmp_path / "zerogate.toml"
    config.write_text(
        f"""
[[oidc_providers]]
name = "testidp"
display_name = "Test IdP"
issuer = "{provider.issuer}"
client_id = "{provider.client_id}"
client_secret = "{provider.client_secret}"

[[oidc_providers.rules]]
claim = "groups"
equals = "eng"
add_groups = ["engineering"]
"""
    )
    running = start(tmp_path / "zerogate-data", port, "--config", str(config))
    try:
        _make_group(running)
        yield running
    finally:
        stop(running)


def _make_group(running: Running) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=running.data_dir / "ca.pem")) as api:
        made = api.post(
            f"{running.url}/api/v1/groups",
            json={"name": "engineering"},
            headers={"Authorization": f"Bearer {running.token}"},
        )
        assert made.status_code == 201, made.text


def test_sso_login_creates_the_user_just_in_time(browser: Browser, up: Running) -> None:
    page = browser.new_context().new_page()
    page.goto(f"{up.url}/portal/login")
    page.click("text=Sign in with Test IdP")
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.click("button[type=submit]")  # the provider's consent page
    expect(page.locator("h1")).to_have_text("Signed in as Alice Example", timeout=15000)
    # Only the rule's group: the provider's "admins" claim is not copied unless configured.
    expect(page.locator("main")).to_contain_text("groups: engineering")
    expect(page.locator("#sessions")).to_contain_text("fed")
    with httpx.Client(verify=ssl.create_default_context(cafile=up.data_dir / "ca.pem")) as api:
        user = api.get(
            f"{up.url}/api/v1/users/alice@example.test",
            headers={"Authorization": f"Bearer {up.token}"},
        ).json()
        events = api.get(
            f"{up.url}/api/v1/audit/events",
            params={"action": "login.sso.success"},
            headers={"Authorization": f"Bearer {up.token}"},
        ).json()
    assert user["email"] == "alice@example.test" and user["groups"] == ["engineering"]
    assert events and events[0]["target"] == "user/alice@example.test"
