"""``mlyard batch-endpoint`` and ``mlyard batch-deployment``, shaped like ``az ml``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mlyard.cli.context import make_client
from mlyard.cli.output import Column, emit, output_option, plain_table

ENDPOINT_COLUMNS: list[Column] = [
    ("name", lambda r: r["name"]),
    ("default deployment", lambda r: (r.get("defaults") or {}).get("deployment_name") or ""),
    ("scoring uri", lambda r: r["scoring_uri"]),
]
DEPLOYMENT_COLUMNS: list[Column] = [
    ("name", lambda r: r["name"]),
    ("endpoint", lambda r: r["endpoint_name"]),
    ("type", lambda r: r["type"]),
    ("model", lambda r: r.get("model") or ""),
    ("state", lambda r: r["provisioning_state"]),
]


def _warn(loaded: Any) -> None:
    for warning in loaded.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)


def _jobs_table() -> list[Column]:
    from mlyard.cli.jobs import LIST_COLUMNS

    return LIST_COLUMNS


# -- batch-endpoint ----------------------------------------------------------------------------


@click.group(name="batch-endpoint", help="Batch endpoints: invoke a deployment over data; each invocation is a job.")
def batch_endpoint() -> None:
    pass


@batch_endpoint.command("create")
@click.option("-f", "--file", required=True, type=click.Path(dir_okay=False), help="YAML file of the endpoint.")
@click.option("-n", "--name", help="Endpoint name (wins over the file).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a field (repeatable).")
@output_option
@click.pass_context
def endpoint_create(ctx: click.Context, file: str, name: str | None, overrides: tuple[str, ...], output: str) -> None:
    """Create a batch endpoint (its deployments come next: batch-deployment create)."""
    from mlyard.specs import load_spec

    loaded = load_spec(file, "batch-endpoint", overrides=[*overrides, *([f"name={name}"] if name else [])])
    _warn(loaded)
    emit(make_client(ctx).batch_endpoints.create(loaded.to_dict()), output, ENDPOINT_COLUMNS)


@batch_endpoint.command("update")
@click.option("-n", "--name", required=True, help="Endpoint name.")
@click.option("-f", "--file", type=click.Path(dir_okay=False), help="YAML file of the endpoint (optional).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override a field (repeatable), e.g. --set defaults.deployment_name=d.")
@output_option
@click.pass_context
def endpoint_update(ctx: click.Context, name: str, file: str | None, overrides: tuple[str, ...], output: str) -> None:
    """Change an endpoint's description, tags or default deployment."""
    from mlyard.specs import load_spec, load_spec_dict

    client = make_client(ctx)
    if file is not None:
        loaded = load_spec(file, "batch-endpoint", overrides=[*overrides, f"name={name}"])
        _warn(loaded)
        spec = loaded.to_dict()
    elif overrides:
        current = client.batch_endpoints.get(name)
        base = {"name": name, "description": current.get("description"), "tags": current.get("tags") or {},
                "defaults": {k: v for k, v in (current.get("defaults") or {}).items() if v is not None}}
        spec = load_spec_dict({k: v for k, v in base.items() if v is not None}, "batch-endpoint",
                              overrides=overrides).to_dict()
    else:
        raise click.UsageError("nothing to change: give -f FILE or --set PATH=VALUE")
    emit(client.batch_endpoints.update(name, spec), output, ENDPOINT_COLUMNS)


@batch_endpoint.command("show")
@click.option("-n", "--name", required=True, help="Endpoint name.")
@output_option
@click.pass_context
def endpoint_show(ctx: click.Context, name: str, output: str) -> None:
    """Show an endpoint: its scoring URI (where invocations go) and default deployment."""
    emit(make_client(ctx).batch_endpoints.get(name), output if output != "table" else "yaml")


@batch_endpoint.command("list")
@output_option
@click.pass_context
def endpoint_list(ctx: click.Context, output: str) -> None:
    """List batch endpoints."""
    emit(make_client(ctx).batch_endpoints.list(), output, ENDPOINT_COLUMNS)


