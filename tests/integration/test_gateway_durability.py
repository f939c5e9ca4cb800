"""A gateway killed with SIGKILL in the middle of a load and started again: every request a
client saw answered has its audit event in the control plane, and none is there twice."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from gatewaykit import app_token, gateway_token, publish_app, wait_for_port, wait_for_route
from netkit import free_port
from zgproc import Running, admin, stop

HOST = "grafana.zerogate.localhost"
POLICY = """\
rules:
  - name: admins-grafana
    who: {groups: [admins]}
    what: {apps: [grafana]}
"""


@pytest.fixture
def grafana(up: Running, upstream: int, tmp_path: Path) -> None:
    """The upstream published as grafana, for the admins."""
    (tmp_path / "policy.yaml").write_text(POLICY)
    publish_app(up, "grafana", HOST, f"http://127.0.0.1:{upstream}", tmp_path / "policy.yaml")


def start_gateway(
    up: Running, port: int, data_dir: Path, workers: int = 1, max_stale_hours: str = "24"
) -> subprocess.Popen[bytes]:
    tls = up.data_dir / "tls"
    command = [sys.executable, "-m", "zerogate", "gateway", "--control", up.url]
    command += ["--ca-cert", str(up.data_dir / "ca.pem"), "--cert", str(tls / "gateway.pem")]
    command += ["--key", str(tls / "gateway.key"), "--data-dir", str(data_dir)]
    command += ["--port", str(port), "--name", "killable", "--workers", str(workers)]
    command += ["--max-stale-hours", max_stale_hours]
    env = {**os.environ, "ZEROGATE_TOKEN": gateway_token(up, "killable")}
    return subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)


def control_api(up: Running) -> httpx.Client:
    """The control plane's API, as the admin of `up`."""
    trust = ssl.create_default_context(cafile=str(up.data_dir / "ca.pem"))
    headers = {"authorization": f"Bearer {up.token}"}
    return httpx.Client(base_url=up.url, verify=trust, headers=headers)


def recorded_paths(up: Running) -> Counter[str]:
    """Paths of every access decision the control plane holds, with their counts."""
    found: Counter[str] = Counter()
    params: dict[str, str | int] = {"action": "access.decision", "limit": 1000}
    with control_api(up) as api:
        while True:
            events = api.get("/api/v1/audit/events", params=params).raise_for_status().json()
            for event in events:
                found[event["details"]["context"]["path"]] += 1
            if len(events) < 1000:
                return found
            params["before_seq"] = events[-1]["seq"]


def assert_each_recorded_once(up: Running, answered: list[int]) -> None:
    """Every `/echo/N` a client saw answered has one access decision in the control plane
    (waiting up to 30 s for the gateway to ship them), and no path is stored twice."""
    expected = {f"/echo/{n}" for n in answered}
    deadline = time.monotonic() + 30
    while True:
        found = recorded_paths(up)
        if expected <= set(found) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    missing = sorted(expected - set(found), key=lambda p: int(p.rsplit("/", 1)[1]))
    assert not missing, f"{len(missing)} answered requests have no audit event: {missing[:10]}"
    twice = {path: count for path, count in found.items() if count > 1}
    assert not twice, f"stored more than once: {twice}"


def test_sigkill_mid_load_loses_and_repeats_nothing(
    up: Running, grafana: None, tmp_path: Path
) -> None:
    assert up.admin_password is not None
    port, data = free_port(), tmp_path / "gateway"
    gateway = start_gateway(up, port, data)
    wait_for_port(port)
    ca = up.data_dir / "ca.pem"
    wait_for_route(ca, f"https://{HOST}:{port}/")
    token = app_token(up.url, ca, up.admin_password, "grafana", f"https://{HOST}:{port}/")

    answered: list[int] = []
    stop_load = threading.Event()

    def load() -> None:
        trust = ssl.create_default_context(cafile=str(ca))
        headers = {"host": HOST, "cookie": f"__Host-zerogate={token}"}
        n = 0
        with httpx.Client(verify=trust, headers=headers, timeout=5) as client:
            while not stop_load.is_set() and n < 5000:
                try:
                    if client.get(f"https://127.0.0.1:{port}/echo/{n}").status_code == 200:
                        answered.append(n)
                except httpx.HTTPError:
                    time.sleep(0.02)  # the gateway is down: this request was never answered
                n += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(answered) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(answered) >= 100, "the gateway never carried the load"
        gateway.send_signal(signal.SIGKILL)  # mid-load: requests are in flight
        gateway.wait(10)
        killed_at = len(answered)
        gateway = start_gateway(up, port, data)
        wait_for_port(port)
        deadline = time.monotonic() + 30
        while len(answered) < killed_at + 100 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop_load.set()
        worker.join(30)
    assert len(answered) >= killed_at + 100, "the restarted gateway answered too little"

    try:
        assert_each_recorded_once(up, answered)
    finally:
        gateway.terminate()
        gateway.wait(10)


