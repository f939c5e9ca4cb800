"""Options shared by the commands that read settings: `--config`, `--data-dir`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from zerogate.config import ConfigError, Settings, load_settings

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file (or $ZEROGATE_CONFIG).")
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default ./zerogate-data).")
]
err = Console(stderr=True)


def settings_or_exit(config: Path | None, overrides: Mapping[str, object]) -> Settings:
    try:
        return load_settings(config, overrides=overrides)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
