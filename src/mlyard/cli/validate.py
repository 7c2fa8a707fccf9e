"""``mlyard validate -f FILE [--kind KIND]``: load and check a YAML file, creating nothing."""

from __future__ import annotations

import click


@click.command()
@click.option("-f", "--file", "file", required=True, type=click.Path(dir_okay=False), help="YAML file.")
@click.option("-k", "--kind", help="What the file must be: data, environment, model, component, job, "
              "online-endpoint, online-deployment, batch-endpoint, batch-deployment, schedule, monitor, compute, "
              "datastore. Default: what the file says it is (its $schema, else its type and keys).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a field (repeatable).")
def validate(file: str, kind: str | None, overrides: tuple[str, ...]) -> None:
    """Check FILE; print its warnings, or its errors with file:line and field.

    A file that says it is another kind than --kind (its $schema, type or keys) is refused.
    """
    from mlyard.core.errors import InvalidRequestError
    from mlyard.specs import SPEC_KINDS, load_spec

    if kind is not None and kind not in SPEC_KINDS:
        raise InvalidRequestError(f"unknown kind {kind!r}: expected one of {', '.join(SPEC_KINDS)}")
    loaded = load_spec(file, kind, overrides=overrides)
    for warning in loaded.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"{file}: valid {type(loaded.spec).__name__} ({loaded.kind})")
