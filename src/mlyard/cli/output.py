"""Printing results as JSON, YAML or a rich table (``-o json|yaml|table``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click

OUTPUT_FORMATS = ("table", "json", "yaml")

output_option = click.option(
    "-o", "--output", "output", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True,
    help="Output format.",
)

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def _getter(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row.get(key)


def emit(value: Any, fmt: str, columns: Sequence[Column] | None = None, title: str | None = None) -> None:
    if fmt == "json":
        click.echo(json.dumps(value, indent=2, default=str))
        return
    if fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(json.loads(json.dumps(value, default=str)), sort_keys=False).rstrip())
        return
    rows = value if isinstance(value, list) else [value]
    if columns is None:
        columns = [(k, _getter(k)) for k in (rows[0].keys() if rows else [])]
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for header, _ in columns:
        table.add_column(header)
    for row in rows:
        table.add_row(*["" if (v := get(row)) is None else str(v) for _, get in columns])
    Console().print(table)
