"""Upgrades: a store made by the first schema, with data, upgrades to head; a newer schema is refused."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from alembic import command
from sqlalchemy import select, text

from mlyard.core.errors import StorageError
from mlyard.store.db import Database, make_engine
from mlyard.store.lifecycle.check import check_workspace
from mlyard.store.lifecycle.layout import open_workspace
from mlyard.store.migrate import alembic_config, current_revision, head_revision, upgrade
from mlyard.store.schema import Asset
from mlyard.store.tracking_schema import Experiment
from tests.store.lifecycle_helpers import make_workspace

CONTENT = b"Age,Attrition\n41,Yes\n49,No\n"
SHA = hashlib.sha256(CONTENT).hexdigest()
TREE = "0" * 64


def _first_schema_workspace(tmp_path: Path, database_url: str) -> Path:
    """A workspace whose store was made by migration 0001 and filled as that release's server filled it."""
    ws = tmp_path / "old-ws"
    root = ws / "artifacts" / "workspaceblobstore"
    (root / "LocalUpload" / TREE / "data").mkdir(parents=True)
    (root / "LocalUpload" / TREE / "data" / "rows.csv").write_bytes(CONTENT)
    (ws / "mlyard.yaml").write_text(yaml.safe_dump({"name": "old", "port": 5998, "database_url": database_url}))
    engine = make_engine(database_url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    now = "2025-01-02 03:04:05.000000+00:00"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO datastores (name, type, root, is_default, spec, created_at) "
                          "VALUES ('workspaceblobstore', 'local', :root, :t, '{}', :now)"),
                     {"root": str(root), "t": True, "now": now})
        conn.execute(text("INSERT INTO api_tokens (name, token_hash, role, revoked, created_at) "
                          "VALUES ('admin', :h, 'admin', :f, :now)"), {"h": "a" * 64, "f": False, "now": now})
        conn.execute(text("INSERT INTO blobs (datastore, path, sha256, size, created_at) VALUES "
                          "('workspaceblobstore', :p, :sha, :size, :now)"),
                     {"p": f"LocalUpload/{TREE}/data/rows.csv", "sha": SHA, "size": len(CONTENT), "now": now})
        conn.execute(text("INSERT INTO assets (kind, name, version, asset_type, path, tags, spec, content_hash, "
                          "archived, created_at, created_by) VALUES ('data', 'employees', '1', 'uri_folder', :path, "
                          "'{}', '{\"type\": \"uri_folder\"}', :h, :f, :now, 'admin')"),
                     {"path": f"azureml://datastores/workspaceblobstore/paths/LocalUpload/{TREE}/data", "h": "b" * 64,
                      "f": False, "now": now})
        asset_id = conn.execute(text("SELECT id FROM assets")).scalar_one()
        conn.execute(text("INSERT INTO asset_files (asset_id, path, sha256, size) VALUES (:a, 'data/rows.csv', :sha, "
                          ":size)"), {"a": asset_id, "sha": SHA, "size": len(CONTENT)})
    engine.dispose()
    return ws


def test_a_store_made_by_the_first_schema_upgrades_to_head_keeping_its_data(tmp_path: Path, database_url: str) -> None:
    ws_path = _first_schema_workspace(tmp_path, database_url)
    with open_workspace(ws_path) as ws:
        assert current_revision(ws.db.engine) == "0001"
        upgrade(ws.db.engine)
        assert current_revision(ws.db.engine) == head_revision()
        with ws.db.session() as s:
            asset = s.scalars(select(Asset)).one()
            assert (asset.name, asset.version, [f.path for f in asset.files]) == ("employees", "1", ["data/rows.csv"])
            assert asset.created_at.replace(tzinfo=None).isoformat() == "2025-01-02T03:04:05"
            assert s.scalar(select(Experiment.name).where(Experiment.id == 0)) == "Default"  # what 0002 adds
        report = check_workspace(ws)
    assert report.ok, report.problems


def test_a_store_newer_than_this_mlyard_is_refused_and_the_server_does_not_start(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    engine = make_engine(f"sqlite:///{ws / 'mlyard.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    with pytest.raises(StorageError, match="newer than this mlyard"):
        upgrade(engine)
    with engine.connect() as conn:  # nothing was changed
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0099_from_the_future"
    engine.dispose()
    started = subprocess.run([sys.executable, "-m", "mlyard", "--workspace", str(ws), "server", "--port", "0"],
                             capture_output=True, text=True, timeout=60)
    assert started.returncode != 0
    assert "schema revision '0099_from_the_future', newer than this mlyard" in started.stderr
    assert "Traceback" not in started.stderr


def test_stored_timestamps_come_back_timezone_aware_utc(db: Database) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from mlyard.store.schema import Blob

    noon_in_paris = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    with db.session() as s:
        s.add(Blob(datastore="d", path="given", sha256="0" * 64, size=1, created_at=noon_in_paris))
        s.add(Blob(datastore="d", path="default", sha256="0" * 64, size=1))
    with db.session() as s:
        given, default = s.get(Blob, ("d", "given")), s.get(Blob, ("d", "default"))
        assert given is not None and default is not None
        assert given.created_at == noon_in_paris and given.created_at.tzinfo == UTC
        assert given.created_at.isoformat() == "2026-01-01T11:00:00+00:00"
        assert default.created_at.tzinfo == UTC
        at = s.execute(select(Blob.created_at).where(Blob.path == "given")).scalar_one()  # core selects too
        assert at.tzinfo == UTC
