"""``mlyard trigger``: rules that create a job when an event of the log matches."""

from __future__ import annotations

from typing import Any

import click

from mlyard.cli.context import make_client
from mlyard.cli.output import Column, emit, output_option, plain_table


def _types(r: dict[str, Any]) -> str:
    return ", ".join((r.get("event") or {}).get("type") or [])


LIST_COLUMNS: list[Column] = [
    ("name", lambda r: r["name"]),
    ("enabled", lambda r: "yes" if r["enabled"] else "no"),
    ("event", _types),
    ("subject", lambda r: (r.get("event") or {}).get("subject") or ""),
    ("cool-down", lambda r: r["cool_down"]),
    ("job", lambda r: r["job_type"]),
]
FIRING_COLUMNS: list[Column] = [
    ("event", lambda r: r["event"]),
    ("outcome", lambda r: r["outcome"]),
    ("job", lambda r: r.get("job") or ""),
    ("error", lambda r: r.get("error") or ""),
]


@click.group(name="trigger", help="Triggers: create a job from a YAML file when an event matches "
             "(a new model version, a monitor alert...).")
def trigger() -> None:
    pass


@trigger.command("create")
@click.option("-f", "--file", required=True, type=click.Path(dir_okay=False), help="YAML file of the trigger.")
@click.option("-n", "--name", help="Trigger name (wins over the file).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a field (repeatable).")
@output_option
@click.pass_context
def create(ctx: click.Context, file: str, name: str | None, overrides: tuple[str, ...], output: str) -> None:
    """Create a trigger from FILE: its create_job file is read, and the job's local code and data uploaded.

    The trigger starts at the end of the event log: events that happened before are not replayed.
    """
    from mlyard.specs import load_spec

    loaded = load_spec(file, "trigger", overrides=overrides, name=name)
    for warning in loaded.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    emit(make_client(ctx).triggers.create(loaded.to_dict()), output, LIST_COLUMNS)


@trigger.command("list")
@output_option
@click.pass_context
def list_(ctx: click.Context, output: str) -> None:
    """List the triggers."""
    emit(make_client(ctx).triggers.list(), output, LIST_COLUMNS)


@trigger.command("show")
@click.option("-n", "--name", required=True, help="Trigger name.")
@click.option("--max-firings", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="How many of the latest firings to show.")
@output_option
@click.pass_context
def show(ctx: click.Context, name: str, max_firings: int, output: str) -> None:
    """Show a trigger: its rule, cool-down, inputs, and its latest firings (event, outcome, job)."""
    result = make_client(ctx).triggers.get(name, max_firings=max_firings)
    if not plain_table(output):
        emit(result, output)
        return
    emit(result, output, LIST_COLUMNS)
    event = result.get("event") or {}
    if event.get("filter"):
        click.echo(f"filter: {event['filter']}")
    for key, value in (result.get("inputs") or {}).items():
        click.echo(f"input {key}: {value}")
    firings = result.get("firings") or []
    if firings:
        emit(firings, output, FIRING_COLUMNS, title="latest firings")
    else:
        click.echo("no firings yet")


@trigger.command("enable")
@click.option("-n", "--name", required=True, help="Trigger name.")
@output_option
@click.pass_context
def enable(ctx: click.Context, name: str, output: str) -> None:
    """Enable a trigger; it starts at the end of the event log (what happened while it was off is skipped)."""
    emit(make_client(ctx).triggers.enable(name), output, LIST_COLUMNS)


@trigger.command("disable")
@click.option("-n", "--name", required=True, help="Trigger name.")
@output_option
@click.pass_context
def disable(ctx: click.Context, name: str, output: str) -> None:
    """Disable a trigger: it starts no job until enabled again."""
    emit(make_client(ctx).triggers.disable(name), output, LIST_COLUMNS)


@trigger.command("delete")
@click.option("-n", "--name", required=True, help="Trigger name.")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Delete a trigger and its firings; the jobs it started stay (tagged mlyard.trigger)."""
    make_client(ctx).triggers.delete(name)
    click.echo(f"deleted trigger {name}")
