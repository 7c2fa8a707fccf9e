"""Printing results as ``-o table|json|yaml|tsv``, after an optional ``--query`` (JMESPath, as ``az`` has).

Every command that prints a result takes both through :data:`output_option` and prints through
:func:`emit`, so they behave alike:

- ``--query`` applies to the JSON result (what ``-o json`` prints), before formatting. With the
  table output (the default) a queried value prints plainly: a scalar as itself, a list of scalars
  one per line, objects as a table of their keys.
- ``-o tsv`` (for scripts) prints no headers: a scalar on its line, each item of a list on its own
  line, an object's values (or a list item's values) tab-separated. Values nested inside a row
  (objects, lists) are left as an empty field, so columns line up: query them to get their values.
  ``null`` is an empty field, booleans are ``true``/``false``.
- Tables keep names and versions whole: when the output is not a terminal the table takes the width
  it needs; on a terminal, name-like columns never wrap and the others fold.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

OUTPUT_FORMATS = ("table", "json", "yaml", "tsv")
_QUERY_KEY = "mlyard.query"
# Columns that hold what users copy into the next command: never wrapped or cut.
KEY_COLUMNS = frozenset({"name", "version", "job", "step", "field", "reused from"})

Column = tuple[str, Callable[[dict[str, Any]], Any]]
F = TypeVar("F", bound=Callable[..., Any])


def _store_query(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        ctx.meta[_QUERY_KEY] = jmespath.compile(value)
    except JMESPathError as exc:  # checked before the command does anything
        raise click.BadParameter(f"{value!r} is not a JMESPath expression: {exc}", ctx, _param) from exc


def output_option(command: F) -> F:
    """``-o/--output`` and ``--query``: the output of every command that prints a result."""
    command = click.option(
        "--query", metavar="JMESPATH", callback=_store_query, expose_value=False, is_eager=False,
        help="JMESPath query applied to the JSON result, e.g. --query name or --query '[].name'.",
    )(command)
    decorated: F = click.option(
        "-o", "--output", "output", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True,
        help="Output format; tsv prints values only (no headers), for scripts.",
    )(command)
    return decorated


def has_query() -> bool:
    """Whether ``--query`` was given (commands with their own table layout then print through ``emit``)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.meta.get(_QUERY_KEY) is not None


def plain_table(fmt: str) -> bool:
    """Whether the command should print its own human layout: table output and no ``--query``."""
    return fmt == "table" and not has_query()


def _apply_query(value: Any) -> Any:
    ctx = click.get_current_context(silent=True)
    compiled = ctx.meta.get(_QUERY_KEY) if ctx is not None else None
    if compiled is None:
        return value
    from jmespath.exceptions import JMESPathError

    try:
        return compiled.search(value)
    except JMESPathError as exc:
        raise click.UsageError(f"--query {compiled.expression!r} failed on this result: {exc}") from exc


def emit(value: Any, fmt: str, columns: Sequence[Column] | None = None, title: str | None = None) -> None:
    """Print ``value`` (the JSON result) in ``fmt``; ``columns`` lay out the table of an unqueried result."""
    value = json.loads(json.dumps(value, default=str))
    queried = has_query()
    value = _apply_query(value)
    if fmt == "json":
        click.echo(json.dumps(value, indent=2))
    elif fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(value, sort_keys=False).rstrip())
    elif fmt == "tsv":
        for line in tsv_lines(value):
            click.echo(line)
    elif queried:
        _emit_queried(value, title)
    else:
        _print_table(value if isinstance(value, list) else [value], columns, title)


def _emit_queried(value: Any, title: str | None) -> None:
    rows = value if isinstance(value, list) else [value]
    if rows and all(isinstance(r, dict) for r in rows):
        _print_table(rows, None, title)
    elif all(not isinstance(r, (dict, list)) for r in rows):
        for line in tsv_lines(rows):
            click.echo(line)
    else:
        click.echo(json.dumps(value, indent=2))


def _tsv_value(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def tsv_lines(value: Any) -> list[str]:
    """az's tsv: each list item a line; an object's (or a row list's) values tab-separated; no headers."""
    if value is None:
        return []
    rows = value if isinstance(value, list) else [value]
    lines = []
    for row in rows:
        if isinstance(row, dict):
            lines.append("\t".join(_tsv_value(v) for v in row.values()))
        elif isinstance(row, list):
            lines.append("\t".join(_tsv_value(v) for v in row))
        else:
            lines.append(_tsv_value(row))
    return lines


def _print_table(rows: list[Any], columns: Sequence[Column] | None, title: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    if columns is None:
        keys = list(dict.fromkeys(k for r in rows if isinstance(r, dict) for k in r))
        columns = [(k, _getter(k)) for k in keys]
    table = Table(title=title, show_lines=False)
    for header, _ in columns:
        if header in KEY_COLUMNS:
            table.add_column(header, no_wrap=True)
        else:
            table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*[_cell(get(row)) for _, get in columns])
    # Not a terminal (a pipe, a file, CI): rich would cut at 80 columns; give the table what it needs.
    console = Console() if sys.stdout.isatty() else Console(width=100_000)
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _getter(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row.get(key)
