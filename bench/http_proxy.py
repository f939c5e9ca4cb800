"""Benchmark: HTTP reverse-proxy throughput and latency on loopback, zerogate beside its peers.

Method. One run starts everything itself, on free 127.0.0.1 ports, each server from its own
directory under one temporary scratch directory, and stops each by its PID at the end (also on
an error or Ctrl-C). The upstream is nginx (its own instance, one worker, `keepalive_requests`
1,000,000) serving `/small` (a 20-byte `return 200`) and `/64k` (a 65,536-byte file). `wrk`
(`-t2 -c64 --latency`, every request carrying the same `Cookie: zg_session=<ES256 JWT>`) then
measures, one scenario at a time, each after a 1 s warm-up:

  (a) direct to the upstream: the floor every proxy adds to;
  (b) nginx as a plain reverse proxy (upstream keep-alive pool of 64);
  (c) nginx `auth_request` to `bench/http_authorizer.py` (asyncio + uvloop + httptools, joserfc
      ES256 verification, verified tokens cached): the usual do-it-yourself zero-trust set-up;
  (d) Caddy `reverse_proxy` with `forward_auth` to the same authorizer;
  (e) the zerogate gateway, started by `start_zerogate_gateway` below (not built yet).

Every server under test gets one worker: nginx `worker_processes 1`, Caddy `GOMAXPROCS=1`, the
authorizer one process. Before measuring, each scenario must answer 200 with the full body when
given the token, and (c), (d) and (e) must refuse a request without it (401/403); otherwise the
run stops. The load generator and the servers share the machine's cores: read the figures
relative to each other, and only from the same run.

Targets (issue): zerogate (e) at least 1.5x the requests/s of (c) and at least 70 % of (b), and
adding under 1 ms to the p50 latency of (a) at 64 connections.

Run: `make bench-http` (installs wrk, nginx and Caddy first) or
`.venv/bin/python bench/http_proxy.py [--quick | --duration S] [--connections N]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import httpx
from harness import free_port
from rich.console import Console
from rich.table import Table

from zerogate.core.token_keys import jwks, new_signing_key, public_jwk
from zerogate.core.tokens import AccessClaims, issue_access_token, new_token_id

ISSUER = "https://control.zerogate.test"
AUDIENCE = "bench-upstream"
COOKIE = "zg_session"
SMALL_BODY = "hello from upstream\n"  # 20 bytes
LARGE_BYTES = 65536
SIZES: dict[str, tuple[str, int]] = {  # name: (path, body bytes)
    "small": ("/small", len(SMALL_BODY)),
    "64k": ("/64k", LARGE_BYTES),
}
THREADS = 2
WARMUP_SECONDS = 1
START_TIMEOUT = 15.0
AUTHORIZER = Path(__file__).with_name("http_authorizer.py")
console = Console(width=None if sys.stdout.isatty() else 100)  # a log or README: not 80

Stop = Callable[[], None]


class BenchError(Exception):
    """A scenario did not start or did not answer as it must; the run stops."""


@dataclass(frozen=True)
class Tools:
    nginx: str
    caddy: str
    wrk: str


@dataclass(frozen=True)
class Env:
    """What every scenario gets: the scratch directory, the upstream and the authorizer."""

    scratch: Path
    tools: Tools
    upstream_port: int
    authz_port: int
    token: str


@dataclass(frozen=True)
class Running:
    port: int
    stop: Stop


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str  # short, for the table
    about: str  # for the legend above it
    start: Callable[[Env], Running | None]  # None: not available (yet)
    auth: bool  # must refuse a request without the token


@dataclass(frozen=True)
class Measurement:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx responses plus socket errors


# --- the zerogate gateway (e) ------------------------------------------------------------------


def start_zerogate_gateway(workdir: Path, upstream_port: int, listen_port: int) -> Stop | None:
    """Start the zerogate gateway for scenario (e); return its stop function, or None if absent.

    Contract for when the gateway exists: serve plain HTTP/1.1 on 127.0.0.1:`listen_port`,
    proxy every path to 127.0.0.1:`upstream_port`, and admit a request only with a valid
    `Cookie: zg_session=<token>`. `workdir` (created, empty but for `jwks.json`) is the
    gateway's own: `jwks.json` is the key set that signed the token (issuer `ISSUER`, audience
    `AUDIENCE`, `typ` at+jwt, verifiable with `zerogate.core.tokens.TokenVerifier`). Start it
    with `spawn`, wait with `wait_listening`, return `stopper(proc)`: the harness checks it
    (200 with the token, 401/403 without) and measures it like the others.
    """
    del workdir, upstream_port, listen_port  # the gateway is not built yet
    return None


def _start_zerogate(env: Env) -> Running | None:
    workdir = env.scratch / "zerogate"
    workdir.mkdir()
    shutil.copy(env.scratch / "jwks.json", workdir / "jwks.json")
    port = free_port()
    stop = start_zerogate_gateway(workdir, env.upstream_port, port)
    return None if stop is None else Running(port, stop)


# --- processes ---------------------------------------------------------------------------------


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a server in the foreground, its output to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
        )


def stopper(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> Stop:
    """A function that stops `proc` by its PID: `sig`, then SIGKILL after 10 s."""

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    return stop


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Return once 127.0.0.1:`port` accepts connections; BenchError if `proc` dies first."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{proc.args!r} exited with {proc.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise BenchError(f"nothing listens on 127.0.0.1:{port} after {START_TIMEOUT} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def _server_dir(env: Env, name: str) -> Path:
    path = env.scratch / name
    (path / "tmp").mkdir(parents=True)
    return path


# --- nginx: upstream (all), plain proxy (b), auth_request (c) ----------------------------------


def nginx_conf(root: Path, http: str) -> str:
    temp = " ".join(
        f"{kind}_temp_path {root}/tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    {temp}
    keepalive_requests 1000000;
    keepalive_timeout 300s;
{http}
}}
"""


