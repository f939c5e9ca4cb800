"""`zerogate admin gateway status`: each gateway's workers as they last reported themselves.

`list`, `show`, `create`, `update` and `delete` are the inventory's own (see
`admin.kind_app`); this adds the live view: whether each worker's audit spool takes events
(a worker that cannot record refuses requests), its backlog, and its connectors' tunnels.
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


def _audit(spool: dict[str, Any]) -> str:
    if spool["stale"]:
        return "[yellow]unknown[/] (no report for 30 s)"
    if spool["accepting"]:
        return "[green]recording[/]"
    return f"[red]refusing[/]: {spool['refusal']} ({spool['refused']:,} refused)"


def _backlog(spool: dict[str, Any]) -> str:
    used = spool["backlog_bytes"] / 2**20
    limit = spool["max_bytes"]
    return f"{used:,.1f} MB" + ("" if limit is None else f" of {limit / 2**20:,.0f} MB")


def add_gateway_commands(app: typer.Typer, api: Callable[[], Api]) -> None:
    @app.command("status", help="Gateways' workers and connectors, as they last reported.")
    def status(as_json: JsonFlag = False) -> None:
        rows = api().request("GET", "/status/gateways").json()
        if as_json:
            out.print_json(json.dumps(rows))
            return
        table = Table(
            "gateway", "worker", "audit", "backlog", "reported", "connectors", "sessions",
            title=f"gateways ({len(rows)})",
        )  # fmt: skip
        for row in rows:
            tunnels = [", ".join(row["connectors"]), str(row["sessions"])]
            for spool in row["audit"] or [None]:
                if spool is None:  # known from its connectors only
                    table.add_row(row["gateway"], "", "", "", "", *tunnels)
                    continue
                table.add_row(
                    row["gateway"],
                    str(spool["worker"]),
                    _audit(spool),
                    _backlog(spool),
                    spool["reported_at"],
                    *tunnels,
                )
                tunnels = ["", ""]  # once per gateway
        out.print(table)
