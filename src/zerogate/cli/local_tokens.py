"""`zerogate token`: admin tokens made directly in the data directory's database.

For the operator on the control-plane host (like a first token, or after losing every
token); anyone else uses `zerogate admin token` through the API.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zerogate.cli.settings_options import ConfigOption, DataDirOption, settings_or_exit
from zerogate.core.api_tokens import Scope
from zerogate.store import tokens
from zerogate.store.db import open_database

app = typer.Typer(help="Admin API tokens, made on the control-plane host.", no_args_is_help=True)
out = Console()


@app.command("create", help="Create an API token; it is printed once.")
def create(
    name: Annotated[str, typer.Argument(help="A name for the token, e.g. ci-pipeline.")],
    scope: Annotated[Scope, typer.Option(help="admin or auditor (read-only).")] = Scope.ADMIN,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    settings = settings_or_exit(config, {"data_dir": data_dir})
    db = open_database(settings.effective_database_url)
    with db.transaction() as session:
        _row, text = tokens.issue(session, name=name, scope=scope, actor="cli:local")
    db.close()
    out.print(text, highlight=False)


@app.command("list", help="List API tokens (never their secrets).")
def list_tokens(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    settings = settings_or_exit(config, {"data_dir": data_dir})
    db = open_database(settings.effective_database_url)
    table = Table("id", "name", "scope", "created", "revoked")
    with db.transaction() as session:
        for row in tokens.all_tokens(session):
            revoked = row.revoked_at.isoformat() if row.revoked_at else ""
            table.add_row(row.id, row.name, row.scope, row.created_at.isoformat(), revoked)
    db.close()
    out.print(table)
