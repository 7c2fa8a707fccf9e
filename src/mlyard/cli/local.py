"""Commands that act on a workspace folder on this machine: ``workspace`` and ``server``.

These are the only CLI commands that import the server package (lazily): everything else talks
to a server over HTTP, so it works against a remote one exactly as against a local one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlyard.cli.context import workspace_option
from mlyard.cli.output import emit, output_option
from mlyard.core.errors import InvalidRequestError

if TYPE_CHECKING:
    from mlyard.server.lock import ServerInfo


def _workspace(ctx: click.Context, required: bool = True) -> Path:
    from mlyard.core.settings import find_workspace

    ws = workspace_option(ctx) or find_workspace()
    if ws is None or not (ws / "mlyard.yaml").is_file():
        if required:
            raise InvalidRequestError(
                f"{(ws or Path.cwd()).resolve()} is not an mlyard workspace: run 'mlyard workspace init' "
                "there, or pass --workspace / set MLYARD_WORKSPACE"
            )
    return (ws or Path.cwd()).resolve()


@click.group()
def workspace() -> None:
    """Create, inspect, check, clean up, back up and move workspaces (a folder holding mlyard.yaml, mlyard.db and
    artifacts/).

    check: verify every recorded hash and reference. gc: remove what retention lets go (a dry run unless
    --yes). backup / restore: a verified copy while the server runs. migrate: the store to PostgreSQL,
    the local files to object storage.
    """


@workspace.command("init")
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--name", help="Display name (default: the folder's name).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port the server will use (default 5780).")
@click.option("--database-url", help="SQLAlchemy URL of a PostgreSQL store (default: SQLite in the folder).")
def init(path: str, name: str | None, port: int | None, database_url: str | None) -> None:
    """Create a workspace at PATH and print its admin token (shown once)."""
    from mlyard.server.workspace import init_workspace

    result = init_workspace(Path(path), name=name, port=port, database_url=database_url)
    click.echo(f"workspace created at {result.workspace}")
    click.echo(f"store: {result.database_url.split('@')[-1]}")
    click.echo(f"server URL (once started): {result.url}")
    click.secho(f"admin token (shown once, stored hashed): {result.token}", bold=True)
    click.echo(f"the CLI reads it from {result.workspace}/.mlyard/client.yaml; next: mlyard server start")


@workspace.command("show")
@click.pass_context
def show(ctx: click.Context) -> None:
    """Show the workspace settings as the server would read them."""
    from mlyard.core.settings import ServerSettings

    settings = ServerSettings(workspace=_workspace(ctx))
    click.echo(f"workspace: {settings.workspace_path}")
    click.echo(f"name: {settings.workspace_name}")
    click.echo(f"store: {settings.resolved_database_url.split('@')[-1]}")
    click.echo(f"artifacts: {settings.resolved_artifacts_root}")
    click.echo(f"server: http://{settings.host}:{settings.port}")


@click.group(invoke_without_command=True)
@click.option("--host", help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to bind (default: the workspace's, else 5780).")
@click.pass_context
def server(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the server in the foreground (Ctrl-C or SIGTERM stops it gracefully).

    'mlyard server start' runs it in the background and 'mlyard server stop' stops it. One server
    serves a workspace: a second one on the same folder is refused, naming the one that runs.
    """
    if ctx.invoked_subcommand is not None:
        return
    from mlyard.core.settings import ServerSettings
    from mlyard.server.run import serve

    overrides: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    serve(ServerSettings(workspace=_workspace(ctx), **overrides))


def _running(ws: Path) -> ServerInfo | None:
    from mlyard.server.lock import running_server

    return running_server(ws)