def test_workers_share_the_port_and_stop_together(
    up: Running, grafana: None, tmp_path: Path
) -> None:
    assert up.admin_password is not None
    port, data = free_port(), tmp_path / "gateway"
    supervisor = start_gateway(up, port, data, workers=2)
    ca = up.data_dir / "ca.pem"
    try:
        wait_for_port(port)
        wait_for_route(ca, f"https://{HOST}:{port}/")
        token = app_token(up.url, ca, up.admin_password, "grafana", f"https://{HOST}:{port}/")
        trust = ssl.create_default_context(cafile=str(ca))
        headers = {"host": HOST, "cookie": f"__Host-zerogate={token}"}
        served: set[str] = set()
        for _ in range(200):  # new connections: the kernel spreads them over the workers
            with httpx.Client(verify=trust, headers=headers) as client:
                assert client.get(f"https://127.0.0.1:{port}/echo").status_code == 200
            # Each worker decides some: each has decisions in its own spool.
            served = {
                log.parent.parent.name
                for log in data.glob("worker-*/spool/*.log")
                if b"access.decision" in log.read_bytes()
            }
            if served == {"worker-0", "worker-1"}:
                break
        assert served == {"worker-0", "worker-1"}
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_fail_static_while_the_control_plane_is_away_then_fail_closed(
    up: Running, grafana: None, tmp_path: Path
) -> None:
    assert up.admin_password is not None
    port, data = free_port(), tmp_path / "gateway"
    ca = up.data_dir / "ca.pem"
    gateway = start_gateway(up, port, data)
    wait_for_port(port)
    wait_for_route(ca, f"https://{HOST}:{port}/")
    token = app_token(up.url, ca, up.admin_password, "grafana", f"https://{HOST}:{port}/")
    trust = ssl.create_default_context(cafile=str(ca))
    headers = {"host": HOST, "cookie": f"__Host-zerogate={token}"}

    def status() -> int:
        with httpx.Client(verify=trust, headers=headers) as client:
            return client.get(f"https://127.0.0.1:{port}/echo").status_code

    assert status() == 200
    gateway.terminate()
    gateway.wait(15)
    stop(up)  # the control plane is gone

    gateway = start_gateway(up, port, data)  # starts from the snapshot it saved
    try:
        wait_for_port(port)
        assert status() == 200
    finally:
        gateway.terminate()
        gateway.wait(15)

    stale = start_gateway(up, port, data, max_stale_hours="0.0001")  # 0.36 s
    try:
        wait_for_port(port)
        assert status() == 503  # too old to be the admins' policy any more
    finally:
        stale.terminate()
        stale.wait(15)


def wait_for_reported_spool(up: Running, accepting: bool) -> dict[str, object]:
    """The control plane's view of worker 0 of the gateway `killable`, once its audit spool
    is reported as `accepting` (up to 20 s): in the gateways' status and in `/metrics`."""
    sample = f'zerogate_gateway_audit_accepting{{gateway="killable",worker="0"}} {float(accepting)}'
    deadline = time.monotonic() + 20
    with control_api(up) as api:
        while True:
            gateways = api.get("/api/v1/status/gateways").raise_for_status().json()
            workers = [w for g in gateways if g["gateway"] == "killable" for w in g["audit"]]
            metrics = api.get("/metrics").raise_for_status().text
            if workers and workers[0]["accepting"] is accepting and sample in metrics:
                assert [w["worker"] for w in workers] == [0]
                return dict(workers[0])
            assert time.monotonic() < deadline, f"not reported accepting={accepting}: {workers}"
            time.sleep(0.2)


