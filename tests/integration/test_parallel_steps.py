"""Pipeline parallel steps (Azure's ``type: parallel``): the batch engine over a step input, with program arguments,
append_row_to a uri_file output, a bad file tolerated within error_threshold, reuse, and a downstream step."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.jobs import CURATED, JobYard, steps_of, write
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.slow

SCORE = """\
import argparse
import os

import pandas as pd


def init():
    global factor
    parser = argparse.ArgumentParser()
    parser.add_argument("--factor", type=int, required=True)
    args, _ = parser.parse_known_args()  # Azure's own arguments (--error_threshold ...) are there too
    factor = args.factor


def run(mini_batch):
    rows = []
    for path in mini_batch:
        if os.path.basename(path).startswith("bad"):
            raise ValueError(f"cannot score {os.path.basename(path)}")
        frame = pd.read_csv(path)
        rows.append({"file": os.path.basename(path), "total": int(frame["x"].sum()) * factor})
    return pd.DataFrame(rows)
"""
SUMMARY = """\
import sys
from pathlib import Path

text = Path(sys.argv[1]).read_text()
Path(sys.argv[2], "summary.txt").write_text(f"{len(text.splitlines())} rows\\n")
"""
PIPELINE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
settings:
  default_compute: azureml:cpu-cluster
inputs:
  files:
    type: uri_folder
    path: ./data
jobs:
  score:
    type: parallel
    inputs:
      input_data: ${{parent.inputs.files}}
      factor: 3
    outputs:
      scored:
        type: uri_file
    input_data: ${{inputs.input_data}}
    mini_batch_size: "2"
    max_concurrency_per_instance: 2
    retry_settings:
      max_retries: 1
      timeout: 60
    task:
      type: run_function
      code: ./src
      entry_script: score.py
      environment: @ENV@
      program_arguments: >-
        --factor ${{inputs.factor}}
        --error_threshold @THRESHOLD@
      append_row_to: ${{outputs.scored}}
  summarize:
    command: python summary.py ${{inputs.scored}} ${{outputs.summary}}
    code: ./src
    environment: @ENV@
    inputs:
      scored: ${{parent.jobs.score.outputs.scored}}
    outputs:
      summary:
"""


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobYard]:
    root = tmp_path_factory.mktemp("parallel")
    server = ServerProcess(root / "workspace", free_port()).init().start()
    try:
        project = root / "project"
        write(project / "src" / "score.py", SCORE)
        write(project / "src" / "summary.py", SUMMARY)
        for i in range(1, 6):
            write(project / "data" / f"part{i}.csv", f"x\n{i}\n{i * 10}\n")
        write(project / "data" / "bad.csv", "x\n1\n")
        for threshold in ("5", "0"):
            write(project / f"pipeline-{threshold}.yml",
                  PIPELINE.replace("@ENV@", CURATED).replace("@THRESHOLD@", threshold))
        yield JobYard(server, project)
    finally:
        server.stop()


def test_a_parallel_step_appends_rows_and_tolerates_a_bad_file(yard: JobYard) -> None:
    job = yard.completed(yard.root / "pipeline-5.yml")
    steps = steps_of(job)
    scored = yard.stored(steps["score"]["outputs"]["scored"]["uri"]).read_text().splitlines()
    assert sorted(scored) == sorted(f"part{i}.csv,{i * 11 * 3}" for i in range(1, 6))  # no header, each once
    log = yard.log(steps["score"]["name"])
    assert "bad.csv" in log and "cannot score bad.csv" in log
    progress = steps_of(yard.client.jobs.get(job["name"]))["score"]["progress"]
    assert progress["files"] == {"total": 6, "done": 6, "failed": 1}  # done counts every file processed
    assert [f["file"].rsplit("/", 1)[-1] for f in progress["failed_files"]] == ["bad.csv"]
    summary = yard.stored(steps["summarize"]["outputs"]["summary"]["uri"])
    assert (summary / "summary.txt").read_text() == "5 rows\n"

    again = yard.completed(yard.root / "pipeline-5.yml")  # same code, same files: both steps reused
    assert all(s.get("reused_from") for s in steps_of(again).values()), steps_of(again)


def test_past_the_error_threshold_the_step_fails_naming_the_file(yard: JobYard) -> None:
    job = yard.run(yard.root / "pipeline-0.yml")
    assert job["status"] == "Failed"
    score = steps_of(job)["score"]
    assert score["status"] == "Failed"
    assert "bad.csv" in yard.log(score["name"])
    assert steps_of(job)["summarize"]["status"] in ("Canceled", "NotStarted", "Skipped")
