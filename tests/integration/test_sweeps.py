"""Sweep jobs and sweep steps on a real server: a small sklearn script logging with MLflow, swept over each
sampling algorithm; bandit early termination; max_concurrent_trials; best trial's outputs and the pipeline that
registers them; cancel; a restart that resumes; Azure's example YAML unchanged."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.jobs import JobYard, steps_of, wait_until, write
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.slow

# The synthetic objective: score = 1 - (x - 0.7)^2, plus 0.2 when kind is "b". Logged once per epoch as a curve
# rising to it, so early termination has intervals to look at. A small Ridge model is fitted and saved.
TRAIN = """\
import argparse
import time

import mlflow
import numpy as np
from sklearn.linear_model import Ridge

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--kind", default="a")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--pause", type=float, default=0.0)
parser.add_argument("--model", default=None)
args = parser.parse_args()

rng = np.random.default_rng(0)
features = rng.normal(size=(40, 3))
model = Ridge(alpha=max(args.x, 1e-3)).fit(features, features @ np.array([1.0, 2.0, 3.0]))
score = 1 - (args.x - 0.7) ** 2 + (0.2 if args.kind == "b" else 0.0)
for epoch in range(1, args.epochs + 1):
    mlflow.log_metric("score", score * epoch / args.epochs, step=epoch)
    time.sleep(args.pause)
if args.model:
    import mlflow.sklearn

    mlflow.sklearn.save_model(model, args.model + "/model")
print(f"x={args.x} kind={args.kind} score={score:.4f}", flush=True)
"""

SWEEP = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  code: src
  command: python train.py --x ${{search_space.x}} --kind ${{search_space.kind}}
  environment: @ENV@
compute: azureml:cpu-cluster
sampling_algorithm: @SAMPLING@
search_space:
  x: @X@
  kind: {type: choice, values: [a, b]}
objective: {goal: maximize, primary_metric: score}
limits: {max_total_trials: @TRIALS@, max_concurrent_trials: 2}
"""

UNIFORM_X = "{type: uniform, min_value: 0.0, max_value: 1.0}"

# quality q: the trial logs q at every interval (one each 0.4 s, all four side by side); bandit stops
# those trailing the best by more than 10%
BANDIT = """\
type: sweep
trial:
  code: src
  command: python curve.py ${{search_space.q}}
  environment: @ENV@
sampling_algorithm: grid
search_space:
  q: {type: choice, values: [1.0, 0.3, 0.95, 0.2]}
objective: {goal: maximize, primary_metric: acc}
early_termination: {type: bandit, slack_factor: 0.1, evaluation_interval: 1, delay_evaluation: 2}
limits: {max_total_trials: 4, max_concurrent_trials: 4}
"""
CURVE = """\
import sys
import time

import mlflow

q = float(sys.argv[1])
for step in range(10):
    mlflow.log_metric("acc", q, step=step)
    time.sleep(0.4)
"""

SLOW = """\
type: sweep
trial:
  code: src
  command: python slow.py ${{search_space.n}} @SECONDS@
  environment: @ENV@
sampling_algorithm: grid
search_space:
  n: {type: choice, values: [1, 2, 3, 4]}
objective: {goal: maximize, primary_metric: n}
limits: {max_total_trials: 4, max_concurrent_trials: 1}
"""
SLOW_PY = """\
import sys
import time

import mlflow

n, seconds = int(sys.argv[1]), float(sys.argv[2])
time.sleep(seconds)
mlflow.log_metric("n", n)
"""

PIPELINE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
settings: {default_compute: azureml:cpu-cluster}
jobs:
  sweep_step:
    type: sweep
    trial: ./train.yml
    inputs: {epochs: 2}
    outputs: {model_output: }
    sampling_algorithm: grid
    search_space:
      x: {type: choice, values: [0.1, 0.7, 0.4]}
    objective: {goal: maximize, primary_metric: score}
    limits: {max_total_trials: 3, max_concurrent_trials: 2}
  register:
    type: command
    command: cp -r ${{inputs.model}}/model/. ${{outputs.registered}}
    environment: @ENV@
    inputs: {model: '${{parent.jobs.sweep_step.outputs.model_output}}'}
    outputs:
      registered: {type: mlflow_model, name: swept-model}
"""
COMPONENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
type: command
name: train_ridge
inputs:
  x: {type: number, default: 0.5}
  epochs: {type: integer, default: 3}
outputs:
  model_output: {type: mlflow_model}
code: ./src
environment: @ENV@
command: python train.py --x ${{inputs.x}} --kind b --epochs ${{inputs.epochs}} --model ${{outputs.model_output}}
"""