def spool_changes(up: Running) -> list[tuple[str, str, str]]:
    """The audit log's record of gateways refusing and accepting: (action, target, outcome)."""
    with control_api(up) as api:
        events = [
            event
            for action in ("gateway.refusing", "gateway.accepting")
            for event in api.get("/api/v1/audit/events", params={"action": action}).json()
        ]
    events.sort(key=lambda event: event["seq"])
    return [(event["action"], event["target"], event["outcome"]) for event in events]


def _used_kib(where: Path) -> int:
    usage = shutil.disk_usage(where)
    return usage.used // 1024


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], check=True
    )


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None,
    reason="needs root and mount(8) to give the spool a small disk of its own (tmpfs)",
)
def test_a_full_disk_fails_closed_and_loses_no_answered_event(
    up: Running, grafana: None, tmp_path: Path
) -> None:
    """The spool's disk fills up under load: requests are refused (503) or cut, never answered
    unrecorded; once there is room again the gateway carries on by itself, and every answer
    a client saw has its event in the control plane, once."""
    assert up.admin_password is not None
    port, data = free_port(), tmp_path / "gateway"
    spool = data / "spool"
    _mount_tmpfs(spool, "96k")  # room for about a hundred events
    gateway = start_gateway(up, port, data)
    try:
        wait_for_port(port)
        ca = up.data_dir / "ca.pem"
        wait_for_route(ca, f"https://{HOST}:{port}/")
        token = app_token(up.url, ca, up.admin_password, "grafana", f"https://{HOST}:{port}/")
        trust = ssl.create_default_context(cafile=str(ca))
        headers = {"host": HOST, "cookie": f"__Host-zerogate={token}"}
        answered: list[int] = []
        refused: list[str] = []
        cut = 0
        n = 0

        def load(until: int, refusals: int, seconds: float) -> None:
            nonlocal cut, n
            deadline = time.monotonic() + seconds
            with httpx.Client(verify=trust, headers=headers, timeout=5) as client:
                while time.monotonic() < deadline:
                    n += 1
                    try:
                        response = client.get(f"https://127.0.0.1:{port}/echo/{n}")
                    except httpx.HTTPError:
                        cut += 1  # no answer: fine, as long as it is not a lost event
                        continue
                    if response.status_code == 200:
                        answered.append(n)
                    else:
                        assert response.status_code == 503, response.text
                        assert response.headers["retry-after"] == "5"
                        refused.append(response.text)
                    if len(answered) >= until and len(refused) >= refusals:
                        return

        load(until=1, refusals=20, seconds=60)
        assert len(refused) >= 20, f"never refused ({len(answered)} answered, {cut} cut)"
        assert "cannot record audit events" in refused[0]
        assert gateway.poll() is None, "the gateway died when its disk filled"
        # The control plane hears of it: the gateway's status, its metrics, the audit log.
        reported = wait_for_reported_spool(up, accepting=False)
        assert reported["refusal"] == "the audit spool cannot be written"
        assert reported["stale"] is False
        shown = admin(up, up.token, "gateway", "status")
        assert shown.returncode == 0, shown.stderr
        assert "killable" in shown.stdout and "refusing" in shown.stdout

        subprocess.run(["mount", "-o", "remount,size=16m", str(spool)], check=True)
        before = len(answered)
        load(until=before + 50, refusals=0, seconds=30)
        assert len(answered) >= before + 50, "the gateway did not recover when room came back"
        assert wait_for_reported_spool(up, accepting=True)["refusal"] is None
        assert spool_changes(up) == [
            ("gateway.refusing", "gateway/killable/0", "failure"),
            ("gateway.accepting", "gateway/killable/0", "success"),
        ]

        # Full again, and this time killed while it is: what it held in memory dies with it,
        # and none of that may be an answer a client saw.
        size = f"remount,size={_used_kib(spool) + 64}k"
        subprocess.run(["mount", "-o", size, str(spool)], check=True)
        refused.clear()
        load(until=0, refusals=20, seconds=60)
        assert len(refused) >= 20, "the second filling was never refused"
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
        subprocess.run(["mount", "-o", "remount,size=16m", str(spool)], check=True)
        gateway = start_gateway(up, port, data)
        wait_for_port(port)
        before = len(answered)
        load(until=before + 50, refusals=0, seconds=30)
        assert len(answered) >= before + 50, "the restarted gateway answered too little"

        assert_each_recorded_once(up, answered)
    finally:
        gateway.terminate()
        gateway.wait(15)
        subprocess.run(["umount", "--lazy", str(spool)], check=False)
