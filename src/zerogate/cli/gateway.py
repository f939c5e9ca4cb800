"""`zerogate gateway`: run a gateway on its own, against a control plane."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from zerogate import logs
from zerogate.core.http.framing import is_header_name
from zerogate.core.inventory.names import NAME_PATTERN
from zerogate.gateway.run import GatewaySettings, serve
from zerogate.gateway.workers import supervise


def gateway(
    control: Annotated[
        str,
        typer.Option(envvar="ZEROGATE_URL", help="The control plane's URL, as browsers use it."),
    ],
    token: Annotated[
        str,
        typer.Option(
            envvar="ZEROGATE_TOKEN",
            help="An API token with the gateway scope (better from the environment).",
        ),
    ],
    ca_cert: Annotated[
        Path, typer.Option(envvar="ZEROGATE_CA_CERT", help="The CA of the control plane.")
    ],
    cert: Annotated[Path, typer.Option(help="This gateway's TLS certificate chain (PEM).")],
    key: Annotated[Path, typer.Option(help="Its private key (PEM).")],
    data_dir: Annotated[Path, typer.Option(help="Last good snapshot and the audit spool.")],
    listen_host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTPS port.", min=1, max=65535)] = 8444,
    name: Annotated[str, typer.Option(help="This gateway's name in audit events.")] = "gateway",
    max_stale_hours: Annotated[
        float,
        typer.Option(help="Serve a saved snapshot this long while the control plane is away."),
    ] = 24.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    certs_dir: Annotated[
        Path | None,
        typer.Option(help="Admin-supplied NAME.pem + NAME.key pairs, chosen by SNI, reloaded."),
    ] = None,
    http_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Plain HTTP port redirecting to HTTPS.")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=0, max=256, help="Processes sharing the port (0: one per core).")
    ] = 0,
    tunnel_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port where connectors dial in (mutual TLS)."),
    ] = None,
    audit_spool_max_mb: Annotated[
        int,
        typer.Option(
            min=0,
            help="Audit events not yet taken by the control plane (MB, all workers together) "
            "at which requests are refused rather than served unrecorded; 0: until the disk "
            "is full.",
        ),
    ] = 4096,
    strip_header: Annotated[
        list[str] | None,
        typer.Option(
            help="A request header the apps must never get from a client (one per flag), "
            "beside the identity headers the gateway always drops.",
        ),
    ] = None,
    worker_index: Annotated[int | None, typer.Option(hidden=True)] = None,
    worker_count: Annotated[int, typer.Option(hidden=True, min=1, max=256)] = 1,
    exit_with_parent: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    logs.setup(log_level, "json")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per long poll is noise
    for path in (ca_cert, cert, key):
        if not path.is_file():
            typer.echo(f"cannot start: {path} is not a readable file", err=True)
            raise typer.Exit(2)
    if not re.fullmatch(NAME_PATTERN, name):
        typer.echo(
            f"cannot start: --name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            err=True,
        )
        raise typer.Exit(2)
    for header in strip_header or ():
        if not is_header_name(header):
            typer.echo(f"cannot start: --strip-header {header!r} is not a header name", err=True)
            raise typer.Exit(2)
    count = workers or os.cpu_count() or 1
    if count > 1 and worker_index is None:
        raise typer.Exit(supervise(count, _without_workers(sys.argv)))
    if worker_index is not None:
        data_dir = data_dir / f"worker-{worker_index}"
    settings = GatewaySettings(
        control_url=control.rstrip("/"),
        token=token.strip(),
        ca_file=ca_cert,
        cert_file=cert,
        key_file=key,
        data_dir=data_dir,
        listen_host=listen_host,
        port=port,
        name=name,
        max_stale_seconds=max_stale_hours * 3600,
        parent_pid=os.getppid() if exit_with_parent else None,
        certs_dir=certs_dir,
        http_port=http_port,
        tunnel_port=tunnel_port,
        worker=worker_index or 0,
        workers=worker_count if worker_index is not None else 1,
        # Each worker spools on its own: the limit is shared out evenly between them.
        spool_max_bytes=(audit_spool_max_mb << 20) // worker_count if audit_spool_max_mb else None,
        strip_headers=tuple(header.lower() for header in strip_header or ()),
    )
    serve(settings)


def _without_workers(argv: Sequence[str]) -> list[str]:
    """This command's arguments after `gateway`, minus `--workers` (each worker gets 1)."""
    args = list(argv[argv.index("gateway") + 1 :])
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return out
