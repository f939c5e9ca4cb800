"""Benchmark: the gateway process's CPU per small request, without TLS and without shipping.

One run starts, on loopback, three processes: an upstream (uvloop, a fixed 20-byte response
with keep-alive, written here), the gateway (`Gateway` with the real `Enforcer`: a snapshot
with 1,001 apps and a 1,000-rule policy, `bench`'s grant mid-file; a real `Spool` in a
temporary directory as the audit sink, nothing shipped) and `wrk -t1 -c32` sending the app
token as the `__Host-zerogate` cookie with `Host: bench.zerogate.localhost`. It prints the
requests/s and the gateway's CPU time (utime + stime from /proc/PID/stat) per request: the
figure the Python data path is judged by, free of TLS, of the control plane, and of the
upstream's cost.

Run: `.venv/bin/python bench/gateway_cpu.py` (`--seconds N`, `--connections N`; `--tls` puts
TLS 1.3 in front, with a throwaway `trustme` certificate, to see what TLS itself costs;
`--bare` measures `bench/bare_proxy.py`, the architecture's floor, in the gateway's place, in
the same harness: TLS, one process, the same upstream and wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HOST = "bench.zerogate.localhost"
ISSUER = "https://control.bench.test"
BODY = b"0123456789abcdefghij"  # 20 bytes
COOKIE = "__Host-zerogate"
BARE_COOKIE = "zg_session"  # what bench/bare_proxy.py (bench/http_authorizer.py) reads
RULES = 1000
GROUPS = 200
APPS = 1000


# --- the upstream (its own process) -------------------------------------------------------------


class _Upstream(asyncio.Protocol):
    """Answers every request head (no bodies expected) with the same 20 bytes, keep-alive."""

    RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%b" % (
        len(BODY),
        BODY,
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        heads = self.buffer.count(b"\r\n\r\n")
        if heads and self.transport is not None:
            self.buffer = self.buffer[self.buffer.rindex(b"\r\n\r\n") + 4 :]
            self.transport.write(self.RESPONSE * heads)


def run_upstream(port: int) -> None:
    import uvloop

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Upstream, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    uvloop.run(serve())


# --- the gateway (its own process) --------------------------------------------------------------


def policy_yaml() -> str:
    """1,000 rules: mostly two groups -> one app; some by tag, conditional or narrowed; a deny
    from a Tor exit list over every app first, and `admins` -> `bench` mid-file."""
    lines = [
        "cidr_lists:",
        "  tor-exits: [198.19.9.0/24]",
        "  offices: [198.18.0.0/24, '2001:db8:1::/48']",
        "rules:",
        "  - name: block-tor-exits",
        "    who: everyone",
        "    what: {globs: ['*']}",
        "    when: {network: {source_in: [tor-exits]}}",
        "    effect: deny",
    ]
    for i in range(RULES - 2):
        groups = f"[group-{i % GROUPS:03d}, group-{(7 * i + 3) % GROUPS:03d}]"
        name, what = f"svc-{i:04d}-access", f"apps: [svc-{i:04d}]"
        if i % 50 == 0:
            name, what = f"team-{i // 50:02d}-apps", f"tags: [team-{i // 50:02d}]"
        if i % 13 == 0:
            what += ", methods: [GET, HEAD], paths: [/api/, /static/]"
        lines += [f"  - name: {name}", f"    who: {{groups: {groups}}}", f"    what: {{{what}}}"]
        if i % 5 == 0:
            lines.append("    when: {auth: {mfa: true, mfa_max_age_minutes: 720}}")
        elif i % 7 == 0:
            lines.append("    when: {device: {enrolled: true, disk_encrypted: true}}")
        elif i % 11 == 0:
            lines.append("    when: {network: {source_in: [offices]}}")
        if i == RULES // 2:
            lines += [
                "  - name: admins-bench",
                "    who: {groups: [admins]}",
                "    what: {apps: [bench]}",
            ]
    return "\n".join(lines) + "\n"


def run_gateway(port: int, upstream: int, spool_dir: Path, tls: bool) -> None:
    import uvloop

    from zerogate.core.policy.model import App, Mode
    from zerogate.core.policy.parse import parse_policy
    from zerogate.core.policy.snapshot import HttpRoute, Snapshot
    from zerogate.core.token_keys import jwks, new_signing_key
    from zerogate.core.tokens import AccessClaims, issue_access_token, new_token_id
    from zerogate.gateway.enforce import Enforcer, build_state
    from zerogate.gateway.http import Gateway, Options
    from zerogate.gateway.server import listen
    from zerogate.gateway.spool import Spool

    now = datetime.now(UTC)
    key = new_signing_key(now)
    policy = parse_policy(policy_yaml())
    assert len(policy.rules) == RULES, len(policy.rules)
    apps = (
        App("bench"),
        *(
            App(
                f"svc-{i:04d}",
                frozenset({"web", f"team-{i % 20:02d}"}),
                Mode.MONITOR if i % 10 == 9 else Mode.ENFORCE,
            )
            for i in range(APPS)
        ),
    )
    routes = (
        HttpRoute("bench", HOST, f"http://127.0.0.1:{upstream}"),
        *(
            HttpRoute(a.name, f"{a.name}.corp.example.com", f"http://{a.name}.internal:8080")
            for a in apps[1:]
        ),
    )
    snapshot = Snapshot(ISSUER, 1, 1, now, policy, apps, routes)
    spool = Spool(spool_dir)
    enforcer = Enforcer(
        build_state(snapshot, jwks([key])),
        portal=ISSUER,
        gateway="gw-bench",
        audit=spool.hold_line,
    )
    claims = AccessClaims(
        issuer=ISSUER,
        subject="user:admin",
        audience="bench",
        session_id="s1",
        principal_kind="person",
        username="admin",
        groups=("admins", "group-001", "group-050", "group-120"),
        auth_time=now,
        mfa_time=now,
        amr=("pwd", "otp"),
        issued_at=now,
        expires_at=now + timedelta(hours=1),
        token_id=new_token_id(),
        cnf_x5t_s256=None,
    )
    token = issue_access_token(key, claims)

    context = None
    if tls:
        import ssl

        import trustme

        cert = trustme.CA().issue_cert("127.0.0.1", HOST)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        gateway = Gateway(enforcer.handle, Options(), loop, before_send=spool.write_through)
        server = await listen(gateway, "127.0.0.1", port, tls=context, reuse_port=False)
        print(token, flush=True)  # the parent's signal that the gateway listens
        await server.serve_forever()

    uvloop.run(serve())


# --- the driver -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check(port: int, token: str, tls: bool, cookie: str = COOKIE) -> None:
    """One request by hand: the gateway must forward it and bring back the upstream's body."""
    import ssl

    request = f"GET / HTTP/1.1\r\nhost: {HOST}\r\ncookie: {cookie}={token}\r\n\r\n"
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        if tls:  # the certificate is throwaway: only the forwarding is checked here
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = stack.enter_context(context.wrap_socket(sock, server_hostname=HOST))
        sock.sendall(request.encode())
        answer = b""
        while not answer.endswith(BODY):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    if not answer.startswith(b"HTTP/1.1 200 ") or not answer.endswith(BODY):
        raise SystemExit(f"the gateway did not forward the check request: {answer[:300]!r}")


