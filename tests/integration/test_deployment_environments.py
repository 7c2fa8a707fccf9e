"""Online deployments in isolated environments: the job rules (a uv venv cached by content) applied to workers.

The builds hit the package index, so the module is marked slow.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess, free_port, run_cli, worker_pids

pytestmark = pytest.mark.slow

EP = "iso-ep"
SCRIPT = """\
import json, os, sys
import six

def init():
    pass

def run(raw_data):
    return {"prefix": sys.prefix, "six": six.__version__, "mode": os.environ.get("MLYARD_ENV_MODE")}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("iso")
    proc = ServerProcess(root / "workspace", free_port()).init().start()
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"a": [1.0, 2.0, 8.0, 9.0], "b": [2.0, 1.0, 9.0, 8.0]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    mlflow.sklearn.save_model(model, str(root / "model"), serialization_format="pickle",
                              signature=infer_signature(frame, model.predict(frame)))
    (root / "model.yml").write_text("name: iso\nversion: 1\ntype: mlflow_model\npath: ./model\n")
    run_cli("model", "create", "-f", str(root / "model.yml"), env=proc.env())
    (root / "ep.yml").write_text(f"name: {EP}\n")
    run_cli("online-endpoint", "create", "-f", str(root / "ep.yml"), env=proc.env())
    yield proc
    proc.stop()


def _score(server: ServerProcess, deployment: str, body: object) -> httpx.Response:
    creds = json.loads(run_cli("online-endpoint", "get-credentials", "-n", EP, "-o", "json", env=server.env()).stdout)
    headers = {"Authorization": f"Bearer {creds['primaryKey']}", "azureml-model-deployment": deployment}
    return httpx.post(f"{server.url}/endpoints/{EP}/score", json=body, timeout=60, headers=headers)


def test_a_scoring_script_runs_in_the_isolated_environment_of_its_conda_file(server: ServerProcess) -> None:
    root = server.workspace.parent
    (root / "code").mkdir()
    (root / "code" / "score.py").write_text(SCRIPT)
    (root / "conda.yml").write_text("name: iso\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n"
                                    "      - six==1.16.0\n")
    (root / "script.yml").write_text(
        f"name: script\nendpoint_name: {EP}\nmodel: azureml:iso:1\ncode_configuration:\n  code: ./code\n"
        "  scoring_script: score.py\nenvironment:\n  image: mcr.microsoft.com/azureml/minimal:latest\n"
        "  conda_file: ./conda.yml\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n"
        "environment_variables:\n  MLYARD_ENV_MODE: isolated\n")
    run_cli("online-deployment", "create", "-f", str(root / "script.yml"), env=server.env())
    answer = _score(server, "script", {})
    assert answer.status_code == 200, answer.text
    served = answer.json()
    assert served["six"] == "1.16.0" and served["mode"] == "isolated"
    envs = server.workspace / ".mlyard" / "envs"
    assert Path(served["prefix"]).resolve().parent == envs.resolve(), (served, envs)
    assert Path(served["prefix"]).resolve() != Path(sys.prefix).resolve()

    # the update rolls onto the cached environment: no rebuild, same interpreter
    run_cli("online-deployment", "update", "-n", "script", "-e", EP, "--set", "instance_count=2", env=server.env())
    assert len(worker_pids(server, EP, "script")) == 2
    assert _score(server, "script", {}).json()["prefix"] == served["prefix"]


def test_a_bad_requirement_fails_create_with_uvs_reason_and_leaves_nothing(server: ServerProcess) -> None:
    root = server.workspace.parent
    (root / "bad.yml").write_text(
        f"name: bad\nendpoint_name: {EP}\nmodel: azureml:iso:1\ncode_configuration:\n  code: ./code\n"
        "  scoring_script: score.py\nenvironment:\n  image: mcr.microsoft.com/azureml/minimal:latest\n"
        "  conda_file:\n    dependencies:\n      - pip:\n          - mlyard-no-such-package-xyz==99\n"
        "instance_type: Standard_DS3_v2\ninstance_count: 1\nenvironment_variables:\n  MLYARD_ENV_MODE: isolated\n")
    failed = run_cli("online-deployment", "create", "-f", str(root / "bad.yml"), env=server.env(), check=False)
    assert failed.returncode == 1 and "mlyard-no-such-package-xyz" in failed.stderr, failed.stderr
    listed = json.loads(run_cli("online-deployment", "list", "-e", EP, "-o", "json", env=server.env()).stdout)
    assert "bad" not in [d["name"] for d in listed]
    assert worker_pids(server, EP, "bad") == []


def test_a_nocode_model_runs_in_an_environment_from_its_requirements(server: ServerProcess) -> None:
    root = server.workspace.parent
    (root / "nocode.yml").write_text(
        f"name: nocode\nendpoint_name: {EP}\nmodel: azureml:iso:1\ninstance_type: Standard_DS3_v2\n"
        "instance_count: 1\nenvironment_variables:\n  MLYARD_ENV_MODE: isolated\n")
    run_cli("online-deployment", "create", "-f", str(root / "nocode.yml"), env=server.env())
    [pid] = worker_pids(server, EP, "nocode")
    python = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()  # the venv's python, unresolved
    assert Path(python).parents[2].resolve() == (server.workspace / ".mlyard" / "envs").resolve(), python
    answer = _score(server, "nocode", {"input_data": [[1.0, 2.0], [8.0, 9.0]]})
    assert (answer.status_code, answer.json()) == (200, [0, 1])
