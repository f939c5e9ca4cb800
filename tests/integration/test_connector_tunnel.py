"""Apps behind connectors on loopback: real `zerogate up`, real connectors, real clients.

The multi-host version (a private network nobody can reach) is in tests/e2e; these tests pin
the behaviour itself: requests travel through the connectors' tunnels, load spreads over
them, a dead connector costs new requests nothing, revocation cuts a connector's tunnels,
and a connector refuses targets outside its allow-list.
"""

from __future__ import annotations

import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import trustme

from connectorkit import (
    EchoServer,
    connect_tcp,
    connector_status,
    new_connector,
    start_connector,
    wait_for_sessions,
)
from gatewaykit import app_token, audience_token, wait_for_route
from netkit import free_port
from zgproc import Running, admin, start, stop

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")

HOST = "wiki.zerogate.localhost"
TESTS = Path(__file__).parents[1]


def publish(up: Running, tmp_path: Path, apps: dict[str, str]) -> None:
    """Each app (hostname `NAME.zerogate.localhost`, by name: target) through group dc1."""
    assert up.token is not None
    for name, target in apps.items():
        created = admin(
            up, up.token, "app", "create", name, "--kind", "http",
            "--hostname", f"{name}.zerogate.localhost", "--target", target,
            "--connector-group", "dc1",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
    policy = "rules:\n  - name: admins\n    who: {groups: [admins]}\n"
    (tmp_path / "policy.yaml").write_text(policy + f"    what: {{apps: [{', '.join(apps)}]}}\n")
    pushed = admin(up, up.token, "policy", "push", str(tmp_path / "policy.yaml"))
    assert pushed.returncode == 0, pushed.stderr


def client(up: Running, token: str) -> httpx.Client:
    trust = ssl.create_default_context(cafile=str(up.data_dir / "ca.pem"))
    return httpx.Client(
        base_url=f"https://127.0.0.1:{up.gateway_port}",
        verify=trust,
        headers={"host": HOST, "cookie": f"__Host-zerogate={token}"},
        timeout=10,
    )


def test_through_connectors_failover_and_revocation(
    up: Running, upstream: int, tmp_path: Path
) -> None:
    assert up.admin_password is not None
    tokens = {name: new_connector(up, name, "dc1") for name in ("c1", "c2")}
    publish(up, tmp_path, {"wiki": f"http://127.0.0.1:{upstream}"})
    tunnel = f"127.0.0.1:{up.tunnel_port}"
    processes = {
        name: start_connector(
            up, tmp_path / name, token, [tunnel], ["127.0.0.1/32"], log=tmp_path / f"{name}.log"
        )
        for name, token in tokens.items()
    }
    try:
        for name in processes:
            wait_for_sessions(up, name, 2)  # one tunnel to each of the gateway's two workers
        ca = up.data_dir / "ca.pem"
        wait_for_route(ca, f"https://{HOST}:{up.gateway_port}/")
        token = app_token(
            up.url, ca, up.admin_password, "wiki", f"https://{HOST}:{up.gateway_port}/"
        )
        with client(up, token) as web:
            body = b"x" * 300_000
            echoed = web.post("/echo/big", content=body)
            assert echoed.status_code == 200, echoed.text
            assert echoed.json()["body_size"] == len(body)
            streamed = web.get("/stream", params={"size": 5_000_000})
            assert streamed.status_code == 200 and len(streamed.content) == 5_000_000

        # Kill c1 mid-load: only its in-flight requests may fail; new ones go to c2 at once.
        answered: list[float] = []
        failed: list[float] = []
        stop_load = threading.Event()

        def load() -> None:
            with client(up, token) as web:
                for n in range(20_000):
                    if stop_load.is_set():
                        return
                    try:
                        ok = web.get(f"/echo/{n}").status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    (answered if ok else failed).append(time.monotonic())

        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            deadline = time.monotonic() + 30
            while len(answered) < 200 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(answered) >= 200, "no load went through the connectors"
            processes["c1"].send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            processes["c1"].wait(10)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(t > killed_at + 1 for t in answered):
                time.sleep(0.05)
            time.sleep(1.0)
        finally:
            stop_load.set()
            for worker in workers:
                worker.join(30)
        late_failures = [t for t in failed if t > killed_at + 1.0]
        assert not late_failures, f"{len(late_failures)} requests failed over 1 s after the kill"
        assert len(failed) <= 4 * 2, f"more failed than were in flight: {len(failed)}"
        assert any(t > killed_at + 1 for t in answered)

        # Revoke c2: its tunnels are cut and the app is unreachable (502), not hanging.
        assert up.token is not None
        revoked = admin(up, up.token, "connector", "revoke", "c2")
        assert revoked.returncode == 0, revoked.stderr
        # How fast is measured by bench/connector.py; here only that it happens, within a bound.
        revoked_at = time.monotonic()
        with client(up, token) as web:
            while time.monotonic() < revoked_at + 10:
                if web.get("/echo/after").status_code == 502:
                    break
                time.sleep(0.05)
            assert web.get("/echo/after").status_code == 502
        assert connector_status(up)["c2"]["status"] == "revoked"
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
                process.wait(15)


def test_allow_list_refuses_and_sigterm_drains(up: Running, upstream: int, tmp_path: Path) -> None:
    assert up.admin_password is not None and up.token is not None
    token = new_connector(up, "c1", "dc1")
    publish(
        up, tmp_path, {"wiki": f"http://127.0.0.1:{upstream}", "forbidden": "http://127.0.0.2:22"}
    )
    log = tmp_path / "c1.log"
    process = start_connector(
        up, tmp_path / "c1", token, [f"127.0.0.1:{up.tunnel_port}"], [f"127.0.0.1/32:{upstream}"],
        log=log,
    )  # fmt: skip
    try:
        wait_for_sessions(up, "c1", 2)
        ca = up.data_dir / "ca.pem"
        wait_for_route(ca, f"https://{HOST}:{up.gateway_port}/")
        back = f"https://forbidden.zerogate.localhost:{up.gateway_port}/"
        denied_token = app_token(up.url, ca, up.admin_password, "forbidden", back)
        trust = ssl.create_default_context(cafile=str(ca))
        with httpx.Client(verify=trust, timeout=10) as web:
            refused = web.get(
                f"https://127.0.0.1:{up.gateway_port}/",
                headers={
                    "host": "forbidden.zerogate.localhost",
                    "cookie": f"__Host-zerogate={denied_token}",
                },
            )
        assert refused.status_code == 502
        deadline = time.monotonic() + 10
        while "not_allowed" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "outside the allow-list" in log.read_text()
        assert connector_status(up)["c1"]["status"] == "online"

        token_wiki = app_token(
            up.url, ca, up.admin_password, "wiki", f"https://{HOST}:{up.gateway_port}/"
        )
        results: list[int] = []

        def slow() -> None:
            with client(up, token_wiki) as web:
                results.append(web.get("/slow", params={"seconds": "1.5"}).status_code)

        waiting = threading.Thread(target=slow)
        waiting.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)  # drain: the request in flight still finishes
        waiting.join(20)
        assert results == [200]
        assert process.wait(15) == 0
        with client(up, token_wiki) as web:
            assert web.get("/echo/gone").status_code == 502
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_tcp_app_through_a_connector_with_connect(
    up: Running, upstream: int, tmp_path: Path
) -> None:
    assert up.admin_password is not None and up.token is not None
    token = new_connector(up, "c1", "dc1")
    with EchoServer() as echo:
        created = admin(
            up, up.token, "app", "create", "db", "--kind", "tcp", "--hostname",
            "db.zerogate.localhost", "--target", f"127.0.0.1:{echo.port}", "--connector-group", "dc1",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        (tmp_path / "policy.yaml").write_text(
            "rules:\n  - name: admins\n    who: {groups: [admins]}\n    what: {apps: [db]}\n"
        )
        assert admin(up, up.token, "policy", "push", str(tmp_path / "policy.yaml")).returncode == 0
        process = start_connector(
            up, tmp_path / "c1", token, [f"127.0.0.1:{up.tunnel_port}"], ["127.0.0.1/32"],
            log=tmp_path / "c1.log",
        )  # fmt: skip
        try:
            wait_for_sessions(up, "c1", 2)
            ca = up.data_dir / "ca.pem"
            host = "db.zerogate.localhost"
            app = audience_token(up.url, ca, up.admin_password, "db")
            with pytest.raises(ConnectionRefusedError, match="407"):
                connect_tcp("127.0.0.1", up.gateway_port, host, 5432, "nope", ca)
            with pytest.raises(ConnectionRefusedError, match="404"):
                connect_tcp("127.0.0.1", up.gateway_port, "nothing.zerogate.localhost", 1, app, ca)
            deadline = time.monotonic() + 10
            while True:  # the gateway learns the app with its next snapshot
                try:
                    sock = connect_tcp("127.0.0.1", up.gateway_port, host, 5432, app, ca)
                    break
                except ConnectionRefusedError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            with sock:
                greeting = b""
                while len(greeting) < len(EchoServer.GREETING):  # the service speaks first
                    greeting += sock.recv(100)
                assert greeting == EchoServer.GREETING
                # 1 MiB, both ways at once: up to 128 KiB in flight. From one thread: an SSL
                # socket must not be read and written by two threads at the same time (OpenSSL
                # objects are not thread-safe; doing so broke the records now and then).
                payload = bytes(range(256)) * 4096
                got, sent, piece, in_flight = bytearray(), 0, 16384, 131072
                while len(got) < len(payload):
                    while sent < len(payload) and sent - len(got) < in_flight:
                        sock.sendall(payload[sent : sent + piece])
                        sent += piece
                    chunk = sock.recv(65536)
                    assert chunk, "the tunnel closed early"
                    got += chunk
                assert bytes(got) == payload
            events = admin(up, up.token, "audit", "list", "--action", "access.decision", "--json")
            assert events.returncode == 0, events.stderr
            assert '"CONNECT"' in events.stdout
        finally:
            process.terminate()
            process.wait(15)


def test_https_app_through_a_connector(tmp_path: Path) -> None:
    """TLS to the app itself runs inside the tunnel's stream, verified as a direct one is."""
    authority = trustme.CA()
    server = authority.issue_cert("127.0.0.1")
    ca_file, cert_file = tmp_path / "app-ca.pem", tmp_path / "app.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    server.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "upstream_app:app", "--app-dir", str(TESTS),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--ssl-keyfile", str(cert_file), "--ssl-certfile", str(cert_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    # The gateway trusts the app's CA the way an operator would: the system's trust store.
    up = start(tmp_path / "data", free_port(), env={"SSL_CERT_FILE": str(ca_file)})
    try:
        assert up.admin_password is not None
        token = new_connector(up, "c1", "dc1")
        publish(up, tmp_path, {"wiki": f"https://127.0.0.1:{port}"})
        process = start_connector(
            up, tmp_path / "c1", token, [f"127.0.0.1:{up.tunnel_port}"], ["127.0.0.1/32"],
            log=tmp_path / "c1.log",
        )  # fmt: skip
        try:
            wait_for_sessions(up, "c1", 2)
            ca = up.data_dir / "ca.pem"
            wait_for_route(ca, f"https://{HOST}:{up.gateway_port}/")
            back = f"https://{HOST}:{up.gateway_port}/"
            with client(up, app_token(up.url, ca, up.admin_password, "wiki", back)) as web:
                for n in range(3):  # the second and third reuse the pooled TLS connection
                    echoed = web.get(f"/echo/{n}")
                    assert echoed.status_code == 200, echoed.text
                    assert echoed.json()["path"] == f"/echo/{n}"
        finally:
            process.terminate()
            process.wait(15)
    finally:
        stop(up)
        app.terminate()
        app.wait(10)
