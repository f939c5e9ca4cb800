"""Benchmark: HTTP reverse-proxy throughput and latency on loopback, zerogate beside its peers.

Method. One run starts everything itself, on free 127.0.0.1 ports, each server from its own
directory under one temporary scratch directory, and stops each by its PID at the end (also on
an error or Ctrl-C). The upstream is nginx (its own instance, one worker, `keepalive_requests`
1,000,000, plain HTTP) serving `/small` (a 20-byte `return 200`) and `/64k` (a 65,536-byte
file). `wrk` (`-t2 -c64 --latency`, every request carrying the scenario's session cookie) then
measures, one scenario at a time, each after a 1 s warm-up:

  (a) direct to the upstream, plain HTTP: the floor every proxy adds to;
  (b) nginx as a plain reverse proxy (upstream keep-alive pool of 64);
  (c) nginx `auth_request` to `bench/http_authorizer.py` (asyncio + uvloop + httptools, joserfc
      ES256 verification, verified tokens cached): the usual do-it-yourself zero-trust set-up;
  (d) Caddy `reverse_proxy` with `forward_auth` to the same authorizer;
  (e) the zerogate gateway of a real `zerogate up` (control plane + gateway, auditing on),
      holding 1,001 apps, 201 groups and a 1,000-rule policy; the cookie is the token the
      portal issued to the signed-in `admin`, as a browser would hold it.
  (f) a reference, not a peer: `bench/bare_proxy.py`, the least a uvloop + httptools TLS proxy
      with a verified-token cache can do (no policy, no audit, no checks), in as many
      processes as (e): the ceiling of (e)'s architecture on this machine.

After each of (e)'s windows the run waits until the control plane has stored the window's
audit events, and prints the CPU per request of window and drain together: the control plane
keeps storing after wrk stops, which the cores busy during the window do not count.

TLS. The zerogate gateway speaks only HTTPS, so (b)-(f) all terminate TLS (wrk negotiates
TLS 1.3 with each; (b)-(d) use a P-256 certificate for 127.0.0.1 and *.zerogate.localhost
from a throwaway CA, (e) the P-256 certificate `zerogate up` issues itself); (a) stays plain
HTTP, the baseline of added latency, so "p50 added over (a)" includes the TLS record layer.
Every proxy reaches the upstream over plain HTTP. wrk keeps its connections open: handshakes
happen once per connection, in the warm-up.

The peers get one worker each: nginx `worker_processes 1`, Caddy `GOMAXPROCS=1`, the
authorizer one process. The zerogate gateway runs as `zerogate up` starts it (one event loop per
process; how many processes it started is printed when (e) is checked), beside its control
plane, which ingests the audit events. Before measuring, each scenario must answer 200 with the full body when given the
token, and (c), (d) must refuse a request without it or with a forged one (401/403), (e) send
it to the portal (302); otherwise the run stops. The CPU each process used during each
measurement is read from /proc (wrk's from getrusage) and printed as cores busy. The load
generator and the servers share the machine's cores: read the figures relative to each
other, and only from the same run.

Targets (issue): zerogate (e) at least 1.5x the requests/s of (c) and at least 70 % of (b), and
adding under 1 ms to the p50 latency of (a) at 64 connections. Beside them the run prints
the CPU budget the throughput targets leave the gateway: the machine's cores divided by the
rate they ask for, less what wrk, the upstream and the control plane spent per request in
(e); next to it, what the gateway and (f) used.

Run: `make bench-http` (installs wrk, nginx and Caddy first) or
`.venv/bin/python bench/http_proxy.py [--quick | --duration S] [--connections N] [--only KEYS]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import trustme
import yaml
from harness import ZEROGATE, free_port
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
BARE_PROXY = Path(__file__).with_name("bare_proxy.py")
console = Console(width=None if sys.stdout.isatty() else 100)  # a log or README: not 80

# The zerogate scenario (e): its app, and the organisation around it.
ZG_APP = "bench"
ZG_HOST = "bench.zerogate.localhost"
ZG_COOKIE = "__Host-zerogate"
ZG_APPS = 1000  # generated apps besides `bench`
ZG_GROUPS = 200  # generated groups besides `admins`
ZG_RULES = 1000  # rules in the policy, `bench`'s one included
ZG_ADMIN_GROUPS = ("admins", "group-007", "group-042", "group-133")
ZG_START_TIMEOUT = 60.0
ZG_READY_TIMEOUT = 30.0  # the gateway polls the snapshot every second
DRAIN_TIMEOUT = 120.0  # for (e)'s audit events to be stored after a window

Stop = Callable[[], None]
Processes = Callable[[], dict[str, list[int]]]  # role ("proxy", "side") -> PIDs, read when asked


class BenchError(Exception):
    """A scenario did not start or did not answer as it must; the run stops."""


@dataclass(frozen=True)
class Tools:
    nginx: str
    caddy: str
    wrk: str


@dataclass(frozen=True)
class TlsFiles:
    """The throwaway CA and the certificate (b)-(d) serve: 127.0.0.1, *.zerogate.localhost."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class Env:
    """What every scenario gets: the scratch directory, the upstream and the authorizer."""

    scratch: Path
    tools: Tools
    upstream_port: int
    upstream_pid: int
    authz_port: int
    authz_pid: int
    token: str
    tls: TlsFiles


