"""A workspace made in-process, and rows and files put into it as the server would."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from mlyard.core.hashing import tree_hash
from mlyard.server.workspace import init_workspace
from mlyard.store.jobs_schema import Job
from mlyard.store.lifecycle.layout import OpenWorkspace
from mlyard.store.schema import Asset, AssetFile, Blob
from mlyard.store.tracking_schema import Run

DS = "workspaceblobstore"


def make_workspace(tmp_path: Path, database_url: str | None = None) -> Path:
    """A new workspace; its store is SQLite in the folder, or the database at ``database_url``."""
    return init_workspace(tmp_path / "ws", port=5999, database_url=database_url).workspace


def artifacts(ws: OpenWorkspace) -> Path:
    return ws.path / "artifacts" / DS


def put_upload(ws: OpenWorkspace, files: dict[str, bytes], basename: str = "data") -> tuple[str, int]:
    """Files uploaded to LocalUpload/<tree>/<basename>/..., recorded as blobs; returns (tree, bytes)."""
    entries = [(f"{basename}/{p}", hashlib.sha256(b).hexdigest(), len(b)) for p, b in files.items()]
    tree = tree_hash(entries)
    with ws.db.session() as s:
        for (rel, sha, size), content in zip(entries, files.values(), strict=True):
            path = artifacts(ws) / "LocalUpload" / tree / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            s.add(Blob(datastore=DS, path=f"LocalUpload/{tree}/{rel}", sha256=sha, size=size))
    return tree, sum(len(b) for b in files.values())


def add_asset(ws: OpenWorkspace, tree: str, name: str, files: dict[str, bytes], basename: str = "data") -> None:
    with ws.db.session() as s:
        s.add(Asset(kind="data", name=name, version="1", asset_type="uri_folder",
                    path=f"azureml://datastores/{DS}/paths/LocalUpload/{tree}/{basename}", spec={}, content_hash="x",
                    files=[AssetFile(path=f"{basename}/{p}", sha256=hashlib.sha256(b).hexdigest(), size=len(b))
                           for p, b in files.items()]))


def add_job(ws: OpenWorkspace, name: str, status: str, *, ended_days_ago: float = 0, spec: Any = None) -> None:
    now = int(time.time() * 1000)
    with ws.db.session() as s:
        s.add(Job(name=name, type="command", status=status, experiment_name="Default", experiment_id=0,
                  env_mode="inherit", spec=spec or {}, created_at=now, created_by="test",
                  ended_at=now - int(ended_days_ago * 86400_000) if status in ("Completed", "Failed", "Canceled")
                  else None))


def add_run(ws: OpenWorkspace, run_id: str, *, deleted_days_ago: float | None = None,
            artifact: bytes = b"") -> Path:
    """A run of the Default experiment, deleted that many days ago (None: active), with one artifact file."""
    now = int(time.time() * 1000)
    with ws.db.session() as s:
        s.add(Run(id=run_id, experiment_id=0, name=run_id, status="FINISHED", start_time=now - 10 ** 9,
                  lifecycle_stage="active" if deleted_days_ago is None else "deleted",
                  artifact_uri=f"mlflow-artifacts:/mlflow/0/{run_id}/artifacts",
                  deleted_time=None if deleted_days_ago is None else now - int(deleted_days_ago * 86400_000)))
    folder = artifacts(ws) / "mlflow" / "0" / run_id / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.bin").write_bytes(artifact)
    return folder
