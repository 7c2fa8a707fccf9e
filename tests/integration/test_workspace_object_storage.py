"""The lifecycle commands on a workspace whose default datastore is an Azure Blob container (a real Azurite): check
reads its blobs' hashes there, gc removes an orphan upload there and nothing else, backup names it as not copied and
the restored workspace still reads it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.azurite import Azurite
from tests.support.server import ServerProcess, free_port, run_cli

pytestmark = [pytest.mark.azurite, pytest.mark.slow]


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
