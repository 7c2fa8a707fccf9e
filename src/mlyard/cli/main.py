"""``mlyard``: the command line, shaped like ``az ml``.

Subcommands are imported only when used, so ``mlyard --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

# command name -> (module, attribute, short help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "workspace": ("mlyard.cli.local", "workspace", "Create and inspect workspaces."),
    "server": ("mlyard.cli.local", "server", "Run the mlyard server (foreground, or start/stop in the background)."),
    "data": ("mlyard.cli.assets", "data", "Data assets: uri_file, uri_folder, mltable."),
    "environment": ("mlyard.cli.assets", "environment", "Environments: image, conda file, build context."),
    "model": ("mlyard.cli.assets", "model", "Models: custom_model and mlflow_model."),
    "component": ("mlyard.cli.assets", "component", "Command and pipeline components."),
    "datastore": ("mlyard.cli.datastores", "datastore", "Datastores of the workspace."),
    "job": ("mlyard.cli.jobs", "job", "Run command and pipeline jobs; follow, cancel, download them."),
    "compute": ("mlyard.cli.jobs", "compute", "Computes: names mapped to an executor and its limits."),
    "online-endpoint": ("mlyard.cli.endpoints", "online_endpoint",
                        "Online endpoints: scoring URI, keys, traffic split; invoke them."),
    "online-deployment": ("mlyard.cli.endpoints", "online_deployment",
                          "Online deployments: a model served by worker processes; logs."),
    "batch-endpoint": ("mlyard.cli.batch_endpoints", "batch_endpoint",
                       "Batch endpoints: invoke a deployment over data as a job; list its jobs."),
    "batch-deployment": ("mlyard.cli.batch_endpoints", "batch_deployment",
                         "Batch deployments: a model with run settings, or a pipeline component."),
    "schedule": ("mlyard.cli.schedules", "schedule",
                 "Schedules: run a job on a cron or recurrence trigger; enable, disable, show next firings."),
    "events": ("mlyard.cli.events", "events", "The event log: list, filter, follow live (--follow); event types."),
    "webhook": ("mlyard.cli.webhooks", "webhook",
                "Webhooks: signed HTTP POSTs of events to a URL; test them, read their delivery log."),
    "trigger": ("mlyard.cli.triggers", "trigger",
                "Triggers: create a job when an event matches (a new model version, a monitor alert)."),
    "monitor": ("mlyard.cli.monitors", "monitor",
                "Model monitors: run a monitor's drift and quality signals now as a job; list them, show runs."),
    "validate": ("mlyard.cli.validate", "validate", "Check an Azure ML YAML file without creating anything."),
    "studio": ("mlyard.cli.studio", "studio", "Open the studio (the web UI) in a browser, already signed in."),
}


class LazyGroup(click.Group):
    """A group whose subcommands live in modules imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command: click.Command = getattr(importlib.import_module(entry[0]), entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry[2]) for name, entry in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mlyard")
@click.option("--url", envvar="MLYARD_URL", help="Server URL (env MLYARD_URL; default: the workspace's client file).")
@click.option("--token", envvar="MLYARD_TOKEN", help="API token (env MLYARD_TOKEN).")
@click.option("--workspace", "-W", envvar="MLYARD_WORKSPACE", type=click.Path(file_okay=False),
              help="Workspace folder (env MLYARD_WORKSPACE; default: the nearest folder with mlyard.yaml).")
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None, workspace: str | None) -> None:
    """mlyard runs Azure ML CLI v2 YAML and MLflow scripts anywhere.

    Start with 'mlyard workspace init', then 'mlyard server start', then
    'mlyard data create -f data.yml'. Uploads and downloads move 8 files at
    once (env MLYARD_TRANSFERS, 1 to 64).
    """
    ctx.obj = {"url": url, "token": token, "workspace": workspace}


def main(argv: list[str] | None = None) -> Any:
    """Entry point: user-facing errors are one clear line on stderr, never a traceback."""
    from mlyard.core.errors import MlyardError

    try:
        return cli.main(args=argv, prog_name="mlyard", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except MlyardError as exc:
        click.secho(f"error: {exc.message}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, keep the traceback for those who ask
        if os.environ.get("MLYARD_DEBUG"):
            raise
        click.secho(f"internal error: {exc.__class__.__name__}: {exc} (set MLYARD_DEBUG=1 for the traceback)",
                    fg="red", err=True)
        sys.exit(1)
