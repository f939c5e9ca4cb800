"""Tunnels through a connector, side by side with a direct connection and socat, in one run.

Usage: `make bench-connector` (or `.venv/bin/python bench/connector.py [--quick]`).

TCP, measured by this script's own client (the same code for every path):
- bulk: one connection reads `--bytes` from a byte source until EOF; MB/s (best of 3);
- round trip: 64 bytes to an echo and back, `--rounds` times on one connection; p50 and p99.
Paths: (a) direct to the target; (b) through `socat` (a plain TCP relay); (c) through the
zerogate gateway and a connector: the client opens TLS to the gateway and sends `CONNECT` for
the TCP app, the gateway opens a stream on the connector's TLS 1.3 mux tunnel, the connector
dials the target. So (c) carries two TLS hops (client-gateway, gateway-connector) and two
extra processes that (b) has not.

HTTP, measured by wrk (64 connections): requests per second for nginx's small page, direct and
through the gateway + connector (and through the gateway alone, for the connector's share).

Every server gets its own process: the target (bench/tcp_target.py, uvloop), socat (forks one
process per connection), `zerogate up` with one gateway worker, `zerogate connector`. All share
this machine's cores with the client, so figures are relative: read the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from http_proxy import (
    SIZES,
    BenchError,
    Tools,
    find_tools,
    free_port,
    parse_wrk,
    spawn,
    spawn_listening,
    start_upstream,
    stopper,
    wait_listening,
)
from rich.console import Console
from rich.table import Table

ZEROGATE = str(Path(sys.executable).parent / "zerogate")
BENCH = Path(__file__).parent
DOMAIN = "zerogate.localhost"
console = Console(width=120)
Connect = Callable[[int], socket.socket]  # target port -> a connected socket to it


@dataclass
class Zerogate:
    proc: subprocess.Popen[bytes]
    url: str
    ca: Path
    admin_token: str
    password: str
    gateway_port: int
    tunnel_port: int


# --- the paths ---------------------------------------------------------------------------


def direct(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def through_gateway(zg: Zerogate, token: str, hostnames: dict[int, str]) -> Connect:
    context = ssl.create_default_context(cafile=str(zg.ca))

    def connect(port: int) -> socket.socket:
        host = hostnames[port]
        raw = socket.create_connection(("127.0.0.1", zg.gateway_port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = context.wrap_socket(raw, server_hostname=host)
        sock.sendall(
            f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Proxy-Authorization: Bearer {token}\r\n\r\n".encode()
        )
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = sock.recv(1)  # byte by byte: nothing of the tunnel is read here
            if not byte:
                raise BenchError(f"(c) the gateway closed the CONNECT: {head!r}")
            head += byte
        if not head.startswith(b"HTTP/1.1 200"):
            raise BenchError(f"(c) CONNECT refused: {head[:200]!r}")
        return sock

    return connect


# --- the measurements --------------------------------------------------------------------


def bulk(connect: Connect, port: int, total: int) -> float:
    """MB/s reading `total` bytes from the source (best of three)."""
    rates = []
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    for _ in range(3):
        start = time.perf_counter()
        got = 0
        with connect(port) as sock:
            while n := sock.recv_into(view):
                got += n
        elapsed = time.perf_counter() - start
        if got != total:
            raise BenchError(f"read {got} bytes of {total}")
        rates.append(total / elapsed / 1e6)
    return max(rates)


def round_trips(connect: Connect, port: int, rounds: int) -> tuple[float, float]:
    """(p50, p99) in µs of 64 bytes there and back, on one connection."""
    payload = os.urandom(64)
    times = []
    with connect(port) as sock:
        for _ in range(100):  # warm-up
            _exchange(sock, payload)
        for _ in range(rounds):
            start = time.perf_counter()
            _exchange(sock, payload)
            times.append((time.perf_counter() - start) * 1e6)
    quantiles = statistics.quantiles(times, n=100)
    return quantiles[49], quantiles[98]


def _exchange(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(payload)
    got = 0
    while got < len(payload):
        chunk = sock.recv(len(payload) - got)
        if not chunk:
            raise BenchError("the echo closed the connection")
        got += len(chunk)


def wrk(tools: Tools, url: str, seconds: int, headers: list[str]) -> tuple[float, float, float]:
    argv = [tools.wrk, "-t2", "-c64", f"-d{seconds}s", "--latency", url]
    for header in headers:
        argv += ["-H", header]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    result = parse_wrk(done.stdout)
    if result.errors:
        raise BenchError(f"wrk saw {result.errors} errors on {url}:\n{done.stdout}")
    return result.requests_per_second, result.p50_ms, result.p99_ms


# --- zerogate ------------------------------------------------------------------------------


def start_zerogate(root: Path) -> Zerogate:
    control, gateway, tunnel = free_port(), free_port(), free_port()
    log = root / "up.log"
    argv = [
        ZEROGATE, "up", "--data-dir", str(root / "data"), "--control-port", str(control),
        "--gateway-port", str(gateway), "--tunnel-port", str(tunnel), "--gateway-workers", "1",
    ]  # fmt: skip
    proc = spawn(argv, log, os.environ | {"COLUMNS": "200"})
    deadline = time.monotonic() + 60
    while "zerogate admin app list" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"zerogate up did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)
    text = log.read_text()
    token = text.split("ZEROGATE_TOKEN=", 1)[1].split()[0]
    password = text.split("password ", 1)[1].split()[0]
    zg = Zerogate(
        proc, f"https://localhost:{control}", root / "data" / "ca.pem", token, password,
        gateway, tunnel,
    )  # fmt: skip
    wait_listening(gateway, proc, log)
    return zg


def _ok(response: httpx.Response, what: str) -> httpx.Response:
    if response.is_error:
        raise BenchError(f"(c) {what}: {response.status_code} {response.text[:500]}")
    return response


def configure(zg: Zerogate, apps: dict[str, tuple[str, str]]) -> str:
    """Apps (name: kind, target) through group `bench` (but `*-direct`, which the gateway
    dials itself), the policy, and a connector's enrollment token."""
    context = ssl.create_default_context(cafile=str(zg.ca))
    headers = {"authorization": f"Bearer {zg.admin_token}"}
    with httpx.Client(base_url=f"{zg.url}/api/v1", verify=context, headers=headers) as api:
        _ok(api.post("/connector-groups", json={"name": "bench"}), "connector group")
        _ok(api.post("/connectors", json={"name": "c1", "connector_group": "bench"}), "connector")
        for name, (kind, target) in apps.items():
            app = {"name": name, "kind": kind, "hostname": f"{name}.{DOMAIN}", "target": target}
            group = None if name.endswith("-direct") else "bench"
            _ok(api.post("/apps", json={**app, "connector_group": group}), f"app {name}")
        policy = (
            "rules:\n  - name: admins\n    who: {groups: [admins]}\n"
            f"    what: {{apps: [{', '.join(apps)}]}}\n"
        )
        _ok(api.post("/policy/versions", json={"source": policy}), "policy")
        made = _ok(api.post("/connectors/c1/enrollment"), "enrollment token")
    return str(made.json()["token"])


