"""Passkeys in a real browser: Chromium's virtual authenticator (over CDP) registers a passkey
on the account page and signs in with it from the login page; a removed passkey no longer
signs in. The authenticator lives in the browser context, so every page of one context
shares it, as pages of one browser profile share a platform authenticator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from test_login import sign_in  # type: ignore[import-not-found]

from zgproc import Running

WAIT_MS = 15_000  # bounds each wait; it measures nothing

AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
}


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    yield context
    context.close()


def with_authenticator(context: BrowserContext) -> tuple[Page, str]:
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    return page, str(added["authenticatorId"])


def add_passkey(page: Page, up: Running, name: str) -> None:
    page.goto(f"{up.url}/portal/account")
    page.fill("#passkey-name", name)
    page.click("#passkey-add")
    expect(page.locator(".notice")).to_have_text("Passkey added.", timeout=WAIT_MS)
    expect(page.locator("#passkey-list tr[data-id]")).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("#passkey-list")).to_contain_text(name, timeout=WAIT_MS)


def sign_out(page: Page, up: Running) -> None:
    page.goto(f"{up.url}/portal/account")
    page.locator("form[action='/portal/logout'] button").click()
    expect(page).to_have_url(f"{up.url}/portal/login", timeout=WAIT_MS)


def passkey_sign_in(page: Page, up: Running) -> None:
    page.goto(f"{up.url}/portal/login?next=/portal/account")
    page.click("text=Sign in with a passkey")


def test_register_then_sign_in_with_a_passkey(context: BrowserContext, up: Running) -> None:
    assert up.admin_password, up.output
    page, _ = with_authenticator(context)
    sign_in(page, up, up.admin_password)
    expect(page.locator("h1")).to_have_text("Signed in as First administrator", timeout=WAIT_MS)
    add_passkey(page, up, "test laptop")
    expect(page.locator("#passkey-list")).to_contain_text("never", timeout=WAIT_MS)
    sign_out(page, up)

    passkey_sign_in(page, up)
    expect(page).to_have_url(f"{up.url}/portal/account", timeout=WAIT_MS)
    expect(page.locator("h1")).to_have_text("Signed in as First administrator", timeout=WAIT_MS)
    current = page.locator("#sessions tr", has_text="this session")
    expect(current).to_contain_text("hwk + mfa", timeout=WAIT_MS)
    expect(page.locator("#passkey-list tr[data-id]")).not_to_contain_text("never", timeout=WAIT_MS)


def test_a_removed_passkey_no_longer_signs_in(context: BrowserContext, up: Running) -> None:
    assert up.admin_password, up.output
    page, _ = with_authenticator(context)
    sign_in(page, up, up.admin_password)
    add_passkey(page, up, "soon gone")
    page.locator("#passkey-list tr[data-id] button", has_text="Remove").click()
    expect(page.locator(".notice")).to_have_text("Passkey removed.", timeout=WAIT_MS)
    expect(page.locator("#passkey-list tr[data-id]")).to_have_count(0, timeout=WAIT_MS)
    sign_out(page, up)

    # The authenticator still holds the credential; the server must not accept it.
    passkey_sign_in(page, up)
    expect(page.locator("#passkey-error")).to_have_text(
        "That passkey was not accepted. Try again, or sign in with your password.",
        timeout=WAIT_MS,
    )
    expect(page).to_have_url(f"{up.url}/portal/login?next=/portal/account", timeout=WAIT_MS)
    page.goto(f"{up.url}/portal/account")
    expect(page).to_have_url(f"{up.url}/portal/login?next=/portal/account", timeout=WAIT_MS)
