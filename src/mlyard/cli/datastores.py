"""``mlyard datastore list`` and ``upload``."""

from __future__ import annotations

import click

from mlyard.cli.context import make_client
from mlyard.cli.output import emit, output_option


@click.group()
def datastore() -> None:
    """Datastores of the workspace (workspaceblobstore is the default)."""


@datastore.command("list")
@output_option
@click.pass_context
def list_(ctx: click.Context, output: str) -> None:
    """List datastores."""
    rows = make_client(ctx).transport.json("GET", "/api/v1/datastores")
    emit(rows, output, [("name", lambda r: r["name"]), ("type", lambda r: r["type"]),
                        ("default", lambda r: "yes" if r["is_default"] else ""), ("root", lambda r: r["root"])])


@datastore.command("upload")
@click.option("-s", "--src", required=True, type=click.Path(exists=True),
              help="Local file or folder to upload.")
@click.option("-p", "--path", "path", required=True,
              help="Destination inside the datastore (data/train), or azureml://datastores/<name>/paths/<path>. "
                   "A folder's contents land under it; a file lands at it, or in it when it ends with '/'.")
@click.option("-n", "--name", help="Datastore (default: the workspace's default datastore).")
@click.option("--overwrite", is_flag=True, help="Replace files that already hold other content.")
@click.pass_context
def upload(ctx: click.Context, src: str, path: str, name: str | None, overwrite: bool) -> None:
    """Upload a local file or folder to a datastore path; prints its azureml:// URI.

    Every file is verified by its sha256; files already there with the same content are skipped.
    Register the result as data with 'mlyard data create --name N --type uri_folder --path <URI>'.
    """
    uri = make_client(ctx).datastores.upload(src, path, name, overwrite=overwrite)
    click.echo(uri)


@datastore.command("create")
@click.option("-f", "--file", "file", required=True, type=click.Path(dir_okay=False),
              help="Datastore YAML (Azure's azureBlob / azureDataLakeGen2 schemas, with credentials.account_key or "
                   "credentials.sas_token; or mlyard's type: s3 with bucket, optional prefix, endpoint_url and region, "
                   "and credentials.access_key_id and credentials.secret_access_key).")
@click.option("-n", "--name", help="Name (wins over the file).")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a field (repeatable).")
@click.option("--set-default", is_flag=True,
              help="Make it the workspace's default datastore (only while the current default holds no files "
                   "written through mlyard nor MLflow artifacts).")
@output_option
@click.pass_context
def create(ctx: click.Context, file: str, name: str | None, overrides: tuple[str, ...], set_default: bool,
           output: str) -> None:
    """Create a datastore; the server checks it answers with the credentials given. Credentials are never shown."""
    from mlyard.specs import load_spec

    loaded = load_spec(file, "datastore", overrides=overrides, name=name)
    emit(make_client(ctx).datastores.create(loaded.to_dict(), set_default=set_default), output, _COLUMNS)


_COLUMNS = [("name", lambda r: r["name"]), ("type", lambda r: r["type"]),
            ("default", lambda r: "yes" if r["is_default"] else ""), ("root", lambda r: r["root"])]


@datastore.command("show")
@click.option("-n", "--name", required=True, help="Datastore name.")
@output_option
@click.pass_context
def show(ctx: click.Context, name: str, output: str) -> None:
    """Show a datastore (credentials masked)."""
    emit(make_client(ctx).datastores.get(name), output)
