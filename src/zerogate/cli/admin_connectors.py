"""`zerogate admin connector create|token|list|revoke`: connectors and their live status.

`show`, `update` and `delete` are the inventory's own (see `admin.kind_app`); these add what
only a connector has: a one-time enrollment token, its tunnels' live status, revocation.
"""

# No `from __future__ import annotations`: typer reads these annotations at run time.

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from zerogate.cli.client import Api

out = Console()
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Name = Annotated[str, typer.Argument(help="The connector's name.")]


def _print_token(made: dict[str, Any]) -> None:
    # Plain lines, never wrapped: people copy them and scripts parse them.
    out.print(made["token"], highlight=False, soft_wrap=True)
    out.print(
        f"one-time enrollment token for {made['connector']}, valid until {made['expires_at']};\n"
        "on the connector's host: ZEROGATE_ENROLL_TOKEN=<token> zerogate connector "
        "--control URL --gateway HOST:PORT --allow CIDR:PORTS …",
        highlight=False,
        soft_wrap=True,
        style="dim",
    )


def _gateways(row: dict[str, Any]) -> str:
    lines = []
    for link in row["gateways"]:
        rtt = "" if link["rtt_ms"] is None else f", {link['rtt_ms']:.2f} ms"
        lines.append(f"{link['gateway']} ({link['sessions']} sessions{rtt})")
    return "\n".join(lines)


def add_connector_commands(app: typer.Typer, api: Callable[[], Api]) -> None:
    @app.command("create", help="Create a connector and print its one-time enrollment token.")
    def create(
        name: Name,
        group: Annotated[str, typer.Option(help="Its connector group (created if missing).")],
        description: Annotated[str, typer.Option(help="Free text.")] = "",
    ) -> None:
        client = api()
        if client.client.get(f"/connector-groups/{group}").status_code == 404:
            client.request("POST", "/connector-groups", json={"name": group})
        body = {"name": name, "connector_group": group, "description": description}
        client.request("POST", "/connectors", json=body)
        _print_token(client.request("POST", f"/connectors/{name}/enrollment").json())

    @app.command("token", help="A new one-time enrollment token (the earlier one stops working).")
    def token(name: Name) -> None:
        _print_token(api().request("POST", f"/connectors/{name}/enrollment").json())

    @app.command("list", help="Connectors with their live status and tunnels.")
    def list_cmd(as_json: JsonFlag = False) -> None:
        rows = api().request("GET", "/status/connectors").json()
        if as_json:
            out.print_json(json.dumps(rows))
            return
        table = Table(
            "name", "group", "status", "version", "gateways", "streams", "last seen",
            title=f"connectors ({len(rows)})",
        )  # fmt: skip
        for row in rows:
            table.add_row(
                row["name"],
                row["group"],
                row["status"] + (" (draining)" if row["draining"] else ""),
                row["version"] or "",
                _gateways(row),
                str(sum(link["streams"] for link in row["gateways"])),
                row["last_seen_at"] or "",
            )
        out.print(table)

    @app.command("revoke", help="Revoke a connector: its tunnels are cut within a second.")
    def revoke(name: Name) -> None:
        row = api().request("POST", f"/connectors/{name}/revoke").json()
        out.print(f"revoked connector {row['name']} at {row['revoked_at']}", highlight=False)