@batch_endpoint.command("delete")
@click.option("-n", "--name", required=True, help="Endpoint name.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def endpoint_delete(ctx: click.Context, name: str, yes: bool) -> None:
    """Delete an endpoint with all its deployments (the jobs of its invocations stay)."""
    if not yes:
        click.confirm(f"delete batch endpoint {name} and all its deployments?", abort=True)
    make_client(ctx).batch_endpoints.delete(name)
    click.echo(f"deleted batch endpoint {name}")


@batch_endpoint.command("list-jobs")
@click.option("-n", "--name", required=True, help="Endpoint name.")
@click.option("-r", "--max-results", default=50, show_default=True, type=click.IntRange(1, 1000))
@output_option
@click.pass_context
def endpoint_list_jobs(ctx: click.Context, name: str, max_results: int, output: str) -> None:
    """List the jobs the endpoint's invocations started, newest first."""
    emit(make_client(ctx).batch_endpoints.list_jobs(name, max_results), output, _jobs_table())


def _read_inputs_file(file: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``inputs.yml``: ``{inputs: {...}, outputs: {...}}``; relative local paths resolve against its folder."""
    from mlyard.core.errors import InvalidSpecError, SpecIssue
    from mlyard.specs.references import classify_path
    from mlyard.specs.source import read_yaml_file

    path = Path(file)
    data, _ = read_yaml_file(path.expanduser().absolute())
    if not isinstance(data, dict) or set(data) - {"inputs", "outputs", "$schema"}:
        extra = sorted(set(data) - {"inputs", "outputs", "$schema"}) if isinstance(data, dict) else []
        raise InvalidSpecError(issues=[SpecIssue(
            message="an invocation file holds inputs: and outputs: only" + (f" (not {extra[0]!r})" if extra else ""),
            file=file, field=extra[0] if extra else "")])
    sections: list[dict[str, Any]] = []
    for key in ("inputs", "outputs"):
        section = data.get(key) or {}
        if not isinstance(section, dict):
            raise InvalidSpecError(issues=[SpecIssue(message=f"{key} must be a mapping of names to values",
                                                     file=file, field=key)])
        for name, value in section.items():
            if isinstance(value, dict) and isinstance(value.get("path"), str):
                p = value["path"]
                if classify_path(p) == "local":
                    local = (path.parent / p.removeprefix("file:")).resolve()
                    if not local.exists():
                        raise InvalidSpecError(issues=[SpecIssue(
                            message=f"local path {p} does not exist (resolved to {local})", file=file,
                            field=f"{key}.{name}.path")])
                    value["path"] = str(local)
        sections.append(section)
    return sections[0], sections[1]


def _parse_settings(pairs: tuple[str, ...]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not PATH=VALUE, e.g. --set output_file_name=out.csv",
                                     param_hint="--set")
        settings[key.strip()] = value
    return settings


@batch_endpoint.command("invoke")
@click.option("-n", "--name", required=True, help="Endpoint name.")
@click.option("-d", "--deployment-name", help="Deployment to run (default: the endpoint's default).")
@click.option("-i", "--input", "input_", help="Data to score: a local file or folder (uploaded), "
              "azureml:<data>:<version>, azureml:<data>@latest, azureml://datastores/<ds>/paths/<p>, or a URL.")
@click.option("-t", "--input-type", type=click.Choice(["uri_file", "uri_folder"]),
              help="Type of --input (default: a local path's, a data asset's, else uri_folder).")
@click.option("-f", "--file", "file", type=click.Path(dir_okay=False, exists=True),
              help="inputs.yml: {inputs: {...}, outputs: {...}} (pipeline deployments; literals allowed).")
@click.option("--mini-batch-size", type=click.IntRange(1), help="Files per mini-batch (wins over the deployment).")
@click.option("--instance-count", type=click.IntRange(1), help="Instances (wins over the deployment).")
@click.option("--output-path", help="Where the score output goes: azureml://datastores/<ds>/paths/<folder>.")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override a run setting (repeatable): output_file_name, mini_batch_size, error_threshold, "
                   "logging_level, max_concurrency_per_instance, retry_settings.max_retries, retry_settings.timeout.")
@click.option("--job-name", help="Name of the job (default: batchjob-<uuid>).")
@click.option("--experiment-name", help="Experiment of the job (default: the endpoint's name).")
@click.option("-s", "--stream", is_flag=True, help="Follow the job until it ends (exits non-zero unless it completes).")
@output_option
@click.pass_context
def endpoint_invoke(ctx: click.Context, name: str, deployment_name: str | None, input_: str | None,
                    input_type: str | None, file: str | None, mini_batch_size: int | None,
                    instance_count: int | None, output_path: str | None, overrides: tuple[str, ...],
                    job_name: str | None, experiment_name: str | None, stream: bool, output: str) -> None:
    """Score data with a deployment: submits a job and prints its name (follow it with 'mlyard job stream')."""
    from mlyard.cli.jobs import _follow
    from mlyard.specs.references import classify_path

    if input_ is None and file is None:
        raise click.UsageError("give the data to score with --input, or the inputs with --file inputs.yml")
    data = None
    if input_ is not None:
        data = {"type": input_type, "path": input_}
        if classify_path(input_) == "local":
            local = Path(input_.removeprefix("file:"))
            if not local.exists():
                raise click.BadParameter(f"local path {input_} does not exist", param_hint="--input")
            data = {"type": input_type or ("uri_file" if local.is_file() else "uri_folder"), "path": str(local)}
    inputs, outputs = _read_inputs_file(file) if file else ({}, {})
    client = make_client(ctx)
    result = client.batch_endpoints.invoke(
        name, deployment_name=deployment_name, input=data, inputs=inputs, outputs=outputs, output_path=output_path,
        mini_batch_size=mini_batch_size, instance_count=instance_count, settings=_parse_settings(overrides),
        job_name=job_name, experiment_name=experiment_name)
    if not plain_table(output):
        if stream:
            result = _follow(client, result["name"], quiet=True)
        emit(result, output)
    else:
        click.echo(f"submitted job {result['name']} (experiment {result['experiment_name']})")
        if not stream:
            click.echo(f"follow it with: mlyard job stream -n {result['name']}")
            return
        result = _follow(client, result["name"])
    if stream and result["status"] != "Completed":
        sys.exit(1)


# -- batch-deployment --------------------------------------------------------------------------


@click.group(name="batch-deployment", help="Deployments of batch endpoints: a model and its run settings, "
                                           "or a pipeline component.")
def batch_deployment() -> None:
    pass


def _load_deployment(file: str, name: str | None, endpoint: str | None, overrides: tuple[str, ...]) -> dict[str, Any]:
    from mlyard.specs import load_spec

    extra = [*([f"name={name}"] if name else []), *([f"endpoint_name={endpoint}"] if endpoint else [])]
    loaded = load_spec(file, "batch-deployment", overrides=[*overrides, *extra])
    _warn(loaded)
    return loaded.to_dict()


@batch_deployment.command("create")
@click.option("-f", "--file", required=True, type=click.Path(dir_okay=False), help="YAML file of the deployment.")
@click.option("-n", "--name", help="Deployment name (wins over the file).")
@click.option("-e", "--endpoint-name", help="Endpoint (wins over the file's endpoint_name).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a field (repeatable).")
@click.option("--set-default", is_flag=True, help="Make it the endpoint's default deployment.")
@output_option
@click.pass_context
def deployment_create(ctx: click.Context, file: str, name: str | None, endpoint_name: str | None,
                      overrides: tuple[str, ...], set_default: bool, output: str) -> None:
    """Create a deployment (the endpoint's first becomes its default); local code is uploaded."""
    spec = _load_deployment(file, name, endpoint_name, overrides)
    if not spec.get("endpoint_name"):
        raise click.UsageError("the file has no endpoint_name: give the endpoint with -e/--endpoint-name")
    result = make_client(ctx).batch_deployments.create(spec["endpoint_name"], spec, set_default=set_default)
    emit(result, output, DEPLOYMENT_COLUMNS)


@batch_deployment.command("update")
@click.option("-n", "--name", help="Deployment name (wins over the file).")
@click.option("-e", "--endpoint-name", help="Endpoint (wins over the file's endpoint_name).")
@click.option("-f", "--file", type=click.Path(dir_okay=False), help="YAML file (default: the stored spec).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override a field (repeatable), e.g. --set settings.mini_batch_size=20.")
@click.option("--set-default", is_flag=True, help="Make it the endpoint's default deployment.")
@output_option
@click.pass_context
def deployment_update(ctx: click.Context, name: str | None, endpoint_name: str | None, file: str | None,
                      overrides: tuple[str, ...], set_default: bool, output: str) -> None:
    """Change a deployment; the next invocation runs with the new spec."""
    from mlyard.specs import load_spec_dict

    client = make_client(ctx)
    if file is not None:
        spec = _load_deployment(file, name, endpoint_name, overrides)
    else:
        if not (name and endpoint_name):
            raise click.UsageError("without -f, give the deployment with -n and its endpoint with -e")
        current = client.batch_deployments.get(endpoint_name, name)["spec"]
        spec = load_spec_dict(current, "batch-deployment", overrides=overrides).to_dict()
    if not spec.get("endpoint_name"):
        raise click.UsageError("the file has no endpoint_name: give the endpoint with -e/--endpoint-name")
    result = client.batch_deployments.update(spec["endpoint_name"], spec, set_default=set_default)
    emit(result, output, DEPLOYMENT_COLUMNS)


@batch_deployment.command("show")
@click.option("-n", "--name", required=True, help="Deployment name.")
@click.option("-e", "--endpoint-name", required=True, help="Endpoint name.")
@output_option
@click.pass_context
def deployment_show(ctx: click.Context, name: str, endpoint_name: str, output: str) -> None:
    """Show a deployment and its spec."""
    emit(make_client(ctx).batch_deployments.get(endpoint_name, name), output if output != "table" else "yaml")


@batch_deployment.command("list")
@click.option("-e", "--endpoint-name", required=True, help="Endpoint name.")
@output_option
@click.pass_context
def deployment_list(ctx: click.Context, endpoint_name: str, output: str) -> None:
    """List an endpoint's deployments."""
    emit(make_client(ctx).batch_deployments.list(endpoint_name), output, DEPLOYMENT_COLUMNS)


@batch_deployment.command("delete")
@click.option("-n", "--name", required=True, help="Deployment name.")
@click.option("-e", "--endpoint-name", required=True, help="Endpoint name.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def deployment_delete(ctx: click.Context, name: str, endpoint_name: str, yes: bool) -> None:
    """Delete a deployment (refused while it is the endpoint's default)."""
    if not yes:
        click.confirm(f"delete deployment {name} of batch endpoint {endpoint_name}?", abort=True)
    make_client(ctx).batch_deployments.delete(endpoint_name, name)
    click.echo(f"deleted deployment {name} of batch endpoint {endpoint_name}")


@batch_deployment.command("list-jobs")
@click.option("-n", "--name", required=True, help="Deployment name.")
@click.option("-e", "--endpoint-name", required=True, help="Endpoint name.")
@click.option("-r", "--max-results", default=50, show_default=True, type=click.IntRange(1, 1000))
@output_option
@click.pass_context
def deployment_list_jobs(ctx: click.Context, name: str, endpoint_name: str, max_results: int, output: str) -> None:
    """List the jobs that invocations of this deployment started, newest first."""
    emit(make_client(ctx).batch_deployments.list_jobs(endpoint_name, name, max_results), output, _jobs_table())