def tokens(zg: Zerogate, audiences: list[str]) -> dict[str, str]:
    """Bearer tokens for each app, minted after signing in at the portal."""
    context = ssl.create_default_context(cafile=str(zg.ca))
    with httpx.Client(base_url=zg.url, verify=context, follow_redirects=False) as web:
        form = web.get("/portal/login").text
        csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        login = {"username": "admin", "password": zg.password, "csrf": csrf}
        _ok(web.post("/portal/login", data=login), "sign-in")
        minted = {}
        for audience in audiences:
            body = {"audience": audience, "csrf": csrf}
            minted[audience] = _ok(web.post("/portal/token", data=body), "token").json()[
                "access_token"
            ]
    return minted


def check_web(zg: Zerogate, url: str, app: str, token: str) -> None:
    """The web app answers 200 through the gateway before wrk starts."""
    context = ssl.create_default_context(cafile=str(zg.ca))
    headers = {"host": f"{app}.{DOMAIN}", "cookie": f"__Host-zerogate={token}"}
    deadline, status = time.monotonic() + 30, 0
    while time.monotonic() < deadline:
        answer = httpx.get(url, headers=headers, verify=context, trust_env=False)
        status = answer.status_code
        if status == 200:
            return
        time.sleep(0.2)
    raise BenchError(f"(c) the web app answered {status} through the gateway")


