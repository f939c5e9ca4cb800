"""Dark apps across three hosts in network namespaces: a user, a gateway, a private network.

    user 198.18.N.5 ── 198.18.N.6 gateway 198.18.N.10 ── 198.18.N.9 private (web app, connectors)
                                  198.18.N.2 ── 198.18.N.1 this test process (the admin)

The private host runs a real web app and two real connectors; it reaches the gateway, and a
firewall in it drops every connection opened towards it, so nothing can reach into it. The
gateway host does not forward. Asserted: the user cannot reach the app directly; through the
gateway it works; killing one connector mid-load loses only the requests in flight and new
requests succeed within a second; a revoked connector is cut off; a target outside a
connector's allow-list is refused.
"""

from __future__ import annotations

import json
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from connectorkit import connector_status, new_connector, start_connector, wait_for_sessions
from netkit import free_port
from nskit import Lab, can_run, popen
from zgproc import Running, admin, start, stop

TESTS = Path(__file__).parents[1]
WHY = can_run() or (None if shutil.which("nft") else "nftables (`nft`) is not installed")
pytestmark = pytest.mark.skipif(WHY is not None, reason=WHY or "")
APP_PORT, OTHER_PORT, ECHO_PORT = 8080, 9090, 7000
HOST = "wiki.zerogate.localhost"