def _no_processes() -> dict[str, list[int]]:
    return {}


@dataclass(frozen=True)
class Running:
    """A scenario ready to measure, and how a client must talk to it."""

    port: int
    stop: Stop
    ca: Path | None = None  # None: plain HTTP; else HTTPS, verified against this CA
    host: str | None = None  # a Host header to send (None: the URL's)
    cookie: str = COOKIE
    token: str | None = None  # None: the shared token (`Env.token`)
    refused: tuple[int, ...] = (401, 403)  # what a request without a valid token must get
    processes: Processes = _no_processes
    note: str = ""  # printed once it is checked
    stored_events: Callable[[], int] | None = None  # (e): access decisions stored so far

    @property
    def scheme(self) -> str:
        return "http" if self.ca is None else "https"


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str  # short, for the table
    about: str  # for the legend above it
    start: Callable[[Env], Running | None]  # None: not available
    auth: bool  # must refuse a request without the token


@dataclass(frozen=True)
class Measurement:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx responses plus socket errors
    requests: int = 0  # answered in the window
    cores: dict[str, float] = field(default_factory=dict)  # role -> CPU s per wall s
    drained: Drain | None = None  # (e): the audit events of the window, stored


@dataclass(frozen=True)
class Drain:
    """(e)'s audit trail after a window: every request's event stored, and what that cost."""

    events: int  # access decisions stored from the window's start until the drain ended
    seconds: float  # from the window's end until the last of them was stored
    cpu_us: dict[str, float]  # role -> CPU µs per request, window and drain together


# --- processes ---------------------------------------------------------------------------------


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a server in the foreground, its output to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
        )


def stopper(
    proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM, timeout: float = 10
) -> Stop:
    """A function that stops `proc` by its PID: `sig`, then SIGKILL after `timeout` s."""

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
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


