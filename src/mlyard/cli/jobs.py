"""``mlyard job`` and ``mlyard compute``: run Azure ML command and pipeline YAML, follow it, cancel it."""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import click

from mlyard.cli.context import make_client
from mlyard.cli.output import Column, emit, output_option, plain_table

TERMINAL = ("Completed", "Failed", "Canceled")
POLL_S = 0.25
TAIL_LINES = 12  # log lines shown under the live step table
STATUS_STYLE = {"Completed": "green", "Failed": "red", "Canceled": "yellow", "Running": "cyan",
                "Preparing": "blue", "Finalizing": "blue", "Queued": "dim", "NotStarted": "dim"}


def _duration(job: dict[str, Any]) -> str:
    start = job.get("started_at")
    if not start:
        return ""
    end = job.get("ended_at") or int(time.time() * 1000)
    return f"{(end - start) / 1000:.1f}s"


LIST_COLUMNS: list[Column] = [
    ("name", lambda r: r["name"]),
    ("type", lambda r: r["type"]),
    ("status", lambda r: r["status"]),
    ("experiment", lambda r: r["experiment_name"]),
    ("created", lambda r: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created_at"] / 1000))),
    ("duration", _duration),
    ("reused", lambda r: "yes" if r.get("reused_from") else ""),
]
STEP_COLUMNS: list[Column] = [
    ("step", lambda r: r.get("step")),
    ("status", lambda r: r["status"]),
    ("duration", _duration),
    ("reused from", lambda r: r.get("reused_from") or ""),
    ("job", lambda r: r["name"]),
]


def trial_columns(job_: dict[str, Any]) -> list[Column]:
    """A sweep's trial table: the best marked, one column per hyperparameter, the primary metric."""
    step = (job_.get("spec") or {}).get("step") or job_.get("spec") or {}
    config = step.get("sweep") or {}
    metric = (config.get("objective") or {}).get("primary_metric") or "metric"
    names = list(config.get("search_space") or {})

    def shown(value: Any) -> str:
        return f"{value:.6g}" if isinstance(value, float) else str(value)

    columns: list[Column] = [("best", lambda t: "*" if t.get("best") else ""), ("trial", lambda t: t["number"])]
    columns += [(n, lambda t, n=n: shown(t["params"].get(n))) for n in names]  # type: ignore[misc]
    columns += [
        (metric, lambda t: "" if t.get("metric") is None else shown(t["metric"])),
        ("status", lambda t: t["status"] + (" (rerun)" if t.get("rerun") else "")),
        ("duration", _duration),
        ("early terminated", lambda t: "yes" if t.get("early_terminated") else ""),
        ("job", lambda t: t["name"]),
    ]
    return columns


@click.group(name="job", help="Run Azure ML command, pipeline and sweep jobs, follow and cancel them.")
def job() -> None:
    pass


@job.command("create")
@click.option("-f", "--file", required=True, type=click.Path(dir_okay=False), help="YAML file of the job.")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override a field before validation (repeatable), e.g. --set inputs.lr=0.1.")
@click.option("-n", "--name", help="Job name (wins over the file; default: a fresh adjective_noun_xxxx).")
@click.option("-e", "--experiment-name", help="Experiment (wins over the file; default: the current folder's name).")
@click.option("--display-name", help="Display name (the MLflow run name).")
@click.option("--env-mode", type=click.Choice(["inherit", "isolated"]),
              help="inherit: the server's interpreter (fast; the workspace default unless set); isolated: a venv "
                   "built with uv from the environment's pip dependencies, cached by hash.")
@click.option("-s", "--stream", is_flag=True, help="Follow the job: live step progress and logs, until it ends.")
@output_option
@click.pass_context
def create(ctx: click.Context, file: str, overrides: tuple[str, ...], name: str | None, experiment_name: str | None,
           display_name: str | None, env_mode: str | None, stream: bool, output: str) -> None:
    """Submit a job from its YAML file (local code and data are uploaded first).

    Exits non-zero when --stream is given and the job does not complete.
    """
    from mlyard.specs import load_spec

    loaded = load_spec(file, "job", overrides=overrides)
    for warning in loaded.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    spec = loaded.to_dict()
    if not (experiment_name or spec.get("experiment_name")):
        experiment_name = Path.cwd().name  # Azure ML's default: the folder the job was submitted from
    client = make_client(ctx)
    result = client.jobs.create(spec, name=name, experiment_name=experiment_name, display_name=display_name,
                                env_mode=env_mode)
    if not plain_table(output):
        if stream:
            result = _follow(client, result["name"], quiet=True)
        emit(result, output)
    else:
        click.echo(f"submitted {result['type']} job {result['name']} (experiment {result['experiment_name']}, "
                   f"env mode {result['env_mode']})")
        if not stream:
            click.echo(f"follow it with: mlyard job stream -n {result['name']}")
            return
        result = _follow(client, result["name"])
    if stream and result["status"] != "Completed":
        sys.exit(1)


@job.command("stream")
@click.option("-n", "--name", required=True, help="Job name.")
@click.pass_context
def stream_(ctx: click.Context, name: str) -> None:
    """Follow a job until it ends: a command job's log, a pipeline's live step table, a sweep's trials."""
    result = _follow(make_client(ctx), name)
    if result["status"] != "Completed":
        sys.exit(1)


@job.command("list")
@click.option("-p", "--parent-job-name", help="List the steps of this pipeline job (the trials of a sweep).")
@click.option("-r", "--max-results", default=50, show_default=True, type=click.IntRange(1, 1000))
@output_option
@click.pass_context
def list_(ctx: click.Context, parent_job_name: str | None, max_results: int, output: str) -> None:
    """List jobs, newest first (top-level jobs, the steps of one pipeline, or the trials of a sweep)."""
    rows = make_client(ctx).jobs.list(parent_job_name, max_results)
    emit(rows, output, STEP_COLUMNS if parent_job_name else LIST_COLUMNS)


@job.command("show")
@click.option("-n", "--name", required=True, help="Job name.")
@output_option
@click.pass_context
def show(ctx: click.Context, name: str, output: str) -> None:
    """Show a job: status, inputs, outputs, steps, a sweep's trials (best first), the error of a failed one."""
    result = make_client(ctx).jobs.get(name)
    if not plain_table(output):
        emit(result, output)
        return
    _print_summary(result)


@job.command("cancel")
@click.option("-n", "--name", required=True, help="Job name.")
@click.pass_context
def cancel(ctx: click.Context, name: str) -> None:
    """Cancel a job: its running processes and their children are killed."""
    result = make_client(ctx).jobs.cancel(name)
    click.echo(f"job {name}: {result['status']}")


@job.command("download")
@click.option("-n", "--name", required=True, help="Job name.")
@click.option("--output-name", help="Download only this named output.")
@click.option("--all", "all_", is_flag=True, help="Every named output and the run artifacts (logs, ./outputs).")
@click.option("-p", "--download-path", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder to download into: <path>/named-outputs/<output>/ and <path>/artifacts/.")
@click.pass_context
def download(ctx: click.Context, name: str, output_name: str | None, all_: bool, download_path: str) -> None:
    """Download a job's outputs and artifacts, in Azure ML's layout.

    Without --output-name or --all, the run artifacts (logs and ./outputs) are downloaded.
    """
    if output_name and all_:
        raise click.UsageError("give --output-name or --all, not both")
    files = make_client(ctx).jobs.download(name, download_path=download_path, output_name=output_name, all_=all_)
    click.echo(f"downloaded {len(files)} file(s) to {download_path}")


# -- following a job ------------------------------------------------------------------------


def _follow(client: Any, name: str, *, quiet: bool = False) -> dict[str, Any]:
    """Poll until the job ends; print its log (command) or a live step table (pipeline)."""
    try:
        job_ = client.jobs.get(name)
        if job_["type"] == "pipeline":
            job_ = _follow_pipeline(client, name, quiet)
        else:  # a command job's log; a sweep's says when each trial starts and ends, and its metric
            job_ = _follow_log(client, name, quiet)
    except KeyboardInterrupt:
        click.echo(f"\nstopped following; the job goes on. Cancel it with: mlyard job cancel -n {name}", err=True)
        sys.exit(130)
    if not quiet:
        _print_summary(job_)
    return job_


def _follow_log(client: Any, name: str, quiet: bool) -> dict[str, Any]:
    offset = 0
    while True:
        chunk = client.jobs.logs(name, offset)
        if chunk["text"] and not quiet:
            click.echo(chunk["text"], nl=False)
        offset = chunk["offset"]
        if chunk["done"]:
            return client.jobs.get(name)  # type: ignore[no-any-return]
        if not chunk["text"]:
            time.sleep(POLL_S)


def _step_table(job_: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"pipeline {job_['name']}: {job_['status']} {_duration(job_)}", title_justify="left")
    for header in ("step", "status", "duration", "reused"):
        table.add_column(header)
    for step in job_.get("steps") or []:
        style = STATUS_STYLE.get(step["status"], "")
        table.add_row(step.get("step") or step["name"], f"[{style}]{step['status']}[/]", _duration(step),
                      "yes" if step.get("reused_from") else "")
    return table


class _StepLogs:
    """New log lines of a pipeline's running steps, fetched incrementally."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, str] = {}
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def poll(self, job_: dict[str, Any]) -> list[str]:
        """Lines written since the last poll, each prefixed with its step; reused steps are skipped."""
        lines: list[str] = []
        for step in job_.get("steps") or []:
            if step["status"] in ("NotStarted", "Queued") or step.get("reused_from"):
                continue
            if step["status"] in TERMINAL and self._offsets.get(step["name"]) == -1:
                continue
            chunk = self._client.jobs.logs(step["name"], max(0, self._offsets.get(step["name"], 0)))
            text = self._partial.pop(step["name"], "") + chunk["text"]
            complete, _, rest = text.rpartition("\n")
            if rest:
                self._partial[step["name"]] = rest
            for line in complete.splitlines() if complete else []:
                lines.append(f"[{step.get('step')}] {line}")
            self._offsets[step["name"]] = -1 if chunk["done"] else chunk["offset"]
            if chunk["done"] and rest:
                lines.append(f"[{step.get('step')}] {self._partial.pop(step['name'])}")
        self.tail.extend(lines)
        return lines


def _follow_pipeline(client: Any, name: str, quiet: bool) -> dict[str, Any]:
    job_ = client.jobs.get(name)
    if quiet:
        while job_["status"] not in TERMINAL:
            time.sleep(POLL_S)
            job_ = client.jobs.get(name)
        return job_  # type: ignore[no-any-return]
    from rich.console import Console

    console = Console()
    logs = _StepLogs(client)
    if console.is_terminal:
        from rich.console import Group
        from rich.live import Live
        from rich.text import Text

        def view() -> Any:
            return Group(_step_table(job_), Text("\n".join(logs.tail), style="dim", overflow="ellipsis",
                                                 no_wrap=True))

        with Live(view(), console=console, refresh_per_second=8, transient=True) as live:
            while job_["status"] not in TERMINAL:
                time.sleep(POLL_S)
                job_ = client.jobs.get(name)
                logs.poll(job_)
                live.update(view())
        return job_  # type: ignore[no-any-return]
    seen: dict[str, str] = {}
    while True:
        for step in job_.get("steps") or []:
            if seen.get(step["name"]) != step["status"]:
                seen[step["name"]] = step["status"]
                extra = f" {_duration(step)}" if step["status"] in TERMINAL else ""
                reused = f" (reused {step['reused_from']})" if step.get("reused_from") else ""
                click.echo(f"  {step.get('step'):<20} {step['status']}{extra}{reused}")
        for line in logs.poll(job_):
            click.echo(f"    {line}")
        if job_["status"] in TERMINAL:
            return job_  # type: ignore[no-any-return]
        time.sleep(POLL_S)
        job_ = client.jobs.get(name)


def _print_summary(job_: dict[str, Any]) -> None:
    color = STATUS_STYLE.get(job_["status"], "")
    click.secho(f"job {job_['name']} ({job_['type']}): {job_['status']} {_duration(job_)}",
                fg=color if color in ("green", "red", "yellow", "cyan", "blue") else None, bold=True)
    click.echo(f"  experiment: {job_['experiment_name']}   MLflow run: {job_['run_id']}")
    if job_.get("reused_from"):
        click.echo(f"  reused from: {job_['reused_from']}")
    steps = job_.get("steps")
    if job_.get("trials") is not None:
        emit(job_["trials"], "table", trial_columns(job_))
        steps = None
    elif steps:
        emit(steps, "table", STEP_COLUMNS)
    for note in job_.get("notes") or []:
        click.secho(f"  note: {note}", fg="yellow")
    for run in [job_, *(steps or [])]:
        if run.get("progress"):
            click.echo(f"  {'' if run is job_ else run.get('step', '') + ': '}{_batch_progress(run['progress'])}")
    for out, rec in (job_.get("outputs") or {}).items():
        asset = f"  (registered as {rec['asset']})" if rec.get("asset") else ""
        click.echo(f"  output {out}: {rec['uri']}{asset}")
    if job_.get("error"):
        click.secho(f"  error: {job_['error']}", fg="red")


def _batch_progress(p: dict[str, Any]) -> str:
    """One line of a batch scoring job's progress file, and its failed files."""
    batches, files = p.get("mini_batches") or {}, p.get("files") or {}
    line = (f"batch scoring {p.get('state', '?')}: mini-batches {batches.get('done', 0)}/{batches.get('total', 0)} "
            f"done, {batches.get('failed', 0)} failed, {batches.get('retried', 0)} retried; files "
            f"{files.get('done', 0)}/{files.get('total', 0)} processed, {files.get('failed', 0)} failed; "
            f"{p.get('rows', 0):,} rows, {p.get('rows_per_s', 0):,.0f} rows/s")
    failed = p.get("failed_files") or []
    for item in failed[:10]:
        where = item.get("file", "?") if isinstance(item, dict) else str(item)
        why = item.get("reason", "") if isinstance(item, dict) else ""
        line += f"\n    failed: {where}: {why}"
    if len(failed) > 10:
        line += f"\n    ... and {len(failed) - 10} more failed file(s)"
    return line


# -- computes -------------------------------------------------------------------------------

COMPUTE_COLUMNS: list[Column] = [
    ("name", lambda r: r["name"]),
    ("type", lambda r: r["type"]),
    ("executor", lambda r: r["executor"]),
    ("max parallel", lambda r: r["max_parallel"]),
]


@click.group(name="compute", help="Computes: names that map to an executor and its limits.")
def compute() -> None:
    pass


@compute.command("create")
@click.option("-f", "--file", type=click.Path(dir_okay=False), help="YAML file of the compute.")
@click.option("-n", "--name", help="Name (wins over the file).")
@click.option("--type", "type_", default=None, help="Compute type without -f (amlcompute, local, ...).")
@click.option("--max-instances", type=click.IntRange(1), help="Steps it runs at once (without -f).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a field (repeatable).")
@output_option
@click.pass_context
def compute_create(ctx: click.Context, file: str | None, name: str | None, type_: str | None,
                   max_instances: int | None, overrides: tuple[str, ...], output: str) -> None:
    """Create a compute; jobs naming it (azureml:<name>) run on its executor, at most max_instances steps at once."""
    from mlyard.specs import load_spec, load_spec_dict

    if file:
        loaded = load_spec(file, "compute", overrides=overrides, name=name)
    else:
        if not name:
            raise click.UsageError("give -f FILE, or --name (with --type and --max-instances)")
        data: dict[str, Any] = {"name": name, **({"type": type_} if type_ else {}),
                                **({"max_instances": max_instances} if max_instances else {})}
        loaded = load_spec_dict(data, "compute", source="<command line>")
    result = make_client(ctx).transport.json("POST", "/api/v1/computes", json={"spec": loaded.to_dict()})
    emit(result, output, COMPUTE_COLUMNS)


@compute.command("list")
@output_option
@click.pass_context
def compute_list(ctx: click.Context, output: str) -> None:
    """List computes."""
    emit(make_client(ctx).transport.json("GET", "/api/v1/computes"), output, COMPUTE_COLUMNS)


@compute.command("show")
@click.option("-n", "--name", required=True)
@output_option
@click.pass_context
def compute_show(ctx: click.Context, name: str, output: str) -> None:
    """Show a compute."""
    emit(make_client(ctx).transport.json("GET", f"/api/v1/computes/{name}"), output, COMPUTE_COLUMNS)


@compute.command("delete")
@click.option("-n", "--name", required=True)
@click.pass_context
def compute_delete(ctx: click.Context, name: str) -> None:
    """Delete a compute (jobs naming it then run on the local executor)."""
    make_client(ctx).transport.request("DELETE", f"/api/v1/computes/{name}")
    click.echo(f"deleted compute {name}")
