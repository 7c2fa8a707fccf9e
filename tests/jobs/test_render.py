"""Rendering a command (reference §1.3) and planning a job into steps (§3.3), without a server."""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlyard.core.errors import InvalidRequestError, InvalidSpecError
from mlyard.jobs.plan import (
    StepPlan,
    check_job_name,
    local_paths,
    plan_pipeline,
    refuse_local_paths,
    step_from_command_job,
)
from mlyard.jobs.render import literal_text, path_text, render_command
from mlyard.specs import load_spec, load_spec_dict

# --- literals -------------------------------------------------------------------------------------


def test_literals_render_as_str_of_the_yaml_1_1_value() -> None:
    values = yaml.safe_load("flag: true\nlr: 0.001\nsci: 1e-3\nepochs: 3\nmsg: hello world\nquoted: 'false'\n")
    rendered = {k: literal_text(v) for k, v in values.items()}
    assert rendered == {"flag": "True", "lr": "0.001", "sci": "1e-3", "epochs": "3", "msg": "hello world",
                        "quoted": "false"}


def test_value_wrapper_renders_its_value() -> None:
    assert literal_text({"value": 3}) == "3"
    assert literal_text({"value": False}) == "False"
    assert literal_text({"value": "a b"}) == "a b"


def test_strings_with_spaces_are_put_in_as_written() -> None:
    command = render_command("train --msg ${{inputs.msg}} --quoted '${{inputs.msg}}'", {"msg": "hello world"}, {})
    assert command == "train --msg hello world --quoted 'hello world'"
    assert shlex.split(command) == ["train", "--msg", "hello", "world", "--quoted", "hello world"]


# --- paths ----------------------------------------------------------------------------------------


def test_safe_paths_stay_as_they_are_and_others_are_quoted() -> None:
    assert path_text("/ws/.mlyard/jobs/j_1/outputs/model") == "/ws/.mlyard/jobs/j_1/outputs/model"
    assert path_text("azureml://datastores/workspaceblobstore/paths/a/b.csv") == \
        "azureml://datastores/workspaceblobstore/paths/a/b.csv"
    for odd in ("/tmp/with space/x", "/tmp/$HOME/x", "/tmp/a;rm -rf b", "/tmp/it's"):
        quoted = path_text(odd)
        assert quoted != odd and shlex.split(quoted) == [odd]


# --- expressions and optional segments ------------------------------------------------------------


def test_inputs_and_outputs_are_substituted() -> None:
    command = render_command("python t.py --data ${{inputs.data}} --lr ${{inputs.lr}} --out ${{outputs.model}}",
                             {"data": "/in/data", "lr": "0.01"}, {"model": "/out/model"})
    assert command == "python t.py --data /in/data --lr 0.01 --out /out/model"


def test_optional_segment_is_dropped_when_its_input_is_unset() -> None:
    template = "python t.py $[[--epochs ${{inputs.epochs}}]] --lr ${{inputs.lr}}"
    assert render_command(template, {"epochs": None, "lr": "1"}, {}) == "python t.py  --lr 1"
    assert render_command(template, {"lr": "1"}, {}) == "python t.py  --lr 1"  # undeclared counts as unset


def test_optional_segment_loses_its_brackets_when_its_input_is_set() -> None:
    template = "python t.py $[[--epochs ${{inputs.epochs}}]] --lr ${{inputs.lr}}"
    assert render_command(template, {"epochs": "5", "lr": "1"}, {}) == "python t.py --epochs 5 --lr 1"


def test_segment_with_two_inputs_is_kept_when_one_is_set() -> None:
    template = "run $[[--a ${{inputs.a}} --b ${{inputs.b}}]] end"
    assert render_command(template, {"a": None, "b": None}, {}) == "run  end"
    assert render_command(template, {"a": "1", "b": None}, {}) == "run --a 1 --b  end"


def test_several_segments_are_judged_one_by_one() -> None:
    template = "run $[[-x ${{inputs.x}}]] $[[-y ${{inputs.y}}]]"
    assert render_command(template, {"x": None, "y": "2"}, {}) == "run  -y 2"


def test_an_unset_input_outside_a_segment_is_an_error() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        render_command("run ${{inputs.missing}}", {"missing": None}, {})
    assert "${{inputs.missing}} has no value" in str(caught.value)
    assert "$[[...]]" in str(caught.value)


def test_an_unknown_output_is_an_error() -> None:
    with pytest.raises(InvalidSpecError, match=r"\$\{\{outputs.nope\}\} has no value"):
        render_command("run ${{outputs.nope}}", {}, {"model": "/out"})


def test_search_space_values_render_in_a_trial() -> None:
    assert render_command("train --lr ${{search_space.lr}}", {}, {}, {"lr": "0.1"}) == "train --lr 0.1"


