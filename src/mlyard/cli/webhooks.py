"""``mlyard webhook``: subscribe a URL to events, test it, read its delivery log."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import click

from mlyard.cli.context import make_client
from mlyard.cli.output import Column, emit, output_option


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else ""


COLUMNS: list[Column] = [
    ("name", lambda r: r["name"]),
    ("id", lambda r: r["id"]),
    ("url", lambda r: r["url"]),
    ("events", lambda r: ", ".join(r["events"])),
    ("filters", lambda r: ", ".join(f"{k}={v}" for k, v in (r.get("filters") or {}).items())),
    ("status", lambda r: r["status"]),
    ("flavor", lambda r: r["flavor"]),
    ("signed", lambda r: "yes" if r["signed"] else "no"),
]
DELIVERY_COLUMNS: list[Column] = [
    ("time", lambda r: _when(r["created_at"])),
    ("event", lambda r: "test" if r["event"] is None else r["event"]),
    ("attempt", lambda r: r["attempt"]),
    ("state", lambda r: r["state"] + (f" (next {_when(r['next_attempt_at'])})" if r.get("next_attempt_at") else "")),
    ("status code", lambda r: r.get("status_code") or ""),
    ("duration", lambda r: "" if r.get("duration_ms") is None else f"{r['duration_ms']} ms"),
    ("error", lambda r: r.get("error") or ""),
]
TEST_COLUMNS: list[Column] = [
    ("success", lambda r: "yes" if r["success"] else "no"),
    ("event", lambda r: r["event"]),
    ("state", lambda r: r["state"]),
    ("status code", lambda r: r.get("status_code") or ""),
    ("duration", lambda r: f"{r['duration_ms']} ms"),
    ("error", lambda r: r.get("error") or ""),
]


def _filters(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (e.g. model_name=attrition)", param_hint="--filter")
        out[key] = value
    return out


def _secret(secret: str | None, secret_env: str | None) -> str | None:
    if secret is not None and secret_env is not None:
        raise click.UsageError("give --secret or --secret-env, not both")
    if secret_env is None:
        return secret
    value = os.environ.get(secret_env)
    if not value:
        raise click.BadParameter(f"environment variable {secret_env} is not set or empty", param_hint="--secret-env")
    return value


def _ref(name: str | None, webhook_id: str | None) -> str:
    if bool(name) == bool(webhook_id):
        raise click.UsageError("name the webhook with -n/--name or --id (one of them)")
    return str(name or webhook_id)


def _which(command: Any) -> Any:
    command = click.option("--id", "webhook_id", help="The webhook's id (when several share a name).")(command)
    return click.option("-n", "--name", help="The webhook's name.")(command)


def _secret_options(command: Any) -> Any:
    command = click.option("--secret-env", metavar="VAR",
                           help="Read the secret from this environment variable (keeps it out of shell history).")(
        command)
    return click.option("--secret", help="Signs every delivery (HMAC-SHA256); never shown again.")(command)


@click.group(name="webhook", help="Webhooks: signed HTTP POSTs of events to a URL, retried until acknowledged.")
def webhook() -> None:
    pass


@webhook.command("create")
@click.option("-n", "--name", required=True, help="Webhook name: letters, digits, '.', '_' or '-'.")
@click.option("--url", required=True, help="http:// or https:// address the events are posted to.")
@click.option("--event", "events", multiple=True, required=True, metavar="TYPE",
              help="Event type (repeatable): e.g. model.version_created, model.* for every model event, or '*'. "
                   "'mlyard events types' lists them.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Only events that match (repeatable, all must): model_name, subject, subject_prefix, actor.")
@_secret_options
@click.option("--description", help="What the webhook is for.")
@click.option("--disabled", is_flag=True, help="Create it disabled (enable with 'webhook update --status ACTIVE').")
@output_option
@click.pass_context
def create(ctx: click.Context, name: str, url: str, events: tuple[str, ...], filters: tuple[str, ...],
           secret: str | None, secret_env: str | None, description: str | None, disabled: bool, output: str) -> None:
    """Create a webhook: events logged from now on that match are posted to the URL."""
    key = _secret(secret, secret_env)
    result = make_client(ctx).webhooks.create(name=name, url=url, events=list(events), filters=_filters(filters),
                                              description=description, secret=key,
                                              status="DISABLED" if disabled else "ACTIVE")
    if key is None:
        click.secho("warning: no secret: deliveries are not signed, so a receiver cannot tell them from forgeries",
                    fg="yellow", err=True)
    emit(result, output, COLUMNS)


@webhook.command("update")
@_which
@click.option("--new-name", help="Rename the webhook.")
@click.option("--url", help="New address.")
@click.option("--event", "events", multiple=True, metavar="TYPE", help="Replace the event types (repeatable).")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Replace the filters (repeatable).")
@click.option("--clear-filters", is_flag=True, help="Remove every filter.")
@_secret_options
@click.option("--remove-secret", is_flag=True, help="Stop signing deliveries.")
@click.option("--description", help="New description.")
@click.option("--status", type=click.Choice(["ACTIVE", "DISABLED"]),
              help="DISABLED stops deliveries; ACTIVE resumes them from the events logged after that moment.")
@output_option
@click.pass_context
def update(ctx: click.Context, name: str | None, webhook_id: str | None, new_name: str | None, url: str | None,
           events: tuple[str, ...], filters: tuple[str, ...], clear_filters: bool, secret: str | None,
           secret_env: str | None, remove_secret: bool, description: str | None, status: str | None,
           output: str) -> None:
    """Change a webhook; what is not given stays as it is."""
    changes: dict[str, Any] = {k: v for k, v in {"name": new_name, "url": url, "description": description,
                                                 "status": status}.items() if v is not None}
    if events:
        changes["events"] = list(events)
    if filters or clear_filters:
        changes["filters"] = _filters(filters)
    key = _secret(secret, secret_env)
    if key is not None or remove_secret:
        changes["secret"] = key or ""
    if not changes:
        raise click.UsageError("nothing to change: give --url, --event, --filter, --status, --secret ...")
    emit(make_client(ctx).webhooks.update(_ref(name, webhook_id), **changes), output, COLUMNS)


@webhook.command("list")
@output_option
@click.pass_context
def list_(ctx: click.Context, output: str) -> None:
    """List webhooks, those made through MLflow's API too (flavor mlflow)."""
    emit(make_client(ctx).webhooks.list(), output, COLUMNS)


