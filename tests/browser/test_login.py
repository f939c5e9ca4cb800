"""A person at a real browser: sign in with the first admin's password, turn on TOTP, see
the session, sign in again with the second factor, sign out everywhere."""

from __future__ import annotations

from datetime import timedelta

import pyotp
from playwright.sync_api import Browser, Page, expect

from zerogate.store.models import utcnow
from zgproc import Running


def sign_in(page: Page, up: Running, password: str) -> None:
    page.goto(f"{up.url}/portal/")
    expect(page).to_have_url(f"{up.url}/portal/login?next=/portal/account")
    page.fill("#username", "admin")
    page.fill("#password", password)
    page.click("button[type=submit]")


def test_password_totp_and_sessions_in_chromium(browser: Browser, up: Running) -> None:
    password = up.admin_password
    assert password, up.output
    first = browser.new_context().new_page()
    sign_in(first, up, password)
    expect(first.locator("h1")).to_have_text("Signed in as First administrator")
    expect(first.locator("#sessions")).to_contain_text("this session")

    first.click("text=Set up an authenticator app")
    secret = first.locator("#totp-secret").inner_text()
    expect(first.locator("img[alt='QR code of the authenticator key']")).to_be_visible()
    first.fill("#code", pyotp.TOTP(secret).now())
    first.click("button[type=submit]")
    expect(first.locator("#recovery-codes li")).to_have_count(10)
    first.click("text=Continue")
    expect(first.locator("#totp-status")).to_contain_text("on since")

    second = browser.new_context().new_page()
    sign_in(second, up, password)
    expect(second).to_have_url(f"{up.url}/portal/login/mfa")
    second.fill("#code", pyotp.TOTP(secret).at(utcnow() + timedelta(seconds=30)))
    second.click("button[type=submit]")
    expect(second.locator("h1")).to_have_text("Signed in as First administrator")
    expect(second.locator("#sessions tr[data-handle]")).to_have_count(2)
    expect(second.locator("#sessions")).to_contain_text("pwd + otp + mfa")

    second.click("text=Sign out everywhere")
    expect(second).to_have_url(f"{up.url}/portal/login")
    first.goto(f"{up.url}/portal/account")
    expect(first).to_have_url(f"{up.url}/portal/login?next=/portal/account")
