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
    """Create and inspect workspaces (a folder holding mlyard.yaml, mlyard.db and artifacts/)."""


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
