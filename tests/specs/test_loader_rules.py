"""Loader rules the corpus cannot show on its own: nested files, kinds without --kind, limits on
data that does not come from a file, names, and the import graph of the spec package."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlyard.core.errors import InvalidSpecError
from mlyard.specs import load_spec, load_spec_dict
from mlyard.specs.limits import MAX_DEPTH, MAX_TAG_VALUE_CHARS
from tests.support.server import run_cli

SPECS = Path(__file__).resolve().parents[2] / "src" / "mlyard" / "specs"
ENV = "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"
DATA_PATH = "azureml://datastores/workspaceblobstore/paths/x/"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _error(call: object, *args: object, **kwargs: object) -> InvalidSpecError:
    with pytest.raises(InvalidSpecError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


# -- nested files -------------------------------------------------------------------------------------


def test_an_error_in_a_component_file_names_that_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path / "steps" / "train.yml", f"""\
        type: command
        command: python train.py --lr ${{{{inputs.lr}}}}
        environment: {ENV}
        """)
    pipeline = _write(tmp_path / "pipeline.yml", """\
        type: pipeline
        jobs:
          train:
            component: ./steps/train.yml
        """)
    issue = _error(load_spec, pipeline, "job").issues[0]
    assert (Path(str(issue.file)).name, issue.line, issue.field) == ("train.yml", 2, "command")
    assert "${{inputs.lr}} names an input that is not declared" in issue.message
    assert "<spec>" not in str(_error(load_spec, pipeline, "job"))


def test_an_error_in_a_schedules_job_file_names_that_file(tmp_path: Path) -> None:
    _write(tmp_path / "job.yml", f"""\
        type: command
        command: echo hi
        environment: {ENV}
        compute: 7
        resources: {{instance_count: 0}}
        """)
    schedule = _write(tmp_path / "schedule.yml", """\
        name: nightly
        trigger: {type: cron, expression: "0 3 * * *"}
        create_job: ./job.yml
        """)
    issue = _error(load_spec, schedule, "schedule").issues[0]
    assert (Path(str(issue.file)).name, issue.line, issue.field) == ("job.yml", 5, "resources.instance_count")


def test_an_error_in_a_schedules_override_names_the_schedule(tmp_path: Path) -> None:
    _write(tmp_path / "job.yml", f"""\
        type: command
        command: echo ${{{{inputs.lr}}}}
        environment: {ENV}
        inputs:
          lr: 0.1
        """)
    schedule = _write(tmp_path / "schedule.yml", """\
        name: nightly
        trigger: {type: cron, expression: "0 3 * * *"}
        create_job:
          job: ./job.yml
          inputs:
            lr: 0.2
          resources: {instance_count: 0}
        """)
    issue = _error(load_spec, schedule, "schedule").issues[0]
    assert (Path(str(issue.file)).name, issue.line, issue.field) == ("schedule.yml", 7, "resources.instance_count")
    assert load_spec(schedule, "schedule", overrides=["create_job.resources.instance_count=1"]).to_dict()[
        "create_job"]["inputs"] == {"lr": 0.2}


def test_a_nameless_component_is_refused_only_when_registered(tmp_path: Path) -> None:
    component = _write(tmp_path / "c.yml", f"""\
        type: command
        command: echo hi
        environment: {ENV}
        """)
    issue = _error(load_spec, component, "component").issues[0]
    assert (issue.field, issue.line) == ("name", 1) and "a registered component needs a name" in issue.message
    pipeline = _write(tmp_path / "p.yml", "type: pipeline\njobs:\n  a:\n    component: ./c.yml\n")
    assert load_spec(pipeline, "job").spec.jobs["a"].component.name is None


# -- kinds ----------------------------------------------------------------------------------------------


def test_validate_reads_the_kind_from_the_file(tmp_path: Path) -> None:
    pipeline = _write(tmp_path / "pipeline.yml", f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          hello: {{command: echo hello, environment: "{ENV}"}}
        """)
    ok = run_cli("validate", "-f", str(pipeline))
    assert "valid PipelineJob (job)" in ok.stdout
    wrong = run_cli("validate", "-f", str(pipeline), "--kind", "monitor", check=False)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert (f"{pipeline}:1: $schema: this file is a pipeline job (pipelineJob.schema.json), not a monitor; "
            f"use 'mlyard job create -f {pipeline}'") in wrong.stderr
    unknown = _write(tmp_path / "plain.yml", f"command: echo\nenvironment: {ENV}\n")
    unsure = run_cli("validate", "-f", str(unknown), check=False)
    assert unsure.returncode == 1 and "cannot tell which kind of file this is" in unsure.stderr


