"""`zerogate login`: sign a person in from the terminal with the device flow (RFC 8628).

The command shows a short code and a URL, the person approves in a browser (with every
factor the portal asks for), and the short-lived access token is kept in
`$XDG_CONFIG_HOME/zerogate/credentials.json` (0600) for `zerogate admin`.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.panel import Panel

from zerogate.cli.client import credentials_file, verify_setting

out = Console()
err = Console(stderr=True)
CLIENT_ID = "zerogate-cli"
GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _save(url: str, token: str, expires_in: int) -> Path:
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "access_token": token, "expires_at": expires_at.isoformat()}, handle)
    return path


def _poll(client: httpx.Client, grant: dict[str, object]) -> dict[str, object]:
    interval = int(str(grant.get("interval", 5)))
    deadline = time.monotonic() + int(str(grant.get("expires_in", 600)))
    while time.monotonic() < deadline:
        time.sleep(interval)
        response = client.post(
            "/oauth/token",
            data={"grant_type": GRANT, "device_code": grant["device_code"], "client_id": CLIENT_ID},
        )
        body = response.json()
        if response.status_code == 200:
            return dict(body)
        error = body.get("error")
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            err.print(f"[red]sign-in failed:[/red] {error}")
            raise typer.Exit(1)
    err.print("[red]sign-in timed out[/red]")
    raise typer.Exit(1)


def login(
    url: Annotated[str | None, typer.Option(help="Control-plane URL ($ZEROGATE_URL).")] = None,
    ca_cert: Annotated[
        Path | None, typer.Option(help="CA certificate ($ZEROGATE_CA_CERT).")
    ] = None,
) -> None:
    base = (url or os.environ.get("ZEROGATE_URL") or "https://localhost:8443").rstrip("/")
    with httpx.Client(base_url=base, verify=verify_setting(ca_cert), timeout=30) as client:
        try:
            grant = client.post("/oauth/device_authorization", data={"client_id": CLIENT_ID}).json()
        except httpx.HTTPError as exc:
            err.print(f"[red]cannot reach the control plane:[/red] {exc}")
            raise typer.Exit(3) from None
        text = (
            f"Open {grant['verification_uri_complete']}\nand check the code  {grant['user_code']}"
        )
        out.print(Panel(text, title="Sign in to zerogate", expand=False), highlight=False)
        out.file.flush()  # a pipe is block-buffered; the person must see the code now
        result = _poll(client, grant)
    path = _save(base, str(result["access_token"]), int(str(result["expires_in"])))
    out.print(
        f"Signed in. Token kept in {path} for {int(str(result['expires_in'])) // 60} minutes."
    )
