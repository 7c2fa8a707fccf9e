"""Command and pipeline jobs end to end: what a step runs with, bindings, outputs, reuse (reference §1.3, §2, §3, §4.1).

One server serves the module; each test writes its YAML next to the shared scripts and uses names of
its own. Jobs are submitted as ``mlyard job create`` submits them (the CLI's loader, then the SDK), or
through the CLI itself where its behaviour is the point. Failures, cancel, timeouts, bad input and
server restarts are in ``test_job_lifecycle.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.jobs import (
    GATE,
    LOG_METRIC,
    PROBE,
    JobYard,
    probes,
    steps_of,
    write,
)
from tests.support.server import ServerProcess

if TYPE_CHECKING:
    from mlflow import MlflowClient

TRAIN_COMPONENT = """\
    name: train_c
    type: command
    code: ./src
    inputs:
      data: {type: uri_folder}
      lr: {type: number, default: 0.01}
      epochs: {type: integer, optional: true}
    outputs:
      model: {type: mlflow_model}
    environment: @ENV@
    command: >-
      python train_probe.py in_data=${{inputs.data}} lr=${{inputs.lr}} $[[epochs=${{inputs.epochs}}]]
      model_m=${{outputs.model}}
    """


@pytest.fixture(scope="module")
def yard(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> JobYard:
    root = tmp_path_factory.mktemp("project")
    write(root / "src" / "probe.py", PROBE)
    write(root / "src" / "gate.py", GATE)
    write(root / "src" / "log_metric.py", LOG_METRIC)
    write(root / "data" / "rows.csv", "a,b\n1,2\n")
    write(root / "data" / "rows-v2.csv", "a,b\n3,4\n")
    write(root / "data" / "folder" / "a.txt", "alpha")
    write(root / "data" / "folder" / "sub" / "b.txt", "beta")
    # the component's code sits next to it, not next to the pipelines: relative resolution matters
    write(root / "components" / "train" / "src" / "train_probe.py", PROBE)
    write(root / "components" / "train" / "train.yml", TRAIN_COMPONENT)
    return JobYard(server, root)


@pytest.fixture(scope="module")
def mlflow_client(server: ServerProcess) -> Iterator[MlflowClient]:
    from mlflow import MlflowClient

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        yield MlflowClient(tracking_uri=server.url)


def _probe(yard: JobYard, name: str) -> dict[str, Any]:
    found = probes(yard.log(name))
    assert len(found) == 1, yard.log(name)
    return found[0]


# --- a command job: literals, data, outputs, what the process sees -----------------------------------


def test_command_job_runtime_contract(yard: JobYard, mlflow_client: MlflowClient, tmp_path: Path) -> None:
    path = write(yard.root / "contract.yml", """\
        command: >-
          python probe.py flag=${{inputs.flag}} lr=${{inputs.lr}} sci=${{inputs.sci}} n=${{inputs.n}}
          msg=${{inputs.msg}} "quoted=${{inputs.msg}}" wrapped=${{inputs.wrapped}}
          in_rows=${{inputs.rows}} in_folder=${{inputs.folder}} dir_o=${{outputs.o}} file_f=${{outputs.f}}
          $[[absent=${{inputs.absent}}]] && python log_metric.py
        code: src
        environment: @ENV@
        environment_variables: {MY_VAR: my value}
        inputs:
          flag: true
          lr: 0.001
          sci: 1e-3
          n: 3
          msg: hello world
          wrapped: {value: 7}
          rows: {type: uri_file, path: data/rows.csv}
          folder: {type: uri_folder, path: data/folder}
        outputs:
          o:
          f: {type: uri_file}
        """)
    job = yard.completed(path)
    name = job["name"]
    seen = _probe(yard, name)
    argv = seen["argv"]
    rows, folder, out_o, out_f = (a.split("=", 1)[1] for a in argv[8:12])
    assert argv == ["flag=True", "lr=0.001", "sci=1e-3", "n=3", "msg=hello", "world", "quoted=hello world",
                    "wrapped=7", f"in_rows={rows}", f"in_folder={folder}", f"dir_o={out_o}", f"file_f={out_f}"]
    assert seen["inputs"]["rows"]["file"] == "a,b\n1,2\n"
    assert seen["inputs"]["folder"]["dir"] == {"a.txt": "alpha", "sub/b.txt": "beta"}

    env = seen["env"]
    assert env["MY_VAR"] == "my value"
    assert env["AZURE_ML_INPUT_rows"] == rows and env["AZURE_ML_INPUT_folder"] == folder
    assert env["AZURE_ML_INPUT_flag"] == "True"
    assert env["AZURE_ML_OUTPUT_o"] == out_o and env["AZURE_ML_OUTPUT_f"] == out_f
    assert env["MLFLOW_TRACKING_URI"] == yard.server.url
    assert env["MLFLOW_RUN_ID"] == name == job["run_id"]
    assert env["MLFLOW_EXPERIMENT_ID"] == job["experiment_id"]
    assert env["MLFLOW_TRACKING_TOKEN"]
    # the working folder is a snapshot of code:, not the folder itself
    assert Path(seen["cwd"]) != yard.root / "src" and {"probe.py", "gate.py"} <= set(seen["cwd_files"])

    run = mlflow_client.get_run(name)
    assert run.data.metrics["answer"] == 42 and run.info.experiment_id == job["experiment_id"]

    o, f = job["outputs"]["o"], job["outputs"]["f"]
    assert o["uri"] == f"azureml://datastores/workspaceblobstore/paths/azureml/{name}/o"
    assert (yard.stored(o["uri"]) / "made-by.txt").read_text() == "o" and o["files"] == 1
    assert f["type"] == "uri_file" and yard.stored(f["uri"]).read_text() == "file f"

    yard.cli("job", "download", "-n", name, "--all", "-p", str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "named-outputs" / "o" / "made-by.txt").read_text() == "o"
    assert [p.read_text() for p in (tmp_path / "dl" / "named-outputs" / "f").iterdir()] == ["file f"]
    assert "PROBE" in (tmp_path / "dl" / "artifacts" / "user_logs" / "std_log.txt").read_text()
    assert (tmp_path / "dl" / "artifacts" / "outputs" / "note.txt").read_text() == "written to ./outputs"


def test_data_inputs_by_asset_and_mode(yard: JobYard) -> None:
    for csv in ("rows.csv", "rows-v2.csv"):
        yard.cli("data", "create", "--name", "rows-asset", "--type", "uri_file", "--path", f"data/{csv}")
    path = write(yard.root / "data-modes.yml", """\
        command: >-
          python probe.py in_latest=${{inputs.latest}} in_first=${{inputs.first}}
          in_mounted=${{inputs.mounted}} in_copied=${{inputs.copied}} direct=${{inputs.direct}}
        code: src
        environment: @ENV@
        inputs:
          latest: {type: uri_file, path: azureml:rows-asset@latest}
          first: {type: uri_file, path: "azureml:rows-asset:1"}
          mounted: {type: uri_folder, path: data/folder, mode: ro_mount}
          copied: {type: uri_folder, path: data/folder, mode: download}
          direct: {type: uri_folder, path: data/folder, mode: direct}
        """)
    job = yard.completed(path)
    seen = _probe(yard, job["name"])["inputs"]
    assert seen["latest"]["file"] == "a,b\n3,4\n"
    assert seen["first"]["file"] == "a,b\n1,2\n"
    folder = {"a.txt": "alpha", "sub/b.txt": "beta"}
    assert seen["mounted"]["dir"] == folder == seen["copied"]["dir"]
    store = yard.datastore_root()
    assert Path(seen["mounted"]["path"]).is_relative_to(store)  # the stored folder itself
    copied = Path(seen["copied"]["path"])
    assert not copied.is_relative_to(store)
    assert copied.is_relative_to(yard.server.workspace / ".mlyard" / "jobs" / job["name"])
    direct = next(a for a in _probe(yard, job["name"])["argv"] if a.startswith("direct="))
    assert direct.startswith("direct=azureml://datastores/workspaceblobstore/paths/")
    assert yard.stored(direct.split("=", 1)[1]).is_dir()


# --- a pipeline: every binding form ------------------------------------------------------------------


def test_pipeline_bindings_components_and_named_outputs(yard: JobYard, mlflow_client: MlflowClient) -> None:
    path = write(yard.root / "bindings.yml", """\
        type: pipeline
        inputs:
          lr: 0.001
          flag: true
          note: {value: a b}
          raw: {type: uri_folder, path: data/folder}
        outputs:
          report:
          model: {type: mlflow_model, name: bindings-pipe-model}
        settings: {default_datastore: azureml:workspaceblobstore}
        jobs:
          prep:
            code: src
            environment: @ENV@
            command: >-
              python probe.py in_raw=${{inputs.raw}} lr=${{inputs.lr}} flag=${{inputs.flag}}
              note=${{inputs.note}} dir_clean=${{outputs.clean}} dir_report=${{outputs.report}}
              dir_table=${{outputs.table}}
            inputs:
              raw: ${{parent.inputs.raw}}
              lr: ${{parent.inputs.lr}}
              flag: ${{parent.inputs.flag}}
              note: ${{parent.inputs.note}}
            outputs:
              clean:
              report: ${{parent.outputs.report}}
              table: {type: uri_folder, name: bindings-table}
          train:
            component: ./components/train/train.yml
            inputs:
              data: ${{parent.jobs.prep.outputs.clean}}
              lr: ${{parent.jobs.prep.inputs.lr}}
              epochs: 5
            outputs:
              model: {path: "${{parent.outputs.model}}", mode: upload}
          train_defaults:
            component: file:components/train/train.yml
            inputs:
              data: ${{parent.jobs.prep.outputs.clean}}
            outputs:
              model: {name: bindings-step-model}  # the type is the component's
        """)
    job = yard.completed(path)
    name = job["name"]
    steps = steps_of(job)
    assert {k: s["depends_on"] for k, s in steps.items()} == {"prep": [], "train": ["prep"],
                                                               "train_defaults": ["prep"]}

    prep = _probe(yard, f"{name}_prep")
    assert prep["inputs"]["raw"]["dir"] == {"a.txt": "alpha", "sub/b.txt": "beta"}
    assert {"lr=0.001", "flag=True", "note=a", "b"} <= set(prep["argv"])
    assert prep["env"]["MLFLOW_RUN_ID"] == f"{name}_prep"
    outputs = steps["prep"]["outputs"]
    base = "azureml://datastores/workspaceblobstore/paths"
    assert outputs["clean"]["uri"] == f"{base}/azureml/{name}_prep/clean"
    assert outputs["report"]["uri"] == f"{base}/azureml/{name}/report" == job["outputs"]["report"]["uri"]
    assert (yard.stored(job["outputs"]["report"]["uri"]) / "made-by.txt").read_text() == "report"

    train = _probe(yard, f"{name}_train")
    assert train["inputs"]["data"]["dir"] == {"made-by.txt": "clean"}
    assert "lr=0.001" in train["argv"] and "epochs=5" in train["argv"]  # parent.jobs.prep.inputs.lr
    defaults = _probe(yard, f"{name}_train_defaults")
    assert "lr=0.01" in defaults["argv"]  # the component's default
    assert not any(a.startswith("epochs") for a in defaults["argv"])  # optional and absent: segment dropped
    assert job["outputs"]["model"]["uri"] == steps["train"]["outputs"]["model"]["uri"]
    assert (yard.stored(job["outputs"]["model"]["uri"]) / "MLmodel").exists()

    assert outputs["table"]["asset"] == "bindings-table:1"
    table = json.loads(yard.cli("data", "show", "-n", "bindings-table@latest", "-o", "json").stdout)
    assert table["type"] == "uri_folder" and table["path"] == outputs["table"]["uri"]
    for step in steps.values():
        assert mlflow_client.get_run(step["name"]).data.tags["mlflow.parentRunId"] == name

    # an output's type comes from the pipeline output it is bound to, or from the component
    assert job["outputs"]["model"]["type"] == "mlflow_model"
    pipe_model = json.loads(yard.cli("model", "show", "-n", "bindings-pipe-model@latest", "-o", "json").stdout)
    assert pipe_model["type"] == "mlflow_model"
    assert job["outputs"]["model"]["asset"] == f"bindings-pipe-model:{pipe_model['version']}"
    step_model = json.loads(yard.cli("model", "show", "-n", "bindings-step-model@latest", "-o", "json").stdout)
    assert step_model["type"] == "mlflow_model"
    assert steps["train_defaults"]["outputs"]["model"]["asset"] == f"bindings-step-model:{step_model['version']}"


def test_output_path_expressions(yard: JobYard) -> None:
    custom = "azureml://datastores/${{default_datastore}}/paths/custom/${{name}}/${{output_name}}"
    command = write(yard.root / "out-path.yml", """\
        code: src
        environment: @ENV@
        command: python probe.py dir_o=${{outputs.o}} in=a-command-job
        outputs:
          o: {path: "@custom@"}
        """, custom=custom)
    pipeline = write(yard.root / "out-path-pipeline.yml", """\
        type: pipeline
        settings: {default_datastore: azureml:workspaceblobstore}
        jobs:
          step:
            code: src
            environment: @ENV@
            command: python probe.py dir_o=${{outputs.o}}
            outputs:
              o: {path: "@custom@"}
        """, custom=custom)
    base = "azureml://datastores/workspaceblobstore/paths/custom"
    job = yard.completed(command)
    assert job["outputs"]["o"]["uri"] == f"{base}/{job['name']}/o"
    step = steps_of(yard.completed(pipeline))["step"]
    assert step["outputs"]["o"]["uri"] == f"{base}/{step['name']}/o"  # the step job's name, not the pipeline's
    assert (yard.stored(step["outputs"]["o"]["uri"]) / "made-by.txt").read_text() == "o"


def test_registered_component_step(yard: JobYard) -> None:
    created = json.loads(yard.cli("component", "create", "-f", "components/train/train.yml",
                                  "--name", "registered_train", "-o", "json").stdout)
    path = write(yard.root / "registered.yml", """\
        type: pipeline
        jobs:
          make:
            environment: @ENV@
            command: echo made > ${{outputs.o}}/made.txt
            outputs: {o: }
          train:
            component: azureml:registered_train:@version@
            inputs: {data: "${{parent.jobs.make.outputs.o}}"}
        """, version=created["version"])
    job = yard.completed(path)
    seen = _probe(yard, f"{job['name']}_train")
    assert seen["inputs"]["data"]["dir"] == {"made.txt": "made\n"} and "lr=0.01" in seen["argv"]
    assert "train_probe.py" in seen["cwd_files"]  # the code uploaded with the component


# --- reuse -------------------------------------------------------------------------------------------


def test_a_command_job_runs_every_time_it_is_submitted(yard: JobYard) -> None:
    """Reuse is for pipeline steps (reference §3.5): a command job submitted again runs again."""
    path = write(yard.root / "twice.yml", """\
        command: echo ran
        environment: @ENV@
        """)
    first, second = yard.completed(path), yard.completed(path)
    assert first["reused_from"] is None and second["reused_from"] is None
    assert "running: echo ran" in yard.log(second["name"])


def test_step_reuse(yard: JobYard) -> None:
    path = write(yard.root / "reuse.yml", """\
        type: pipeline
        inputs: {x: 1}
        jobs:
          a:
            environment: @ENV@
            command: echo ${{inputs.x}} > ${{outputs.out}}/x.txt
            inputs: {x: "${{parent.inputs.x}}"}
            outputs: {out: }
          b:
            environment: @ENV@
            command: cat ${{inputs.data}}/x.txt > ${{outputs.out}}/y.txt
            inputs: {data: "${{parent.jobs.a.outputs.out}}"}
            outputs: {out: }
          c:
            environment: @ENV@
            command: echo c > ${{outputs.out}}/c.txt
            outputs: {out: }
        """)
    first = steps_of(yard.completed(path))
    assert not any(s["reused_from"] for s in first.values())

    again = steps_of(yard.completed(path))
    assert {k: s["reused_from"] for k, s in again.items()} == {k: s["name"] for k, s in first.items()}
    assert again["b"]["outputs"]["out"]["uri"] == first["b"]["outputs"]["out"]["uri"]
    assert "reused" in yard.step_log(again["a"]["name"])

    changed = steps_of(yard.completed(path, ["inputs.x=2"]))
    assert changed["a"]["reused_from"] is None and changed["b"]["reused_from"] is None
    assert changed["c"]["reused_from"] == first["c"]["name"]
    assert yard.stored(changed["b"]["outputs"]["out"]["uri"]).joinpath("y.txt").read_text() == "2\n"

    forced = steps_of(yard.completed(path, ["settings.force_rerun=true"]))
    assert not any(s["reused_from"] for s in forced.values())


def test_non_deterministic_component_is_never_reused(yard: JobYard) -> None:
    write(yard.root / "components" / "stamp.yml", """\
        name: stamp_c
        is_deterministic: false
        outputs: {out: {type: uri_folder}}
        environment: @ENV@
        command: echo the same every time > ${{outputs.out}}/out.txt
        """)
    path = write(yard.root / "nondeterministic.yml", """\
        type: pipeline
        jobs:
          stamp: {component: ./components/stamp.yml}
        """)
    for _ in range(2):
        job = yard.completed(path)
        assert steps_of(job)["stamp"]["reused_from"] is None