def test_validate_takes_a_deployment_without_endpoint_name_as_azures_examples_write_it(tmp_path: Path) -> None:
    deployment = _write(tmp_path / "blue.yml", """\
        $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
        name: blue
        model: azureml:attrition-model:1
        instance_type: Standard_DS3_v2
        instance_count: 1
        """)
    bare = run_cli("validate", "-f", str(deployment))
    assert "valid OnlineDeployment (online-deployment)" in bare.stdout
    assert "names no endpoint_name: give it with --endpoint-name" in bare.stderr
    given = run_cli("validate", "-f", str(deployment), "--endpoint-name", "attrition")
    assert "valid OnlineDeployment" in given.stdout and "endpoint_name" not in given.stderr
    broken = run_cli("validate", "-f", str(deployment), "--set", "instance_count=many", check=False)
    assert broken.returncode == 1 and f"{deployment}:5: instance_count: expected an integer" in broken.stderr
    assert "required field 'endpoint_name'" not in broken.stderr


def test_job_create_on_a_schedule_names_it_and_its_job(tmp_path: Path) -> None:
    _write(tmp_path / "schedule.yml", """\
        $schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
        name: nightly
        trigger: {type: cron, expression: "0 3 * * *"}
        create_job: ./pipeline.yml
        """)
    proc = run_cli("job", "create", "-f", "schedule.yml", cwd=tmp_path, check=False,
                   env={"MLYARD_URL": "http://127.0.0.1:9", "MLYARD_TOKEN": "x"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "schedule.yml:1: $schema: this file is a schedule (schedule.schema.json), not a job" in proc.stderr
    assert "'mlyard job create -f ./pipeline.yml'" in proc.stderr


def test_keys_of_another_kind_are_errors_and_misspellings_warnings(tmp_path: Path) -> None:
    component = _write(tmp_path / "c.yml", f"""\
        name: train
        command: echo hi
        environment: {ENV}
        enviroment_variables: {{A: "1"}}
        """)
    loaded = load_spec(component, "component")
    assert loaded.warnings == [f"{component}:4: enviroment_variables: unknown key 'enviroment_variables' ignored "
                               "(not part of the component schema; check its spelling)"]
    with_jobs = _write(tmp_path / "j.yml", f"name: train\ncommand: echo\nenvironment: {ENV}\njobs: {{}}\n")
    issue = _error(load_spec, with_jobs, "component").issues[0]
    assert (issue.line, issue.field) == (4, "jobs")
    assert "'jobs' belongs to a pipeline job or pipeline component (type: pipeline)" in issue.message


def test_a_string_input_keeps_azures_text_of_an_unquoted_default(tmp_path: Path) -> None:
    component = _write(tmp_path / "c.yml", f"""\
        name: flags
        command: echo ${{{{inputs.flag}}}} ${{{{inputs.rate}}}}
        environment: {ENV}
        inputs:
          flag: {{type: string, default: True, enum: ['True', 'False']}}
          rate: {{type: string, default: 0.5}}
        """)
    inputs = load_spec(component, "component").to_dict()["inputs"]
    assert (inputs["flag"]["default"], inputs["flag"]["enum"], inputs["rate"]["default"]) == ("True", ["True", "False"],
                                                                                               "0.5")


# -- limits -----------------------------------------------------------------------------------------------


def test_the_alias_bomb_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yml"
    rows = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb.write_text("name: bomb\n" + "\n".join(rows) + "\n")
    assert bomb.stat().st_size < 600
    # a fresh process: its peak resident memory (VmHWM, which exec resets) and the peak of what the load
    # itself allocated are both measured
    code = textwrap.dedent(f"""\
        import json, re, tracemalloc
        from pathlib import Path
        from mlyard.core.errors import InvalidSpecError
        from mlyard.specs import load_spec
        tracemalloc.start()
        try:
            load_spec({str(bomb)!r}, "data")
            message = None
        except InvalidSpecError as exc:
            message = str(exc)
        load_peak = tracemalloc.get_traced_memory()[1]
        status = Path("/proc/self/status")
        hwm = re.search(r"VmHWM:\\s+(\\d+) kB", status.read_text()) if status.exists() else None
        print(json.dumps({{"message": message, "load_peak": load_peak, "hwm_kib": int(hwm[1]) if hwm else 0}}))
        """)
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                    timeout=60).stdout)
    assert out["message"] is not None and out["message"].startswith(f"{bomb}:")
    assert "expands to more than 100,000 values" in out["message"]
    assert out["load_peak"] < 10 * 2**20
    if Path("/proc/self/status").exists():
        assert 0 < out["hwm_kib"] < 100 * 1024


