"""``workspace check``: recorded files' sizes and hashes, and references to files."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete

from mlyard.store.lifecycle.check import check_workspace
from mlyard.store.lifecycle.layout import open_workspace
from mlyard.store.schema import Blob
from tests.store.lifecycle_helpers import DS, add_asset, add_job, artifacts, make_workspace, put_upload

FILES = {"a.csv": b"x,y\n1,2\n", "sub/b.txt": b"hello"}


def test_a_fresh_and_a_filled_workspace_check_clean(tmp_path: Path, database_url: str) -> None:
    with open_workspace(make_workspace(tmp_path, database_url)) as ws:
        assert check_workspace(ws).ok
        tree, _ = put_upload(ws, FILES)
        add_asset(ws, tree, "d", FILES)
        add_job(ws, "j1", "Completed", spec={"code": f"azureml://datastores/{DS}/paths/LocalUpload/{tree}/data"})
        report = check_workspace(ws)
    assert report.ok, report.problems
    assert report.checked["files"] == 2 and report.checked["asset files"] == 2 and report.checked["upload folders"] == 1


def test_corrupt_and_missing_files_and_dangling_references_are_reported(tmp_path: Path, database_url: str) -> None:
    with open_workspace(make_workspace(tmp_path, database_url)) as ws:
        tree, _ = put_upload(ws, FILES)
        add_asset(ws, tree, "d", FILES)
        other, _ = put_upload(ws, {"c.txt": b"job code"}, basename="src")
        add_job(ws, "j1", "Completed", spec={"code": f"azureml://datastores/{DS}/paths/LocalUpload/{other}/src"})
        (artifacts(ws) / "LocalUpload" / tree / "data" / "a.csv").write_bytes(b"x,y\n1,3\n")  # same size, new bytes
        (artifacts(ws) / "LocalUpload" / tree / "data" / "sub" / "b.txt").unlink()
        with ws.db.session() as s:
            s.execute(delete(Blob).where(Blob.path.like(f"LocalUpload/{other}/%")))
        report = check_workspace(ws)
        quick = check_workspace(ws, verify_hashes=False)
    lines = [p.line() for p in report.problems]
    assert any(line.startswith(f"corrupt: {DS}:LocalUpload/{tree}/data/a.csv: sha256") for line in lines), lines
    assert any(line.startswith(f"missing: {DS}:LocalUpload/{tree}/data/sub/b.txt") for line in lines), lines
    assert any(line.startswith(f"missing: LocalUpload/{other}") for line in lines), lines
    assert not report.ok
    # without hashing, the changed content of the same size goes unnoticed; the missing file does not
    assert not any("a.csv" in p.line() for p in quick.problems) and not quick.ok