def start_nginx(tools: Tools, root: Path, http: str, port: int) -> Stop:
    conf = root / "nginx.conf"
    conf.write_text(nginx_conf(root, http))
    log = root / "stderr.log"
    proc = spawn(
        [tools.nginx, "-p", f"{root}/", "-c", str(conf), "-e", str(root / "error.log")], log
    )
    stop = stopper(proc)
    try:
        wait_listening(port, proc, log)
    except BaseException:
        stop()
        raise
    return stop


def start_upstream(tools: Tools, root: Path, port: int) -> Stop:
    (root / "64k.bin").write_bytes(os.urandom(LARGE_BYTES))
    body = SMALL_BODY.replace("\n", "\\n")
    http = f"""    sendfile on;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /small {{ default_type text/plain; return 200 "{body}"; }}
        location = /64k {{ default_type application/octet-stream; alias {root}/64k.bin; }}
    }}"""
    return start_nginx(tools, root, http, port)


def _nginx_proxy_http(env: Env, port: int, locations: str, upstreams: str = "") -> str:
    return f"""    upstream origin {{
        server 127.0.0.1:{env.upstream_port};
        keepalive 64; keepalive_requests 1000000; keepalive_timeout 300s;
    }}
{upstreams}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffer_size 16k;
    proxy_buffers 8 16k;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
{locations}
    }}"""


def start_nginx_proxy(env: Env) -> Running:
    port = free_port()
    locations = "        location / { proxy_pass http://origin; }"
    http = _nginx_proxy_http(env, port, locations)
    return Running(port, start_nginx(env.tools, _server_dir(env, "nginx-proxy"), http, port))


def start_nginx_auth(env: Env) -> Running:
    port = free_port()
    upstreams = f"""    upstream authz {{
        server 127.0.0.1:{env.authz_port};
        keepalive 64; keepalive_requests 1000000; keepalive_timeout 300s;
    }}"""
    locations = """        location = /_authz {
            internal;
            proxy_pass http://authz/authz;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Connection "";
            proxy_set_header X-Original-URI $request_uri;
        }
        location / {
            auth_request /_authz;
            auth_request_set $user $upstream_http_x_user;
            proxy_set_header X-User $user;
            proxy_set_header Connection "";
            proxy_pass http://origin;
        }"""
    http = _nginx_proxy_http(env, port, locations, upstreams)
    return Running(port, start_nginx(env.tools, _server_dir(env, "nginx-auth"), http, port))


