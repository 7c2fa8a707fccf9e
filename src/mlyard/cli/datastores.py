"""``mlyard datastore list``."""

from __future__ import annotations

import click

from mlyard.cli.context import make_client
from mlyard.cli.output import emit, output_option


@click.group()
def datastore() -> None:
    """Datastores of the workspace (workspaceblobstore is the default)."""


@datastore.command("list")
@output_option
@click.pass_context
def list_(ctx: click.Context, output: str) -> None:
    """List datastores."""
    rows = make_client(ctx).transport.json("GET", "/api/v1/datastores")
    emit(rows, output, [("name", lambda r: r["name"]), ("type", lambda r: r["type"]),
                        ("default", lambda r: "yes" if r["is_default"] else ""), ("root", lambda r: r["root"])])


@datastore.command("show")
@click.option("-n", "--name", required=True, help="Datastore name.")
@output_option
@click.pass_context
def show(ctx: click.Context, name: str, output: str) -> None:
    """Show a datastore."""
    from mlyard.core.errors import NotFoundError

    rows = make_client(ctx).transport.json("GET", "/api/v1/datastores")
    found = [r for r in rows if r["name"] == name]
    if not found:
        raise NotFoundError(f"datastore {name} not found; the workspace has: {', '.join(r['name'] for r in rows)}")
    emit(found[0], output)