def spawn_listening(
    argv: list[str], log: Path, port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`spawn`, then wait until it listens on `port`; stopped again if it never does."""
    proc = spawn(argv, log, env)
    try:
        wait_listening(port, proc, log)
    except BaseException:
        stopper(proc)()
        raise
    return proc


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def _server_dir(env: Env, name: str) -> Path:
    path = env.scratch / name
    (path / "tmp").mkdir(parents=True)
    return path


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on, or None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (nginx's workers, `zerogate up`'s gateway)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _proc_stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the living `pids` have used (their threads included)."""
    ticks = 0
    for pid in pids:
        fields = _proc_stat(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- TLS for (b)-(d) ---------------------------------------------------------------------------


def make_tls(scratch: Path) -> TlsFiles:
    """A throwaway CA and a P-256 certificate for 127.0.0.1 and *.zerogate.localhost."""
    authority = trustme.CA()  # ECDSA P-256 keys, as zerogate's own PKI issues
    leaf = authority.issue_cert("127.0.0.1", "*.zerogate.localhost")
    files = TlsFiles(
        scratch / "bench-ca.pem", scratch / "bench-cert.pem", scratch / "bench-key.pem"
    )
    authority.cert_pem.write_to_path(str(files.ca))
    files.cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(files.key))
    return files


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


def start_nginx(tools: Tools, root: Path, http: str, port: int) -> subprocess.Popen[bytes]:
    """Start nginx (master + one worker) and return its master process once it listens."""
    conf = root / "nginx.conf"
    conf.write_text(nginx_conf(root, http))
    log = root / "stderr.log"
    argv = [tools.nginx, "-p", f"{root}/", "-c", str(conf), "-e", str(root / "error.log")]
    return spawn_listening(argv, log, port)


def start_upstream(tools: Tools, root: Path, port: int) -> subprocess.Popen[bytes]:
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
        listen 127.0.0.1:{port} ssl backlog=4096;
        ssl_certificate {env.tls.cert};
        ssl_certificate_key {env.tls.key};
        ssl_protocols TLSv1.2 TLSv1.3;
{locations}
    }}"""


def _nginx_running(env: Env, proc: subprocess.Popen[bytes], port: int, side: list[int]) -> Running:
    def processes() -> dict[str, list[int]]:
        return {"proxy": process_tree(proc.pid), "side": side}

    return Running(port, stopper(proc), ca=env.tls.ca, processes=processes)


def start_nginx_proxy(env: Env) -> Running:
    port = free_port()
    locations = "        location / { proxy_pass http://origin; }"
    http = _nginx_proxy_http(env, port, locations)
    proc = start_nginx(env.tools, _server_dir(env, "nginx-proxy"), http, port)
    return _nginx_running(env, proc, port, side=[])


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
    proc = start_nginx(env.tools, _server_dir(env, "nginx-auth"), http, port)
    return _nginx_running(env, proc, port, side=[env.authz_pid])


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
	default_sni 127.0.0.1
	servers {{
		protocols h1 h2
	}}
}}

https://127.0.0.1:{port} {{
	tls {env.tls.cert} {env.tls.key}
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
    proc = spawn_listening(argv, log, port, caddy_env)
    stop = stopper(proc)

    def processes() -> dict[str, list[int]]:
        return {"proxy": [proc.pid], "side": [env.authz_pid]}

    return Running(port, stop, ca=env.tls.ca, processes=processes)


# --- the authorizer and the token ---------------------------------------------------------------


def start_authorizer(scratch: Path, port: int) -> subprocess.Popen[bytes]:
    log = scratch / "authorizer.log"
    argv = [sys.executable, str(AUTHORIZER), "--port", str(port)]
    return spawn_listening([*argv, "--jwk", str(scratch / "authz-jwk.json")], log, port)


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
    def processes() -> dict[str, list[int]]:
        return {}

    return Running(env.upstream_port, lambda: None, processes=processes)


# --- the zerogate gateway (e) ------------------------------------------------------------------


def inventory_document() -> dict[str, list[dict[str, object]]]:
    """The organisation (e) runs in: 200 groups and 1,000 http apps besides `bench`."""
    groups = [{"name": f"group-{i:03d}", "description": f"Team {i}"} for i in range(ZG_GROUPS)]
    apps = [
        {
            "name": f"svc-{i:04d}",
            "kind": "http",
            "hostname": f"svc-{i:04d}.corp.example.com",
            "target": f"http://svc-{i:04d}.internal:8080",
            "tags": ["web", f"team-{i % 20:02d}"],
            "mode": "monitor" if i % 10 == 9 else "enforce",
        }
        for i in range(ZG_APPS)
    ]
    return {"groups": groups, "apps": apps}


def bench_policy() -> str:
    """1,000 rules: mostly two groups -> one app; some by tag, some conditional or narrowed.

    Rule 1 (every app, every request): deny from a Tor exit list, a condition that never holds
    here, so each decision for `bench` weighs a deny rule and then finds its grant.
    """
    rules: list[dict[str, object]] = [
        {
            "name": "block-tor-exits",
            "who": "everyone",
            "what": {"globs": ["*"]},
            "when": {"network": {"source_in": ["tor-exits"]}},
            "effect": "deny",
        }
    ]
    for i in range(ZG_RULES - 2):
        groups = [f"group-{i % ZG_GROUPS:03d}", f"group-{(7 * i + 3) % ZG_GROUPS:03d}"]
        what: dict[str, object] = {"apps": [f"svc-{i:04d}"]}
        rule: dict[str, object] = {"name": f"svc-{i:04d}-access"}
        if i % 50 == 0:  # a team's whole tag, one rule per tag
            what = {"tags": [f"team-{i // 50:02d}"]}
            rule["name"] = f"team-{i // 50:02d}-apps"
        if i % 13 == 0:
            what["methods"] = ["GET", "HEAD"]
            what["paths"] = ["/api/", "/static/"]
        rule |= {"who": {"groups": groups}, "what": what}
        if i % 5 == 0:
            rule["when"] = {"auth": {"mfa": True, "mfa_max_age_minutes": 720}}
        elif i % 7 == 0:
            rule["when"] = {"device": {"enrolled": True, "disk_encrypted": True}}
        elif i % 11 == 0:
            rule["when"] = {"network": {"source_in": ["offices"]}}
        rules.append(rule)
        if len(rules) == ZG_RULES // 2:  # `bench`'s grant sits mid-file, like any other
            rules.append(
                {"name": "admins-bench", "who": {"groups": ["admins"]}, "what": {"apps": [ZG_APP]}}
            )
    cidrs = {"tor-exits": ["198.19.9.0/24"], "offices": ["198.18.0.0/24", "2001:db8:1::/48"]}
    document = {"cidr_lists": cidrs, "rules": rules}
    assert len(rules) == ZG_RULES, len(rules)
    return yaml.safe_dump(document, sort_keys=False)


@dataclass(frozen=True)
class ZerogateUp:
    proc: subprocess.Popen[bytes]
    log: Path
    url: str  # the control plane, as the gateway and browsers reach it
    ca: Path
    admin_token: str
    admin_password: str
    gateway_port: int


_ZG_TOKEN = re.compile(r"ZEROGATE_TOKEN=(zgt_\S+)")
_ZG_PASSWORD = re.compile(r"Portal sign-in: user admin, password (\S+)")


def start_zerogate_up(root: Path) -> ZerogateUp:
    """`zerogate up` on a fresh data directory; returns once /healthz answers over HTTPS.

    Its output goes to a file, never a pipe: a pipe nobody reads could fill and stall it.
    """
    data, log = root / "data", root / "up.log"
    control, gateway = free_port(), free_port()
    argv = [
        ZEROGATE,
        "up",
        "--data-dir",
        str(data),
        "--control-port",
        str(control),
        "--gateway-port",
        str(gateway),
    ]
    proc = spawn(argv, log, os.environ | {"COLUMNS": "200"})
    try:
        deadline = time.monotonic() + ZG_START_TIMEOUT
        while "zerogate admin app list" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"zerogate up did not start:\n{_tail(log)}")
            time.sleep(0.1)
        output = log.read_text(errors="replace")
        token, password = _ZG_TOKEN.search(output), _ZG_PASSWORD.search(output)
        if token is None or password is None:
            raise BenchError(f"zerogate up printed no admin token or password:\n{output}")
        up = ZerogateUp(
            proc,
            log,
            f"https://localhost:{control}",
            data / "ca.pem",
            token.group(1),
            password.group(1),
            gateway,
        )
        context = ssl.create_default_context(cafile=str(up.ca))
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{up.url}/healthz", verify=context, timeout=2).status_code == 200:
                    return up
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"zerogate up never became healthy:\n{_tail(log)}")
            time.sleep(0.1)
    except BaseException:
        stopper(proc, timeout=30)()
        raise


def _ok(response: httpx.Response, what: str) -> httpx.Response:
    if response.is_error:
        raise BenchError(f"(e) {what}: {response.status_code} {response.text[:2000]}")
    return response


def configure_zerogate(up: ZerogateUp, upstream_port: int) -> None:
    """Through the admin API: the organisation, the `bench` app, admin's groups, the policy."""
    context = ssl.create_default_context(cafile=str(up.ca))
    headers = {"authorization": f"Bearer {up.admin_token}"}
    with httpx.Client(base_url=up.url, verify=context, headers=headers, timeout=120) as api:
        imported = _ok(api.post("/api/v1/import", json=inventory_document()), "import")
        last = json.loads(imported.text.strip().splitlines()[-1])
        if "result" not in last:
            raise BenchError(f"(e) import: {last}")
        app = {
            "name": ZG_APP,
            "kind": "http",
            "hostname": ZG_HOST,
            "target": f"http://127.0.0.1:{upstream_port}",
            "tags": ["web"],
        }
        _ok(api.post("/api/v1/apps", json=app), "create the bench app")
        admin = {"groups": list(ZG_ADMIN_GROUPS)}
        _ok(api.patch("/api/v1/users/admin", json=admin), "admin's groups")
        policy = {"source": bench_policy(), "comment": "bench/http_proxy.py"}
        _ok(api.post("/api/v1/policy/versions", json=policy), "push the policy")


