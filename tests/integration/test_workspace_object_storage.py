"""The lifecycle commands on a workspace whose default datastore is an Azure Blob container (a real Azurite): check
reads its blobs' hashes there, gc removes an orphan upload there and nothing else, backup names it as not copied and
the restored workspace still reads it."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml

from tests.support.azurite import Azurite

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer
from tests.support.server import ServerProcess, free_port, run_cli

pytestmark = [pytest.mark.azurite, pytest.mark.slow]


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield postgres_server.create_database(name).replace("postgresql+psycopg://", "postgresql://")
    postgres_server.drop_database(name)


def test_check_gc_and_backup_with_the_default_datastore_on_azurite(azurite: Azurite, tmp_path: Path) -> None:
    container = azurite.create_container(f"lifecycle{free_port()}")
    server = ServerProcess(tmp_path / "workspace", free_port()).init()
    config_file = server.workspace / "mlyard.yaml"
    config_file.write_text(yaml.safe_dump({**yaml.safe_load(config_file.read_text()), "gc_orphan_uploads_days": 0}))
    server.start()
    try:
        spec = tmp_path / "blobs.yml"
        spec.write_text(yaml.safe_dump(azurite.datastore_spec("blobs", container)))
        run_cli("datastore", "create", "-f", str(spec), "--set-default", env=server.env())
        data = tmp_path / "rows"
        data.mkdir()
        (data / "rows.csv").write_text("a,b\n" + "1,2\n" * 1000)
        run_cli("data", "create", "--name", "rows", "--type", "uri_folder", "--path", str(data), env=server.env())
        orphan = b"o" * 12_345
        tree = hashlib.sha256(b"orphan").hexdigest()
        put = httpx.put(f"{server.url}/api/v1/datastores/blobs/paths/LocalUpload/{tree}/x/o.bin", content=orphan,
                        headers={**server.headers(), "X-Mlyard-Sha256": hashlib.sha256(orphan).hexdigest()})
        assert put.status_code == 201, put.text

        ws = ["--workspace", str(server.workspace), "workspace"]
        checked = run_cli(*ws, "check")
        assert "checked 1 database, 2 files" in checked.stdout and checked.stdout.rstrip().endswith("ok")
        plan = json.loads(run_cli(*ws, "gc", "-o", "json").stdout)
        assert [(i["kind"], i["what"], i["bytes"]) for i in plan["items"]] == \
            [("orphan upload", f"blobs:LocalUpload/{tree}", 12_345)]
        run_cli(*ws, "gc", "--yes")
        assert not azurite.filesystem().exists(f"{container}/LocalUpload/{tree}")
        assert run_cli(*ws, "check").stdout.rstrip().endswith("ok")

        run_cli(*ws, "backup", str(tmp_path / "backup"))
        manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
        assert manifest["not_copied"] == ["blobs"]
    finally:
        server.stop()
    restored = run_cli("workspace", "restore", str(tmp_path / "backup"), str(tmp_path / "restored"))
    assert "check ok" in restored.stdout  # the blobs it records are still in the container, with their hashes


@pytest.mark.postgres
def test_migrate_moves_the_store_to_postgres_and_the_files_to_azurite_and_every_reference_still_reads(
        azurite: Azurite, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    container = azurite.create_container(f"moved{free_port()}")
    server = ServerProcess(tmp_path / "workspace", free_port()).init().start()
    for key, value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                       "MLFLOW_TRACKING_TOKEN": server.token}.items():
        monkeypatch.setenv(key, value)
    try:
        data = tmp_path / "rows"
        data.mkdir()
        (data / "rows.csv").write_text("a,b\n" + "1,2\n" * 1000)
        run_cli("data", "create", "--name", "rows", "--type", "uri_folder", "--path", str(data), env=server.env())
        client = MlflowClient(server.url)
        run_id = client.create_run("0").info.run_id
        weights = tmp_path / "weights.bin"
        weights.write_bytes(bytes(range(256)) * 400)
        client.log_artifact(run_id, str(weights))
        spec = tmp_path / "blobs.yml"
        spec.write_text(yaml.safe_dump(azurite.datastore_spec("blobs", container)))
        run_cli("datastore", "create", "-f", str(spec), env=server.env())
    finally:
        server.stop()

    ws = ["--workspace", str(server.workspace), "workspace", "migrate"]
    assert "give --database-url" in run_cli(*ws, check=False).stderr
    assert "object-storage datastore" in run_cli(*ws, "--datastore", "workspaceblobstore", check=False).stderr
    # as an interrupted run would have left it: one of the two files already in the container
    local = server.workspace / "artifacts" / "workspaceblobstore"
    done = next(local.rglob("rows.csv"))
    azurite.filesystem().pipe(f"{container}/{done.relative_to(local).as_posix()}", done.read_bytes())
    moved = run_cli(*ws, "--database-url", pg_url, "--datastore", "blobs")
    assert "copied 1 of 2 file(s)" in moved.stdout, moved.stdout  # the run's artifact; the data file was there
    assert "every table verified" in moved.stdout
    assert yaml.safe_load((server.workspace / "mlyard.yaml").read_text())["database_url"] == pg_url
    assert "nothing to move" in run_cli(*ws, "--datastore", "blobs", check=False).stderr  # done once, not twice
    (server.workspace / "artifacts").rename(server.workspace / "artifacts.before-move")  # reads must come from Azurite
    assert run_cli("--workspace", str(server.workspace), "workspace", "check").stdout.rstrip().endswith("ok")
    server.start()
    try:
        client = MlflowClient(server.url)
        got = Path(client.download_artifacts(run_id, "weights.bin", str(tmp_path / "dl")))
        assert got.read_bytes() == weights.read_bytes()
        run_cli("data", "download", "-n", "rows", "-v", "1", "--download-path", str(tmp_path / "rows-dl"),
                env=server.env())
        assert [p.read_text() for p in (tmp_path / "rows-dl").rglob("rows.csv")] == [(data / "rows.csv").read_text()]
        assert client.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:/")
    finally:
        server.stop()
