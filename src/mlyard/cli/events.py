"""``mlyard events``: the workspace's event log, as a table, as JSON, or followed live.

``mlyard events`` lists (it is the same as ``mlyard events list``); ``--follow`` (or ``mlyard events
follow``) prints the tail and then each new event until Ctrl-C; ``mlyard events types`` lists the types.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from mlyard.cli.context import make_client
from mlyard.cli.output import Column, emit, has_query, output_option, plain_table

F = TypeVar("F", bound=Callable[..., Any])
SUMMARY_WIDTH = 100


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def _split(traffic: dict[str, Any] | None) -> str:
    return " ".join(f"{k}={v}" for k, v in (traffic or {}).items()) or "none"


def summary(event: dict[str, Any]) -> str:
    """One short line saying what happened, from the event's data."""
    data: dict[str, Any] = event.get("data") or {}
    kind = event["type"]
    if kind in ("job.status_changed", "run.status_changed"):
        text = f"{data.get('previous') or '-'} -> {data.get('status')}"
        if data.get("error"):
            text += f": {str(data['error']).splitlines()[0]}"
    elif kind == "online_endpoint.traffic_changed":
        text = f"traffic {_split(data.get('previous_traffic'))} -> {_split(data.get('traffic'))}"
        if data.get("mirror_traffic") != data.get("previous_mirror_traffic"):
            text += f"; mirror {_split(data.get('previous_mirror_traffic'))} -> {_split(data.get('mirror_traffic'))}"
    elif kind == "model.alias_moved":
        text = f"{data.get('previous') or '-'} -> {data.get('version') or '-'}"
    else:
        text = " ".join(f"{k}={v}" for k, v in data.items() if v is not None and not isinstance(v, (dict, list)))
    return text if len(text) <= SUMMARY_WIDTH else text[:SUMMARY_WIDTH - 3] + "..."


COLUMNS: list[Column] = [
    ("id", lambda e: e["id"]),
    ("time", lambda e: _when(e["time"])),
    ("type", lambda e: e["type"]),
    ("subject", lambda e: e["subject"]),
    ("actor", lambda e: e["actor"]),
    ("summary", summary),
]


def _line(event: dict[str, Any]) -> str:
    return (f"{event['id']:>7}  {_when(event['time'])}  {event['type']:<32} {event['subject']:<28} "
            f"{event['actor']:<16} {summary(event)}").rstrip()


def _filters(command: F) -> F:
    """The listing options, on ``events`` itself and on ``events list|follow``."""
    for option in reversed([
        click.option("--type", "-t", "types", multiple=True, metavar="TYPE",
                     help="Only this event type, or an entity's every action (job.*); repeatable."),
        click.option("--subject", "-s", help="Only this subject, or its parts: a model's name matches name:3 "
                                             "and name@prod, an endpoint its deployments."),
        click.option("--after", type=click.IntRange(min=0), help="Only events after this id (page forward from "
                                                                  "a cursor). Default: the newest events."),
        click.option("--max-results", "-r", default=50, show_default=True, type=click.IntRange(1, 1000),
                     help="How many events to list."),
    ]):
        command = option(command)
    return command


def _run(ctx: click.Context, types: tuple[str, ...], subject: str | None, after: int | None, max_results: int,
         follow: bool, output: str) -> None:
    if follow and has_query():
        raise click.UsageError("--query applies to a listing, not to --follow: follow with -o json and filter each "
                               "line (jq), or list without --follow")
    client = make_client(ctx)
    newest = after is None
    page = client.events.list(types=types, subject=subject, after=after or 0, max_results=max_results,
                              newest=newest)
    events: list[dict[str, Any]] = page["events"]
    if not follow:
        emit(events, output, COLUMNS)
        if page.get("next_cursor") is not None and plain_table(output):
            click.secho(f"more: --after {page['next_cursor']}", fg="yellow", err=True)
        return
    show = _follow_printer(output)
    for event in events:
        show(event)
    # a tail that matched nothing: read on from the log's start; the same filters match nothing before now
    cursor = events[-1]["id"] if events else (after or 0)
    try:
        for event in client.events.stream(types=types, subject=subject, after=cursor):
            show(event)
    except KeyboardInterrupt:  # the way to stop following: not an error
        return


def _follow_printer(output: str) -> Callable[[dict[str, Any]], None]:
    """One line per event as it comes: aligned text for a person, one JSON object a line (-o json) for a program."""
    if output in ("json", "tsv", "yaml"):
        if output == "tsv":
            return lambda e: click.echo("\t".join(str(e[k]) for k in ("id", "time", "type", "subject", "actor")))
        return lambda e: click.echo(json.dumps(e))

    def show(event: dict[str, Any]) -> None:
        click.echo(_line(event))
        sys.stdout.flush()

    return show


@click.group(name="events", invoke_without_command=True)
@_filters
@click.option("--follow", "-f", is_flag=True, help="After the newest events, print each new one as it happens "
                                                   "until Ctrl-C (-o json: one JSON object a line).")
@output_option
@click.pass_context
def events(ctx: click.Context, types: tuple[str, ...], subject: str | None, after: int | None, max_results: int,
           follow: bool, output: str) -> None:
    """The event log: job status changes, data and model versions, deployments, traffic, alerts, firings.

    'mlyard events' lists the newest events (oldest first); --after ID pages forward from an id;
    --follow keeps printing new ones. 'mlyard events types' lists the event types.
    """
    if ctx.invoked_subcommand is None:
        _run(ctx, types, subject, after, max_results, follow, output)


@events.command("list")
@_filters
@output_option
@click.pass_context
def list_events(ctx: click.Context, types: tuple[str, ...], subject: str | None, after: int | None,
                max_results: int, output: str) -> None:
    """List the newest events, or those after --after ID (same as 'mlyard events')."""
    _run(ctx, types, subject, after, max_results, False, output)


@events.command("follow")
@_filters
@output_option
@click.pass_context
def follow_events(ctx: click.Context, types: tuple[str, ...], subject: str | None, after: int | None,
                  max_results: int, output: str) -> None:
    """Print the newest events, then each new one as it happens, until Ctrl-C (same as 'mlyard events -f')."""
    _run(ctx, types, subject, after, max_results, True, output)


@events.command("types")
@output_option
@click.pass_context
def list_types(ctx: click.Context, output: str) -> None:
    """List the event types mlyard writes, with what each means."""
    emit(make_client(ctx).events.types(), output, [("type", lambda t: t["type"]),
                                                    ("description", lambda t: t["description"])])
