"""`zerogate admin import` and `export`: the inventory as one YAML file.

The control plane validates; this side only parses, shows progress, and turns the paths of
reported problems back into the file's line numbers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from zerogate.cli.client import Api, fail
from zerogate.cli.yaml_lines import Loader, line_of

out = Console()
err = Console(stderr=True)


def _load(file: Path) -> tuple[object, str]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]cannot read {file}:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    try:
        return yaml.load(text, Loader=Loader), text  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        err.print(
            f"[red]{where}: invalid YAML:[/red] {getattr(exc, 'problem', exc)}", highlight=False
        )
        raise typer.Exit(2) from None


def _report(file: Path, text: str, body: dict[str, object]) -> None:
    err.print(f"[red]{body.get('detail')}[/red]", highlight=False)
    errors = body.get("errors")
    for item in errors if isinstance(errors, list) else []:
        path = [part for part in item.get("loc", []) if part != "body"]
        line = line_of(text, path)
        where = f"{file}:{line}" if line else str(file)
        dotted = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(
            ".[", "["
        )
        err.print(f"{where}: {dotted}: {item.get('msg')}", highlight=False)
    raise typer.Exit(1)


def import_file(api: Api, file: Path, dry_run: bool) -> None:
    data, text = _load(file)
    if not isinstance(data, dict):
        err.print(f"[red]{file}:1: the file must be a mapping of sections like `apps:`[/red]")
        raise typer.Exit(1)
    with api.stream("POST", "/import", json=data, params={"dry_run": dry_run}) as response:
        if response.status_code == 422:
            response.read()
            _report(file, text, response.json())
        if response.status_code >= 400:
            response.read()
            fail(response)
        if dry_run:
            response.read()
            out.print(f"{file}: valid, {response.json()['total']} objects; nothing written")
            return
        _follow(response.iter_lines())


def _follow(lines: Iterator[str]) -> None:
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task("import", total=None)
        for line in lines:
            event = json.loads(line)
            if "total" in event:
                progress.update(task, total=event["total"])
            elif "done" in event:
                progress.update(task, completed=event["done"])
            elif "error" in event:
                err.print(f"[red]{event['error']}[/red]", highlight=False)
                raise typer.Exit(1)
            elif "result" in event:
                progress.update(task, completed=progress.tasks[0].total)
                _summary(event["result"])
                return
    err.print(
        "[red]the control plane closed the import without a result; nothing was written[/red]"
    )
    raise typer.Exit(1)


def _summary(counts: dict[str, dict[str, int]]) -> None:
    table = Table("kind", "created", "updated", "unchanged", title="imported")
    for kind, numbers in counts.items():
        table.add_row(kind, *(str(numbers[k]) for k in ("created", "updated", "unchanged")))
    out.print(table)


def export_file(api: Api, output: Path | None) -> None:
    document = api.request("GET", "/export").json()
    text = yaml.dump(
        document,
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
        sort_keys=False,
        allow_unicode=True,
    )
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        total = sum(len(items) for items in document.values())
        err.print(f"wrote {total} objects to {output}", highlight=False)
