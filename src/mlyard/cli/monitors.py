"""``mlyard monitor``: run a monitor now (its signals as a job), list monitors, show their runs and alerts."""

from __future__ import annotations

import sys
from typing import Any

import click

from mlyard.cli.context import make_client
from mlyard.cli.output import Column, emit, output_option, plain_table


def _alerts(run: dict[str, Any] | None) -> str:
    return ", ".join(a["signal"] for a in (run or {}).get("alerts") or []) if run else ""


LIST_COLUMNS: list[Column] = [
    ("name", lambda r: r["name"]),
    ("scheduled", lambda r: ("enabled" if r["enabled"] else "disabled") if r["scheduled"] else "no"),
    ("last run", lambda r: (r.get("last_run") or {}).get("job") or ""),
    ("status", lambda r: (r.get("last_run") or {}).get("status") or ""),
    ("alerted signals", lambda r: _alerts(r.get("last_run"))),
]
RUN_COLUMNS: list[Column] = [
    ("job", lambda r: r["job"]),
    ("display name", lambda r: r.get("display_name") or ""),
    ("status", lambda r: r["status"]),
    ("alerted signals", _alerts),
]


def _show(value: Any) -> str:
    if value is None:
        return "-"
    value = float(value)
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


def result_rows(signal: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per metric of a signal of ``signals.json``: feature, type, metric, value, threshold, alert."""
    rows: list[tuple[str, ...]] = []
    metrics = signal.get("metrics") or {}
    for feature, values in (metrics.get("features") or {}).items():
        if not values.get("metrics"):
            rows.append((feature, values.get("dataType", ""), "", "", "",
                         f"{values.get('status')}: {values.get('message') or ''}"))
        for m in values.get("metrics") or []:
            rows.append((feature, values.get("dataType", ""), m["metricName"], _show(m.get("metricValue")),
                         _show(m.get("threshold")), "ALERT" if m.get("alert") else ""))
    for m in metrics.get("signal") or []:
        rows.append(("(signal)", "", m["metricName"], _show(m.get("metricValue")), _show(m.get("threshold")),
                     "ALERT" if m.get("alert") else ""))
    return rows


def print_result(result: dict[str, Any]) -> None:
    """A table per signal: each feature's metric against its threshold, alerts in red."""
    import shutil

    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(shutil.get_terminal_size().columns, 100))
    console.print(f"monitor run at {result.get('runAt')}: [bold]{result.get('status')}[/]")
    for signal in result.get("signals") or []:
        features = (signal.get("metrics") or {}).get("features") or {}
        alerted = sum(1 for v in features.values() if v.get("status") == "alerted")
        counts = (signal.get("metrics") or {}).get("rowCount") or {}
        status = signal.get("status", "")
        colour = {"alerted": "red", "passed": "green"}.get(status, "yellow")
        table = Table(title=f"{signal['signalName']} ({signal.get('signalType')}): [{colour}]{status}[/], "
                      f"{alerted} of {len(features)} features alerted; rows: reference "
                      f"{counts.get('baselineCount', '-')}, production {counts.get('targetCount', '-')}",
                      title_justify="left")
        for column in ("Feature", "Type", "Metric", "Value", "Threshold", "Alert"):
            table.add_column(column, overflow="fold", justify="right" if column in ("Value", "Threshold") else "left")
        for row in result_rows(signal):
            table.add_row(*row, style="bold red" if row[-1] == "ALERT" else "")
        if status == "error":
            table.caption = f"error: {signal.get('message')}"
        console.print(table)


def drifted(result: dict[str, Any]) -> dict[str, list[str]]:
    """Alerted signal -> the features (or signal metrics) that crossed their thresholds."""
    out: dict[str, list[str]] = {}
    for signal in result.get("signals") or []:
        if signal.get("status") == "alerted":
            out[signal["signalName"]] = sorted({b.get("group") or b.get("metric_name") for b in
                                                signal.get("breaches") or []})
    return out


@click.group(name="monitor", help="Model monitors: run a monitor schedule's signals now as a job, list monitors, "
             "show their runs and alerts.")
def monitor() -> None:
    pass


