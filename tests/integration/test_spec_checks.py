"""Spec rules a real server applies: anonymous components run, names and datastore paths are checked
by the same models on the API as in the CLI."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.jobs import PROBE, JobYard, probes, steps_of, write
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def yard(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> JobYard:
    return JobYard(server, tmp_path_factory.mktemp("project"))


def test_a_pipeline_of_anonymous_and_hyphenated_components_runs(yard: JobYard) -> None:
    root = yard.root
    write(root / "components" / "src" / "probe.py", PROBE)
    write(root / "components" / "nameless.yml", """\
        type: command
        code: ./src
        inputs:
          flag: {type: string, default: True, enum: ['True', 'False']}
        outputs:
          out: {type: uri_folder}
        environment: @ENV@
        command: python probe.py flag=${{inputs.flag}} dir_nameless=${{outputs.out}}
        """)
    write(root / "components" / "hyphen.yml", """\
        name: train-model-v2
        type: command
        code: ./src
        inputs:
          data: {type: uri_folder}
        environment: @ENV@
        command: python probe.py in_data=${{inputs.data}}
        """)
    pipeline = write(root / "pipeline.yml", """\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        jobs:
          first:
            component: ./components/nameless.yml
          second:
            component: file:components/hyphen.yml
            inputs:
              data: ${{parent.jobs.first.outputs.out}}
        """)
    job = yard.completed(pipeline)
    steps = steps_of(job)
    first = probes(yard.log(steps["first"]["name"]))[0]
    assert "flag=True" in first["argv"]
    second = probes(yard.log(steps["second"]["name"]))[0]
    assert second["inputs"]["data"]["dir"] == {"made-by.txt": "nameless"}


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"name": "d\n", "type": "uri_folder", "path": "azureml://datastores/workspaceblobstore/paths/d/"},
     "name", "not a valid name"),
    ({"name": "d", "version": "1\t", "type": "uri_folder",
      "path": "azureml://datastores/workspaceblobstore/paths/d/"}, "version", "control character"),
    ({"name": "d", "type": "uri_folder", "path": "azureml://datastores/workspaceblobstore/paths/d/../../x"},
     "path", "'..' segments are not allowed"),
    ({"name": "d", "type": "uri_folder", "path": "azureml://datastores/workspaceblobstore/paths/d/",
      "description": "x" * 1_000_000}, "description", "65,536"),
])
def test_the_api_refuses_bad_names_and_paths_naming_the_field(server: ServerProcess, spec: dict[str, str],
                                                             field: str, words: str) -> None:
    r = httpx.post(f"{server.url}/api/v1/data", json={"spec": spec}, headers=server.headers())
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert f" {field}: " in message and words in message
    listed = httpx.get(f"{server.url}/api/v1/data", headers=server.headers()).json()
    assert all(row["name"] != "d" for row in listed)


def test_the_api_refuses_a_hyphenated_name_for_a_registered_component(server: ServerProcess, tmp_path: Path) -> None:
    spec = {"name": "train-model", "type": "command", "command": "echo",
            "environment": "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"}
    r = httpx.post(f"{server.url}/api/v1/components", json={"spec": spec}, headers=server.headers())
    assert r.status_code == 422, r.text
    assert "name: 'train-model' is not a valid name for a registered component" in r.json()["error"]["message"]
