"""Pipeline components as steps (Azure's ``type: pipeline`` steps, reference §3.2 form 4 and §4.1): inputs and
outputs bound like any step's, their own child jobs and runs, reuse inside."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.jobs import JobYard, steps_of, write
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.slow

COMPONENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
type: pipeline
name: twice
inputs:
  n: {type: integer, default: 1}
  word: {type: string}
outputs:
  result: {type: uri_folder}
jobs:
  make:
    command: echo ${{inputs.word}} > ${{outputs.out}}/word.txt
    environment: @ENV@
    inputs: {word: '${{parent.inputs.word}}'}
    outputs: {out: }
  repeat:
    command: for i in $(seq ${{inputs.n}}); do cat ${{inputs.src}}/word.txt; done > ${{outputs.out}}/words.txt
    environment: @ENV@
    inputs: {n: '${{parent.inputs.n}}', src: '${{parent.jobs.make.outputs.out}}'}
    outputs: {out: '${{parent.outputs.result}}'}
"""
PIPELINE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
inputs: {word: hello}
outputs: {final: }
jobs:
  inner:
    type: pipeline
    component: ./twice.yml
    inputs: {n: 3, word: '${{parent.inputs.word}}'}
    outputs: {result: '${{parent.outputs.final}}'}
  after:
    command: wc -l < ${{inputs.words}}/words.txt > ${{outputs.count}}/count.txt
    environment: @ENV@
    inputs: {words: '${{parent.jobs.inner.outputs.result}}'}
    outputs: {count: }
"""


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobYard]:
    root = tmp_path_factory.mktemp("pipeline-components")
    server = ServerProcess(root / "workspace", free_port()).init().start()
    try:
        project = root / "project"
        write(project / "twice.yml", COMPONENT)
        write(project / "pipeline.yml", PIPELINE)
        yield JobYard(server, project)
    finally:
        server.stop()


def test_a_pipeline_component_step_runs_its_own_steps_bound_like_any_step(yard: JobYard) -> None:
    job = yard.completed(yard.root / "pipeline.yml")
    steps = steps_of(job)
    inner = yard.client.jobs.get(steps["inner"]["name"])
    assert inner["type"] == "pipeline" and inner["status"] == "Completed"
    inner_steps = steps_of(inner)
    assert sorted(inner_steps) == ["make", "repeat"] and all(s["parent"] == inner["name"]
                                                             for s in inner_steps.values())
    words = yard.stored(inner["outputs"]["result"]["uri"]) / "words.txt"
    assert words.read_text() == "hello\n" * 3
    assert job["outputs"]["final"]["uri"] == inner["outputs"]["result"]["uri"]  # bound to the pipeline's output
    count = yard.stored(steps["after"]["outputs"]["count"]["uri"]) / "count.txt"
    assert count.read_text().strip() == "3"
    # its own child runs: the component step's run is the parent of its steps' runs
    runs = httpx.post(f"{yard.server.url}/api/2.0/mlflow/runs/search", headers=yard.server.headers(), json={
        "experiment_ids": [job["experiment_id"]],
        "filter": f"tags.mlflow.parentRunId = '{inner['name']}'"}).json()["runs"]
    assert sorted(r["info"]["run_id"] for r in runs) == sorted(s["name"] for s in inner_steps.values())

    again = yard.completed(yard.root / "pipeline.yml")  # same everything: the steps inside are reused
    inner_again = steps_of(yard.client.jobs.get(steps_of(again)["inner"]["name"]))
    assert all(s.get("reused_from") for s in inner_again.values()), inner_again


def test_a_missing_required_component_input_is_refused_with_file_line_and_field(yard: JobYard) -> None:
    before = yard.client.jobs.list(max_results=1000)
    path = write(yard.root / "missing.yml", PIPELINE.replace("n: 3, word: '${{parent.inputs.word}}'", "n: 2"))
    result = yard.cli("job", "create", "-f", str(path), check=False)
    assert result.returncode != 0
    assert "missing.yml:9: jobs.inner.inputs" in result.stderr and "word" in result.stderr, result.stderr
    assert yard.client.jobs.list(max_results=1000) == before


def test_a_registered_pipeline_component_runs_as_a_step(yard: JobYard) -> None:
    created = yard.cli("component", "create", "-f", str(yard.root / "twice.yml"), "-o", "json")
    assert '"twice"' in created.stdout
    text = PIPELINE.replace("component: ./twice.yml", "component: azureml:twice@latest").replace("n: 3", "n: 2")
    path = write(yard.root / "registered.yml", text)
    job = yard.completed(path)
    inner = yard.client.jobs.get(steps_of(job)["inner"]["name"])
    assert (yard.stored(inner["outputs"]["result"]["uri"]) / "words.txt").read_text() == "hello\n" * 2


def test_a_pipeline_job_wrapping_a_pipeline_component_runs_its_steps(yard: JobYard) -> None:
    path = write(yard.root / "wrapper.yml", """\
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
        type: pipeline
        component: ./twice.yml
        inputs: {word: hi}
        outputs: {result: }
        """)
    job = yard.completed(path)
    assert sorted(steps_of(job)) == ["make", "repeat"]
    assert (yard.stored(job["outputs"]["result"]["uri"]) / "words.txt").read_text() == "hi\n"  # n's default: 1