# --- Caddy (d) ---------------------------------------------------------------------------------


def caddyfile(env: Env, port: int) -> str:
    transport = """transport http {
			keepalive 5m
			keepalive_idle_conns 128
			keepalive_idle_conns_per_host 64
		}"""
    return f"""{{
	admin off
	default_bind 127.0.0.1
	auto_https off
}}

http://127.0.0.1:{port} {{
	forward_auth 127.0.0.1:{env.authz_port} {{
		uri /authz
		copy_headers X-User
		{transport}
	}}
	reverse_proxy 127.0.0.1:{env.upstream_port} {{
		{transport}
	}}
}}
"""


def start_caddy(env: Env) -> Running:
    root, port = _server_dir(env, "caddy"), free_port()
    config = root / "Caddyfile"
    config.write_text(caddyfile(env, port))
    home = {"HOME": str(root), "XDG_DATA_HOME": str(root / "data")}
    caddy_env = os.environ | home | {"XDG_CONFIG_HOME": str(root / "config"), "GOMAXPROCS": "1"}
    log = root / "caddy.log"
    argv = [env.tools.caddy, "run", "--config", str(config), "--adapter", "caddyfile"]
    proc = spawn(argv, log, caddy_env)
    stop = stopper(proc)
    try:
        wait_listening(port, proc, log)
    except BaseException:
        stop()
        raise
    return Running(port, stop)


# --- the authorizer and the token ---------------------------------------------------------------


def start_authorizer(scratch: Path, port: int) -> Stop:
    log = scratch / "authorizer.log"
    argv = [sys.executable, str(AUTHORIZER), "--port", str(port)]
    proc = spawn([*argv, "--jwk", str(scratch / "authz-jwk.json")], log)
    stop = stopper(proc)
    try:
        wait_listening(port, proc, log)
    except BaseException:
        stop()
        raise
    return stop


def make_token(scratch: Path, lifetime: timedelta) -> str:
    """A fresh key pair (public halves written to the scratch directory) and a token it signed."""
    now = datetime.now(UTC)
    key = new_signing_key(now)
    (scratch / "authz-jwk.json").write_text(json.dumps(public_jwk(key)))
    (scratch / "jwks.json").write_text(json.dumps(jwks([key])))
    claims = AccessClaims(
        issuer=ISSUER,
        subject="user:alice",
        audience=AUDIENCE,
        session_id="sess-bench-http",
        principal_kind="person",
        username="alice",
        groups=("engineering",),
        auth_time=now,
        mfa_time=now,
        amr=("pwd", "otp", "mfa"),
        issued_at=now,
        expires_at=now + lifetime,
        token_id=new_token_id(),
        cnf_x5t_s256=None,
    )
    return issue_access_token(key, claims)


def start_direct(env: Env) -> Running:
    return Running(env.upstream_port, lambda: None)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("a", "direct", "wrk straight to the upstream nginx", start_direct, auth=False),
    Scenario(
        "b",
        "nginx proxy",
        "nginx reverse proxy, 1 worker, upstream keep-alive pool 64",
        start_nginx_proxy,
        auth=False,
    ),
    Scenario(
        "c",
        "nginx auth_request",
        "(b) + auth_request to the Python authorizer (uvloop, httptools, joserfc, cached)",
        start_nginx_auth,
        auth=True,
    ),
    Scenario(
        "d",
        "Caddy forward_auth",
        "Caddy reverse_proxy + forward_auth to the same authorizer, GOMAXPROCS=1",
        start_caddy,
        auth=True,
    ),
    Scenario("e", "zerogate", "the zerogate gateway", _start_zerogate, auth=True),
)


# --- checks and measurement ---------------------------------------------------------------------


