"""`zerogate`: the one command. Each sub-command group lives in its own module."""

from __future__ import annotations

import typer

from zerogate import __version__
from zerogate.cli import admin, connector, gateway, local_tokens, login, up

app = typer.Typer(
    name="zerogate",
    help="Self-hosted Zero Trust Network Access.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("up", help="Run the control plane (and gateway) on one machine.")(up.up)
app.command("gateway", help="Run a gateway against a control plane.")(gateway.gateway)
app.command("connector", help="Run a connector: tunnels out to the gateways, no inbound port.")(
    connector.connector
)
app.command("login", help="Sign in from this terminal through the portal (device flow).")(
    login.login
)
app.add_typer(local_tokens.app, name="token")
app.add_typer(admin.app, name="admin")


@app.command("version", help="Print the version.")
def version() -> None:
    typer.echo(__version__)


def main() -> None:
    app()
