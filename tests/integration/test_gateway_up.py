"""`zerogate up` with its gateway, driven by curl: an app behind the gateway is reached only
after signing in, only by whom the policy allows, with a verifiable identity assertion, and
every decision arrives in the control plane's audit log."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gatewaykit import wait_for_port
from netkit import free_port
from zerogate.core.tokens import TokenVerifier
from zgproc import Running, admin, start, stop

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")

HOST = "grafana.zerogate.localhost"
POLICY = """\
rules:
  - name: admins-grafana
    who: {groups: [admins]}
    what: {apps: [grafana, whoami]}
"""
STRIP_ENV = "ZEROGATE_GATEWAY_STRIP_HEADERS"
EXAMPLE = Path(__file__).parents[2] / "examples" / "whoami.py"


class Curl:
    """curl with one cookie jar: a browser without JavaScript."""

    def __init__(self, up: Running, jar: Path) -> None:
        self.up = up
        self.jar = jar

    def __call__(self, url: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [
            "curl", "-sS", "--max-time", "10", "--cacert", str(self.up.data_dir / "ca.pem"),
            "-c", str(self.jar), "-b", str(self.jar), *args, url,
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=20)

    def sign_in(self, username: str, password: str) -> None:
        page = self(f"{self.up.url}/portal/login").stdout
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf, page
        form = ["-d", f"username={username}", "-d", f"password={password}"]
        done = self(
            f"{self.up.url}/portal/login", *form, "-d", f"csrf={csrf.group(1)}", "-o", "/dev/null",
            "-w", "%{http_code}",
        )  # fmt: skip
        assert done.stdout == "303", done.stdout + done.stderr


@pytest.fixture
def up(tmp_path: Path, port: int) -> Iterator[Running]:
    """`zerogate up` told to drop one more identity header than the built-in ones, as an
    admin would for an app that trusts it (Grafana's auth proxy reads X-WEBAUTH-USER)."""
    running = start(tmp_path / "zerogate-data", port, env={STRIP_ENV: "X-WEBAUTH-USER"})
    yield running
    stop(running)


def app_url(up: Running, path: str) -> str:
    return f"https://{HOST}:{up.gateway_port}{path}"


def test_sign_in_reach_the_app_and_audit_it(up: Running, upstream: int, tmp_path: Path) -> None:
    assert up.token is not None and up.admin_password is not None
    created = admin(
        up, up.token, "app", "create", "grafana", "--kind", "http", "--hostname", HOST,
        "--target", f"http://127.0.0.1:{upstream}",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    example_port = free_port()
    created = admin(
        up, up.token, "app", "create", "whoami", "--kind", "http",
        "--hostname", "whoami.zerogate.localhost", "--target", f"http://127.0.0.1:{example_port}",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert admin(up, up.token, "user", "create", "bob").returncode == 0
    (tmp_path / "policy.yaml").write_text(POLICY)
    assert admin(up, up.token, "policy", "push", str(tmp_path / "policy.yaml")).returncode == 0
    wait_for_port(up.gateway_port)
    curl = Curl(up, tmp_path / "jar")

    # Not signed in: the gateway sends the browser to the portal, for this app.
    first = curl(app_url(up, "/echo?x=1"), "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    status, location = first.stdout.split(" ", 1)
    assert status == "302" and location.startswith(f"{up.url}/portal/authorize?app=grafana")

    # Signed in, the same link lands on the app (portal → callback → the page), assertion on.
    curl.sign_in("admin", up.admin_password)
    deadline = time.monotonic() + 10  # the gateway polls the snapshot every second
    while True:
        landed = curl(
            app_url(up, "/echo?x=1"), "-L", "-w", "\n%{http_code}",
            "-H", "X-Webauth-User: root", "-H", "X-Webauth_User: root", "-H", "X-Kept: yes",
        )  # fmt: skip
        body, _, code = landed.stdout.rpartition("\n")
        if code == "200" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert code == "200", landed.stdout + landed.stderr
    echoed = json.loads(body)
    assert (echoed["path"], echoed["query"]) == ("/echo", "x=1")
    headers = dict(echoed["headers"])
    jwks = json.loads(curl(f"{up.url}/.well-known/jwks.json").stdout)
    claims = TokenVerifier(jwks, issuer=up.url).verify(
        headers["x-zerogate-assertion"], audience="grafana", now=_now()
    )
    assert claims.username == "admin" and headers["x-forwarded-proto"] == "https"
    names = [name.lower().replace("_", "-") for name, _ in echoed["headers"]]
    assert "x-webauth-user" not in names and headers["x-kept"] == "yes"

    # A second app, the published example that verifies the assertion itself: no new login.
    command = [sys.executable, str(EXAMPLE), "--port", str(example_port), "--app", "whoami"]
    command += ["--control", up.url, "--ca", str(up.data_dir / "ca.pem")]
    example = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(example_port)
        whoami = f"https://whoami.zerogate.localhost:{up.gateway_port}/"
        deadline = time.monotonic() + 10
        while True:
            hello = curl(whoami, "-L", "-w", "\n%{http_code}")
            if hello.stdout.endswith("\n200") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert hello.stdout == "Hello admin (admins)\n\n200", hello.stdout + hello.stderr
        direct = curl(f"http://127.0.0.1:{example_port}/", "-w", "%{http_code}", "-o", "/dev/null")
        assert direct.stdout == "401"  # around the gateway, the example app refuses
    finally:
        example.terminate()
        example.wait(10)

    # Ending the person's sessions reaches the gateway within about a second.
    revoked = curl(
        f"{up.url}/api/v1/users/admin/sessions/revoke", "-X", "POST",
        "-H", f"authorization: Bearer {up.token}", "-w", "%{http_code}", "-o", "/dev/null",
    )  # fmt: skip
    assert revoked.stdout == "200", revoked.stdout + revoked.stderr
    started = time.monotonic()
    while True:
        after = curl(app_url(up, "/echo"), "-o", "/dev/null", "-w", "%{http_code}")
        if after.stdout == "302" or time.monotonic() - started > 10:
            break
        time.sleep(0.1)
    assert after.stdout == "302"  # the portal would now ask to sign in again

    # An unknown host and an app this person has no rule for look exactly alike.
    nothing = curl(f"https://nope.zerogate.localhost:{up.gateway_port}/", "-w", "\n%{http_code}")
    password = "plum-orbit-candle-42-quartz"
    set_password = curl(
        f"{up.url}/api/v1/users/bob/password", "-H", f"authorization: Bearer {up.token}",
        "-H", "content-type: application/json", "-d", json.dumps({"password": password}),
        "-w", "%{http_code}",
    )  # fmt: skip
    assert set_password.stdout == "204", set_password.stdout
    bob = Curl(up, tmp_path / "bob-jar")
    bob.sign_in("bob", password)
    denied = bob(app_url(up, "/echo"), "-L", "-w", "\n%{http_code}")
    assert nothing.stdout.endswith("\n404")
    assert denied.stdout == nothing.stdout

    # Every decision reaches the control plane's audit log through the spool.
    deadline = time.monotonic() + 10
    while True:
        events = json.loads(
            admin(up, up.token, "audit", "list", "--action", "access.decision", "--json").stdout
        )
        if any(e["actor"] == "user:bob" for e in events) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    allowed = [e for e in events if e["details"]["effect"] == "allow"]
    assert {e["target"] for e in allowed} == {"app/grafana", "app/whoami"}
    grafana = [e for e in allowed if e["target"] == "app/grafana"]
    assert {e["details"]["request"]["status"] for e in grafana} == {200}
    denied = [e for e in events if e["details"]["effect"] == "deny"]
    assert [e["actor"] for e in denied] == ["user:bob"]  # the unknown host is no decision


def _now() -> datetime:
    return datetime.now(UTC)
