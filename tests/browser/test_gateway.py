"""A person at a real browser reaching apps through the gateway: the first visit goes through
the portal's sign-in and lands back on the page asked for, with the identity assertion the
app sees; a second app needs no new sign-in; an app without a grant is the same 404 as one
that does not exist; an app's sign-out link ends the session in every app."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import Browser, expect

from gatewaykit import wait_for_port, wait_for_route
from netkit import free_port
from zgproc import Running, admin

EXAMPLE = Path(__file__).parents[2] / "examples" / "whoami.py"
POLICY = """\
rules:
  - name: admins-tools
    who: {groups: [admins]}
    what: {apps: [grafana, whoami]}
"""


def create_app(up: Running, name: str, port: int) -> None:
    assert up.token is not None
    done = admin(
        up, up.token, "app", "create", name, "--kind", "http",
        "--hostname", f"{name}.zerogate.localhost", "--target", f"http://127.0.0.1:{port}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_sign_in_once_reach_two_apps_and_see_nothing_else(
    browser: Browser, up: Running, upstream: int, tmp_path: Path
) -> None:
    assert up.token is not None and up.admin_password is not None
    example_port = free_port()
    create_app(up, "grafana", upstream)
    create_app(up, "whoami", example_port)
    create_app(up, "vault", upstream)  # no rule grants it
    (tmp_path / "policy.yaml").write_text(POLICY)
    assert admin(up, up.token, "policy", "push", str(tmp_path / "policy.yaml")).returncode == 0
    command = [sys.executable, str(EXAMPLE), "--port", str(example_port), "--app", "whoami"]
    command += ["--control", up.url, "--ca", str(up.data_dir / "ca.pem")]
    example = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(example_port)
        wait_for_port(up.gateway_port)
        grafana = f"https://grafana.zerogate.localhost:{up.gateway_port}/echo?from=browser"
        wait_for_route(up.data_dir / "ca.pem", grafana)
        page = browser.new_context().new_page()
        page.goto(grafana)
        page.wait_for_url(f"{up.url}/portal/login?**", timeout=15_000)
        page.fill("#username", "admin")
        page.fill("#password", up.admin_password)
        page.click("button[type=submit]")
        page.wait_for_url(grafana, timeout=15_000)
        echoed = json.loads(page.locator("body").inner_text())
        headers = dict(echoed["headers"])
        assert echoed["query"] == "from=browser" and headers["x-zerogate-assertion"].count(".") == 2

        page.goto(f"https://whoami.zerogate.localhost:{up.gateway_port}/")
        expect(page.locator("body")).to_have_text("Hello admin (admins)")

        page.goto(f"https://nothing.zerogate.localhost:{up.gateway_port}/")
        unknown = page.locator("body").inner_text()
        response = page.goto(f"https://vault.zerogate.localhost:{up.gateway_port}/")
        assert response is not None and response.status == 404
        assert page.locator("body").inner_text() == unknown

        page.goto(f"https://grafana.zerogate.localhost:{up.gateway_port}/.zerogate/sign_out")
        page.wait_for_url(f"{up.url}/portal/logout", timeout=15_000)
        page.locator("form[action='/portal/logout'] button").click()
        page.wait_for_url(f"{up.url}/portal/login", timeout=15_000)
        # whoami still holds its own token; the revoked session reaches the gateway in its
        # next snapshot, within about a second, and from then on that token is no key.
        deadline = time.monotonic() + 15
        while True:
            page.goto(f"https://whoami.zerogate.localhost:{up.gateway_port}/")
            if page.url.startswith(f"{up.url}/portal/login") or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert page.url.startswith(f"{up.url}/portal/login?")
    finally:
        example.terminate()
        example.wait(10)
