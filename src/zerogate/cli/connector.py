"""`zerogate connector`: run a connector inside a private network."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from zerogate import logs
from zerogate.connector.identity import EnrollmentError, load_or_enroll
from zerogate.connector.run import ConnectorSettings, serve
from zerogate.core.tunnel.allowlist import AllowListError, parse_allowlist, split_target


def connector(
    control: Annotated[str, typer.Option(envvar="ZEROGATE_URL", help="The control plane's URL.")],
    gateway: Annotated[
        list[str],
        typer.Option(help="A gateway's tunnel address HOST:PORT (repeat for each gateway)."),
    ],
    allow: Annotated[
        list[str],
        typer.Option(
            help="Targets this connector may dial: CIDR[:PORTS], e.g. 10.1.0.0/16:80,443 "
            "(repeat; nothing else is ever dialled, whatever a gateway asks)."
        ),
    ],
    state_dir: Annotated[
        Path, typer.Option(help="Its key, certificate and CA (made at enrollment).")
    ] = Path("zerogate-connector"),
    ca_cert: Annotated[
        Path | None,
        typer.Option(envvar="ZEROGATE_CA_CERT", help="The zerogate CA, to trust at enrollment."),
    ] = None,
    enroll_token: Annotated[
        str | None,
        typer.Option(
            envvar="ZEROGATE_ENROLL_TOKEN",
            help="One-time enrollment token (first start only; better from the environment).",
        ),
    ] = None,
    health_seconds: Annotated[
        float, typer.Option(min=0.5, max=3600, help="Seconds between health reports.")
    ] = 10.0,
    drain_seconds: Annotated[
        float, typer.Option(min=0, max=3600, help="On SIGTERM, wait this long for streams.")
    ] = 30.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    logs.setup(log_level, "json")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        allow_list = parse_allowlist(allow)
        for address in gateway:
            split_target(address)
    except (AllowListError, ValueError) as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(2) from None
    control = control.rstrip("/")
    try:
        identity = load_or_enroll(state_dir, control, ca_cert, enroll_token)
    except (EnrollmentError, OSError, ValueError, KeyError) as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(2) from None
    settings = ConnectorSettings(
        control_url=control,
        identity=identity,
        gateways=tuple(gateway),
        allow=allow_list,
        health_seconds=health_seconds,
        drain_seconds=drain_seconds,
    )
    serve(settings)