def wait_connected(zg: Zerogate, connect: Connect, port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with connect(port):
                return
        except (BenchError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- the run -------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=1 << 30, help="bytes per bulk transfer")
    parser.add_argument("--rounds", type=int, default=5000, help="64-byte round trips")
    parser.add_argument("--seconds", type=int, default=10, help="wrk seconds per measurement")
    parser.add_argument("--quick", action="store_true", help="256 MiB, 2000 rounds, 3 s")
    args = parser.parse_args()
    if args.quick:
        args.bytes, args.rounds, args.seconds = 256 << 20, 2000, 3
    return args


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="zerogate-bench-connector-") as name:
        path = Path(name)
        path.chmod(0o755)  # nginx workers run as `nobody` when started by root
        yield path


def run(args: argparse.Namespace, tools: Tools, root: Path, servers: contextlib.ExitStack) -> None:
    socat = shutil.which("socat")
    if socat is None:
        raise BenchError("socat is missing: run scripts/install-bench-deps.sh as root")
    source, echo, web = free_port(), free_port(), free_port()
    target = spawn_listening(
        [sys.executable, str(BENCH / "tcp_target.py"), str(source), str(echo), str(args.bytes)],
        root / "target.log",
        echo,
    )
    servers.callback(stopper(target))
    (root / "web" / "tmp").mkdir(parents=True)
    upstream = start_upstream(tools, root / "web", web)
    servers.callback(stopper(upstream))
    relays = {}
    for port in (source, echo):
        relay_port = free_port()
        proc = spawn_listening(
            [
                socat,
                f"TCP-LISTEN:{relay_port},fork,reuseaddr,nodelay",
                f"TCP:127.0.0.1:{port},nodelay",
            ],
            root / f"socat-{port}.log",
            relay_port,
        )
        servers.callback(stopper(proc))
        relays[port] = relay_port

    zg = start_zerogate(root)
    servers.callback(stopper(zg.proc, timeout=30))  # type: ignore[arg-type]
    enrollment = configure(
        zg,
        {
            "bulk": ("tcp", f"127.0.0.1:{source}"),
            "echo": ("tcp", f"127.0.0.1:{echo}"),
            "web": ("http", f"http://127.0.0.1:{web}"),
            "web-direct": ("http", f"http://127.0.0.1:{web}"),
        },
    )
    connector = spawn(
        [ZEROGATE, "connector", "--control", zg.url, "--ca-cert", str(zg.ca),
         "--state-dir", str(root / "connector"), "--gateway", f"127.0.0.1:{zg.tunnel_port}",
         "--allow", "127.0.0.1/32", "--log-level", "warning"],
        root / "connector.log",
        os.environ | {"ZEROGATE_ENROLL_TOKEN": enrollment},
    )  # fmt: skip
    servers.callback(stopper(connector))
    minted = tokens(zg, ["bulk", "echo", "web", "web-direct"])
    hostnames = {source: f"bulk.{DOMAIN}", echo: f"echo.{DOMAIN}"}
    gateway = through_gateway(zg, minted["bulk"], hostnames)
    wait_connected(zg, gateway, source)
    echo_gateway = through_gateway(zg, minted["echo"], hostnames)

    paths: list[tuple[str, Connect, Connect]] = [
        ("(a) direct", direct, direct),
        ("(b) socat", lambda p: direct(relays[p]), lambda p: direct(relays[p])),
        ("(c) gateway + connector (TLS mux)", gateway, echo_gateway),
    ]
    tcp: dict[str, tuple[float, float, float]] = {}
    for label, for_bulk, for_echo in paths:
        console.print(f"{label}: bulk {args.bytes >> 20} MiB x3, {args.rounds} round trips …")
        rate = bulk(for_bulk, source, args.bytes)
        p50, p99 = round_trips(for_echo, echo, args.rounds)
        tcp[label] = (rate, p50, p99)
    print_tcp(tcp)

    small = SIZES["small"][0]
    url = f"https://127.0.0.1:{zg.gateway_port}{small}"
    http_rows = {"direct to nginx": wrk(tools, f"http://127.0.0.1:{web}{small}", args.seconds, [])}
    for label, app in (("gateway, no connector", "web-direct"), ("gateway + connector", "web")):
        check_web(zg, url, app, minted[app])
        # wrk replaces its own Host header only when given one spelt exactly "Host".
        headers = [f"Host: {app}.{DOMAIN}", f"Cookie: __Host-zerogate={minted[app]}"]
        http_rows[label] = wrk(tools, url, args.seconds, headers)
    print_http(http_rows)
    console.print(
        f"revocation: the tunnel was cut {revocation_ms(zg, echo_gateway, echo):.0f} ms after the API call"
    )