def sign_in_token(up: ZerogateUp) -> str:
    """Sign in as admin at the portal; the token `/portal/authorize` hands the app's callback."""
    context = ssl.create_default_context(cafile=str(up.ca))
    with httpx.Client(base_url=up.url, verify=context, timeout=30) as browser:
        page = _ok(browser.get("/portal/login"), "login page").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        if csrf is None:
            raise BenchError("(e) the login page has no csrf field")
        form = {"username": "admin", "password": up.admin_password, "csrf": csrf.group(1)}
        signed_in = browser.post("/portal/login", data=form)
        if signed_in.status_code != 303:
            raise BenchError(f"(e) sign-in: {signed_in.status_code} {signed_in.text[:500]}")
        back = f"https://{ZG_HOST}:{up.gateway_port}/"
        authorized = browser.get("/portal/authorize", params={"app": ZG_APP, "return": back})
    location = authorized.headers.get("location", "")
    parts = urlsplit(location)
    token = parse_qs(parts.query).get("token", [""])[0]
    if authorized.status_code != 303 or parts.hostname != ZG_HOST or not token:
        raise BenchError(f"(e) authorize: {authorized.status_code}, location {location!r}")
    return token


def wait_gateway_allows(up: ZerogateUp, token: str, in_a_row: int = 10) -> None:
    """Until the gateway has taken the snapshot with the policy: 200 through it.

    Each probe is a new connection, so with several gateway processes on the port (the kernel
    spreads connections) every one of them is likely to have been asked.
    """
    context = ssl.create_default_context(cafile=str(up.ca))
    url = f"https://127.0.0.1:{up.gateway_port}{SIZES['small'][0]}"
    headers = {"host": ZG_HOST, "cookie": f"{ZG_COOKIE}={token}"}
    deadline, status, allowed = time.monotonic() + ZG_READY_TIMEOUT, "nothing", 0
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, headers=headers, verify=context, trust_env=False, timeout=5)
            status = str(response.status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        allowed = allowed + 1 if status == "200" else 0
        if allowed >= in_a_row:
            return
        if not allowed:
            time.sleep(0.25)
    raise BenchError(
        f"(e) the gateway never allowed the request (last: {status}):\n{_tail(up.log)}"
    )


def start_zerogate(env: Env) -> Running:
    root = env.scratch / "zerogate"
    root.mkdir()
    up = start_zerogate_up(root)
    stop = stopper(up.proc, timeout=30)  # SIGTERM: `zerogate up` stops its gateway child
    try:
        configure_zerogate(up, env.upstream_port)
        token = sign_in_token(up)
        wait_gateway_allows(up, token)
    except BaseException:
        stop()
        raise

    def processes() -> dict[str, list[int]]:
        return {"proxy": process_tree(up.proc.pid)[1:], "side": [up.proc.pid]}

    gateway = len(processes()["proxy"])
    workers = "1 process" if gateway == 1 else f"{gateway} processes (supervisor + workers)"

    return Running(
        up.gateway_port,
        stop,
        ca=up.ca,
        host=ZG_HOST,
        cookie=ZG_COOKIE,
        token=token,
        refused=(302,),
        processes=processes,
        note=f"gateway: {workers}",
        stored_events=lambda: stored_access_decisions(up),
    )


def stored_access_decisions(up: ZerogateUp) -> int:
    """The newest access decision's sequence number: nothing else is audited meanwhile."""
    context = ssl.create_default_context(cafile=str(up.ca))
    response = _ok(
        httpx.get(
            f"{up.url}/api/v1/audit/events",
            params={"limit": 1, "action": "access.decision"},
            headers={"authorization": f"Bearer {up.admin_token}"},
            verify=context,
            timeout=30,
        ),
        "read the audit log",
    )
    events = response.json()
    return int(events[0]["seq"]) if events else 0


# --- the reference floor (f) ---------------------------------------------------------------------


def start_bare(env: Env) -> Running:
    """bench/bare_proxy.py with as many processes as the gateway runs (one per core)."""
    port, workers = free_port(), os.cpu_count() or 1
    argv = [
        *(sys.executable, str(BARE_PROXY), "--port", str(port)),
        *("--upstream", str(env.upstream_port), "--jwk", str(env.scratch / "authz-jwk.json")),
        *("--cert", str(env.tls.cert), "--key", str(env.tls.key), "--workers", str(workers)),
    ]
    proc = spawn_listening(argv, env.scratch / "bare-proxy.log", port)

    def processes() -> dict[str, list[int]]:
        return {"proxy": process_tree(proc.pid)}

    return Running(
        port, stopper(proc), ca=env.tls.ca, processes=processes, note=f"{workers} processes"
    )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("a", "direct", "wrk straight to the upstream nginx, plain HTTP", start_direct, False),
    Scenario(
        "b",
        "nginx proxy",
        "nginx reverse proxy, TLS, 1 worker, upstream keep-alive pool 64",
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
        "Caddy reverse_proxy + forward_auth to the same authorizer, TLS, GOMAXPROCS=1",
        start_caddy,
        auth=True,
    ),
    Scenario(
        "e",
        "zerogate",
        f"`zerogate up` as it starts: control plane + gateway, {ZG_APPS + 1:,} apps, "
        f"{ZG_RULES:,} rules, audit on",
        start_zerogate,
        auth=True,
    ),
    Scenario(
        "f",
        "bare Python proxy",
        "reference, not a peer: bench/bare_proxy.py, uvloop + httptools + TLS, verified-token "
        "cache, no policy, no audit, no checks; as many processes as (e): the ceiling of (e)'s "
        "architecture",
        start_bare,
        auth=True,
    ),
)