@dataclass
class Site:
    lab: Lab
    up: Running
    admin_ip: str  # the gateway host, as this process reaches it
    user_gw: str  # the gateway host, as the user reaches it
    private_gw: str  # the gateway host, as the private network reaches it
    private: str  # the private host's address


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    lab = Lab()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for host in ("user", "gw", "priv"):
            lab.add_host(host)
        _, admin_ip = lab.link(None, "gw")
        _user, user_gw = lab.link("user", "gw")
        private, private_gw = lab.link("priv", "gw")
        # The private host accepts no connection opened towards it, from anywhere.
        rules = tmp_path / "dark.nft"
        rules.write_text(
            "add table inet dark\n"
            "add chain inet dark input { type filter hook input priority 0 ; policy accept ; }\n"
            'add rule inet dark input iifname != "lo" ct state new drop\n'
        )
        done = lab.run("priv", "nft", "-f", str(rules))
        assert done.returncode == 0, done.stderr
        config = tmp_path / "zerogate.toml"
        hostnames = ", ".join(f'"{h}"' for h in ("localhost", admin_ip, user_gw, private_gw))
        config.write_text(f'listen_host = "0.0.0.0"\npublic_hostnames = [{hostnames}]\n')
        app = popen(
            lab, "priv",
            [sys.executable, "-m", "uvicorn", "upstream_app:app", "--app-dir", str(TESTS),
             "--host", private, "--port", str(APP_PORT), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(app)
        echo = popen(
            lab, "priv",
            ["socat", f"TCP-LISTEN:{ECHO_PORT},bind={private},fork,reuseaddr", "EXEC:cat"],
        )  # fmt: skip
        processes.append(echo)
        up = start(
            tmp_path / "data",
            free_port(),
            "--config",
            str(config),
            wrap=lab.wrap("gw"),
            host=admin_ip,
        )
        try:
            yield Site(lab, up, admin_ip, user_gw, private_gw, private)
        finally:
            stop(up)
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        lab.close()


def gateway_host_token(site: Site, app: str, back: str | None) -> str:
    """An app token, signed in on the gateway host: tokens name the control plane by the
    address they were fetched at, and that host's gateway knows it as localhost. With `back`
    the browser's way (`/portal/authorize`), else a bearer token (a TCP app's)."""
    how = (
        f"app_token(url, ca, password, {app!r}, {back!r})"
        if back
        else f"audience_token(url, ca, password, {app!r})"
    )
    code = (
        f"import sys, pathlib; sys.path.insert(0, {str(TESTS)!r}); "
        "from gatewaykit import app_token, audience_token; "
        f"url = 'https://localhost:{site.up.port}'; "
        f"ca = pathlib.Path({str(site.up.data_dir / 'ca.pem')!r}); "
        f"password = {site.up.admin_password!r}; print({how})"
    )
    done = site.lab.run("gw", sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def user_tcp_echo(site: Site, token: str, payload: bytes) -> str:
    """From the user host: CONNECT to the echo app through the gateway, send, read back."""
    code = (
        f"import sys, pathlib; sys.path.insert(0, {str(TESTS)!r}); "
        "from connectorkit import connect_tcp; "
        f"sock = connect_tcp({site.user_gw!r}, {site.up.gateway_port}, 'echo.zerogate.localhost', "
        f"{ECHO_PORT}, {token!r}, pathlib.Path({str(site.up.data_dir / 'ca.pem')!r})); "
        f"sock.sendall({payload!r}); got = b''\n"
        f"while len(got) < {len(payload)}: got += sock.recv(100)\n"
        "print(got.decode())"
    )
    done = site.lab.run("user", sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def user_curl(site: Site, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return site.lab.run(
        "user", "curl", "-sS", "--max-time", "3", "-o", "/dev/null", "-w", "%{http_code}",
        *args, url, timeout=15,
    )  # fmt: skip


def test_dark_app_reached_only_through_connectors(site: Site, tmp_path: Path) -> None:
    up, lab = site.up, site.lab
    assert up.token is not None and up.admin_password is not None
    tokens = {name: new_connector(up, name, "dc1") for name in ("c1", "c2")}
    for name, target in (("wiki", APP_PORT), ("other", OTHER_PORT)):
        created = admin(
            up, up.token, "app", "create", name, "--kind", "http",
            "--hostname", f"{name}.zerogate.localhost",
            "--target", f"http://{site.private}:{target}", "--connector-group", "dc1",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
    created = admin(
        up, up.token, "app", "create", "echo", "--kind", "tcp", "--hostname", "echo.zerogate.localhost",
        "--target", f"{site.private}:{ECHO_PORT}", "--connector-group", "dc1",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "rules:\n  - name: admins\n    who: {groups: [admins]}\n"
        "    what: {apps: [wiki, other, echo]}\n"
    )
    assert admin(up, up.token, "policy", "push", str(policy)).returncode == 0

    control = f"https://{site.private_gw}:{up.port}"
    allow = [f"{site.private}/32:{APP_PORT},{ECHO_PORT}"]  # the other app's port is not
    gateways = [f"{site.private_gw}:{up.tunnel_port}"]
    connectors = {}
    for name, token in tokens.items():
        connectors[name] = start_connector(
            up, tmp_path / name, token, gateways, allow, wrap=lab.wrap("priv"),
            control_url=control, log=tmp_path / f"{name}.log",
        )  # fmt: skip
    try:
        for name in connectors:
            wait_for_sessions(up, name, 2)

        # Dark: the user has no way to the app; the gateway host's connections are dropped.
        direct = user_curl(site, f"http://{site.private}:{APP_PORT}/")
        assert direct.stdout == "000" and direct.returncode in (7, 28), direct
        from_gateway = lab.run(
            "gw", "curl", "-sS", "--max-time", "2", f"http://{site.private}:{APP_PORT}/", timeout=15
        )
        assert from_gateway.returncode == 28, from_gateway  # dropped: a timeout, not a refusal

        ca = str(up.data_dir / "ca.pem")
        back = f"https://{HOST}:{up.gateway_port}/"
        token = gateway_host_token(site, "wiki", back)
        resolve = f"{HOST}:{up.gateway_port}:{site.user_gw}"
        through = user_curl(
            site, f"https://{HOST}:{up.gateway_port}/echo/user", "--cacert", ca,
            "--resolve", resolve, "-H", f"cookie: __Host-zerogate={token}",
        )  # fmt: skip
        assert through.stdout == "200", through
        tcp = user_tcp_echo(site, gateway_host_token(site, "echo", None), b"hello, dark service")
        assert tcp == "hello, dark service", tcp

        # One of two connectors dies mid-load: only what was in flight is lost.
        load = popen(
            lab, "user",
            [sys.executable, str(Path(__file__).parent / "load_client.py"),
             f"https://{site.user_gw}:{up.gateway_port}", HOST, f"__Host-zerogate={token}", ca,
             "8", "4"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(3)
        connectors["c1"].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        connectors["c1"].wait(10)
        out, _ = load.communicate(timeout=60)
        results = [json.loads(line) for line in out.decode().splitlines()]
        before = [r for r in results if r["t"] < killed_at]
        after = [r for r in results if r["t"] > killed_at + 1.0]
        assert before and all(r["ok"] for r in before), "load failed before the kill"
        assert after and all(r["ok"] for r in after), "requests failed over 1 s after the kill"
        lost = [r for r in results if not r["ok"]]
        assert len(lost) <= 4, f"{len(lost)} failed; 4 at most were in flight"

        # Outside the allow-list: refused by the connector itself.
        other = gateway_host_token(site, "other", back)
        refused = user_curl(
            site, f"https://other.zerogate.localhost:{up.gateway_port}/", "--cacert", ca,
            "--resolve", f"other.zerogate.localhost:{up.gateway_port}:{site.user_gw}",
            "-H", f"cookie: __Host-zerogate={other}",
        )  # fmt: skip
        assert refused.stdout == "502", refused
        assert "outside the allow-list" in (tmp_path / "c2.log").read_text()

        # Revoked: its tunnels are cut, so the app has no way left.
        assert admin(up, up.token, "connector", "revoke", "c2").returncode == 0
        deadline = time.monotonic() + 5
        status = ""
        while time.monotonic() < deadline:
            status = user_curl(
                site, f"https://{HOST}:{up.gateway_port}/echo/late", "--cacert", ca,
                "--resolve", resolve, "-H", f"cookie: __Host-zerogate={token}",
            ).stdout  # fmt: skip
            if status == "502":
                break
            time.sleep(0.1)
        assert status == "502"
        assert connector_status(up)["c2"]["status"] == "revoked"
        trust = ssl.create_default_context(cafile=ca)
        with httpx.Client(verify=trust) as web:
            gateways = web.get(
                f"{up.url}/api/v1/status/gateways", headers={"Authorization": f"Bearer {up.token}"}
            ).json()
        assert all("c2" not in g["connectors"] for g in gateways)
    finally:
        for process in connectors.values():
            if process.poll() is None:
                process.terminate()
                process.wait(15)
