"""The admin CLI's connection to the control-plane API: URL, token, CA, and error display."""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console

err = Console(stderr=True)


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    token: str
    ca_cert: Path | None


def credentials_file() -> Path:
    """Where `zerogate login` keeps its access token."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "zerogate" / "credentials.json"


def saved_token(url: str, now: datetime) -> str | None:
    """The stored access token for `url`, if there is one and it has not expired."""
    try:
        saved = json.loads(credentials_file().read_text())
        expired = datetime.fromisoformat(saved["expires_at"]) <= now
    except (OSError, ValueError, KeyError, TypeError):
        return None
    token = saved.get("access_token")
    if saved.get("url") != url or expired or not isinstance(token, str):
        return None
    return token


def ca_from_env(ca_cert: Path | None) -> Path | None:
    if ca_cert is None and os.environ.get("ZEROGATE_CA_CERT"):
        ca_cert = Path(os.environ["ZEROGATE_CA_CERT"])
    if ca_cert is None and Path("zerogate-data/ca.pem").exists():
        ca_cert = Path("zerogate-data/ca.pem")
    return ca_cert


def target_from_env(url: str | None, token: str | None, ca_cert: Path | None) -> Target:
    url = (url or os.environ.get("ZEROGATE_URL") or "https://localhost:8443").rstrip("/")
    token = token or os.environ.get("ZEROGATE_TOKEN") or saved_token(url, datetime.now(UTC))
    if not token:
        err.print("[red]not signed in:[/red] run `zerogate login`, or set ZEROGATE_TOKEN")
        raise typer.Exit(2)
    return Target(url, token, ca_from_env(ca_cert))


def verify_setting(ca_cert: Path | None) -> ssl.SSLContext | bool:
    """How to check the control plane's certificate: the given or configured CA, else the system's."""
    ca_cert = ca_from_env(ca_cert)
    if ca_cert is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as exc:
        err.print(f"[red]cannot read CA certificate {ca_cert}:[/red] {exc}")
        raise typer.Exit(2) from None


class Api:
    """A thin httpx client that turns every failure into a clear message and exit code."""

    def __init__(self, target: Target, timeout: float = 120.0) -> None:
        self.client = httpx.Client(
            base_url=f"{target.url}/api/v1",
            headers={"Authorization": f"Bearer {target.token}"},
            verify=verify_setting(target.ca_cert),
            timeout=timeout,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            err.print(f"[red]cannot reach the control plane:[/red] {exc}")
            raise typer.Exit(3) from None
        if response.status_code >= 400:
            fail(response)
        return response

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.stream(method, path, **kwargs)


def fail(response: httpx.Response) -> None:
    try:
        body = response.json()
        detail = body.get("detail", response.text)
        errors = body.get("errors", [])
    except ValueError:
        detail, errors = response.text, []
    err.print(f"[red]error {response.status_code}:[/red] {detail}", highlight=False)
    for item in errors:
        where = ".".join(str(part) for part in item.get("loc", []) if part != "body")
        err.print(f"  {where}: {item.get('msg')}", highlight=False)
    raise typer.Exit(1)
