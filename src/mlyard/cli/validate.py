"""``mlyard validate -f FILE [--kind KIND]``: load and check a YAML file, creating nothing."""

from __future__ import annotations

import click

_PLACEHOLDER = "endpoint-given-at-create"


@click.command()
@click.option("-f", "--file", "file", required=True, type=click.Path(dir_okay=False), help="YAML file.")
@click.option("-k", "--kind", help="What the file must be: data, environment, model, component, job, "
              "online-endpoint, online-deployment, batch-endpoint, batch-deployment, schedule, monitor, compute, "
              "datastore, trigger. Default: what the file says it is (its $schema, else its type and keys).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a field (repeatable).")
@click.option("-e", "--endpoint-name", help="For a deployment: its endpoint, as 'online-deployment create' and "
              "'batch-deployment create' take it (wins over the file's endpoint_name).")
def validate(file: str, kind: str | None, overrides: tuple[str, ...], endpoint_name: str | None) -> None:
    """Check FILE; print its warnings, or its errors with file:line and field.

    A file that says it is another kind than --kind (its $schema, type or keys) is refused. A deployment
    file may leave endpoint_name out, as most of Azure's examples do: the endpoint is then given with
    --endpoint-name when the deployment is created.
    """
    from mlyard.core.errors import InvalidRequestError, InvalidSpecError
    from mlyard.specs import SPEC_KINDS, load_spec

    if kind is not None and kind not in SPEC_KINDS:
        raise InvalidRequestError(f"unknown kind {kind!r}: expected one of {', '.join(SPEC_KINDS)}")
    if endpoint_name is not None:
        overrides = (*overrides, f"endpoint_name={endpoint_name}")
    try:
        loaded = load_spec(file, kind, overrides=overrides)
    except InvalidSpecError as exc:
        if not any(i.field == "endpoint_name" and "missing" in i.message for i in exc.issues):
            raise
        # The endpoint is for the create command's --endpoint-name; check the rest of the file without it.
        click.secho(f"note: {file} names no endpoint_name: give it with --endpoint-name when you create the "
                    "deployment", fg="yellow", err=True)
        loaded = load_spec(file, kind, overrides=(*overrides, f"endpoint_name={_PLACEHOLDER}"))
    for warning in loaded.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"{file}: valid {type(loaded.spec).__name__} ({loaded.kind})")
