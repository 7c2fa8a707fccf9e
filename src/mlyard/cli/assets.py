"""``mlyard data|environment|model|component``: create, list, show, download, archive, restore."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from mlyard.cli.context import make_client
from mlyard.cli.output import Column, emit, output_option, plain_table

LIST_COLUMNS: list[Column] = [
    ("name", lambda r: r["name"]),
    ("version", lambda r: r["version"]),
    ("type", lambda r: r.get("type")),
    ("path", lambda r: r.get("path")),
    ("created", lambda r: str(r.get("created_at", ""))[:19]),
    ("archived", lambda r: "yes" if r.get("archived") else ""),
]
SHOW_FIELDS = ("name", "version", "type", "path", "description", "tags", "archived", "created_at", "created_by",
               "content_hash")


def _show_rows(asset: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"field": k, "value": asset.get(k)} for k in SHOW_FIELDS if asset.get(k) not in (None, {}, "")]
    for key, value in (asset.get("registry") or {}).items():
        if value not in (None, [], "", "None"):
            rows.append({"field": key, "value": value})
    files = asset.get("files") or []
    if files:
        rows.append({"field": "files", "value": f"{len(files)} ({sum(f['size'] for f in files):,} bytes)"})
    return rows


def _emit_asset(asset: dict[str, Any], fmt: str) -> None:
    if plain_table(fmt):
        emit(_show_rows(asset), fmt, [("field", lambda r: r["field"]), ("value", lambda r: r["value"])])
    else:
        emit(asset, fmt)


def _local_bytes(kind: str, spec: dict[str, Any]) -> int:
    from mlyard.specs.content import local_content_paths

    total = 0
    for _field, local in local_content_paths(kind, spec):
        p = Path(local)
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


def _create(ctx: click.Context, kind: str, file: str | None, overrides: tuple[str, ...], name: str | None,
            version: str | None, shortcut: dict[str, Any], fmt: str, allow_missing_path: bool = False) -> None:
    from mlyard.specs import load_spec, load_spec_dict

    if file:
        loaded = load_spec(file, kind, overrides=overrides, name=name, version=version)
    else:
        if not shortcut:
            raise click.UsageError(f"give -f FILE: a {kind} is created from its YAML file")
        if not name or not any(shortcut.values()):
            options = ", ".join("--" + k.rstrip("_").replace("_", "-") for k in shortcut)
            raise click.UsageError(f"give -f FILE, or --name with {options}")
        fields = {k.rstrip("_"): v for k, v in shortcut.items() if v}
        data = {"name": name, **({"version": version} if version else {}), **fields}
        loaded = load_spec_dict(data, kind, base_path=Path.cwd(), source="<command line>")
    for warning in loaded.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    spec = loaded.spec.model_dump(mode="json", exclude_none=True, by_alias=True)
    client = make_client(ctx)
    total = _local_bytes(kind, spec)
    if total and plain_table(fmt):
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), transient=True) as bar:
            task = bar.add_task(f"uploading {spec.get('name')}", total=total)
            result = client.operations(kind).create(loaded, progress=lambda _p, n: bar.advance(task, n),
                                                    allow_missing_path=allow_missing_path)
    else:
        result = client.operations(kind).create(loaded, allow_missing_path=allow_missing_path)
    for warning in result.get("warnings") or []:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    if plain_table(fmt):
        verb = "created" if result.get("created") else "exists, unchanged:"
        click.echo(f"{kind} {result['name']}:{result['version']} {verb}")
    _emit_asset(result, fmt)


def asset_group(kind: str, shortcut_options: list[click.Option]) -> click.Group:
    """The command group of one asset kind."""

    @click.group(name=kind, help=f"Manage {kind} assets (versioned and immutable).")
    def group() -> None:
        pass

    @group.command("create")
    @click.option("-f", "--file", type=click.Path(dir_okay=False), help=f"YAML file of the {kind}.")
    @click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
                  help="Override a field before validation (repeatable), e.g. --set version=2.")
    @click.option("-n", "--name", help="Name (wins over the file).")
    @click.option("-v", "--version", help="Version (wins over the file; default: the next integer).")
    @click.option("--allow-missing-path", is_flag=True,
                  help="Register an azureml://datastores/... path that holds no files yet, with a warning "
                       "(refused otherwise).")
    @output_option
    @click.pass_context
    def create(ctx: click.Context, /, file: str | None, overrides: tuple[str, ...], name: str | None,
               version: str | None, allow_missing_path: bool, output: str, **shortcut: Any) -> None:
        """Create a version from a YAML file (local content is uploaded first)."""
        _create(ctx, kind, file, overrides, name, version, shortcut, output, allow_missing_path)

    for opt in shortcut_options:
        create.params.append(opt)

    @group.command("list")
    @click.option("-n", "--name", help="List the versions of this asset.")
    @click.option("--include-archived", is_flag=True, help="Include archived versions.")
    @output_option
    @click.pass_context
    def list_(ctx: click.Context, name: str | None, include_archived: bool, output: str) -> None:
        """List assets (newest version of each), or the versions of one."""
        rows = make_client(ctx).operations(kind).list(name, include_archived=include_archived)
        emit(rows, output, LIST_COLUMNS)

    @group.command("show")
    @click.option("-n", "--name", required=True, help="Name, or NAME:VERSION, or NAME@latest.")
    @click.option("-v", "--version", help="Version.")
    @click.option("-l", "--label", type=click.Choice(["latest"]), help="Label instead of a version.")
    @output_option
    @click.pass_context
    def show(ctx: click.Context, name: str, version: str | None, label: str | None, output: str) -> None:
        """Show one version (default: the latest)."""
        _emit_asset(make_client(ctx).operations(kind).get(name, version, label=label), output)

    @group.command("download")
    @click.option("-n", "--name", required=True, help="Name, or NAME:VERSION.")
    @click.option("-v", "--version", help="Version (default: latest).")
    @click.option("-p", "--download-path", default=".", show_default=True, type=click.Path(file_okay=False),
                  help="Folder to download into; files land in <path>/<name>/.")
    @click.pass_context
    def download(ctx: click.Context, name: str, version: str | None, download_path: str) -> None:
        """Download a version's files, verifying each sha256 (an asset registered by a datastore path: the
        files there now). An asset with no files is an error."""
        target = make_client(ctx).operations(kind).download(name, version, download_path=download_path)
        click.echo(f"downloaded to {os.path.relpath(target)}")

    for verb, archived in (("archive", True), ("restore", False)):
        _archive_command(group, kind, verb, archived)
    return group


def _archive_command(group: click.Group, kind: str, verb: str, archived: bool) -> None:
    @group.command(verb, help=f"{verb.capitalize()} a {kind}: one version with -v, else every version.")
    @click.option("-n", "--name", required=True)
    @click.option("-v", "--version")
    @click.pass_context
    def command(ctx: click.Context, name: str, version: str | None) -> None:
        ops = make_client(ctx).operations(kind)
        rows = ops.archive(name, version) if archived else ops.restore(name, version)
        click.echo(f"{verb}d {kind} {name}: versions {', '.join(r['version'] for r in rows)}")


def _opt(*decls: str, **kwargs: Any) -> click.Option:
    return click.Option(list(decls), **kwargs)


data = asset_group("data", [
    _opt("--type", "type_", type=click.Choice(["uri_file", "uri_folder", "mltable"]), help="Data type (without -f)."),
    _opt("--path", help="Local path or URI (without -f)."),
    _opt("--description", help="Description (without -f)."),
])
environment = asset_group("environment", [
    _opt("--image", help="Docker image (without -f)."),
    _opt("--conda-file", "conda_file", help="Conda YAML file (without -f)."),
    _opt("--description", help="Description (without -f)."),
])
model = asset_group("model", [
    _opt("--type", "type_", type=click.Choice(["custom_model", "mlflow_model", "triton_model"]),
         help="Model type (without -f)."),
    _opt("--path", help="Local file or folder, or URI (without -f)."),
    _opt("--description", help="Description (without -f)."),
])
component = asset_group("component", [])


def _update_body(sets: tuple[str, ...], removes: tuple[str, ...]) -> dict[str, Any]:
    """``--set description=..``/``tags.KEY=..``/``stage=..`` and ``--remove tags.KEY`` as the PATCH body."""
    body: dict[str, Any] = {}
    tags: dict[str, str | None] = {}
    for item in sets:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise click.BadParameter(f"{item!r} is not FIELD=VALUE, e.g. tags.stage=prod", param_hint="'--set'")
        if field in ("description", "stage"):
            body[field] = value
        elif field.startswith("tags.") and len(field) > 5:
            tags[field[5:]] = value
        else:
            raise click.BadParameter(_immutable(field), param_hint="'--set'")
    for field in removes:
        if not (field.startswith("tags.") and len(field) > 5):
            raise click.BadParameter(f"{field!r}: only tags.KEY can be removed", param_hint="'--remove'")
        tags[field[5:]] = None
    if tags:
        body["tags"] = tags
    if not body:
        raise click.UsageError("nothing to update: give --set description=..., --set tags.KEY=VALUE, "
                               "--set stage=Production or --remove tags.KEY")
    return body


def _immutable(field: str) -> str:
    if field == "tags":
        return "give one tag at a time: --set tags.KEY=VALUE"
    return (f"field {field!r} of a model version cannot change (its content and identity are immutable); "
            "only description, tags.KEY and stage can: register a new version to change it")


@model.command("update")
@click.option("-n", "--name", required=True, help="Name, or NAME:VERSION, or NAME@alias.")
@click.option("-v", "--version", help="Version (default: the latest).")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="description=TEXT, tags.KEY=VALUE or stage=None|Staging|Production|Archived (repeatable).")
@click.option("--remove", "removes", multiple=True, metavar="tags.KEY", help="Remove a tag (repeatable).")
@output_option
@click.pass_context
def model_update(ctx: click.Context, name: str, version: str | None, sets: tuple[str, ...],
                 removes: tuple[str, ...], output: str) -> None:
    """Change a model version's description, tags or stage, as 'az ml model update --set' does.

    Content and identity (name, version, type, path, files) never change: register a new version for
    that. Tags are those MLflow's registry shows (get_model_version), and the other way round.
    """
    body = _update_body(sets, removes)
    client = make_client(ctx)
    target = client.models.get(name, version)  # NAME, NAME:V, NAME@alias or the latest, as 'model show' reads it
    result = client.transport.json("PATCH", f"/api/v1/models/{target['name']}/versions/{target['version']}",
                                   json=body)
    if plain_table(output):
        click.echo(f"model {result['name']}:{result['version']} updated")
    _emit_asset(result, output)
