"""Batch endpoints end to end: the real CLI against a real server and store; deployments in both layouts,
the default deployment, refused changes, and an invocation that becomes a job (reference §7)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, run_cli

pytestmark = pytest.mark.slow

EP = "tiny-batch"
ENGINE = importlib.util.find_spec("mlyard.serving.batch") is not None


def _save_model(path: Path) -> None:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"a": [1.0, 2.0, 8.0, 9.0], "b": [2.0, 1.0, 9.0, 8.0]})
    model = LogisticRegression().fit(frame, [0, 0, 1, 1])
    mlflow.sklearn.save_model(model, str(path), signature=infer_signature(frame, model.predict(frame)),
                              serialization_format="pickle")


@pytest.fixture(scope="module")
def project(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registered MLflow model and the YAML files of both deployment layouts."""
    root = tmp_path_factory.mktemp("batch")
    _save_model(root / "model")
    (root / "model.yml").write_text("name: tinyb\nversion: 1\ntype: mlflow_model\npath: ./model\n")
    run_cli("model", "create", "-f", str(root / "model.yml"), env=server.env())
    (root / "endpoint.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/batchEndpoint.schema.json\n"
        f"name: {EP}\ndescription: scores tiny files\nauth_mode: aad_token\n")
    (root / "nocode.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json\n"
        f"name: nocode\nendpoint_name: {EP}\ntype: model\nmodel: azureml:tinyb@latest\ncompute: azureml:batch-cluster\n"
        "resources:\n  instance_count: 1\nsettings:\n  mini_batch_size: 2\n  max_concurrency_per_instance: 2\n"
        "  output_action: append_row\n  output_file_name: predictions.csv\n  retry_settings:\n    max_retries: 1\n"
        "    timeout: 60\n  error_threshold: -1\n  logging_level: info\n")
    code = root / "code"
    code.mkdir()
    (code / "batch_driver.py").write_text(
        "import os\n\ndef init():\n    global model_dir\n    model_dir = os.environ['AZUREML_MODEL_DIR']\n\n"
        "def run(mini_batch):\n    return [os.path.basename(f) for f in mini_batch]\n")
    (root / "legacy.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/batchDeployment.schema.json\n"
        f"name: legacy\nendpoint_name: {EP}\nmodel: azureml:tinyb:1\n"
        "code_configuration:\n  code: ./code\n  scoring_script: batch_driver.py\n"
        "environment:\n  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04\n"
        "compute: azureml:batch-cluster\nresources:\n  instance_count: 1\nmax_concurrency_per_instance: 1\n"
        "mini_batch_size: 3\noutput_action: append_row\noutput_file_name: names.csv\nerror_threshold: -1\n")
    data = root / "data"
    data.mkdir()
    for i, rows in enumerate(([[1.0, 2.0], [8.0, 9.0]], [[2.0, 1.0]], [[9.0, 8.0], [1.5, 1.5], [8.5, 8.5]])):
        with (data / f"part-{i}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["a", "b"])
            writer.writerows(rows)
    return root


def cli(server: ServerProcess, *args: str) -> str:
    proc = run_cli(*args, env=server.env())
    return proc.stdout + proc.stderr


def refused(server: ServerProcess, *args: str) -> str:
    proc = run_cli(*args, env=server.env(), check=False)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    return proc.stderr


def _json(server: ServerProcess, *args: str) -> object:
    return json.loads(cli(server, *args, "-o", "json"))


def test_endpoint_and_deployments_in_both_layouts(server: ServerProcess, project: Path) -> None:
    cli(server, "batch-endpoint", "create", "-f", str(project / "endpoint.yml"))
    shown = _json(server, "batch-endpoint", "show", "-n", EP)
    assert isinstance(shown, dict)
    assert shown["scoring_uri"] == f"{server.url}/api/v1/batch-endpoints/{EP}/jobs"
    assert shown["defaults"] == {"deployment_name": None} and shown["auth_mode"] == "aad_token"

    nocode = _json(server, "batch-deployment", "create", "-f", str(project / "nocode.yml"))
    assert isinstance(nocode, dict) and nocode["model"] == "tinyb:1" and nocode["type"] == "model"
    # the first deployment becomes the default, as on Azure
    assert cli(server, "batch-endpoint", "show", "-n", EP, "--query", "defaults.deployment_name",
               "-o", "tsv").strip() == "nocode"

    legacy = _json(server, "batch-deployment", "create", "-f", str(project / "legacy.yml"))
    assert isinstance(legacy, dict)
    assert legacy["spec"]["settings"]["mini_batch_size"] == 3  # root-level settings moved under settings
    assert legacy["spec"]["settings"]["output_file_name"] == "names.csv"
    assert legacy["spec"]["code_configuration"]["code"].startswith("azureml://datastores/")
    assert cli(server, "batch-endpoint", "show", "-n", EP, "--query", "defaults.deployment_name",
               "-o", "tsv").strip() == "nocode"
    names = cli(server, "batch-deployment", "list", "-e", EP, "--query", "[].name", "-o", "tsv").split()
    assert names == ["legacy", "nocode"]

    cli(server, "batch-deployment", "update", "-n", "legacy", "-e", EP, "--set", "settings.mini_batch_size=5",
        "--set-default")
    assert cli(server, "batch-deployment", "show", "-n", "legacy", "-e", EP, "--query", "spec.settings.mini_batch_size",
               "-o", "tsv").strip() == "5"
    assert cli(server, "batch-endpoint", "list", "--query", f"[?name=='{EP}'].defaults.deployment_name",
               "-o", "tsv").strip() == "legacy"

    stderr = refused(server, "batch-deployment", "delete", "-n", "legacy", "-e", EP, "--yes")
    assert "'legacy' is the default deployment" in stderr and "defaults.deployment_name=nocode" in stderr
    cli(server, "batch-endpoint", "update", "-n", EP, "--set", "defaults.deployment_name=nocode",
        "--set", "description=changed")
    shown = _json(server, "batch-endpoint", "show", "-n", EP)
    assert isinstance(shown, dict) and shown["defaults"]["deployment_name"] == "nocode"
    assert shown["description"] == "changed"
    cli(server, "batch-deployment", "delete", "-n", "legacy", "-e", EP, "--yes")
    assert cli(server, "batch-deployment", "list", "-e", EP, "--query", "[].name", "-o", "tsv").split() == ["nocode"]

    # --set-default at create, under another endpoint whose file names its default ahead of time
    (project / "other.yml").write_text("name: other-batch\ndefaults:\n  deployment_name: later\n")
    cli(server, "batch-endpoint", "create", "-f", str(project / "other.yml"))
    cli(server, "batch-deployment", "create", "-f", str(project / "nocode.yml"), "-e", "other-batch", "-n", "first")
    assert cli(server, "batch-endpoint", "show", "-n", "other-batch", "--query", "defaults.deployment_name",
               "-o", "tsv").strip() == "later"
    cli(server, "batch-deployment", "create", "-f", str(project / "legacy.yml"), "-e", "other-batch", "-n", "second",
        "--set-default")
    assert cli(server, "batch-endpoint", "show", "-n", "other-batch", "--query", "defaults.deployment_name",
               "-o", "tsv").strip() == "second"
    cli(server, "batch-endpoint", "delete", "-n", "other-batch", "--yes")
    assert "other-batch" not in cli(server, "batch-endpoint", "list", "--query", "[].name", "-o", "tsv").split()
    assert "not found" in refused(server, "batch-deployment", "list", "-e", "other-batch")


def test_refused_files_and_requests_leave_nothing(server: ServerProcess, project: Path) -> None:
    ep = "refusing-batch"
    cli(server, "batch-endpoint", "create", "-f", str(project / "endpoint.yml"), "-n", ep)
    stderr = refused(server, "batch-deployment", "create", "-f", str(project / "nocode.yml"), "-e", ep,
                     "--set", "model=azureml:nosuch:1")
    assert "model" in stderr and "nosuch" in stderr
    stderr = refused(server, "batch-deployment", "create", "-f", str(project / "nocode.yml"), "-e", ep,
                     "--set", "settings.mini_batch_size=0")
    assert "mini_batch_size" in stderr
    stderr = refused(server, "batch-deployment", "create", "-f", str(project / "legacy.yml"), "-e", ep,
                     "--set", "environment=azureml:no-such-env@latest")
    assert "environment" in stderr and "no-such-env" in stderr
    # nothing half-created: no deployment, and the endpoint still has no default
    assert cli(server, "batch-deployment", "list", "-e", ep, "--query", "[].name", "-o", "tsv").split() == []
    assert cli(server, "batch-endpoint", "show", "-n", ep, "--query", "defaults.deployment_name",
               "-o", "tsv").strip() == ""

    stderr = refused(server, "batch-endpoint", "update", "-n", ep, "--set", "defaults.deployment_name=ghost")
    assert "defaults.deployment_name" in stderr and "'ghost'" in stderr
    stderr = refused(server, "batch-endpoint", "create", "-f", str(project / "endpoint.yml"), "-n", ep)
    assert "already exists" in stderr
    (project / "bad-auth.yml").write_text("name: bad-auth\nauth_mode: key\n")
    stderr = refused(server, "batch-endpoint", "create", "-f", str(project / "bad-auth.yml"))
    assert "auth_mode" in stderr and "bad-auth.yml" in stderr
    stderr = refused(server, "batch-endpoint", "invoke", "-n", ep, "--input", str(project / "data"))
    assert "no default deployment" in stderr
    assert "not found" in refused(server, "batch-endpoint", "show", "-n", "nosuch-batch")
    cli(server, "batch-endpoint", "delete", "-n", ep, "--yes")


def test_pipeline_deployment_is_stored_with_its_component(server: ServerProcess, project: Path) -> None:
    ep = "pipe-batch"
    src = project / "pipe"
    src.mkdir()
    (src / "count.py").write_text("import sys, os\nos.makedirs(sys.argv[2], exist_ok=True)\n"
                                  "n = len(os.listdir(sys.argv[1]))\n"
                                  "open(os.path.join(sys.argv[2], 'n.txt'), 'w').write(str(n))\n")
    (src / "pipeline.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json\n"
        "type: pipeline\nname: count_files\ninputs:\n  data:\n    type: uri_folder\n  label:\n    type: string\n"
        "    default: x\noutputs:\n  counted:\n    type: uri_folder\njobs:\n  count:\n    type: command\n"
        "    component:\n      type: command\n      code: .\n      environment: azureml:AzureML-sklearn-1.5@latest\n"
        "      command: python count.py ${{inputs.data}} ${{outputs.out}}\n"
        "      inputs:\n        data:\n          type: uri_folder\n"
        "      outputs:\n        out:\n          type: uri_folder\n"
        "    inputs:\n      data: ${{parent.inputs.data}}\n    outputs:\n      out: ${{parent.outputs.counted}}\n")
    (project / "pipe-dep.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponentBatchDeployment.schema.json\n"
        f"name: counter\nendpoint_name: {ep}\ntype: pipeline\ncomponent: ./pipe/pipeline.yml\n"
        "settings:\n  default_compute: batch-cluster\n  continue_on_step_failure: false\n")
    cli(server, "batch-endpoint", "create", "-f", str(project / "endpoint.yml"), "-n", ep)
    dep = _json(server, "batch-deployment", "create", "-f", str(project / "pipe-dep.yml"))
    assert isinstance(dep, dict) and dep["type"] == "pipeline" and dep["model"] is None
    step = dep["spec"]["component"]["jobs"]["count"]["component"]
    assert step["code"].startswith("azureml://datastores/")  # the component's code was uploaded
    (project / "pipe-inputs.yml").write_text("inputs:\n  data:\n    type: uri_folder\n    path: ./data\n"
                                             "  label: hello\n")
    job = _json(server, "batch-endpoint", "invoke", "-n", ep, "--file", str(project / "pipe-inputs.yml"),
                "--stream")
    assert isinstance(job, dict) and job["status"] == "Completed", job
    assert job["experiment_name"] == ep and job["type"] == "pipeline"
    out = project / "pipe-out"
    cli(server, "job", "download", "-n", job["name"], "--output-name", "counted", "--download-path", str(out))
    assert (out / "named-outputs" / "counted" / "n.txt").read_text() == "3"
    listed = cli(server, "batch-deployment", "list-jobs", "-n", "counter", "-e", ep, "--query", "[].name", "-o", "tsv")
    assert listed.split() == [job["name"]]
    stderr = refused(server, "batch-endpoint", "invoke", "-n", ep, "--file", str(project / "pipe-inputs.yml"),
                     "--set", "output_file_name=x.csv")
    assert "pipeline deployment" in stderr

    # job_definition: an earlier pipeline job, rerun with the invocation's inputs
    (project / "rerun-dep.yml").write_text(f"name: rerun\nendpoint_name: {ep}\ntype: pipeline\n"
                                           f"job_definition: azureml:{job['name']}\n")
    cli(server, "batch-deployment", "create", "-f", str(project / "rerun-dep.yml"))
    (project / "one-file.yml").write_text(f"inputs:\n  data:\n    type: uri_folder\n    path: {project / 'pipe'}\n")
    rerun = _json(server, "batch-endpoint", "invoke", "-n", ep, "-d", "rerun", "--file",
                  str(project / "one-file.yml"), "--stream")
    assert isinstance(rerun, dict) and rerun["status"] == "Completed", rerun
    cli(server, "job", "download", "-n", rerun["name"], "--output-name", "counted", "--download-path", str(out / "2"))
    assert (out / "2" / "named-outputs" / "counted" / "n.txt").read_text() == "2"
    stderr = refused(server, "batch-endpoint", "invoke", "-n", ep, "--file", str(project / "one-file.yml"),
                     "--set", "nosuch=1", "-d", "rerun")
    assert "pipeline deployment" in stderr
    (project / "bad-inputs.yml").write_text("inputs:\n  nosuch: 1\n")
    stderr = refused(server, "batch-endpoint", "invoke", "-n", ep, "--file", str(project / "bad-inputs.yml"))
    assert "no input 'nosuch'" in stderr and "data, label" in stderr


@pytest.mark.skipif(not ENGINE, reason="the batch engine (mlyard.serving.batch) is not in this tree yet")
def test_invoke_no_code_mlflow_deployment_over_local_folder(server: ServerProcess, project: Path) -> None:
    ep = "score-batch"
    cli(server, "batch-endpoint", "create", "-f", str(project / "endpoint.yml"), "-n", ep)
    cli(server, "batch-deployment", "create", "-f", str(project / "nocode.yml"), "-e", ep)
    name = cli(server, "batch-endpoint", "invoke", "-n", ep, "--input", str(project / "data"),
               "--set", "output_file_name=scores.csv", "--query", "name", "-o", "tsv").strip()
    assert name.startswith("batchjob-")
    proc = run_cli("job", "stream", "-n", name, env=server.env(), check=False, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job = _json(server, "job", "show", "-n", name)
    assert isinstance(job, dict) and job["experiment_name"] == ep
    progress = job["progress"]  # the engine's progress file, through job show
    assert (progress["state"], progress["rows"], progress["files"]) == ("completed", 6, {"total": 3, "done": 3,
                                                                                        "failed": 0})
    assert "batch scoring completed: mini-batches" in cli(server, "job", "show", "-n", name)
    out = project / "score-out"
    cli(server, "job", "download", "-n", name, "--output-name", "score", "--download-path", str(out))
    rows = list(csv.reader((out / "named-outputs" / "score" / "scores.csv").open()))
    assert len(rows) == 6  # one row per input row, no header
    by_file: dict[str, list[str]] = {}
    for row in rows:
        by_file.setdefault(row[-1], []).append(row[1])
    assert sorted(by_file) == ["part-0.csv", "part-1.csv", "part-2.csv"]
    assert by_file["part-0.csv"] == ["0", "1"] and by_file["part-1.csv"] == ["0"]

    stderr = refused(server, "batch-endpoint", "invoke", "-n", ep, "--input", str(project / "data"),
                     "--set", "output_file_name=${{inputs.model}}")
    assert "output_file_name" in stderr and "expression" in stderr
    stderr = refused(server, "batch-endpoint", "invoke", "-n", ep, "--input", str(project / "data"),
                     "--set", "retry_settings.max_retries=many")
    assert "retry_settings.max_retries" in stderr

    # a registered data asset as the input; its type (uri_folder) comes from the asset
    (project / "data.yml").write_text(f"name: tiny-rows\ntype: uri_folder\npath: {project / 'data'}\n")
    cli(server, "data", "create", "-f", str(project / "data.yml"))
    by_asset = _json(server, "batch-endpoint", "invoke", "-n", ep, "--input", "azureml:tiny-rows@latest")
    assert isinstance(by_asset, dict)
    assert cli(server, "job", "show", "-n", by_asset["name"], "--query", "spec.inputs.data.type",
               "-o", "tsv").strip() == "uri_folder"
    # it need not run to the end (the scoring is shown by the other invocations); it may have ended already
    run_cli("job", "cancel", "-n", by_asset["name"], env=server.env(), check=False)

    # a scoring script (legacy layout), one file per mini-batch, the output where --output-path says
    cli(server, "batch-deployment", "create", "-f", str(project / "legacy.yml"), "-e", ep)
    target = "azureml://datastores/workspaceblobstore/paths/batch-out/legacy"
    job2 = _json(server, "batch-endpoint", "invoke", "-n", ep, "--deployment-name", "legacy", "--input",
                 str(project / "data"), "--mini-batch-size", "1", "--output-path", target, "--stream")
    assert isinstance(job2, dict) and job2["status"] == "Completed", job2
    assert job2["outputs"]["score"]["uri"].rstrip("/") == target
    cli(server, "job", "download", "-n", job2["name"], "--output-name", "score", "--download-path", str(out))
    names = (out / "named-outputs" / "score" / "names.csv").read_text().split()
    assert sorted(names) == ["part-0.csv", "part-1.csv", "part-2.csv"]

    assert cli(server, "batch-endpoint", "list-jobs", "-n", ep, "--query", "[].name",
               "-o", "tsv").split() == [job2["name"], by_asset["name"], name]
    assert cli(server, "batch-deployment", "list-jobs", "-n", "nocode", "-e", ep, "--query", "[].name",
               "-o", "tsv").split() == [by_asset["name"], name]