def wrk(
    port: int, token: str, seconds: int, connections: int, tls: bool, cookie: str = COOKIE
) -> tuple[int, float]:
    """(requests, requests/s) of one wrk run; non-2xx answers fail the benchmark."""
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "-H",
        f"Host: {HOST}",
        "-H",
        f"Cookie: {cookie}={token}",
        f"{'https' if tls else 'http'}://127.0.0.1:{port}/",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    total = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if total is None or rate is None:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    return int(total.group(1)), float(rate.group(1))


def start_gateway(
    me: str, port: int, upstream: int, spool_dir: Path, tls: bool
) -> tuple[subprocess.Popen[str], str]:
    """The gateway in its own process; the app token it prints once it listens."""
    argv = [sys.executable, me, "--gateway", str(port), str(upstream), str(spool_dir)]
    gateway = subprocess.Popen(
        [*argv, "tls" if tls else "plain"], stdout=subprocess.PIPE, text=True
    )
    assert gateway.stdout is not None
    token = gateway.stdout.readline().strip()
    if not token:
        raise SystemExit("the gateway did not start")
    return gateway, token


def start_bare(scratch: Path, port: int, upstream: int) -> tuple[subprocess.Popen[str], str]:
    """bench/bare_proxy.py, one process, TLS with a throwaway certificate; a token it takes."""
    import trustme
    from http_proxy import make_token

    token = make_token(scratch, timedelta(hours=1))  # writes the key's JWK: authz-jwk.json
    cert = trustme.CA().issue_cert("127.0.0.1", HOST)
    cert.private_key_pem.write_to_path(str(scratch / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(scratch / "cert.pem"))
    argv = [
        *(sys.executable, str(Path(__file__).with_name("bare_proxy.py")), "--port", str(port)),
        *("--upstream", str(upstream), "--jwk", str(scratch / "authz-jwk.json")),
        *("--cert", str(scratch / "cert.pem"), "--key", str(scratch / "key.pem")),
    ]
    bare = subprocess.Popen(argv, text=True)
    wait_listening(port)
    return bare, token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tls", action="store_true", help="TLS 1.3 in front of the gateway")
    parser.add_argument(
        "--bare", action="store_true", help="bench/bare_proxy.py in the gateway's place (TLS)"
    )
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)  # child role
    parser.add_argument("--gateway", nargs=4, help=argparse.SUPPRESS)  # child role
    args = parser.parse_args()
    if args.upstream is not None:
        run_upstream(args.upstream)
        return
    if args.gateway is not None:
        port, upstream_port, spool, tls = args.gateway
        run_gateway(int(port), int(upstream_port), Path(spool), tls == "tls")
        return

    me = str(Path(__file__).resolve())
    up_port, gw_port = free_port(), free_port()
    tls, cookie = args.tls or args.bare, BARE_COOKIE if args.bare else COOKIE
    with tempfile.TemporaryDirectory(prefix="zerogate-bench-cpu-") as scratch:
        spool_dir = Path(scratch) / "spool"
        upstream = subprocess.Popen([sys.executable, me, "--upstream", str(up_port)])
        if args.bare:
            gateway, token = start_bare(Path(scratch), gw_port, up_port)
        else:
            gateway, token = start_gateway(me, gw_port, up_port, spool_dir, tls)
        try:
            wait_listening(up_port)
            check(gw_port, token, tls, cookie)
            wrk(gw_port, token, 1, args.connections, tls, cookie)  # warm-up: connections, caches
            before = cpu_seconds(gateway.pid)
            requests, rate = wrk(gw_port, token, args.seconds, args.connections, tls, cookie)
            used = cpu_seconds(gateway.pid) - before
            events = sum(segment.read_bytes().count(b"\n") for segment in spool_dir.glob("*.log"))
        finally:
            for process in (gateway, upstream):
                process.terminate()
                process.wait(10)
    what = (
        "bench/bare_proxy.py in the gateway's place (no policy, no audit)"
        if args.bare
        else f"1 gateway process, {RULES:,} rules, audit spooled"
    )
    print(
        f"gateway CPU benchmark: {'TLS 1.3' if tls else 'plain HTTP'}, {what}; "
        f"wrk -t1 -c{args.connections} -d{args.seconds}s; {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} cores"
    )
    print(f"requests/s: {rate:,.0f}")
    print(
        f"gateway CPU: {used:.2f} s for {requests:,} requests = {used / requests * 1e6:.1f} µs/request"
    )
    print(f"gateway cores busy: {used / args.seconds:.2f}; audit events spooled: {events:,}")


if __name__ == "__main__":
    main()