@monitor.command("run")
@click.option("-f", "--file", type=click.Path(dir_okay=False), help="A schedule YAML with create_monitor.")
@click.option("-n", "--name", help="A stored monitor schedule to run now (instead of --file).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a field of --file.")
@click.option("-s", "--stream", is_flag=True, help="Print the job's log as it runs (the engine's table included).")
@click.option("--no-wait", is_flag=True, help="Print the job's name and return without waiting for the run.")
@output_option
@click.pass_context
def run(ctx: click.Context, file: str | None, name: str | None, overrides: tuple[str, ...], stream: bool,
        no_wait: bool, output: str) -> None:
    """Run a monitor now: its signals are computed by a job (display name <monitor>-YYYYMMDDThhmmssZ, experiment
    the monitor's name) whose output holds signals.json and report.html.

    With --file, local data files and folders of the signals are uploaded first. Unless --no-wait, waits for the run
    and prints each feature's metric against its threshold (-o json: the signals' results in Azure's JSON shape).
    Exits 1 when the run fails; an alert is a result, not a failure.
    """
    if (file is None) == (name is None):
        raise click.UsageError("give a monitor schedule file (-f) or the name of a stored one (-n), one of the two")
    client = make_client(ctx)
    if file is not None:
        from mlyard.specs import load_spec

        loaded = load_spec(file, "schedule", overrides=overrides)
        for warning in loaded.warnings:
            click.secho(f"warning: {warning}", fg="yellow", err=True)
        spec = loaded.to_dict()
        if not spec.get("create_monitor"):
            raise click.UsageError(f"{file} is a job schedule (create_job); 'mlyard monitor run' runs schedules "
                                   "with create_monitor ('mlyard schedule create' stores job schedules)")
        started = client.monitors.run(spec)
    elif name is not None:
        if overrides:
            raise click.UsageError("--set changes a --file; a stored schedule is changed with 'mlyard schedule update'")
        started = client.monitors.run_stored(name)
    monitor_name, job = started["monitor"], started["job"]
    table = plain_table(output)
    if table:
        click.echo(f"submitted monitor run {job} (monitor {monitor_name}, display name {started['display_name']})")
    if no_wait:
        if not table:
            emit(started, output)
        else:
            click.echo(f"follow it with: mlyard job stream -n {job}")
        return
    if stream and table:
        from mlyard.cli.jobs import _follow

        _follow(client, job, quiet=False)
    try:
        finished = client.monitors.wait(monitor_name, job)
    except KeyboardInterrupt:
        click.echo(f"\nstopped waiting; the run goes on: mlyard monitor show -n {monitor_name}", err=True)
        sys.exit(130)
    result = finished.get("result")
    if finished["status"] != "Completed" and not stream:
        _log_tail(client, job)
    if not table:
        emit(result if result is not None else finished, output)
    else:
        if result is not None and not stream:
            print_result(result)
        _summary(finished, result)
    if finished["status"] != "Completed":
        sys.exit(1)


def _log_tail(client: Any, job: str, lines: int = 25) -> None:
    """The end of a failed run's log, on stderr: why it failed, without a second command."""
    try:
        text = str(client.jobs.logs(job)["text"])
    except Exception:  # noqa: BLE001 - the log is a help; the run's status is reported anyway
        return
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    if tail:
        click.echo(f"the end of run {job}'s log (mlyard job stream -n {job} shows all of it):", err=True)
        click.echo("\n".join(f"  {line}" for line in tail), err=True)


def _summary(run_: dict[str, Any], result: dict[str, Any] | None) -> None:
    click.echo(f"run {run_['job']}: {run_['status']}" + (f" ({run_['error']})" if run_.get("error") else ""))
    if result is None:
        click.echo(f"no results were written; read the log: mlyard job stream -n {run_['job']}")
        return
    found = drifted(result)
    for signal, features in found.items():
        click.secho(f"ALERT {signal}: {', '.join(features)}", fg="red")
    if not found:
        click.secho("no signal alerted", fg="green")
    if run_.get("report"):
        click.echo(f"report: {run_['report']} (mlyard job download -n {run_['job']} --output-name signals)")


@monitor.command("list")
@output_option
@click.pass_context
def list_(ctx: click.Context, output: str) -> None:
    """List monitors: stored monitor schedules and monitors that ran, with their last run."""
    emit(make_client(ctx).monitors.list(), output, LIST_COLUMNS)


@monitor.command("show")
@click.option("-n", "--name", required=True, help="Monitor name (its schedule's name).")
@click.option("--run", "run_name", help="One run (its job name): print its signals' results.")
@click.option("--max-runs", type=click.IntRange(1, 500), default=20, show_default=True, help="Runs to list.")
@output_option
@click.pass_context
def show(ctx: click.Context, name: str, run_name: str | None, max_runs: int, output: str) -> None:
    """Show a monitor's latest runs with their status and alerted signals, or one run's results (--run)."""
    client = make_client(ctx)
    if run_name is not None:
        one = client.monitors.get_run(name, run_name)
        if not plain_table(output):
            emit(one, output)
            return
        if one.get("result") is not None:
            print_result(one["result"])
        _summary(one, one.get("result"))
        return
    found = client.monitors.get(name, max_runs=max_runs)
    if not plain_table(output):
        emit(found, output)
        return
    click.echo(f"monitor {found['name']}: " + (("schedule enabled" if found["enabled"] else "schedule disabled")
                                               if found["scheduled"] else "not scheduled (runs from files)"))
    emit(found.get("runs") or [], output, RUN_COLUMNS)
