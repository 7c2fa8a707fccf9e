"""search_runs through the real MLflow client: filters over metrics, params, tags and attributes; order; pages."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

pytest.importorskip("mlflow", reason="the MLflow contract suite needs the mlflow client: pip install -e '.[dev]'")

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunTag

pytestmark = pytest.mark.slow

RUNS = 25
START = 1_700_000_000_000


@dataclass(frozen=True)
class Planted:
    """One of the runs the search tests look for, with what was logged to it."""

    run_id: str
    index: int
    name: str
    model: str
    acc: float
    status: str


@pytest.fixture(scope="module")
def planted(module_client: MlflowClient) -> tuple[str, list[Planted]]:
    """An experiment with 25 runs: half 'rf', half 'lr'; acc = i/24; every third run KILLED; names x-* or y-*."""
    client = module_client
    experiment_id = client.create_experiment(f"search-runs-{uuid.uuid4().hex[:10]}")
    runs = []
    for i in range(RUNS):
        name = f"{'x' if i < 5 else 'y'}-{i:02d}"
        model = "rf" if i % 2 == 0 else "lr"
        acc = i / (RUNS - 1)
        status = "KILLED" if i % 3 == 0 else "FINISHED"
        run_id = client.create_run(experiment_id, start_time=START + 1000 * ((i * 7) % RUNS), run_name=name).info.run_id
        client.log_batch(run_id, metrics=[Metric("acc", acc, START, 0)], params=[Param("model", model)],
                         tags=[RunTag("parity", "even" if i % 2 == 0 else "odd")])
        client.set_terminated(run_id, status=status, end_time=START + 100_000)
        runs.append(Planted(run_id, i, name, model, acc, status))
    return experiment_id, runs


def _ids(runs: Iterable[Planted | Run]) -> set[str]:
    return {r.run_id if isinstance(r, Planted) else r.info.run_id for r in runs}


def test_filter_metric_and_param(mlflow_env: MlflowClient, planted: tuple[str, list[Planted]]) -> None:
    experiment_id, runs = planted
    found = mlflow_env.search_runs([experiment_id], filter_string="metrics.acc > 0.5 and params.model = 'rf'")
    expected = [r for r in runs if r.acc > 0.5 and r.model == "rf"]
    assert len(expected) == 6
    assert _ids(found) == _ids(expected)


def test_filter_run_name_like(mlflow_env: MlflowClient, planted: tuple[str, list[Planted]]) -> None:
    experiment_id, runs = planted
    found = mlflow_env.search_runs([experiment_id], filter_string="tags.mlflow.runName LIKE 'x%'")
    assert sorted(r.info.run_name for r in found) == ["x-00", "x-01", "x-02", "x-03", "x-04"]
    by_attribute = mlflow_env.search_runs([experiment_id], filter_string="attributes.run_name = 'y-10'")
    assert [r.info.run_name for r in by_attribute] == ["y-10"]


def test_filter_status_and_tag(mlflow_env: MlflowClient, planted: tuple[str, list[Planted]]) -> None:
    experiment_id, runs = planted
    finished = mlflow_env.search_runs([experiment_id], filter_string="attributes.status = 'FINISHED'")
    assert _ids(finished) == _ids(r for r in runs if r.status == "FINISHED")
    assert len(finished) == 16
    killed_odd = mlflow_env.search_runs([experiment_id],
                                        filter_string="attributes.status != 'FINISHED' and tags.parity = 'odd'")
    assert sorted(r.info.run_name for r in killed_odd) == ["x-03", "y-09", "y-15", "y-21"]


def test_order_by_metric_and_start_time(mlflow_env: MlflowClient, planted: tuple[str, list[Planted]]) -> None:
    experiment_id, runs = planted
    by_acc = mlflow_env.search_runs([experiment_id], order_by=["metrics.acc DESC"], max_results=RUNS)
    assert [r.data.metrics["acc"] for r in by_acc] == sorted((r.acc for r in runs), reverse=True)

    by_start = mlflow_env.search_runs([experiment_id], order_by=["attributes.start_time ASC"], max_results=RUNS)
    starts = [r.info.start_time for r in by_start]
    assert starts == sorted(starts)
    assert starts[0] == START
    assert by_start[0].info.run_name == "x-00"

    rf_by_acc = mlflow_env.search_runs([experiment_id], filter_string="params.model = 'rf'",
                                       order_by=["metrics.acc ASC"], max_results=3)
    assert [r.info.run_name for r in rf_by_acc] == ["x-00", "x-02", "x-04"]


def test_pagination_through_all_runs(mlflow_env: MlflowClient, planted: tuple[str, list[Planted]]) -> None:
    experiment_id, runs = planted
    pages = []
    token = None
    while True:
        page = mlflow_env.search_runs([experiment_id], order_by=["metrics.acc ASC"], max_results=10,
                                      page_token=token)
        pages.append([r.info.run_name for r in page])
        token = page.token
        if not token:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [name for p in pages for name in p] == [r.name for r in sorted(runs, key=lambda r: r.acc)]


def test_fluent_search_runs(mlflow_env: MlflowClient, planted: tuple[str, list[Planted]]) -> None:
    experiment_id, runs = planted
    as_list = mlflow.search_runs([experiment_id], filter_string="metrics.acc >= 0.9", output_format="list",
                                 order_by=["metrics.acc DESC"])
    assert [r.info.run_name for r in as_list] == ["y-24", "y-23", "y-22"]

    frame = mlflow.search_runs([experiment_id], filter_string="params.model = 'lr'")
    assert len(frame) == 12
    assert set(frame["params.model"]) == {"lr"}
    assert set(frame["status"]) == {"FINISHED", "KILLED"}
    assert frame["metrics.acc"].max() == pytest.approx(23 / 24)
