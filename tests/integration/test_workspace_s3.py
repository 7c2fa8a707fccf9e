"""The lifecycle commands with an S3 datastore (moto's S3 server on loopback): ``workspace migrate --datastore``
moves workspaceblobstore's files into a bucket, resuming a half-copied one; ``workspace check`` then verifies their
hashes there, and the MLflow client and the CLI read them back with the local folder moved away."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.s3 import S3Server
from tests.support.server import ServerProcess, free_port, run_cli

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def test_migrate_moves_the_files_to_a_bucket_and_every_reference_still_reads(
        s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    bucket = s3_server.create_bucket(f"moved-{free_port()}")
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
        spec = tmp_path / "objects.yml"
        spec.write_text(yaml.safe_dump(s3_server.datastore_spec("objects", bucket)))
        run_cli("datastore", "create", "-f", str(spec), env=server.env())
    finally:
        server.stop()

    ws = ["--workspace", str(server.workspace), "workspace", "migrate"]
    # as an interrupted run would have left it: one of the two files already in the bucket
    local = server.workspace / "artifacts" / "workspaceblobstore"
    done = next(local.rglob("rows.csv"))
    s3_server.client().put_object(Bucket=bucket, Key=done.relative_to(local).as_posix(), Body=done.read_bytes())
    moved = run_cli(*ws, "--datastore", "objects")
    assert "copied 1 of 2 file(s)" in moved.stdout, moved.stdout  # the run's artifact; the data file was there
    assert any(k.endswith("/weights.bin") for k in s3_server.keys(bucket))
    assert "nothing to move" in run_cli(*ws, "--datastore", "objects", check=False).stderr  # done once, not twice
    (server.workspace / "artifacts").rename(server.workspace / "artifacts.before-move")  # reads must come from S3
    assert run_cli("--workspace", str(server.workspace), "workspace", "check").stdout.rstrip().endswith("ok")
    server.start()
    try:
        client = MlflowClient(server.url)
        got = Path(client.download_artifacts(run_id, "weights.bin", str(tmp_path / "dl")))
        assert got.read_bytes() == weights.read_bytes()
        run_cli("data", "download", "-n", "rows", "-v", "1", "--download-path", str(tmp_path / "rows-dl"),
                env=server.env())
        assert [p.read_text() for p in (tmp_path / "rows-dl").rglob("rows.csv")] == [(data / "rows.csv").read_text()]
    finally:
        server.stop()
    assert s3_server.secret_access_key not in server.log_path.read_text()
