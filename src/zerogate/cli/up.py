"""`zerogate up`: everything on one machine, on the embedded SQLite default."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel

from zerogate import logs
from zerogate.cli.settings_options import ConfigOption, DataDirOption, err, settings_or_exit
from zerogate.control import bootstrap, server
from zerogate.pki import PkiError
from zerogate.store.db import DatabaseError, safe_url

out = Console()


def _announce(plane: bootstrap.ControlPlane) -> None:
    settings = plane.settings
    url = settings.control_url
    lines = [
        f"control plane   {url}",
        f"API docs        {url}/api/v1/docs",
        f"login portal    {url}/portal/",
        f"health          {url}/healthz",
        f"CA certificate  {plane.ca_cert}",
        f"database        {safe_url(settings.effective_database_url)}",
    ]
    out.print(Panel("\n".join(lines), title="zerogate is up", expand=False), highlight=False)
    lines = [
        "Use the admin CLI from another shell:",
        f"  export ZEROGATE_URL={url}",
        f"  export ZEROGATE_CA_CERT={plane.ca_cert}",
    ]
    if plane.admin_token:
        lines += [
            f"  export ZEROGATE_TOKEN={plane.admin_token}",
            "",
            f"Portal sign-in: user admin, password {plane.admin_password}",
            "The token and the password are shown once and stored only as hashes: keep them safe.",
        ]
    else:
        lines += ["  export ZEROGATE_TOKEN=<your admin token>  (new one: zerogate token create)"]
    lines.append("  zerogate admin app list")
    # Plain lines, never wrapped: people copy them and scripts parse them.
    out.print("\n".join(lines), highlight=False, soft_wrap=True)


def up(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    listen_host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    control_port: Annotated[int | None, typer.Option(help="Control-plane HTTPS port.")] = None,
) -> None:
    settings = settings_or_exit(
        config,
        {"data_dir": data_dir, "listen_host": listen_host, "control_port": control_port},
    )
    logs.setup(settings.log_level, settings.log_format)
    try:
        plane = bootstrap.start(settings)
    except (DatabaseError, PkiError, OSError, ValueError) as exc:
        err.print(f"[red]cannot start:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    _announce(plane)
    server.serve(plane)
