"""Table-for-people, JSON-for-machines output shared by every CLI command."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import click

__all__ = ["emit", "fail", "json_option"]

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines instead of a table.")


def _default(value: object) -> str:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def emit(rows: Sequence[dict[str, Any]] | dict[str, Any], columns: Sequence[str] | None, as_json: bool,
         title: str | None = None) -> None:
    """Print rows as a rich table, or as JSON with --json."""
    if as_json:
        click.echo(json.dumps(rows, default=_default, indent=2))
        return
    # rich only for tables: a `--json` run (cron, scripts) never loads it.
    from rich.console import Console
    from rich.table import Table

    if isinstance(rows, dict):
        rows = [rows]
    cols = list(columns or (rows[0].keys() if rows else []))
    # Cells wrap (long words fold) rather than being cut with "…": an error cut mid-word hides
    # what to do. A terminal gives its width; a pipe or a file gets $COLUMNS, else 120.
    table = Table(title=title, show_lines=False)
    for col in cols:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else _default(row.get(c)) for c in cols))
    console = Console()
    if not console.is_terminal:
        console = Console(width=_width(), soft_wrap=False)
    console.print(table)
    if not rows:
        click.echo("(none)")


def _width() -> int:
    try:
        return max(40, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return 120


def fail(message: str, code: int = 1) -> None:
    """One clear line on stderr, then exit."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)
