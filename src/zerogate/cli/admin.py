"""`zerogate admin`: everything the API can do, for people and scripts.

The inventory sub-commands (`app`, `user`, `group`, …) are generated from the kinds
table: each has `list`, `show`, `create`, `update` and `delete`, with one option per field.
"""

# No `from __future__ import annotations`: typer reads these closures' annotations at run time.

import inspect
import json
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from zerogate.cli import transfer
from zerogate.cli.admin_connectors import add_connector_commands
from zerogate.cli.admin_gateways import add_gateway_commands
from zerogate.cli.admin_policy import policy_app
from zerogate.cli.admin_tokens import audit_app, token_app
from zerogate.cli.client import Api, target_from_env
from zerogate.core.inventory.kinds import KINDS, Kind

app = typer.Typer(help="Manage zerogate through its API.", no_args_is_help=True)
out = Console()
state: dict[str, Api] = {}


@app.callback()
def connect(
    url: Annotated[str | None, typer.Option(help="Control-plane URL ($ZEROGATE_URL).")] = None,
    token: Annotated[str | None, typer.Option(help="API token ($ZEROGATE_TOKEN).")] = None,
    ca_cert: Annotated[
        Path | None, typer.Option(help="CA certificate ($ZEROGATE_CA_CERT).")
    ] = None,
) -> None:
    state["target"] = target_from_env(url, token, ca_cert)  # type: ignore[assignment]


def api() -> Api:
    return Api(state["target"])  # type: ignore[arg-type]


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return "" if value is None else str(value)


def print_rows(
    kind: Kind, rows: list[dict[str, Any]], as_json: bool, total: int | None = None
) -> None:
    if as_json:
        out.print_json(json.dumps(rows))
        return
    columns = [field for field in kind.spec.model_fields if field != "description"]
    table = Table(*columns, title=f"{kind.plural} ({total if total is not None else len(rows)})")
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    out.print(table)


def print_object(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(row))
        return
    table = Table("field", "value", show_header=False)
    for field, value in row.items():
        table.add_row(field, _cell(value))
    out.print(table)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _field_params(kind: Kind) -> list[inspect.Parameter]:
    """One keyword option per schema field but the key: lists repeat, booleans are flags."""
    params = []
    for name, info in kind.spec.model_fields.items():
        if name == kind.key:
            continue
        flag = "--" + name.replace("_", "-")
        origin = typing.get_origin(info.annotation)
        if info.annotation is bool or "StrictBool" in str(info.annotation):
            annotation: Any = Annotated[bool | None, typer.Option(f"{flag}/--no-{flag[2:]}")]
        elif origin is list:
            annotation = Annotated[list[str] | None, typer.Option(flag, help="Repeat for several.")]
        else:
            annotation = Annotated[str | None, typer.Option(flag, help='"" clears it.')]
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
            )
        )
    return params


def _body(kind: Kind, values: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or name not in kind.spec.model_fields:
            continue
        nullable = "None" in str(kind.spec.model_fields[name].annotation)
        body[name] = None if value == "" and nullable else value
    return body


def _with_fields(
    kind: Kind, func: Callable[..., None], leading: list[inspect.Parameter]
) -> Callable[..., None]:
    func.__signature__ = inspect.Signature([*leading, *_field_params(kind)])  # type: ignore[attr-defined]
    return func


def kind_app(kind: Kind, skip: frozenset[str] = frozenset()) -> typer.Typer:
    """The generic verbs for `kind`, but those in `skip` (a kind that has its own)."""
    group = typer.Typer(help=f"Manage {kind.plural}.", no_args_is_help=True)
    key_param = inspect.Parameter(
        "key",
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        annotation=Annotated[str, typer.Argument(help=f"The {kind.title}'s {kind.key}.")],
    )
    json_param = inspect.Parameter(
        "as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonFlag
    )
    path = f"/{kind.plural}"

    def list_cmd(
        limit: Annotated[int, typer.Option(help="Page size.")] = 100,
        offset: Annotated[int, typer.Option(help="Objects to skip.")] = 0,
        as_json: JsonFlag = False,
    ) -> None:
        page = api().request("GET", path, params={"limit": limit, "offset": offset}).json()
        print_rows(kind, page["items"], as_json, page["total"])

    if "list" not in skip:
        group.command("list", help=f"List {kind.plural}.")(list_cmd)

    @group.command("show", help=f"Show one {kind.title}.")
    def show_cmd(
        key: Annotated[str, typer.Argument(help=f"The {kind.title}'s {kind.key}.")],
        as_json: JsonFlag = False,
    ) -> None:
        print_object(api().request("GET", f"{path}/{key}").json(), as_json)

    def create_cmd(key: str, as_json: bool = False, **fields: Any) -> None:
        body = {kind.key: key, **_body(kind, fields)}
        print_object(api().request("POST", path, json=body).json(), as_json)

    def update_cmd(key: str, as_json: bool = False, **fields: Any) -> None:
        print_object(
            api().request("PATCH", f"{path}/{key}", json=_body(kind, fields)).json(), as_json
        )

    if "create" not in skip:
        group.command("create", help=f"Create a {kind.title}.")(
            _with_fields(kind, create_cmd, [key_param, json_param])
        )
    group.command("update", help=f"Change a {kind.title}'s fields.")(
        _with_fields(kind, update_cmd, [key_param, json_param])
    )

    @group.command("delete", help=f"Delete a {kind.title}.")
    def delete_cmd(
        key: Annotated[str, typer.Argument(help=f"The {kind.title}'s {kind.key}.")],
    ) -> None:
        api().request("DELETE", f"{path}/{key}")
        out.print(f"deleted {kind.title} {key}", highlight=False)

    return group


for _kind in KINDS:
    if _kind.name == "connector":
        _connectors = kind_app(_kind, skip=frozenset({"create", "list"}))
        add_connector_commands(_connectors, api)
        app.add_typer(_connectors, name="connector")
    elif _kind.name == "gateway":
        _gateways = kind_app(_kind)
        add_gateway_commands(_gateways, api)
        app.add_typer(_gateways, name="gateway")
    else:
        app.add_typer(kind_app(_kind), name=_kind.name.replace("_", "-"))
app.add_typer(token_app(api), name="token")
app.add_typer(audit_app(api), name="audit")
app.add_typer(policy_app(api), name="policy")


@app.command(
    "import", help="Create or update a whole inventory from a YAML file, in one transaction."
)
def import_cmd(
    file: Annotated[Path, typer.Argument(help="Inventory YAML (the format `export` writes).")],
    dry_run: Annotated[bool, typer.Option(help="Only validate; write nothing.")] = False,
) -> None:
    transfer.import_file(api(), file, dry_run)


@app.command("export", help="Write the whole inventory as YAML (the format `import` reads).")
def export_cmd(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout).")
    ] = None,
) -> None:
    transfer.export_file(api(), output)
