"""``mlyard online-endpoint`` and ``mlyard online-deployment``, shaped like ``az ml``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from mlyard.cli.context import make_client
from mlyard.cli.output import Column, emit, output_option, plain_table

ENDPOINT_COLUMNS: list[Column] = [
    ("name", lambda r: r["name"]),
    ("auth mode", lambda r: r["auth_mode"]),
    ("traffic", lambda r: " ".join(f"{k}={v}" for k, v in r["traffic"].items())),
    ("mirror", lambda r: " ".join(f"{k}={v}" for k, v in r["mirror_traffic"].items())),
    ("scoring uri", lambda r: r["scoring_uri"]),
]
DEPLOYMENT_COLUMNS: list[Column] = [
    ("name", lambda r: r["name"]),
    ("endpoint", lambda r: r["endpoint_name"]),
    ("model", lambda r: r.get("model") or ""),
    ("instances", lambda r: r["instance_count"]),
    ("state", lambda r: r["provisioning_state"]),
    ("workers ready", lambda r: _ready(r.get("workers", []))),
]


def _ready(workers: list[dict[str, Any]]) -> str:
    return f"{sum(w['state'] == 'ready' for w in workers)}/{len(workers)}"


_PAIR = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)=(\d{1,3})$")


def parse_split(text: str, option: str) -> dict[str, int]:
    """``"blue=90 green=10"`` (spaces or commas between pairs) -> ``{"blue": 90, "green": 10}``."""
    result: dict[str, int] = {}
    for pair in re.split(r"[\s,]+", text.strip()):
        if not pair:
            continue
        m = _PAIR.match(pair)
        if m is None:
            raise click.BadParameter(f"{pair!r} is not DEPLOYMENT=PERCENT, e.g. {option} \"blue=90 green=10\"",
                                     param_hint=option)
        result[m[1]] = int(m[2])
    return result


def _warn(loaded: Any) -> None:
    for warning in loaded.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)


# -- online-endpoint ---------------------------------------------------------------------------


@click.group(name="online-endpoint", help="Online endpoints: a scoring URI with keys and a traffic split.")
def online_endpoint() -> None:
    pass


@online_endpoint.command("create")
@click.option("-f", "--file", required=True, type=click.Path(dir_okay=False), help="YAML file of the endpoint.")
@click.option("-n", "--name", help="Endpoint name (wins over the file).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a field (repeatable).")
@output_option
@click.pass_context
def endpoint_create(ctx: click.Context, file: str, name: str | None, overrides: tuple[str, ...], output: str) -> None:
    """Create an endpoint (traffic comes later: online-deployment create --all-traffic, or update --traffic)."""
    from mlyard.specs import load_spec

    loaded = load_spec(file, "online-endpoint", overrides=[*overrides, *([f"name={name}"] if name else [])])
    _warn(loaded)
    emit(make_client(ctx).online_endpoints.create(loaded.to_dict()), output, ENDPOINT_COLUMNS)


@online_endpoint.command("update")
@click.option("-n", "--name", required=True, help="Endpoint name.")
@click.option("-f", "--file", type=click.Path(dir_okay=False), help="YAML file of the endpoint (optional).")
@click.option("--traffic", help="Live traffic split, e.g. \"blue=90 green=10\" (adds up to 100).")
@click.option("--mirror-traffic", help="Mirror traffic to one deployment, e.g. \"green=10\" (at most 50).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a field (repeatable).")
@output_option
@click.pass_context
def endpoint_update(ctx: click.Context, name: str, file: str | None, traffic: str | None,
                    mirror_traffic: str | None, overrides: tuple[str, ...], output: str) -> None:
    """Change an endpoint's traffic, mirror traffic, description or tags."""
    from mlyard.specs import load_spec, load_spec_dict

    client = make_client(ctx)
    spec = None
    if file is not None:
        loaded = load_spec(file, "online-endpoint", overrides=[*overrides, f"name={name}"])
        _warn(loaded)
        spec = loaded.to_dict()
    elif overrides:
        current = client.online_endpoints.get(name)
        base = {"name": name, "auth_mode": current["auth_mode"], "description": current.get("description"),
                "tags": current.get("tags") or {}, "traffic": current["traffic"],
                "mirror_traffic": current["mirror_traffic"]}
        spec = load_spec_dict({k: v for k, v in base.items() if v is not None}, "online-endpoint",
                              overrides=overrides).to_dict()
    result = client.online_endpoints.update(
        name, spec=spec, traffic=parse_split(traffic, "--traffic") if traffic is not None else None,
        mirror_traffic=parse_split(mirror_traffic, "--mirror-traffic") if mirror_traffic is not None else None)
    emit(result, output, ENDPOINT_COLUMNS)


