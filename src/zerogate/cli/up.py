"""`zerogate up`: everything on one machine, on the embedded SQLite default."""

from __future__ import annotations

import os
import subprocess
import sys
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
        f"applications    https://<app>.{settings.app_domain}:{settings.gateway_port}/",
        f"connectors      dial {settings.listen_host}:{settings.gateway_tunnel_port}"
        if settings.gateway_tunnel_port
        else "connectors      none (no tunnel port)",
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
    gateway_port: Annotated[int | None, typer.Option(help="Gateway HTTPS port.")] = None,
    gateway_workers: Annotated[
        int | None, typer.Option(help="Gateway processes (0: one per core).")
    ] = None,
    tunnel_port: Annotated[
        int | None, typer.Option(help="Port where connectors dial in to the gateway.")
    ] = None,
) -> None:
    settings = settings_or_exit(
        config,
        {
            "data_dir": data_dir,
            "listen_host": listen_host,
            "control_port": control_port,
            "gateway_port": gateway_port,
            "gateway_workers": gateway_workers,
            "gateway_tunnel_port": tunnel_port,
        },
    )
    logs.setup(settings.log_level, settings.log_format)
    try:
        plane = bootstrap.start(settings)
    except (DatabaseError, PkiError, OSError, ValueError) as exc:
        err.print(f"[red]cannot start:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    gateway = _start_gateway(plane)
    _announce(plane)
    try:
        server.serve(plane)
    finally:
        if gateway is not None:
            gateway.terminate()
            try:
                gateway.wait(15)
            except subprocess.TimeoutExpired:
                gateway.kill()


def _start_gateway(plane: bootstrap.ControlPlane) -> subprocess.Popen[bytes] | None:
    """The gateway, as its own process (its own core, its own event loop) beside this one.

    Its token goes through the environment, never the command line (which `ps` shows).
    """
    local = plane.gateway
    if local is None:
        return None
    settings = plane.settings
    env = {**os.environ, "ZEROGATE_TOKEN": local.token_file.read_text().strip()}
    command = [
        sys.executable, "-m", "zerogate", "gateway",
        "--control", settings.control_url,
        "--ca-cert", str(plane.ca_cert),
        "--cert", str(local.cert),
        "--key", str(local.key),
        "--data-dir", str(local.data_dir),
        "--listen-host", settings.listen_host,
        "--port", str(settings.gateway_port),
        "--name", local.NAME,
        "--log-level", settings.log_level,
        "--workers", str(settings.gateway_workers),
        "--audit-spool-max-mb", str(settings.gateway_audit_spool_max_mb),
        "--exit-with-parent",
    ]  # fmt: skip
    if settings.gateway_http_port:
        command += ["--http-port", str(settings.gateway_http_port)]
    if settings.gateway_certs_dir:
        command += ["--certs-dir", str(settings.gateway_certs_dir)]
    if settings.gateway_tunnel_port:
        command += ["--tunnel-port", str(settings.gateway_tunnel_port)]
    for header in settings.gateway_strip_headers:
        command += ["--strip-header", header]
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
