"""Benchmark: logins per second through the real portal (password, and password + TOTP).

Starts a real `zerogate up` on a fresh SQLite data directory, creates users with the admin
API, then signs them in over HTTPS from `--workers` threads, each a cookie-keeping client
that fetches the form (CSRF), posts the password and, for the TOTP case, the code.
Run: `.venv/bin/python bench/logins.py [--seconds 10 --workers 4]`.
"""

from __future__ import annotations

import argparse
import re
import ssl
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyotp
from harness import free_port, start, stop
from rich.console import Console
from rich.table import Table

PASSWORD = "bench horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def make_users(
    api: httpx.Client, count: int, with_totp: bool, url: str, ctx: ssl.SSLContext
) -> dict[str, str]:
    """username -> TOTP secret ('' when none)."""
    users: dict[str, str] = {}
    for i in range(count):
        name = f"{'mfa' if with_totp else 'pwd'}{i:03d}"
        api.post("/api/v1/users", json={"username": name}).raise_for_status()
        api.post(f"/api/v1/users/{name}/password", json={"password": PASSWORD}).raise_for_status()
        users[name] = enroll(url, ctx, name) if with_totp else ""
    return users


def enroll(url: str, ctx: ssl.SSLContext, name: str) -> str:
    with httpx.Client(base_url=url, verify=ctx, follow_redirects=False) as web:
        login_form(web, name)
        page = web.post("/portal/account/totp", data={"csrf": csrf(web, "/portal/account")})
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
        assert secret, page.text
        code = pyotp.TOTP(secret.group(1)).now()
        web.post(
            "/portal/account/totp/confirm",
            data={"code": code, "csrf": csrf(web, "/portal/account")},
        ).raise_for_status()
        return secret.group(1)


def csrf(web: httpx.Client, path: str) -> str:
    match = CSRF.search(web.get(path).text)
    assert match
    return match.group(1)


def login_form(web: httpx.Client, name: str) -> httpx.Response:
    return web.post(
        "/portal/login",
        data={"username": name, "password": PASSWORD, "csrf": csrf(web, "/portal/login")},
    )


def one_login(url: str, ctx: ssl.SSLContext, name: str, secret: str, step: int) -> None:
    with httpx.Client(base_url=url, verify=ctx, follow_redirects=False) as web:
        response = login_form(web, name)
        assert response.status_code == 303, f"{name}: {response.status_code} {response.text[:300]}"
        if secret:
            assert response.headers["location"] == "/portal/login/mfa", response.text
            # The next time step's code: enrollment spent the current one, and a code is
            # accepted once (replay protection); one step of drift is allowed.
            code = pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30 * step))
            response = web.post(
                "/portal/login/mfa", data={"code": code, "csrf": csrf(web, "/portal/login/mfa")}
            )
        assert "zg_session=" in response.headers.get("set-cookie", ""), response.text


def run(
    url: str, ctx: ssl.SSLContext, users: dict[str, str], seconds: float, workers: int
) -> tuple[int, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    names = list(users)

    def worker(index: int) -> None:
        # Each user signs in at most once per test (one TOTP step each), so the worker walks its
        # own slice of users; the run stops at the deadline or when the users run out.
        for name in names[index::workers]:
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            one_login(url, ctx, name, users[name], step=1)
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies), [time.perf_counter() - began, *latencies]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--users", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zg-logins-") as tmp:
        data_dir, port = Path(tmp) / "data", free_port()
        proc, token = start(data_dir, port)
        url = f"https://localhost:{port}"
        ctx = ssl.create_default_context(cafile=str(data_dir / "ca.pem"))
        try:
            with httpx.Client(
                base_url=url, verify=ctx, headers={"Authorization": f"Bearer {token}"}
            ) as api:
                plain = make_users(api, args.users, False, url, ctx)
                mfa = make_users(api, args.users, True, url, ctx)
            rows = []
            for label, users in (("password", plain), ("password + TOTP", mfa)):
                count, (elapsed, *latencies) = run(url, ctx, users, args.seconds, args.workers)
                rows.append(
                    (label, count, count / elapsed, statistics.median(latencies), max(latencies))
                )
        finally:
            stop(proc)
    table = Table(title=f"portal logins over HTTPS, {args.workers} concurrent clients, SQLite")
    for column in ("login", "logins", "per second", "p50 ms", "max ms"):
        table.add_column(column, justify="left" if column == "login" else "right")
    for label, count, rate, p50, worst in rows:
        table.add_row(label, str(count), f"{rate:.1f}", f"{p50 * 1000:.0f}", f"{worst * 1000:.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