def test_parent_bindings_cannot_stand_in_a_command() -> None:
    with pytest.raises(InvalidSpecError, match="cannot be rendered in a command"):
        render_command("run ${{parent.inputs.x}}", {}, {})


def test_shell_syntax_around_expressions_is_kept() -> None:
    command = render_command("echo ${{inputs.a}} > ${{outputs.o}}/x && cat $HOME | wc -l",
                             {"a": "hi"}, {"o": "/out"})
    assert command == "echo hi > /out/x && cat $HOME | wc -l"


# --- planning a command job -----------------------------------------------------------------------


def test_a_command_job_is_one_step_with_its_run_settings() -> None:
    job = load_spec_dict({
        "command": "python t.py --lr ${{inputs.lr}}", "environment": "azureml:env@latest",
        "inputs": {"lr": 0.1}, "outputs": {"model": None}, "environment_variables": {"A": "1"},
        "limits": {"timeout": 5}, "compute": "azureml:two", "display_name": "shown", "tags": {"k": "v"},
    }, "job").to_dict()
    step = step_from_command_job(job)
    assert step["command"] == "python t.py --lr ${{inputs.lr}}"
    assert step["environment"] == "azureml:env@latest"
    assert step["environment_variables"] == {"A": "1"} and step["limits"] == {"timeout": 5}
    assert step["inputs"] == {"lr": 0.1} and set(step["outputs"]) == {"model"}
    assert step["compute"] == "azureml:two" and step["display_name"] == "shown" and step["tags"] == {"k": "v"}
    assert step["declared_inputs"] is None and step["is_deterministic"] is True
    assert "code" not in step


# --- planning a pipeline --------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def pipeline(tmp_path: Path) -> dict[str, Any]:
    """A pipeline with an inline step and a component-file step in a subfolder, as the loader returns it."""
    _write(tmp_path / "components" / "src" / "train.py", "print('train')\n")
    _write(tmp_path / "components" / "train.yml", """\
        name: train_c
        type: command
        code: ./src
        is_deterministic: false
        inputs:
          data: {type: uri_folder}
          lr: {type: number, default: 0.01}
          epochs: {type: integer, optional: true}
        outputs:
          model: {type: mlflow_model}
        environment_variables: {FROM_COMPONENT: "c", SHARED: "component"}
        command: python train.py --data ${{inputs.data}} --lr ${{inputs.lr}} $[[--epochs ${{inputs.epochs}}]]
          --out ${{outputs.model}}
        environment: azureml:train-env@latest
        """)
    path = _write(tmp_path / "pipeline.yml", """\
        type: pipeline
        inputs:
          flag: true
        outputs:
          final:
        settings: {default_compute: azureml:two}
        jobs:
          prep:
            command: echo ${{inputs.a}} > ${{outputs.o}}/x
            environment: azureml:e@latest
            inputs: {a: "${{parent.inputs.flag}}", lit: {value: "x y"}}
            outputs: {o: }
          train:
            component: ./components/train.yml
            compute: azureml:other
            environment_variables: {SHARED: "step"}
            inputs: {data: "${{parent.jobs.prep.outputs.o}}"}
            outputs: {model: "${{parent.outputs.final}}"}
          score:
            command: echo ${{inputs.m}} ${{inputs.a}}
            environment: azureml:e@latest
            inputs:
              m: {type: mlflow_model, path: "${{parent.jobs.train.outputs.model}}"}
              a: "${{parent.jobs.prep.inputs.a}}"
        """)
    return load_spec(path, "job").to_dict()


def _no_registry(reference: str) -> dict[str, Any]:
    raise AssertionError(f"no azureml: component expected, got {reference}")


def test_steps_keep_the_yaml_order_and_find_their_upstream_steps(pipeline: dict[str, Any]) -> None:
    plans = plan_pipeline(pipeline, _no_registry)
    assert [p.key for p in plans] == ["prep", "train", "score"]
    assert {p.key: p.depends_on for p in plans} == {"prep": [], "train": ["prep"], "score": ["prep", "train"]}


def test_default_compute_applies_unless_a_step_sets_its_own(pipeline: dict[str, Any]) -> None:
    plans = {p.key: p.spec for p in plan_pipeline(pipeline, _no_registry)}
    assert plans["prep"]["compute"] == "azureml:two"
    assert plans["train"]["compute"] == "azureml:other"


def test_a_component_step_takes_the_component_and_the_step_run_settings(tmp_path: Path,
                                                                        pipeline: dict[str, Any]) -> None:
    train = {p.key: p.spec for p in plan_pipeline(pipeline, _no_registry)}["train"]
    assert train["code"] == str(tmp_path / "components" / "src")  # relative to the component file
    assert train["environment"] == "azureml:train-env@latest"
    assert train["environment_variables"] == {"FROM_COMPONENT": "c", "SHARED": "step"}
    assert train["is_deterministic"] is False and train["component"] == "train_c"
    assert set(train["declared_inputs"]) == {"data", "lr", "epochs"}
    assert train["declared_inputs"]["lr"]["default"] == 0.01
    assert train["declared_outputs"] == {"model": {"type": "mlflow_model"}}
    assert train["inputs"] == {"data": "${{parent.jobs.prep.outputs.o}}"}
    assert train["outputs"] == {"model": "${{parent.outputs.final}}"}
    assert train["display_name"] == "train"