@online_endpoint.command("show")
@click.option("-n", "--name", required=True, help="Endpoint name.")
@output_option
@click.pass_context
def endpoint_show(ctx: click.Context, name: str, output: str) -> None:
    """Show an endpoint: its scoring URI, auth mode and traffic."""
    emit(make_client(ctx).online_endpoints.get(name), output if output != "table" else "yaml")


@online_endpoint.command("list")
@output_option
@click.pass_context
def endpoint_list(ctx: click.Context, output: str) -> None:
    """List endpoints."""
    emit(make_client(ctx).online_endpoints.list(), output, ENDPOINT_COLUMNS)


@online_endpoint.command("delete")
@click.option("-n", "--name", required=True, help="Endpoint name.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def endpoint_delete(ctx: click.Context, name: str, yes: bool) -> None:
    """Delete an endpoint with all its deployments (their workers stop)."""
    if not yes:
        click.confirm(f"delete online endpoint {name} and all its deployments?", abort=True)
    make_client(ctx).online_endpoints.delete(name)
    click.echo(f"deleted online endpoint {name}")


@online_endpoint.command("get-credentials")
@click.option("-n", "--name", required=True, help="Endpoint name.")
@output_option
@click.pass_context
def endpoint_credentials(ctx: click.Context, name: str, output: str) -> None:
    """Print the endpoint's keys (auth_mode key) or a fresh token (aml_token)."""
    emit(make_client(ctx).online_endpoints.get_credentials(name), output if output != "table" else "json")


@online_endpoint.command("regenerate-keys")
@click.option("-n", "--name", required=True, help="Endpoint name.")
@click.option("--key-type", type=click.Choice(["primary", "secondary"]), default="primary", show_default=True)
@click.pass_context
def endpoint_regenerate(ctx: click.Context, name: str, key_type: str) -> None:
    """Replace one key; the other keeps working, so callers can switch without downtime."""
    make_client(ctx).online_endpoints.regenerate_keys(name, key_type)
    click.echo(f"regenerated the {key_type} key of online endpoint {name}")


@online_endpoint.command("invoke")
@click.option("-n", "--name", required=True, help="Endpoint name.")
@click.option("-r", "--request-file", required=True, type=click.Path(dir_okay=False, exists=True),
              help="JSON file sent as the request body.")
@click.option("-d", "--deployment-name", "--deployment", "deployment",
              help="Send to this deployment, bypassing the traffic split.")
@click.pass_context
def endpoint_invoke(ctx: click.Context, name: str, request_file: str, deployment: str | None) -> None:
    """Score a request file and print the answer (the deployment that served it goes to stderr)."""
    response = make_client(ctx).online_endpoints.invoke(name, Path(request_file).read_bytes(),
                                                        deployment_name=deployment)
    served = response.headers.get("azureml-model-deployment")
    if served:
        click.echo(f"served by deployment {served}", err=True)
    text = response.text
    try:
        text = json.dumps(response.json())
    except ValueError:
        pass
    click.echo(text)


# -- online-deployment -------------------------------------------------------------------------


@click.group(name="online-deployment", help="Deployments of online endpoints: a model's worker processes.")
def online_deployment() -> None:
    pass


def _load_deployment(file: str, name: str | None, endpoint: str | None, overrides: tuple[str, ...]) -> dict[str, Any]:
    from mlyard.specs import load_spec

    extra = [*([f"name={name}"] if name else []), *([f"endpoint_name={endpoint}"] if endpoint else [])]
    loaded = load_spec(file, "online-deployment", overrides=[*overrides, *extra])
    _warn(loaded)
    return loaded.to_dict()


@online_deployment.command("create")
@click.option("-f", "--file", required=True, type=click.Path(dir_okay=False), help="YAML file of the deployment.")
@click.option("-n", "--name", help="Deployment name (wins over the file).")
@click.option("-e", "--endpoint-name", help="Endpoint (wins over the file's endpoint_name).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a field (repeatable).")
@click.option("--all-traffic", is_flag=True, help="Give the new deployment 100% of the endpoint's traffic.")
@output_option
@click.pass_context
def deployment_create(ctx: click.Context, file: str, name: str | None, endpoint_name: str | None,
                      overrides: tuple[str, ...], all_traffic: bool, output: str) -> None:
    """Create a deployment; returns when its workers are ready (or fails with their log's tail)."""
    spec = _load_deployment(file, name, endpoint_name, overrides)
    if plain_table(output):
        isolated = (spec.get("environment_variables") or {}).get("MLYARD_ENV_MODE") == "isolated"
        click.echo(f"creating deployment {spec['name']} of endpoint {spec['endpoint_name']}: "
                   f"{'building its isolated environment (once; cached by content), ' if isolated else ''}starting "
                   f"{spec.get('instance_count', 1)} instance(s) and waiting until they are ready...", err=True)
    result = make_client(ctx).online_deployments.create(spec["endpoint_name"], spec, all_traffic=all_traffic)
    emit(result, output, DEPLOYMENT_COLUMNS)


@online_deployment.command("update")
@click.option("-n", "--name", help="Deployment name (wins over the file).")
@click.option("-e", "--endpoint-name", help="Endpoint (wins over the file's endpoint_name).")
@click.option("-f", "--file", type=click.Path(dir_okay=False), help="YAML file (default: the stored spec).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override a field (repeatable), e.g. --set instance_count=2.")
@output_option
@click.pass_context
def deployment_update(ctx: click.Context, name: str | None, endpoint_name: str | None, file: str | None,
                      overrides: tuple[str, ...], output: str) -> None:
    """Change a deployment; its workers roll (new set ready before the old one stops), requests keep flowing."""
    from mlyard.specs import load_spec_dict

    client = make_client(ctx)
    if file is not None:
        spec = _load_deployment(file, name, endpoint_name, overrides)
    else:
        if not (name and endpoint_name):
            raise click.UsageError("without -f, give the deployment with -n and its endpoint with -e")
        current = client.online_deployments.get(endpoint_name, name)["spec"]
        spec = load_spec_dict(current, "online-deployment", overrides=overrides).to_dict()
    result = client.online_deployments.update(spec["endpoint_name"], spec)
    emit(result, output, DEPLOYMENT_COLUMNS)


@online_deployment.command("show")
@click.option("-n", "--name", required=True, help="Deployment name.")
@click.option("-e", "--endpoint-name", required=True, help="Endpoint name.")
@output_option
@click.pass_context
def deployment_show(ctx: click.Context, name: str, endpoint_name: str, output: str) -> None:
    """Show a deployment and its spec."""
    emit(make_client(ctx).online_deployments.get(endpoint_name, name), output if output != "table" else "yaml")


@online_deployment.command("list")
@click.option("-e", "--endpoint-name", required=True, help="Endpoint name.")
@output_option
@click.pass_context
def deployment_list(ctx: click.Context, endpoint_name: str, output: str) -> None:
    """List an endpoint's deployments."""
    emit(make_client(ctx).online_deployments.list(endpoint_name), output, DEPLOYMENT_COLUMNS)


@online_deployment.command("delete")
@click.option("-n", "--name", required=True, help="Deployment name.")
@click.option("-e", "--endpoint-name", required=True, help="Endpoint name.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def deployment_delete(ctx: click.Context, name: str, endpoint_name: str, yes: bool) -> None:
    """Delete a deployment (refused while it gets live traffic)."""
    if not yes:
        click.confirm(f"delete deployment {name} of endpoint {endpoint_name}?", abort=True)
    make_client(ctx).online_deployments.delete(endpoint_name, name)
    click.echo(f"deleted deployment {name} of endpoint {endpoint_name}")


@online_deployment.command("get-logs")
@click.option("-n", "--name", required=True, help="Deployment name.")
@click.option("-e", "--endpoint-name", required=True, help="Endpoint name.")
@click.option("-l", "--lines", default=100, show_default=True, type=click.IntRange(1, 10000),
              help="Lines from the end of each worker's log.")
@click.pass_context
def deployment_logs(ctx: click.Context, name: str, endpoint_name: str, lines: int) -> None:
    """Print the end of each worker's log."""
    sys.stdout.write(make_client(ctx).online_deployments.get_logs(endpoint_name, name, lines))
