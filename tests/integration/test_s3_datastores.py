"""A workspace whose default datastore is an S3 bucket on a real S3 server (moto's server mode on loopback, IAM
authentication on): the datastore YAML with its access key, a data asset, a command job reading it and writing
an output and an MLflow artifact, the artifact read back with the real mlflow client, a model's files uploaded and
downloaded, every byte in the bucket, and the secret nowhere in what the CLI prints nor in the server's log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.jobs import JobYard, write
from tests.support.s3 import S3Server
from tests.support.server import ServerProcess, free_port, run_cli

pytestmark = [pytest.mark.s3, pytest.mark.slow]

COUNT = """\
import pathlib
import sys

import mlflow

rows = pathlib.Path(sys.argv[1], "rows.csv").read_text().splitlines()
pathlib.Path(sys.argv[2], "count.txt").write_text(str(len(rows) - 1))
with mlflow.start_run():
    mlflow.log_text(f"{len(rows) - 1} rows", "report/count.txt")
"""


@pytest.fixture(scope="module")
def on_s3(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A fresh workspace whose default datastore ``objects`` is a new bucket."""
    bucket = s3_server.create_bucket("workspace")
    ws = tmp_path_factory.mktemp("s3ws") / "workspace"
    server = ServerProcess(ws, free_port()).init().start()
    spec = tmp_path_factory.mktemp("s3spec") / "objects.yml"
    spec.write_text(yaml.safe_dump(s3_server.datastore_spec("objects", bucket)))
    created = run_cli("datastore", "create", "-f", str(spec), "--set-default", "-o", "json", env=server.env())
    assert json.loads(created.stdout)["is_default"] is True
    try:
        yield server, bucket
    finally:
        server.stop()


def _fails(server: ServerProcess, *args: str) -> str:
    proc = run_cli(*args, env=server.env(), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    return proc.stderr


def test_credentials_are_masked_and_bad_ones_refused_without_echo(
        on_s3: tuple[ServerProcess, str], s3_server: S3Server, tmp_path: Path) -> None:
    server, bucket = on_s3
    env = server.env()
    for out in ("json", "yaml", "table"):
        shown = run_cli("datastore", "show", "-n", "objects", "-o", out, env=env).stdout
        assert s3_server.secret_access_key not in shown and s3_server.access_key_id not in shown
        assert f"s3://{bucket}" in shown
    shown = json.loads(run_cli("datastore", "show", "-n", "objects", "-o", "json", env=env).stdout)
    assert shown["spec"]["credentials"] == {"access_key_id": "***", "secret_access_key": "***"}
    assert shown["spec"]["endpoint_url"] == s3_server.endpoint_url
    assert s3_server.secret_access_key not in run_cli("datastore", "list", "-o", "json", env=env).stdout

    wrong = "W" * 40
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(s3_server.datastore_spec(
        "badsecret", bucket, access_key_id=s3_server.access_key_id, secret_access_key=wrong)))
    error = _fails(server, "datastore", "create", "-f", str(bad))
    assert "badsecret" in error and "signature" in error and wrong not in error
    assert s3_server.access_key_id not in error
    missing = tmp_path / "missing.yml"
    missing.write_text(yaml.safe_dump(s3_server.datastore_spec("nobucket", "no-such-bucket")))
    assert "no-such-bucket" in _fails(server, "datastore", "create", "-f", str(missing))
    nokeys = tmp_path / "nokeys.yml"
    nokeys.write_text(yaml.safe_dump({**s3_server.datastore_spec("nokeys", bucket), "credentials": None}))
    assert "credentials.access_key_id" in _fails(server, "datastore", "create", "-f", str(nokeys))
    names = [d["name"] for d in json.loads(run_cli("datastore", "list", "-o", "json", env=env).stdout)]
    assert names == ["objects", "workspaceblobstore"]  # nothing half-created


def test_data_a_job_and_its_mlflow_artifacts_live_in_the_bucket(
        on_s3: tuple[ServerProcess, str], s3_server: S3Server, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow", reason="the job logs with mlflow (pip install -e '.[dev]')")
    from mlflow import MlflowClient

    server, bucket = on_s3
    yard = JobYard(server, tmp_path)
    write(tmp_path / "rows" / "rows.csv", "a,b\n1,2\n3,4\n5,6\n")
    write(tmp_path / "data.yml", "name: rows\nversion: 1\ntype: uri_folder\npath: ./rows\n")
    yard.cli("data", "create", "-f", "data.yml")
    write(tmp_path / "src" / "count.py", COUNT)
    job = write(tmp_path / "job.yml", """\
        code: ./src
        command: python count.py ${{inputs.rows}} ${{outputs.counted}}
        environment: @ENV@
        inputs:
          rows: {type: uri_folder, path: azureml:rows:1}
        outputs:
          counted: {type: uri_folder, path: azureml://datastores/objects/paths/out/counted/}
        """)
    done = yard.completed(job)

    keys = s3_server.keys(bucket)
    assert any(k.startswith("LocalUpload/") and k.endswith("/rows.csv") for k in keys), keys  # the data asset
    body = s3_server.client().get_object(Bucket=bucket, Key="out/counted/count.txt")["Body"].read()
    assert body == b"3"  # the job's output
    assert any(k.startswith("mlflow/") and k.endswith("/report/count.txt") for k in keys), keys  # its artifact
    assert s3_server.uploads(bucket) == []  # every upload completed, none left open

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    client = MlflowClient(tracking_uri=server.url)
    assert [a.path for a in client.list_artifacts(done["run_id"], "report")] == ["report/count.txt"]
    got = Path(client.download_artifacts(done["run_id"], "report/count.txt", str(tmp_path / "got")))
    assert got.read_text() == "3 rows"  # read back from the bucket through the server
    extra = tmp_path / "notes.txt"
    extra.write_text("written by the client")
    client.log_artifact(done["run_id"], str(extra), "client")
    assert any(k.endswith("/client/notes.txt") for k in s3_server.keys(bucket))
    run_cli("data", "download", "-n", "rows", "-v", "1", "--download-path", str(tmp_path / "down"), env=server.env())
    assert [p.read_text() for p in (tmp_path / "down").rglob("rows.csv")] == ["a,b\n1,2\n3,4\n5,6\n"]
    write(tmp_path / "model" / "weights.txt", "w=1")
    run_cli("model", "create", "--name", "counter", "--type", "custom_model", "--path", str(tmp_path / "model"),
            env=server.env())
    assert any(k.startswith("LocalUpload/") and k.endswith("/weights.txt") for k in s3_server.keys(bucket))
    run_cli("model", "download", "-n", "counter", "-v", "1", "--download-path", str(tmp_path / "model-down"),
            env=server.env())
    assert [p.read_text() for p in (tmp_path / "model-down").rglob("weights.txt")] == ["w=1"]
    log = server.log_path.read_text()
    assert s3_server.secret_access_key not in log and s3_server.access_key_id not in log