def test_a_deep_request_body_is_refused_without_recursion() -> None:
    body: dict[str, object] = {"leaf": 1}
    for _ in range(100_000):
        body = {"x": body}
    issue = _error(load_spec_dict, {"name": "deep", "path": DATA_PATH, "tags": body}, "data").issues[0]
    assert issue.file == "<spec>" and issue.field.startswith("tags.x.x")
    assert f"nested more than {MAX_DEPTH} levels" in issue.message


def test_set_values_obey_the_limits_too(tmp_path: Path) -> None:
    data = _write(tmp_path / "d.yml", f"name: d\npath: {DATA_PATH}\n")
    deep = "[" * 5000 + "]" * 5000
    issue = _error(load_spec, data, "data", overrides=[f"description={'y' * 70_000}"]).issues[0]
    assert issue.field == "description" and "65,536" in issue.message
    # a --set value too deep to be YAML stays the text it is, and is then too long or not a string
    with pytest.raises(InvalidSpecError):
        load_spec(data, "data", overrides=[f"tags.x={deep}", f"description={deep * 10}"])


def test_long_tags_and_free_text_are_refused_before_anything_is_stored() -> None:
    base = {"name": "d", "path": DATA_PATH}
    issue = _error(load_spec_dict, {**base, "tags": {"k": "v" * (MAX_TAG_VALUE_CHARS + 1)}}, "data").issues[0]
    assert issue.field == "tags.k" and "8,000" in issue.message
    issue = _error(load_spec_dict, {**base, "description": "d" * 50_000_000}, "data").issues[0]
    assert issue.field == "description" and "65,536" in issue.message


# -- names and paths -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("name", "job\n"), ("name", "a\x00b"), ("experiment_name", "exp\t"), ("experiment_name", " exp"),
    ("display_name", "two\nlines"),
])
def test_job_names_refuse_control_characters(field: str, value: str) -> None:
    spec = {"type": "command", "command": "echo", "environment": ENV, field: value}
    issue = _error(load_spec_dict, spec, "job").issues[0]
    assert issue.field == field and ("control character" in issue.message or "space" in issue.message)


def test_versions_input_names_and_output_paths_refuse_what_names_refuse() -> None:
    data = {"name": "d", "version": "1\n", "path": DATA_PATH}
    assert _error(load_spec_dict, data, "data").issues[0].field == "version"
    job = {"type": "command", "command": "echo", "environment": ENV, "inputs": {"lr\n": 1}}
    assert _error(load_spec_dict, job, "job").issues[0].field == "inputs.lr\n"
    env = {"type": "command", "command": "echo", "environment": ENV + "\n"}
    issue = _error(load_spec_dict, env, "job").issues[0]
    assert issue.field == "environment" and "control character" in issue.message
    out = {"type": "command", "command": "echo", "environment": ENV,
           "outputs": {"o": {"path": "azureml://datastores/workspaceblobstore/paths/a/../../b"}}}
    issue = _error(load_spec_dict, out, "job").issues[0]
    assert issue.field == "outputs.o.path" and "'..' segments are not allowed" in issue.message


def test_no_kind_module_imports_the_loader() -> None:
    offenders = []
    for path in sorted(SPECS.glob("*.py")):
        if path.name in ("loader.py", "__init__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in ("mlyard.specs.loader", "mlyard.specs"):
                offenders.append(path.name)
    assert offenders == []