def test_an_inline_step_is_deterministic_and_keeps_its_inputs_as_written(pipeline: dict[str, Any]) -> None:
    prep = {p.key: p.spec for p in plan_pipeline(pipeline, _no_registry)}["prep"]
    assert prep["is_deterministic"] is True and prep["declared_inputs"] is None
    assert prep["inputs"] == {"a": "${{parent.inputs.flag}}", "lit": {"value": "x y"}}


def test_an_azureml_component_is_resolved_through_the_registry() -> None:
    job = load_spec_dict({"type": "pipeline", "jobs": {"s": {
        "component": "azureml:hello:2", "inputs": {"x": {"value": "${{parent.jobs.t.outputs.o}}"}}},
        "t": {"command": "echo ${{outputs.o}}", "environment": "azureml:e:1", "outputs": {"o": None}}}},
        "job").to_dict()
    asked: list[str] = []

    def registry(reference: str) -> dict[str, Any]:
        asked.append(reference)
        return {"name": "hello", "command": "echo ${{inputs.x}}", "environment": "azureml:e:1",
                "inputs": {"x": {"type": "string"}}}

    plans = {p.key: p for p in plan_pipeline(job, registry)}
    assert asked == ["azureml:hello:2"]
    assert plans["s"].spec["command"] == "echo ${{inputs.x}}" and plans["s"].spec["component"] == "hello"
    assert plans["s"].depends_on == ["t"]  # a binding inside {value: ...} is an edge too


def test_a_component_that_is_not_a_command_component_is_refused() -> None:
    job = {"type": "pipeline", "jobs": {"s": {"component": "azureml:pipe:1"}}}
    with pytest.raises(InvalidSpecError, match="only command components run"):
        plan_pipeline(job, lambda ref: {"type": "pipeline", "jobs": {}})


def test_step_kinds_mlyard_does_not_run_are_refused_with_the_field() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        plan_pipeline({"type": "pipeline", "jobs": {"hp": {"type": "spark"}}}, _no_registry)
    assert caught.value.field == "jobs.hp.type" and "spark" in str(caught.value)
    with pytest.raises(InvalidSpecError) as wrapped:
        plan_pipeline({"type": "pipeline", "component": {"type": "pipeline"}}, _no_registry)
    assert wrapped.value.field == "component"


def test_a_component_string_that_is_no_reference_is_refused() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        plan_pipeline({"type": "pipeline", "jobs": {"s": {"component": "./train.yml"}}}, _no_registry)
    assert caught.value.field == "jobs.s.component"


def test_step_plan_defaults_to_no_dependencies() -> None:
    assert StepPlan("k", {}).depends_on == []


# --- what a server refuses ------------------------------------------------------------------------


def test_local_paths_left_in_a_spec_are_found(pipeline: dict[str, Any], tmp_path: Path) -> None:
    pipeline["inputs"]["raw"] = {"type": "uri_folder", "path": str(tmp_path)}
    pipeline["inputs"]["remote"] = {"type": "uri_folder", "path": "azureml://datastores/ds/paths/x"}
    pipeline["inputs"]["asset"] = {"type": "uri_file", "path": "azureml:raw@latest"}
    found = dict(local_paths(pipeline))
    assert found == {"inputs.raw.path": str(tmp_path),
                     "jobs.train.component.code": str(tmp_path / "components" / "src")}
    with pytest.raises(InvalidSpecError) as caught:
        refuse_local_paths(pipeline)
    assert {i.field for i in caught.value.issues} == set(found)
    assert "upload its content to a datastore first" in str(caught.value)


def test_a_spec_with_only_datastore_paths_is_accepted() -> None:
    job = {"command": "ls", "code": "azureml://datastores/ds/paths/LocalUpload/abc/src",
           "inputs": {"d": {"type": "uri_folder", "path": "${{parent.inputs.x}}"}}}
    assert local_paths(job) == []
    refuse_local_paths(job)


@pytest.mark.parametrize("name", ["job1", "My_job-2", "0abc", "a" * 255])
def test_valid_job_names(name: str) -> None:
    assert check_job_name(name) == name


@pytest.mark.parametrize("name", ["", "-lead", "has space", "slash/name", "dot.name", "a" * 256])
def test_invalid_job_names_say_what_is_allowed(name: str) -> None:
    with pytest.raises(InvalidRequestError, match="letters, digits"):
        check_job_name(name)