@webhook.command("show")
@_which
@output_option
@click.pass_context
def show(ctx: click.Context, name: str | None, webhook_id: str | None, output: str) -> None:
    """Show a webhook (its secret is never shown: 'signed' says whether it has one)."""
    emit(make_client(ctx).webhooks.get(_ref(name, webhook_id)), output if output != "table" else "yaml")


@webhook.command("delete")
@_which
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def delete(ctx: click.Context, name: str | None, webhook_id: str | None, yes: bool) -> None:
    """Delete a webhook with its delivery log; retries still pending are dropped."""
    ref = _ref(name, webhook_id)
    if not yes:
        click.confirm(f"delete webhook {ref} and its delivery log?", abort=True)
    make_client(ctx).webhooks.delete(ref)
    click.echo(f"deleted webhook {ref}")


@webhook.command("test")
@_which
@click.option("--event", metavar="TYPE", help="Event type of the test delivery (default: the first subscribed).")
@output_option
@click.pass_context
def test(ctx: click.Context, name: str | None, webhook_id: str | None, event: str | None, output: str) -> None:
    """Send one test delivery now, signed like the real ones, and print what the receiver answered."""
    result = make_client(ctx).webhooks.test(_ref(name, webhook_id), event)
    emit(result, output, TEST_COLUMNS)
    if not result["success"]:
        ctx.exit(1)


@webhook.command("deliveries")
@_which
@click.option("-r", "--max-results", default=50, show_default=True, type=click.IntRange(1, 10000),
              help="How many attempts, newest first.")
@output_option
@click.pass_context
def deliveries(ctx: click.Context, name: str | None, webhook_id: str | None, max_results: int, output: str) -> None:
    """The delivery log: one line per attempt (time, event id, attempt, state, status code, duration, error)."""
    emit(make_client(ctx).webhooks.deliveries(_ref(name, webhook_id), max_results), output, DELIVERY_COLUMNS)