def check(scenario: Scenario, port: int, token: str) -> None:
    """BenchError unless the scenario serves both sizes with the token and refuses without it."""
    cookie = {"Cookie": f"{COOKIE}={token}"}
    with httpx.Client(trust_env=False, timeout=5) as client:
        for path, size in SIZES.values():
            url = f"http://127.0.0.1:{port}{path}"
            response = client.get(url, headers=cookie)
            if response.status_code != 200 or len(response.content) != size:
                raise BenchError(
                    f"({scenario.key}) GET {path} with the token: {response.status_code}, "
                    f"{len(response.content)} bytes (want 200, {size} bytes)"
                )
            if not scenario.auth:
                continue
            for headers in ({}, {"Cookie": f"{COOKIE}={token[:-4]}AAAA"}):
                refused = client.get(url, headers=headers).status_code
                if refused not in (401, 403):
                    what = "a forged token" if headers else "no token"
                    raise BenchError(f"({scenario.key}) GET {path} with {what}: {refused}")


def wrk_argv(wrk: str, url: str, seconds: int, connections: int, header: str) -> list[str]:
    return [
        wrk,
        f"-t{THREADS}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        url,
        "-H",
        header,
    ]


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(output: str) -> Measurement:
    rate = _RATE.search(output)
    percentiles = {q: float(v) * _UNIT_MS[unit] for q, v, unit in _PERCENTILE.findall(output)}
    if rate is None or set(percentiles) != {"50", "99"}:
        raise BenchError(f"cannot read wrk's output:\n{output}")
    errors = sum(int(n) for n in _NON_2XX.findall(output))
    for match in _SOCKET_ERRORS.finditer(output):
        errors += sum(int(n) for n in match.groups())
    return Measurement(float(rate.group(1)), percentiles["50"], percentiles["99"], errors)


def run_wrk(argv: list[str], seconds: int) -> Measurement:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


def measure(env: Env, port: int, path: str, args: argparse.Namespace) -> Measurement:
    url, header = f"http://127.0.0.1:{port}{path}", f"Cookie: {COOKIE}={env.token}"
    run_wrk(wrk_argv(env.tools.wrk, url, WARMUP_SECONDS, args.connections, header), WARMUP_SECONDS)
    argv = wrk_argv(env.tools.wrk, url, args.duration, args.connections, header)
    return run_wrk(argv, args.duration)


Results = dict[tuple[str, str], Measurement | None]  # (scenario key, size) -> None: not built


def run_scenario(env: Env, scenario: Scenario, args: argparse.Namespace, results: Results) -> None:
    running = scenario.start(env)
    if running is None:
        console.print(f"({scenario.key}) {scenario.label}: not built yet, skipped")
        results.update({(scenario.key, size): None for size in SIZES})
        return
    try:
        check(scenario, running.port, env.token)
        for size, (path, _) in SIZES.items():
            result = measure(env, running.port, path, args)
            results[scenario.key, size] = result
            console.print(
                f"({scenario.key}) {scenario.label}, {size}: "
                f"{result.requests_per_second:,.0f} req/s, p50 {result.p50_ms:.2f} ms"
            )
    finally:
        running.stop()


# --- report -------------------------------------------------------------------------------------


