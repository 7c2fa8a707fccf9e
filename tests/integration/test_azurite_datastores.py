"""A workspace whose default datastore is an Azure Blob container on a real Azurite: the datastore YAML with its
account key, then the attrition example as a user runs it (data, environment, pipeline, registered model, MLflow
artifacts, downloads) with every byte going to the container, a command job reading from and writing to it, and
the key nowhere in what the CLI prints nor in the server's log."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.azurite import Azurite
from tests.support.jobs import JobYard, write
from tests.support.server import ServerProcess, free_port, run_cli

pytestmark = [pytest.mark.azurite, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "attrition"
TRAIN = EXAMPLE / "mlops" / "azureml" / "train"
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
BLOBS = "azureml://datastores/blobs/paths"


@pytest.fixture(scope="module")
def on_azurite(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A fresh workspace whose default datastore ``blobs`` is a new Azurite container."""
    container = azurite.create_container("workspace")
    ws = tmp_path_factory.mktemp("azws") / "workspace"
    server = ServerProcess(ws, free_port()).init().start()
    spec = tmp_path_factory.mktemp("azspec") / "blobs.yml"
    spec.write_text(yaml.safe_dump(azurite.datastore_spec("blobs", container)))
    created = run_cli("datastore", "create", "-f", str(spec), "--set-default", "-o", "json", env=server.env())
    assert json.loads(created.stdout)["is_default"] is True
    try:
        yield server, container
    finally:
        server.stop()


def _fails(server: ServerProcess, *args: str) -> str:
    proc = run_cli(*args, env=server.env(), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    return proc.stderr


def test_credentials_are_masked_and_bad_ones_refused_without_echo(
        on_azurite: tuple[ServerProcess, str], azurite: Azurite, tmp_path: Path) -> None:
    server, container = on_azurite
    env = server.env()
    for out in ("json", "yaml", "table"):
        shown = run_cli("datastore", "show", "-n", "blobs", "-o", out, env=env).stdout
        assert azurite.key not in shown and "abfs://workspace" in shown
    shown = json.loads(run_cli("datastore", "show", "-n", "blobs", "-o", "json", env=env).stdout)
    assert shown["spec"]["credentials"] == {"account_key": "***"} and shown["spec"]["account_name"] == azurite.account
    assert azurite.key not in run_cli("datastore", "list", "-o", "json", env=env).stdout

    wrong = azurite.key[:-8] + "AAAAAAA="
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(azurite.datastore_spec("badkey", container, account_key=wrong)))
    error = _fails(server, "datastore", "create", "-f", str(bad))
    assert "badkey" in error and "authenticate" in error and wrong not in error
    sas = "?sv=2024-01-01&sp=rl&sig=NOTAREALSIGNATURE%3D"
    bad.write_text(yaml.safe_dump(azurite.datastore_spec("badsas", container, sas_token=sas)))
    error = _fails(server, "datastore", "create", "-f", str(bad))
    assert "badsas" in error and "NOTAREALSIGNATURE" not in error
    missing = tmp_path / "missing.yml"
    missing.write_text(yaml.safe_dump(azurite.datastore_spec("nocontainer", "nosuchcontainer")))
    assert "nosuchcontainer" in _fails(server, "datastore", "create", "-f", str(missing))
    names = [d["name"] for d in json.loads(run_cli("datastore", "list", "-o", "json", env=env).stdout)]
    assert names == ["blobs", "workspaceblobstore"]  # nothing half-created


def test_the_attrition_example_runs_with_every_byte_on_azurite(
        on_azurite: tuple[ServerProcess, str], azurite: Azurite, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn", reason="the attrition example needs scikit-learn (pip install -e '.[dev]')")
    import mlflow.artifacts
    from mlflow import MlflowClient

    server, container = on_azurite
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    for key, value in {**NO_TELEMETRY, "MLFLOW_TRACKING_TOKEN": server.token, "MLFLOW_TRACKING_URI": server.url,
                       "MLFLOW_REGISTRY_URI": server.url}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    env = server.env()
    run_cli("data", "create", "-f", str(TRAIN / "data.yml"), env=env)
    run_cli("environment", "create", "-f", str(TRAIN / "train-env.yml"), env=env)
    run = run_cli("job", "create", "-f", str(TRAIN / "pipeline.yml"), "--name", "attrition-az", "--stream",
                  cwd=tmp_path, env={**env, **NO_TELEMETRY}, check=False, timeout=240)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{server.log_path.read_text()[-3000:]}"

    fs = azurite.filesystem()
    stored = {p[len(container) + 1:] for p in fs.find(container)}
    assert any(p.startswith("LocalUpload/") and p.endswith(".csv") for p in stored)  # the data asset
    assert any(p.startswith("mlflow/") and p.endswith("/MLmodel") for p in stored)  # MLflow artifacts
    assert any("azureml/attrition-az" in p or "attrition-az" in p for p in stored)  # the steps' outputs
    assert not any(".mlyard-tmp-" in p for p in stored)

    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    version = client.search_model_versions("name='attrition-model'")[0]
    got = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(tmp_path / "source")))
    assert (got / "MLmodel").is_file()  # read back from the container through the server
    run_cli("model", "download", "-n", "attrition-model", "-v", version.version, "--download-path",
            str(tmp_path / "model"), env=env)
    assert list((tmp_path / "model").rglob("MLmodel"))
    run_cli("data", "download", "-n", "employee-attrition", "-v", "1", "--download-path", str(tmp_path / "data"),
            env=env)
    assert list((tmp_path / "data").rglob("*.csv"))
    assert azurite.key not in server.log_path.read_text()


def test_a_command_job_reads_from_and_writes_to_the_container(
        on_azurite: tuple[ServerProcess, str], azurite: Azurite, tmp_path: Path) -> None:
    server, container = on_azurite
    yard = JobYard(server, tmp_path)
    write(tmp_path / "rows" / "rows.csv", "a,b\n1,2\n3,4\n")
    uri = yard.cli("datastore", "upload", "--src", "rows", "--path", "in/rows").stdout.strip()
    assert uri == f"{BLOBS}/in/rows/"
    job = write(tmp_path / "job.yml", """\
        command: >-
          python -c "import pathlib,sys; rows = pathlib.Path(sys.argv[1], 'rows.csv').read_text().splitlines();
          pathlib.Path(sys.argv[2], 'count.txt').write_text(str(len(rows) - 1))"
          ${{inputs.rows}} ${{outputs.counted}}
        environment: @ENV@
        inputs:
          rows: {type: uri_folder, path: @URI@}
        outputs:
          counted: {type: uri_folder, path: azureml://datastores/blobs/paths/out/counted/}
        """, URI=uri)
    done = yard.completed(job)
    assert done["status"] == "Completed"
    assert azurite.filesystem().cat(f"{container}/out/counted/count.txt") == b"2"

    # the default cannot move away once it holds files: their URIs name it
    again = write(tmp_path / "again.yml", yaml.safe_dump(azurite.datastore_spec("second", container)))
    error = _fails(server, "datastore", "create", "-f", str(again), "--set-default")
    assert "'blobs' already holds" in error and "second" in error
