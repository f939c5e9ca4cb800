"""`zerogate admin token` and `zerogate admin audit`: API tokens and the audit log."""

# No `from __future__ import annotations`: typer reads these annotations at run time.

import json
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zerogate.cli.client import Api
from zerogate.core.api_tokens import Scope

out = Console()
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def token_app(api: Callable[[], Api]) -> typer.Typer:
    app = typer.Typer(help="Admin API tokens.", no_args_is_help=True)

    @app.command("create", help="Create a token; its secret is printed once.")
    def create(
        name: Annotated[str, typer.Argument(help="A name, e.g. ci-pipeline.")],
        scope: Annotated[
            Scope, typer.Option(help="admin, auditor (read-only), scim or gateway.")
        ] = Scope.ADMIN,
        gateway: Annotated[
            str | None,
            typer.Option(
                help="With --scope gateway: the gateway (its --name) the token may speak for; "
                "its events and reports naming any other are refused."
            ),
        ] = None,
    ) -> None:
        body: dict[str, object] = {"name": name, "scope": scope}
        if gateway is not None:
            body["gateway"] = gateway
        made = api().request("POST", "/tokens", json=body).json()
        out.print(made["token"], highlight=False, soft_wrap=True)

    @app.command("list", help="List tokens (never their secrets).")
    def list_tokens(as_json: JsonFlag = False) -> None:
        rows = api().request("GET", "/tokens").json()
        if as_json:
            out.print_json(json.dumps(rows))
            return
        columns = ("id", "name", "scope", "gateway", "created_at", "last_used_at", "revoked_at")
        table = Table(
            "id", "name", "scope", "gateway", "created", "last used", "revoked", title="API tokens"
        )
        for row in rows:
            table.add_row(*(str(row.get(k) or "") for k in columns))
        out.print(table)

    @app.command("revoke", help="Revoke a token by id; it stops working at once.")
    def revoke(
        token_id: Annotated[str, typer.Argument(help="The token's id (from list).")],
    ) -> None:
        api().request("POST", f"/tokens/{token_id}/revoke")
        out.print(f"revoked token {token_id}", highlight=False)

    return app


def audit_app(api: Callable[[], Api]) -> typer.Typer:
    app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)

    @app.command("list", help="Newest events first.")
    def list_events(
        limit: Annotated[int, typer.Option(help="How many.")] = 50,
        actor: Annotated[str | None, typer.Option(help="Only this actor.")] = None,
        action: Annotated[
            str | None, typer.Option(help="Only this action, e.g. inventory.update.")
        ] = None,
        target: Annotated[
            str | None, typer.Option(help="Only this target, e.g. app/grafana.")
        ] = None,
        as_json: JsonFlag = False,
    ) -> None:
        params = {
            k: v
            for k, v in {"limit": limit, "actor": actor, "action": action, "target": target}.items()
            if v is not None
        }
        rows = api().request("GET", "/audit/events", params=params).json()
        if as_json:
            out.print_json(json.dumps(rows))
            return
        table = Table("seq", "time", "actor", "action", "target", "outcome", title="audit events")
        for row in rows:
            table.add_row(
                str(row["seq"]),
                row["time"],
                row["actor"],
                row["action"],
                row["target"],
                row["outcome"],
            )
        out.print(table)

    @app.command("verify", help="Check the hash chain over every stored event.")
    def verify() -> None:
        status = api().request("GET", "/audit/verify").json()
        if status["intact"]:
            out.print("audit chain intact")
            return
        out.print(f"[red]audit chain broken at event {status['first_broken_seq']}[/red]")
        raise typer.Exit(1)

    return app