# reference §4.2's example, as it is; only the environment it names and the script it runs are ours
AZURE_EXAMPLE = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  code: src
  command: python train.py --lr ${{search_space.lr}} --depth ${{search_space.depth}} --data ${{inputs.data}}
  environment: azureml:train-env@latest
inputs: {data: {type: uri_folder, path: ./data}}
compute: azureml:cpu-cluster
sampling_algorithm: {type: random, seed: 7}
search_space:
  lr: {type: loguniform, min_value: -7, max_value: -2}
  depth: {type: choice, values: [4, 8, 16]}
objective: {goal: maximize, primary_metric: val_auc}
early_termination: {type: bandit, slack_factor: 0.1, evaluation_interval: 1, delay_evaluation: 3}
limits: {max_total_trials: 12, max_concurrent_trials: 3, timeout: 7200}
"""
AZURE_TRAIN = """\
import argparse
import math
from pathlib import Path

import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--depth", type=int)
parser.add_argument("--data")
args = parser.parse_args()
assert (Path(args.data) / "rows.csv").exists()
auc = 0.9 - abs(math.log(args.lr) + 4.5) / 20 - abs(args.depth - 8) / 100
for epoch in range(4):
    mlflow.log_metric("val_auc", auc, step=epoch)
"""


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobYard]:
    root = tmp_path_factory.mktemp("sweeps")
    server = ServerProcess(root / "workspace", free_port()).init().start()
    try:
        project = root / "project"
        write(project / "src" / "train.py", TRAIN)
        write(project / "src" / "curve.py", CURVE)
        write(project / "src" / "slow.py", SLOW_PY)
        write(project / "bandit.yml", BANDIT)
        write(project / "pipeline.yml", PIPELINE)
        write(project / "train.yml", COMPONENT)
        yield JobYard(server, project)
    finally:
        server.stop()


def _sweep_file(yard: JobYard, name: str, sampling: str, x: str, trials: int) -> Path:
    return write(yard.root / f"{name}.yml", SWEEP, SAMPLING=sampling, X=x, TRIALS=trials)


def _best(job: dict[str, Any]) -> dict[str, Any]:
    [best] = [t for t in job["trials"] if t["best"]]
    return best


def _max_overlap(trials: list[dict[str, Any]]) -> int:
    """The most trials running at one instant, from their start and end times."""
    edges = sorted([(t["started_at"], 1) for t in trials if t["started_at"]]
                   + [(t["ended_at"], -1) for t in trials if t["started_at"]])
    running = peak = 0
    for _, delta in edges:  # an end sorts before a start at the same millisecond
        running += delta
        peak = max(peak, running)
    return peak


@pytest.mark.parametrize(("sampling", "x", "trials"), [
    ("{type: random, seed: 11}", UNIFORM_X, 8),
    ("{type: random, seed: 3, rule: sobol}", UNIFORM_X, 8),
    ("grid", "{type: choice, values: [0.1, 0.4, 0.7, 1.0]}", 8),
    ("bayesian", UNIFORM_X, 14),
])
def test_each_sampler_finds_the_best_region_within_the_concurrency_limit(yard: JobYard, sampling: str, x: str,
                                                                         trials: int) -> None:
    kind = sampling.split("type: ")[-1].split(",")[0].strip("{} ")
    job = yard.completed(_sweep_file(yard, f"sweep-{kind}", sampling, x, trials))
    shown = yard.client.jobs.get(job["name"])
    table = shown["trials"]
    assert len(table) == trials and all(t["status"] == "Completed" for t in table), table
    best = _best(shown)
    assert table[0] is not None and table[0]["name"] == best["name"]  # sorted by the objective, best first
    assert best["params"]["kind"] == "b" and abs(best["params"]["x"] - 0.7) <= 0.4, best
    assert [t["metric"] for t in table] == sorted((t["metric"] for t in table), reverse=True)
    if kind == "grid":  # every point of the 4 x 2 grid once
        assert sorted((t["params"]["x"], t["params"]["kind"]) for t in table) == sorted(
            (v, k) for v in (0.1, 0.4, 0.7, 1.0) for k in "ab")
        assert best["params"] == {"x": 0.7, "kind": "b"}
    assert _max_overlap(table) <= 2
    # each trial is a child MLflow run of the sweep's run; the sweep's run carries the best trial's metric
    runs = httpx.post(f"{yard.server.url}/api/2.0/mlflow/runs/search", headers=yard.server.headers(), json={
        "experiment_ids": [shown["experiment_id"]],
        "filter": f"tags.mlflow.parentRunId = '{job['name']}'", "max_results": 100}).json()["runs"]
    assert sorted(r["info"]["run_id"] for r in runs) == sorted(t["name"] for t in table)
    sweep_run = httpx.get(f"{yard.server.url}/api/2.0/mlflow/runs/get", headers=yard.server.headers(),
                          params={"run_id": job["name"]}).json()["run"]
    tags = {t["key"]: t["value"] for t in sweep_run["data"]["tags"]}
    assert tags["best_child_run_id"] == best["name"]
    assert {m["key"]: m["value"] for m in sweep_run["data"]["metrics"]}["score"] == pytest.approx(best["metric"])
    listed = yard.cli("job", "list", "--parent-job-name", job["name"], "-o", "json")
    assert sorted(r["name"] for r in json.loads(listed.stdout)) == sorted(t["name"] for t in table)


def test_bandit_stops_trailing_trials_and_the_table_says_so(yard: JobYard) -> None:
    job = yard.completed(yard.root / "bandit.yml")
    table = {t["params"]["q"]: t for t in yard.client.jobs.get(job["name"])["trials"]}
    for q in (1.0, 0.95):
        assert table[q]["status"] == "Completed" and not table[q]["early_terminated"], table[q]
    for q in (0.3, 0.2):
        assert table[q]["status"] == "Canceled", table[q]
        assert "bandit policy" in table[q]["early_terminated"], table[q]
    assert _best(yard.client.jobs.get(job["name"]))["params"] == {"q": 1.0}
    shown = yard.cli("job", "show", "-n", job["name"]).stdout
    rows = [line for line in shown.splitlines() if job["name"] + "_" in line]
    assert len(rows) == 4, shown
    assert "*" in rows[0] and "Completed" in rows[0] and "yes" not in rows[0], shown  # best first, marked
    assert all("Canceled" in r and "yes" in r for r in rows[2:]), shown  # early terminated: yes
    streamed = yard.cli("job", "stream", "-n", job["name"]).stdout  # the sweep's log: trials start and end
    for n in range(4):
        assert f"trial {n} ({job['name']}_" in streamed and "started: q=" in streamed, streamed
    assert streamed.count("early terminated by the bandit policy") == 2 and "best trial: " in streamed, streamed


def test_a_pipeline_registers_the_best_trials_model(yard: JobYard) -> None:
    job = yard.completed(yard.root / "pipeline.yml")
    steps = steps_of(job)
    sweep = yard.client.jobs.get(steps["sweep_step"]["name"])
    best = _best(sweep)
    assert best["params"] == {"x": 0.7}
    best_job = yard.client.jobs.get(best["name"])
    assert sweep["outputs"]["model_output"]["uri"] == best_job["outputs"]["model_output"]["uri"]
    registered = steps["register"]["outputs"]["registered"]["asset"]
    assert registered.startswith("swept-model:")
    folder = yard.stored(steps["register"]["outputs"]["registered"]["uri"])
    assert (folder / "MLmodel").exists() and (folder / "model.pkl").exists() or (folder / "MLmodel").exists()
    ridge = yard.stored(best_job["outputs"]["model_output"]["uri"]) / "model" / "MLmodel"
    assert (folder / "MLmodel").read_text() == ridge.read_text()


def test_azures_example_sweep_runs_unchanged(yard: JobYard) -> None:
    write(yard.root / "azure" / "sweep.yml", AZURE_EXAMPLE)
    write(yard.root / "azure" / "src" / "train.py", AZURE_TRAIN)
    write(yard.root / "azure" / "data" / "rows.csv", "a,b\n1,2\n")
    write(yard.root / "azure" / "env.yml", "name: train-env\nimage: python:3.11\n")
    yard.cli("environment", "create", "-f", str(yard.root / "azure" / "env.yml"))
    job = yard.completed(yard.root / "azure" / "sweep.yml")
    shown = yard.client.jobs.get(job["name"])
    assert len(shown["trials"]) == 12
    assert _max_overlap(shown["trials"]) <= 3
    best = _best(shown)
    assert best["params"]["depth"] in (4, 8, 16) and 0 < best["params"]["lr"] < 1


def test_malformed_search_spaces_name_file_line_and_field_and_create_nothing(yard: JobYard) -> None:
    before = yard.client.jobs.list(max_results=1000)
    cases = {
        "no-values.yml": ("kind: {type: choice, values: []}", "search_space.kind.values"),
        "min-max.yml": ("kind: {type: uniform, min_value: 2, max_value: 1}", "search_space.kind.max_value"),
    }
    for file, (line, field) in cases.items():
        text = SWEEP.replace("kind: {type: choice, values: [a, b]}", line)
        path = write(yard.root / file, text, SAMPLING="random", X=UNIFORM_X, TRIALS=2)
        result = yard.cli("job", "create", "-f", str(path), check=False)
        assert result.returncode != 0
        assert f"{file}:11" in result.stderr and field in result.stderr, result.stderr
    text = BANDIT.replace("sampling_algorithm: grid", "sampling_algorithm: bayesian")
    path = write(yard.root / "bayes-bandit.yml", text)
    result = yard.cli("job", "create", "-f", str(path), check=False)
    assert result.returncode != 0
    assert "bayes-bandit.yml:" in result.stderr and "early_termination" in result.stderr, result.stderr
    assert yard.client.jobs.list(max_results=1000) == before


def test_cancel_stops_every_trial(yard: JobYard) -> None:
    path = write(yard.root / "slow-cancel.yml", SLOW.replace("max_concurrent_trials: 1", "max_concurrent_trials: 2"),
                 SECONDS=60)
    write(yard.root / "src" / "slow.py", SLOW_PY)
    job = yard.submit(path)
    wait_until(lambda: sum(t["status"] == "Running" for t in yard.client.jobs.get(job["name"])["trials"]) == 2,
               "two trials run", 60)
    yard.cli("job", "cancel", "-n", job["name"])
    done = yard.wait(job["name"], 60)
    assert done["status"] == "Canceled"
    assert [t["status"] for t in done["trials"]] == ["Canceled", "Canceled"]


def test_canceling_one_trial_leaves_the_sweep_running(yard: JobYard) -> None:
    path = write(yard.root / "slow-one.yml", SLOW.replace("max_total_trials: 4", "max_total_trials: 2"), SECONDS=60)
    job = yard.submit(path)

    def running() -> list[dict[str, Any]]:
        return [t for t in yard.client.jobs.get(job["name"])["trials"] if t["status"] == "Running"]

    wait_until(lambda: len(running()) == 1, "a trial runs", 60)
    [first] = running()
    yard.cli("job", "cancel", "-n", first["name"])
    wait_until(lambda: any(t["name"] != first["name"] for t in running()), "the next trial runs", 60)
    assert yard.client.jobs.get(job["name"])["status"] == "Running"
    assert yard.client.jobs.get(first["name"])["error"].startswith("canceled by")
    yard.cli("job", "cancel", "-n", job["name"])
    assert yard.wait(job["name"], 60)["status"] == "Canceled"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_restart_resumes_the_sweep_without_rerunning_finished_trials(tmp_path: Path, how: int) -> None:
    server = ServerProcess(tmp_path / "workspace", free_port()).init().start()
    try:
        yard = JobYard(server, tmp_path / "project")
        write(yard.root / "src" / "slow.py", SLOW_PY)
        path = write(yard.root / "slow.yml", SLOW, SECONDS=2)
        job = yard.submit(path)

        def two_done() -> bool:
            trials = yard.client.jobs.get(job["name"])["trials"]
            return sum(t["status"] == "Completed" for t in trials) == 2 and any(
                t["status"] == "Running" for t in trials)

        wait_until(two_done, "two trials completed and a third runs", 90)
        before = {t["name"]: t for t in yard.client.jobs.get(job["name"])["trials"]}
        server.stop(how)
        server.start()
        yard = JobYard(server, yard.root)
        done = yard.wait(job["name"], 120)
        assert done["status"] == "Completed", done["error"]
        after = {t["name"]: t for t in done["trials"]}
        for name, t in before.items():  # finished trials kept as they were, not run again
            if t["status"] == "Completed":
                assert after[name]["ended_at"] == t["ended_at"]
        interrupted = [t for t in after.values() if t["rerun"]]
        assert len(interrupted) == 1 and interrupted[0]["status"] == "Canceled"
        reruns = [t for t in after.values() if t["number"] == interrupted[0]["number"] and not t["rerun"]]
        assert len(reruns) == 1 and reruns[0]["params"] == interrupted[0]["params"]
        assert sorted({t["params"]["n"] for t in after.values()}) == [1, 2, 3, 4]
        assert len(after) == 5 and _best(done)["params"] == {"n": 4}
    finally:
        server.stop()
