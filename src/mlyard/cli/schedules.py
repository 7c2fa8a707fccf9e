"""``mlyard schedule``: job and monitor schedules, shaped like ``az ml schedule``."""

from __future__ import annotations

from typing import Any

import click

from mlyard.cli.context import make_client
from mlyard.cli.output import Column, emit, output_option, plain_table


def _trigger(r: dict[str, Any]) -> str:
    t = r.get("trigger") or {}
    if t.get("type") == "cron":
        what = f"cron '{t.get('expression')}'"
    else:
        what = f"every {t.get('interval', 1)} {t.get('frequency')}"
        pattern = t.get("schedule") or {}
        if pattern:
            what += f" at hours {pattern.get('hours')} minutes {pattern.get('minutes')}"
            if pattern.get("week_days"):
                what += f" on {', '.join(pattern['week_days'])}"
            if pattern.get("month_days"):
                what += f" on days {pattern['month_days']}"
    return f"{what} ({t.get('time_zone') or 'UTC'})"


LIST_COLUMNS: list[Column] = [
    ("name", lambda r: r["name"]),
    ("enabled", lambda r: "yes" if r["is_enabled"] else "no"),
    ("action", lambda r: r["action"]),
    ("trigger", _trigger),
    ("next firing (UTC)", lambda r: (r.get("next_fire_at") or "") if r["is_enabled"] else ""),
    ("last fired (UTC)", lambda r: r.get("last_fired_at") or ""),
]
FIRING_COLUMNS: list[Column] = [
    ("due (UTC)", lambda f: f["fire_at"]),
    ("catch-up", lambda f: "yes" if f["catch_up"] else ""),
    ("job", lambda f: f.get("job") or ""),
    ("error or note", lambda f: f.get("error") or f.get("note") or ""),
]


def _warn(loaded: Any) -> None:
    for warning in loaded.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)


@click.group(name="schedule", help="Schedules: run a job (or a monitor) on a cron or recurrence trigger.")
def schedule() -> None:
    pass


@schedule.command("create")
@click.option("-f", "--file", required=True, type=click.Path(dir_okay=False), help="YAML file of the schedule.")
@click.option("-n", "--name", help="Schedule name (wins over the file).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override a field (repeatable), e.g. --set trigger.time_zone=UTC.")
@output_option
@click.pass_context
def create(ctx: click.Context, file: str, name: str | None, overrides: tuple[str, ...], output: str) -> None:
    """Create a schedule; its job's local code and data are uploaded now, as 'job create' does.

    create_job is a job file, azureml:<job name> (an existing job, run again with its spec), or an
    object with job: and the fields it overrides. The schedule is enabled unless is_enabled: false.
    """
    from mlyard.specs import load_spec

    loaded = load_spec(file, "schedule", overrides=overrides, name=name)
    _warn(loaded)
    emit(make_client(ctx).schedules.create(loaded.to_dict()), output, LIST_COLUMNS)


@schedule.command("update")
@click.option("-n", "--name", required=True, help="Schedule name.")
@click.option("-f", "--file", type=click.Path(dir_okay=False), help="YAML file of the schedule (optional).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override a field (repeatable): description, tags.KEY, display_name, trigger.FIELD.")
@output_option
@click.pass_context
def update(ctx: click.Context, name: str, file: str | None, overrides: tuple[str, ...], output: str) -> None:
    """Change a schedule (the next firing is computed again from now); enable and disable switch it."""
    from mlyard.specs import load_spec, load_spec_dict

    client = make_client(ctx)
    if file is not None:
        loaded = load_spec(file, "schedule", overrides=overrides, name=name)
        _warn(loaded)
        spec = loaded.to_dict()
    elif overrides:
        current = client.schedules.get(name)["spec"]
        loaded = load_spec_dict(current, "schedule", source=f"schedule {name}", overrides=overrides)
        _warn(loaded)
        spec = loaded.to_dict()
    else:
        raise click.UsageError("nothing to change: give -f FILE or --set PATH=VALUE")
    emit(client.schedules.update(name, spec), output, LIST_COLUMNS)


@schedule.command("enable")
@click.option("-n", "--name", required=True, help="Schedule name.")
@output_option
@click.pass_context
def enable(ctx: click.Context, name: str, output: str) -> None:
    """Enable a schedule; it fires from its next instant on (none for the time it was disabled)."""
    emit(make_client(ctx).schedules.enable(name), output, LIST_COLUMNS)


@schedule.command("disable")
@click.option("-n", "--name", required=True, help="Schedule name.")
@output_option
@click.pass_context
def disable(ctx: click.Context, name: str, output: str) -> None:
    """Disable a schedule: it fires nothing until enabled again."""
    emit(make_client(ctx).schedules.disable(name), output, LIST_COLUMNS)


@schedule.command("delete")
@click.option("-n", "--name", required=True, help="Schedule name.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(ctx: click.Context, name: str, yes: bool) -> None:
    """Delete a schedule; it must be disabled first, as on Azure (the jobs it started stay)."""
    if not yes:
        click.confirm(f"delete schedule {name}?", abort=True)
    make_client(ctx).schedules.delete(name)
    click.echo(f"deleted schedule {name}")


@schedule.command("list")
@output_option
@click.pass_context
def list_(ctx: click.Context, output: str) -> None:
    """List schedules with their next firing."""
    emit(make_client(ctx).schedules.list(), output, LIST_COLUMNS)


@schedule.command("show")
@click.option("-n", "--name", required=True, help="Schedule name.")
@output_option
@click.pass_context
def show(ctx: click.Context, name: str, output: str) -> None:
    """Show a schedule: its next five firing times, its latest firings and jobs, and the catch-up rule."""
    s = make_client(ctx).schedules.get(name)
    if not plain_table(output):
        emit(s, output)
        return
    click.secho(f"schedule {s['name']} ({s['action']}): {'enabled' if s['is_enabled'] else 'disabled'}", bold=True)
    if s.get("display_name") or s.get("description"):
        click.echo(f"  {s.get('display_name') or ''}{' - ' if s.get('display_name') and s.get('description') else ''}"
                   f"{s.get('description') or ''}")
    click.echo(f"  trigger: {_trigger(s)}")
    click.echo(f"  created by {s['created_by']}; time zone {s['time_zone']}")
    if s["next_firings"]:
        click.echo(f"  next firings (UTC, and on the clock of {s['time_zone']}):")
        for at, local in zip(s["next_firings"], s.get("next_firings_local") or s["next_firings"], strict=False):
            click.echo(f"    {at}   {local}")
    else:
        click.echo("  next firings: none (" + ("disabled" if not s["is_enabled"] else "no instant left") + ")")
    click.echo(f"  last fired: {s.get('last_fired_at') or 'never'}; last job: {s.get('last_job') or 'none'}")
    click.echo(f"  catch-up: {s['catch_up_rule']}")
    if s.get("note"):
        click.secho(f"  note: {s['note']}", fg="yellow")
    if s["firings"]:
        emit(s["firings"], "table", FIRING_COLUMNS)