def revocation_ms(zg: Zerogate, connect: Connect, port: int) -> float:
    """From `POST /connectors/c1/revoke` returning to the first CONNECT the gateway refuses."""
    context = ssl.create_default_context(cafile=str(zg.ca))
    headers = {"authorization": f"Bearer {zg.admin_token}"}
    with httpx.Client(base_url=f"{zg.url}/api/v1", verify=context, headers=headers) as api:
        _ok(api.post("/connectors/c1/revoke"), "revoke")
    revoked = time.perf_counter()
    while time.perf_counter() - revoked < 10:
        try:
            with connect(port):
                pass
        except BenchError:
            return (time.perf_counter() - revoked) * 1000
        time.sleep(0.005)
    raise BenchError("the revoked connector still carried streams 10 s later")


def print_tcp(rows: dict[str, tuple[float, float, float]]) -> None:
    (direct_rate, direct_p50, _), (socat_rate, socat_p50, _) = list(rows.values())[:2]
    table = Table(title="TCP on loopback: bulk throughput and 64-byte round trips")
    for column in ("path", "MB/s", "vs socat", "RTT p50 µs", "RTT p99 µs", "p50 added over (a)"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for label, (rate, p50, p99) in rows.items():
        table.add_row(
            label, f"{rate:,.0f}", f"{rate / socat_rate:.2f}x", f"{p50:,.0f}", f"{p99:,.0f}",
            f"{(p50 - direct_p50) / 1000:+.3f} ms",
        )  # fmt: skip
    console.print(table)
    mux_rate, mux_p50, _ = rows["(c) gateway + connector (TLS mux)"]
    console.print(
        f"targets: mux throughput ≥ 50% of socat: {mux_rate / socat_rate:.0%} "
        f"({'met' if mux_rate >= socat_rate / 2 else 'missed'}); added round trip < 0.5 ms: "
        f"{(mux_p50 - direct_p50) / 1000:.3f} ms "
        f"({'met' if mux_p50 - direct_p50 < 500 else 'missed'}); socat adds "
        f"{(socat_p50 - direct_p50) / 1000:.3f} ms; direct {direct_rate:,.0f} MB/s"
    )


def print_http(rows: dict[str, tuple[float, float, float]]) -> None:
    base = rows["direct to nginx"][0]
    table = Table(title="HTTP/1.1, small responses, 64 connections (wrk)")
    for column in ("path", "req/s", "vs direct", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for label, (rate, p50, p99) in rows.items():
        table.add_row(label, f"{rate:,.0f}", f"{rate / base:.2f}x", f"{p50:.2f}", f"{p99:.2f}")
    console.print(table)


def main() -> None:
    args = parse_args()
    tools = find_tools()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop every server
    console.print(
        f"bench/connector.py on {platform.node()} ({os.cpu_count()} cores), "
        f"python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )
    try:
        with scratch() as root, contextlib.ExitStack() as servers:
            try:
                run(args, tools, root, servers)
            except BenchError as error:
                logs = [root / "connector.log", root / "up.log"]
                tails = "".join(
                    f"\n--- {log.name}:\n" + "\n".join(log.read_text().splitlines()[-15:])
                    for log in logs
                    if log.exists()
                )
                raise BenchError(f"{error}{tails}") from None
    except BenchError as error:
        console.print(f"[red]bench-connector failed:[/red] {error}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