@server.command("start")
@click.option("--host", help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to bind (default: the workspace's).")
@click.option("--wait", "wait_s", default=30.0, show_default=True, help="Seconds to wait until healthy.")
@click.pass_context
def start(ctx: click.Context, host: str | None, port: int | None, wait_s: float) -> None:
    """Start the server in the background; its log goes to .mlyard/server.log.

    Starting is idempotent: when a server already serves the workspace at the same address it says so
    and exits 0 (scripts can run it unconditionally); at another address it exits non-zero, naming the
    running server's pid and URL.
    """
    import httpx

    from mlyard.core.settings import ServerSettings
    from mlyard.server.lock import already_running
    from mlyard.server.run import check_port_free

    ws = _workspace(ctx)
    overrides: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = ServerSettings(workspace=ws, **overrides)
    url = f"http://{settings.host}:{settings.port}"
    running = _running(ws)
    if running is not None:
        if running.url != url:
            raise already_running(running)
        click.echo(f"mlyard server already running for {ws}: {running.describe()}")
        return
    check_port_free(settings.host, settings.port)
    log_path = ws / ".mlyard" / "server.log"
    log_path.parent.mkdir(exist_ok=True)
    (ws / ".mlyard" / "server.pid").unlink(missing_ok=True)  # written by earlier versions; the lock file says it now
    args = [sys.executable, "-m", "mlyard", "--workspace", str(ws), "server", "--host", settings.host,
            "--port", str(settings.port)]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-15:]
            raise InvalidRequestError("the server exited at start-up:\n" + "\n".join(tail))
        holder = _running(ws)
        if holder is not None and holder.pid == proc.pid:
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    click.echo(f"mlyard server running for {ws}: {holder.describe()}; log: {log_path}")
                    return
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    raise InvalidRequestError(f"the server (pid {proc.pid}) did not become healthy within {wait_s:.0f} s; "
                              f"see {log_path}")


@server.command("stop")
@click.option("--timeout", "timeout_s", default=20.0, show_default=True, help="Seconds before SIGKILL.")
@click.pass_context
def stop(ctx: click.Context, timeout_s: float) -> None:
    """Stop the server of this workspace gracefully (SIGTERM, then SIGKILL after the timeout)."""
    ws = _workspace(ctx)
    (ws / ".mlyard" / "server.pid").unlink(missing_ok=True)
    info = _running(ws)
    if info is None:
        click.echo(f"no mlyard server is running for {ws}")
        return
    if info.pid is None:
        raise InvalidRequestError(f"a mlyard server holds {ws} but has not said its pid yet; try again in a moment")
    os.kill(info.pid, signal.SIGTERM)
    # The lock, not the pid, says when it is gone: the kernel drops it as the process ends.
    deadline = time.monotonic() + timeout_s
    while _running(ws) is not None and time.monotonic() < deadline:
        _reap(info.pid)
        time.sleep(0.05)
    if _running(ws) is not None:
        os.kill(info.pid, signal.SIGKILL)
        click.echo(f"mlyard server (pid {info.pid}) did not stop within {timeout_s:.0f} s: killed")
    else:
        click.echo(f"mlyard server stopped (pid {info.pid})")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


@server.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Say whether a server runs for this workspace, with its pid and URL, and whether it answers."""
    import httpx

    ws = _workspace(ctx)
    info = _running(ws)
    if info is None:
        click.echo(f"stopped: no mlyard server is running for {ws}")
        return
    try:
        answers = httpx.get(f"{info.url}/healthz", timeout=2.0).status_code == 200
    except httpx.TransportError:
        answers = False
    click.echo(f"running for {ws}: {info.describe()}" + ("" if answers else f"; not answering at {info.url} yet"))


# -- lifecycle: check, gc, backup, restore, migrate (docs/lifecycle.md) -----------------------------


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


@workspace.command("check")
@click.option("--no-hash", is_flag=True, help="Compare sizes only; skip reading every file for its sha256.")
@output_option
@click.pass_context
def check_cmd(ctx: click.Context, no_hash: bool, output: str) -> None:
    """Verify every recorded file's sha256 and every reference; exit 1 when something is missing or corrupt.

    Checks the store's integrity (SQLite), every file recorded in a datastore (present, size, sha256),
    every asset version's files, every upload folder an asset, job, deployment or schedule names, and
    the models deployments serve. Safe while the server runs.
    """
    from mlyard.server.lifecycle import check

    report = check(_workspace(ctx), verify_hashes=not no_hash,
                   progress=lambda line: click.echo(line, err=True) if output == "table" else None)
    if output != "table":
        emit(report.as_dict(), output)
    else:
        for problem in report.problems:
            click.secho(problem.line(), fg="red")
        for note in report.notes:
            click.echo(f"note: {note}")
        checked = ", ".join(f"{n} {what}" for what, n in report.checked.items())
        click.echo(f"checked {checked}: " + ("ok" if report.ok else f"{len(report.problems)} problem(s)"))
    if not report.ok:
        sys.exit(1)  # (ctx.exit's code is lost: main runs click with standalone_mode=False)


@workspace.command("gc")
@click.option("--yes", "-y", is_flag=True, help="Remove what is listed (without it, nothing is removed).")
@click.option("--dry-run", is_flag=True, help="Only list what would go and how many bytes (the default).")
@output_option
@click.pass_context
def gc_cmd(ctx: click.Context, yes: bool, dry_run: bool, output: str) -> None:
    """List (default) or remove (--yes) what the retention settings in mlyard.yaml let go.

    Folders of failed and canceled jobs (their logs kept), isolated environments unused or beyond the
    size cap, uploads nothing references, parts of cut large uploads nobody resumed, runs and logged
    models deleted in MLflow, and old logs.
    Nothing an asset version, run, job, deployment or schedule references is removed. Safe while the
    server runs, and safe to kill: run it again to finish.
    """
    from mlyard.server.lifecycle import gc

    if yes and dry_run:
        raise InvalidRequestError("--yes and --dry-run contradict each other: give one")
    plan = gc(_workspace(ctx), remove=yes,
              progress=lambda line: click.echo(line, err=True) if output == "table" else None)
    result = {"removed": yes, "files": plan.files, "bytes": plan.bytes, "by_kind": plan.totals(),
              "items": [i.as_dict() for i in plan.items]}
    if output != "table":
        emit(result, output)
        return
    if not yes:
        emit(result["items"], output, columns=[("kind", lambda r: r["kind"]), ("what", lambda r: r["what"]),
                                               ("files", lambda r: r["files"]),
                                               ("bytes", lambda r: _size(r["bytes"]))])
    for kind, t in plan.totals().items():
        click.echo(f"{kind}: {t['items']} item(s), {t['files']} file(s), {_size(t['bytes'])}")
    verb = "removed" if yes else "would remove"
    click.echo(f"{verb} {plan.files} file(s), {_size(plan.bytes)} ({plan.bytes} bytes)"
               + ("" if yes else "; run again with --yes to remove them"))


@workspace.command("backup")
@click.argument("dest", type=click.Path(file_okay=False))
@click.pass_context
def backup_cmd(ctx: click.Context, dest: str) -> None:
    """Back up the workspace into DEST (a new or empty folder) while the server may run.

    The store by SQLite's online backup (or pg_dump), every file of its local datastores hashed as it
    is copied, job logs and settings; manifest.json, written last, lists each file's sha256.
    """
    from mlyard.server.lifecycle import backup

    result = backup(_workspace(ctx), Path(dest), progress=lambda line: click.echo(line, err=True))
    click.echo(f"backup in {result.dest}: {result.database} and {result.files} file(s), {_size(result.bytes)}, "
               f"verified, in {result.seconds:.1f} s")


@workspace.command("restore")
@click.argument("src", type=click.Path(file_okay=False, exists=True))
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--database-url", help="Empty PostgreSQL database to restore a PostgreSQL backup into.")
def restore_cmd(src: str, path: str, database_url: str | None) -> None:
    """Restore the backup SRC into a new workspace folder PATH, verifying every file, then check it."""
    from mlyard.server.lifecycle import restore

    report = restore(Path(src), Path(path), database_url, progress=lambda line: click.echo(line, err=True))
    for problem in report.problems:
        click.secho(problem.line(), fg="red")
    click.echo(f"workspace restored at {Path(path).resolve()}: check " + (
        "ok" if report.ok else f"found {len(report.problems)} problem(s)"))
    click.echo("its mlyard.yaml keeps the original port: change it if the original server still runs")
    if not report.ok:
        sys.exit(1)


@workspace.command("migrate")
@click.option("--database-url", help="PostgreSQL URL (postgresql://user:pw@host/db) to move the store to.")
@click.option("--datastore", metavar="NAME",
              help="Object-storage datastore (made with 'mlyard datastore create -f', its credentials in its YAML) "
                   "to move workspaceblobstore's files to.")
@click.pass_context
def migrate_cmd(ctx: click.Context, database_url: str | None, datastore: str | None) -> None:
    """Move the workspace: its SQLite store to PostgreSQL, its local files to object storage, or both.

    --database-url: copy every table, verify each (row count and sha256), then point mlyard.yaml at
    it; mlyard.db is left in place, untouched, as the way back. --datastore: copy every file of
    workspaceblobstore into that datastore, verify each by sha256, then make workspaceblobstore use
    that storage (every reference keeps its meaning); the local folder is left as it was. Both are
    resumable: run again after an interruption. The server must be stopped.
    """
    from mlyard.server.lifecycle import migrate, move_files

    if not database_url and not datastore:
        raise InvalidRequestError("give --database-url postgresql://... (the store), --datastore NAME (the files), "
                                  "or both")
    ws = _workspace(ctx)
    if _running(ws) is not None:
        raise InvalidRequestError(f"a server runs for {ws}: stop it first ('mlyard server stop'), so no write is left "
                                  "behind")
    if database_url:
        report = migrate(ws, database_url, progress=lambda line: click.echo(line, err=True))
        click.echo(f"copied {report.copied} of {report.rows} row(s) in {len(report.tables)} tables; every table "
                   "verified (row count and sha256)")
        click.echo(f"{ws}/mlyard.yaml now points at {database_url.split('@')[-1]}; mlyard.db is left as it was")
    if datastore:
        moved = move_files(ws, datastore, progress=lambda line: click.echo(line, err=True))
        click.echo(f"copied {moved.copied} of {moved.files} file(s) ({_size(moved.bytes)}) to datastore {datastore}, "
                   f"every one verified; workspaceblobstore now uses its storage; {ws}/artifacts is left as it was")