def results_table(size: str, results: Results, connections: int) -> Table:
    body = f"{SIZES[size][1]:,} bytes"
    table = Table(title=f"HTTP/1.1 on loopback, {body} responses, {connections} connections")
    for column in ("scenario", "requests/s", "p50", "p99", "vs (b)", "p50 added over (a)"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    base, direct = results.get(("b", size)), results.get(("a", size))
    for scenario in SCENARIOS:
        result = results.get((scenario.key, size))
        name = f"({scenario.key}) {scenario.label}"
        if result is None:
            table.add_row(name, "not built yet", "-", "-", "-", "-")
            continue
        ratio = f"{result.requests_per_second / base.requests_per_second:.2f}x" if base else "-"
        added = f"{result.p50_ms - direct.p50_ms:+.2f} ms" if direct else "-"
        table.add_row(
            name,
            f"{result.requests_per_second:,.0f}",
            f"{result.p50_ms:.2f} ms",
            f"{result.p99_ms:.2f} ms",
            ratio,
            added,
        )
    return table


def error_lines(size: str, results: Results) -> list[str]:
    """One warning per measurement that saw non-2xx/3xx responses or socket errors."""
    lines = []
    for scenario in SCENARIOS:
        result = results.get((scenario.key, size))
        if result is not None and result.errors:
            lines.append(
                f"[red]({scenario.key}): {result.errors:,} non-2xx/3xx responses or socket "
                "errors during the measurement[/red]"
            )
    return lines


def targets_line(size: str, results: Results) -> str:
    gateway = results.get(("e", size))
    a, b, c = (results.get((key, size)) for key in "abc")
    if gateway is None or a is None or b is None or c is None:
        return "targets for (e): not checked, the zerogate gateway is not built yet"
    rps = gateway.requests_per_second
    checks = [
        f">= 1.5x (c): {'met' if rps >= 1.5 * c.requests_per_second else 'MISSED'}",
        f">= 70 % of (b): {'met' if rps >= 0.7 * b.requests_per_second else 'MISSED'}",
        f"p50 added < 1 ms: {'met' if gateway.p50_ms - a.p50_ms < 1 else 'MISSED'}",
    ]
    return "targets for (e): " + "; ".join(checks)


def _version(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def print_header(tools: Tools, args: argparse.Namespace, token: str) -> None:
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else "python"
    console.print(f"command: {shlex.join([python, *sys.argv])}")
    template = wrk_argv("wrk", "URL", args.duration, args.connections, "Cookie: zg_session=TOKEN")
    console.print(f"load: {shlex.join(template)}  (TOKEN: ES256 JWT, {len(token)} characters)")
    console.print(
        f"      after a {WARMUP_SECONDS} s warm-up; URL = http://127.0.0.1:PORT/small|/64k"
    )
    console.print(f"machine: {os.cpu_count()} cores ({_cpu_model()}), {platform.platform()}")
    console.print(f"python: {platform.python_implementation()} {platform.python_version()}")
    nginx = _version([tools.nginx, "-v"]).removeprefix("nginx version: ")
    caddy = _version([tools.caddy, "version"])
    wrk = _version([tools.wrk, "-v"]).split(" Copyright")[0]
    console.print(f"peers: {nginx}, caddy {caddy}, {wrk}")
    authorizer = ", ".join(f"{name} {version(name)}" for name in ("uvloop", "httptools", "joserfc"))
    console.print(f"authorizer: {authorizer}")
    for scenario in SCENARIOS:
        console.print(f"  ({scenario.key}) {scenario.about}")


# --- main ---------------------------------------------------------------------------------------


def find_tools() -> Tools:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = {name: shutil.which(name, path=search) for name in ("nginx", "caddy", "wrk")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run scripts/install-bench-deps.sh as root")
    return Tools(**{name: str(path) for name, path in found.items()})


@contextlib.contextmanager
def scratch_directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="zerogate-bench-http-") as name:
        path = Path(name)
        path.chmod(0o755)  # nginx workers run as `nobody` when started by root
        yield path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--quick", action="store_true", help="3 s per measurement")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    args = parser.parse_args()
    if args.quick:
        args.duration = 3
    if args.duration < 1 or args.connections < THREADS:
        parser.error(f"--duration must be >= 1 and --connections >= {THREADS}")
    return args


def run(args: argparse.Namespace, tools: Tools, scratch: Path) -> Results:
    per_scenario = len(SIZES) * (args.duration + WARMUP_SECONDS + 30)
    token = make_token(scratch, timedelta(hours=1, seconds=len(SCENARIOS) * per_scenario))
    print_header(tools, args, token)
    upstream_port, authz_port = free_port(), free_port()
    results: Results = {}
    with contextlib.ExitStack() as servers:
        upstream_dir = scratch / "upstream"
        (upstream_dir / "tmp").mkdir(parents=True)
        servers.callback(start_upstream(tools, upstream_dir, upstream_port))
        servers.callback(start_authorizer(scratch, authz_port))
        env = Env(scratch, tools, upstream_port, authz_port, token)
        for scenario in SCENARIOS:
            run_scenario(env, scenario, args, results)
    return results


def main() -> None:
    args = parse_args()
    tools = find_tools()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop every server
    try:
        with scratch_directory() as scratch:
            results = run(args, tools, scratch)
    except BenchError as error:
        console.print(f"[red]bench-http failed:[/red] {error}")
        raise SystemExit(1) from None
    for size in SIZES:
        console.print()
        console.print(results_table(size, results, args.connections))
        for line in [*error_lines(size, results), targets_line(size, results)]:
            console.print(line)


if __name__ == "__main__":
    main()