# --- checks and measurement ---------------------------------------------------------------------


def _headers(running: Running, token: str) -> dict[str, str]:
    headers = {"Cookie": f"{running.cookie}={token}"}
    if running.host is not None:
        headers["Host"] = running.host
    return headers


def check(scenario: Scenario, running: Running, env: Env) -> str:
    """BenchError unless the scenario serves both sizes with the token and refuses without it.

    Returns the TLS version and cipher the check's connection negotiated ("plain HTTP").
    """
    token = running.token or env.token
    verify: ssl.SSLContext | bool = False
    if running.ca is not None:
        verify = ssl.create_default_context(cafile=str(running.ca))
    host = {"Host": running.host} if running.host else {}
    tls = "plain HTTP"
    with httpx.Client(trust_env=False, timeout=5, verify=verify) as client:
        for path, size in SIZES.values():
            url = f"{running.scheme}://127.0.0.1:{running.port}{path}"
            response = client.get(url, headers=_headers(running, token))
            if response.status_code != 200 or len(response.content) != size:
                raise BenchError(
                    f"({scenario.key}) GET {path} with the token: {response.status_code}, "
                    f"{len(response.content)} bytes (want 200, {size} bytes)"
                )
            stream = response.extensions.get("network_stream")
            ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
            if ssl_object is not None:
                tls = f"{ssl_object.version()} {ssl_object.cipher()[0]}"
            if not scenario.auth:
                continue
            forged = {"Cookie": f"{running.cookie}={token[:-4]}AAAA"}
            for headers in ({}, forged):
                refused = client.get(url, headers=host | headers).status_code
                if refused not in running.refused:
                    what = "a forged token" if headers else "no token"
                    raise BenchError(f"({scenario.key}) GET {path} with {what}: {refused}")
    return tls


def wrk_argv(wrk: str, url: str, seconds: int, connections: int, headers: list[str]) -> list[str]:
    argv = [wrk, f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for header in headers:
        argv += ["-H", header]
    return argv


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_REQUESTS = re.compile(r"^\s*(\d+) requests in", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(output: str) -> Measurement:
    rate = _RATE.search(output)
    percentiles = {q: float(v) * _UNIT_MS[unit] for q, v, unit in _PERCENTILE.findall(output)}
    if rate is None or set(percentiles) != {"50", "99"}:
        raise BenchError(f"cannot read wrk's output:\n{output}")
    errors = sum(int(n) for n in _NON_2XX.findall(output))
    for match in _SOCKET_ERRORS.finditer(output):
        errors += sum(int(n) for n in match.groups())
    requests = _REQUESTS.search(output)
    return Measurement(
        float(rate.group(1)),
        percentiles["50"],
        percentiles["99"],
        errors,
        int(requests.group(1)) if requests else 0,
    )


def run_wrk(argv: list[str], seconds: int) -> Measurement:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


def measure(env: Env, running: Running, path: str, args: argparse.Namespace) -> Measurement:
    url = f"{running.scheme}://127.0.0.1:{running.port}{path}"
    headers = [
        f"{name}: {value}" for name, value in _headers(running, running.token or env.token).items()
    ]
    run_wrk(wrk_argv(env.tools.wrk, url, WARMUP_SECONDS, args.connections, headers), WARMUP_SECONDS)
    counted = running.stored_events
    first = wait_stored(counted, None) if counted else 0  # the warm-up's events, stored
    roles = running.processes() | {"upstream": process_tree(env.upstream_pid)}
    before = {role: cpu_seconds(pids) for role, pids in roles.items()}
    wrk_before, started = _children_cpu(), time.monotonic()
    result = run_wrk(
        wrk_argv(env.tools.wrk, url, args.duration, args.connections, headers), args.duration
    )
    ended = time.monotonic()
    wall = ended - started
    cores = {role: (cpu_seconds(pids) - before[role]) / wall for role, pids in roles.items()}
    cores["wrk"] = (_children_cpu() - wrk_before) / wall
    drained = None
    if counted:
        stored = wait_stored(counted, first + result.requests) - first
        seconds = time.monotonic() - ended
        cpu_us = {
            role: (cpu_seconds(pids) - before[role]) / max(result.requests, 1) * 1e6
            for role, pids in roles.items()
        }
        drained = Drain(stored, seconds, cpu_us)
    return replace(result, cores=cores, drained=drained)


def wait_stored(count: Callable[[], int], at_least: int | None) -> int:
    """The control plane's count of stored access decisions once it reaches `at_least` and
    stops growing (requests cut at the window's end add a few events of their own)."""
    deadline, last = time.monotonic() + DRAIN_TIMEOUT, -1
    while time.monotonic() < deadline:
        now = count()
        if now == last and (at_least is None or now >= at_least):
            return now
        last = now
        time.sleep(0.5)
    raise BenchError(f"(e) the audit trail did not drain in {DRAIN_TIMEOUT:.0f} s ({last} stored)")


Results = dict[tuple[str, str], Measurement | None]  # (scenario key, size) -> None: not run


def run_scenario(env: Env, scenario: Scenario, args: argparse.Namespace, results: Results) -> None:
    running = scenario.start(env)
    if running is None:
        console.print(f"({scenario.key}) {scenario.label}: not available, skipped")
        results.update({(scenario.key, size): None for size in SIZES})
        return
    try:
        tls = check(scenario, running, env)
        note = f"; {running.note}" if running.note else ""
        console.print(f"({scenario.key}) {scenario.label}: checked, {tls}{note}")
        for size, (path, _) in SIZES.items():
            result = measure(env, running, path, args)
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
    title = f"HTTP/1.1 on loopback ((a) plain, (b)-(f) TLS), {body} responses, {connections} connections"
    table = Table(title=title)
    for column in ("scenario", "requests/s", "p50", "p99", "vs (b)", "p50 added over (a)"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    base, direct = results.get(("b", size)), results.get(("a", size))
    for scenario in SCENARIOS:
        result = results.get((scenario.key, size))
        name = f"({scenario.key}) {scenario.label}"
        if result is None:
            table.add_row(name, "not run", "-", "-", "-", "-")
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


CPU_COLUMNS = (
    ("wrk", "wrk"),
    ("proxy", "proxy"),
    ("side", "authorizer (c, d) / control plane (e)"),
    ("upstream", "upstream"),
)


def cpu_table(size: str, results: Results) -> Table:
    """Cores busy (CPU seconds per second) per process during each measurement."""
    table = Table(title=f"CPU during the measurement, {SIZES[size][1]:,} bytes: cores busy")
    table.add_column("scenario")
    for _, heading in CPU_COLUMNS:
        table.add_column(heading, justify="right")
    table.add_column("total", justify="right")
    for scenario in SCENARIOS:
        result = results.get((scenario.key, size))
        if result is None:
            continue
        cells = [
            f"{result.cores[role]:.2f}"
            if role in result.cores and (role != "side" or result.cores[role] > 0.005)
            else "-"
            for role, _ in CPU_COLUMNS
        ]
        table.add_row(
            f"({scenario.key}) {scenario.label}", *cells, f"{sum(result.cores.values()):.2f}"
        )
    return table


def audit_lines(size: str, results: Results) -> list[str]:
    """(e) is not done when wrk stops: its audit events are still being shipped and stored.
    So the run waits for the last of them, and counts the CPU of window and drain together."""
    result = results.get(("e", size))
    if result is None or result.drained is None:
        return []
    drained, cpu = result.drained, result.drained.cpu_us
    return [
        f"(e) audit: {drained.events:,} access decisions stored for {result.requests:,} answered "
        f"requests, the last {drained.seconds:.1f} s after the window; CPU per request, window "
        f"and drain: gateway {cpu.get('proxy', 0):.0f} µs, control plane {cpu.get('side', 0):.0f} "
        f"µs, upstream {cpu.get('upstream', 0):.0f} µs"
    ]


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
        return "targets for (e): not checked, a scenario did not run"
    rps, added = gateway.requests_per_second, gateway.p50_ms - a.p50_ms
    checks = [
        f"{rps / c.requests_per_second:.2f}x (c), want >= 1.5x: "
        f"{'met' if rps >= 1.5 * c.requests_per_second else 'MISSED'}",
        f"{rps / b.requests_per_second:.0%} of (b), want >= 70 %: "
        f"{'met' if rps >= 0.7 * b.requests_per_second else 'MISSED'}",
        f"p50 added {added:+.2f} ms, want < 1 ms: {'met' if added < 1 else 'MISSED'}",
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
    template = wrk_argv("wrk", "URL", args.duration, args.connections, ["Cookie: COOKIE=TOKEN"])
    console.print(f"load: {shlex.join(template)}  after a {WARMUP_SECONDS} s warm-up")
    console.print(
        "      URL = http://127.0.0.1:PORT/small|/64k for (a), https://... for (b)-(f);\n"
        f"      (a)-(d): {COOKIE}=<ES256 JWT, {len(token)} characters>; (e): {ZG_COOKIE}=<the\n"
        f"      token the portal issued to admin for app {ZG_APP}> and Host: {ZG_HOST}"
    )
    console.print(
        "TLS: (b)-(f) terminate TLS (P-256 certificates; the cipher each negotiated is shown\n"
        "     when it is checked); (a) is plain HTTP; every upstream hop is plain HTTP"
    )
    console.print(f"machine: {os.cpu_count()} cores ({_cpu_model()}), {platform.platform()}")
    console.print(f"python: {platform.python_implementation()} {platform.python_version()}")
    nginx = _version([tools.nginx, "-v"]).removeprefix("nginx version: ")
    caddy = _version([tools.caddy, "version"])
    wrk = _version([tools.wrk, "-v"]).split(" Copyright")[0]
    console.print(f"peers: {nginx}, caddy {caddy}, {wrk}, {ssl.OPENSSL_VERSION}")
    authorizer = ", ".join(f"{name} {version(name)}" for name in ("uvloop", "httptools", "joserfc"))
    console.print(f"authorizer: {authorizer}; zerogate {version('zerogate')}")
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
    parser.add_argument(
        "--only", default="", metavar="KEYS", help="run only these scenarios, e.g. abef"
    )
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
        upstream = start_upstream(tools, upstream_dir, upstream_port)
        servers.callback(stopper(upstream))
        authorizer = start_authorizer(scratch, authz_port)
        servers.callback(stopper(authorizer))
        tls = make_tls(scratch)
        env = Env(
            scratch, tools, upstream_port, upstream.pid, authz_port, authorizer.pid, token, tls
        )
        for scenario in SCENARIOS:
            if not args.only or scenario.key in args.only:
                run_scenario(env, scenario, args, results)
    return results


def budget_line(size: str, results: Results) -> str | None:
    """Whether any gateway could meet the throughput targets in this harness, from this run's
    own figures: at the rate the targets ask for, the machine's cores give each request a
    fixed CPU budget; what wrk, the upstream and the control plane (storing the request's
    audit event) spent per request in (e) is taken from it, and the rest is what the gateway
    may use. Beside it: what the gateway used, and what (f), a proxy with no policy and no
    audit, used. (wrk's and the upstream's cost per request is taken at (e)'s rate; at a
    higher rate each does a little less per request, so the allowance is an estimate.)"""
    gateway, bare, b, c = (results.get((key, size)) for key in "efbc")
    if gateway is None or gateway.drained is None or b is None or c is None:
        return None
    target = max(1.5 * c.requests_per_second, 0.7 * b.requests_per_second)
    cores = os.cpu_count() or 1
    budget = cores / target * 1e6
    cpu = gateway.drained.cpu_us
    wrk = gateway.cores.get("wrk", 0.0) / gateway.requests_per_second * 1e6
    others = {
        "wrk": wrk,
        "upstream": cpu.get("upstream", 0.0),
        "control plane": cpu.get("side", 0.0),
    }
    left = budget - sum(others.values())
    spent = ", ".join(f"{role} {us:.0f}" for role, us in others.items())
    floor = ""
    if bare is not None and bare.requests_per_second:
        floor = f"; (f) used {bare.cores.get('proxy', 0.0) / bare.requests_per_second * 1e6:.0f}"
    return (
        f"(e) CPU budget at the throughput target ({target:,.0f} req/s on {cores} cores): "
        f"{budget:.0f} µs per request; {spent} µs leave the gateway {left:.0f} µs; "
        f"it used {cpu.get('proxy', 0.0):.0f}{floor}"
    )


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
        lines = [*error_lines(size, results), *audit_lines(size, results)]
        budget = budget_line(size, results)
        for line in [*lines, targets_line(size, results), *([budget] if budget else [])]:
            console.print(line)
        console.print(cpu_table(size, results))


if __name__ == "__main__":
    main()
