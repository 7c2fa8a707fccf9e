"""The search space on Optuna: each distribution's values, each sampler, and a study rebuilt after a restart."""

from __future__ import annotations

import math

import pytest

from mlyard.jobs.sweep import plan_sweep_job, trial_step
from mlyard.jobs.sweep_space import Hyperparameter, Search, SearchSpace


def _sweep(space: dict, sampling: object = "random", goal: str = "maximize") -> dict:
    return {"search_space": space, "sampling_algorithm": sampling if isinstance(sampling, dict) else
            {"type": sampling}, "objective": {"primary_metric": "m", "goal": goal}}


SPACE = {
    "c": {"type": "choice", "values": [{"a": 1}, "x", 3]},
    "r": {"type": "randint", "upper": 5},
    "u": {"type": "uniform", "min_value": -1.0, "max_value": 1.0},
    "lu": {"type": "loguniform", "min_value": -7.0, "max_value": -2.0},
    "qu": {"type": "quniform", "min_value": 0.0, "max_value": 100.0, "q": 10},
    "n": {"type": "normal", "mu": 10.0, "sigma": 2.0},
    "ln": {"type": "lognormal", "mu": 0.0, "sigma": 0.5},
    "qn": {"type": "qnormal", "mu": 50.0, "sigma": 10.0, "q": 5},
    "qln": {"type": "qlognormal", "mu": 1.0, "sigma": 0.5, "q": 0.5},
    "qlu": {"type": "qloguniform", "min_value": 0.0, "max_value": 3.0, "q": 1},
}


@pytest.mark.parametrize("sampling", [{"type": "random", "seed": 1}, {"type": "random", "seed": 1, "rule": "sobol"}])
def test_every_distribution_gives_values_of_its_kind(sampling: dict) -> None:
    search = Search(SearchSpace(_sweep(SPACE, sampling)))
    seen = [search.ask()[2] for _ in range(40)]
    for v in seen:
        assert v["c"] in ({"a": 1}, "x", 3)  # any JSON value, through the index Optuna samples
        assert isinstance(v["r"], int) and 0 <= v["r"] < 5
        assert -1 <= v["u"] <= 1
        assert math.exp(-7) <= v["lu"] <= math.exp(-2)  # Azure's bounds are in log space
        assert isinstance(v["qu"], int) and v["qu"] % 10 == 0 and 0 <= v["qu"] <= 100
        assert v["ln"] > 0 and v["qln"] >= 0 and v["qln"] * 2 == int(v["qln"] * 2)
        assert isinstance(v["qn"], int) and v["qn"] % 5 == 0
        assert isinstance(v["qlu"], int) and 1 <= v["qlu"] <= 20
    normals = [v["n"] for v in seen]
    assert 8 < sum(normals) / len(normals) < 12 and len({v["c"] if v["c"] != {"a": 1} else "d" for v in seen}) == 3


def test_a_seed_repeats_the_sequence() -> None:
    def draw() -> list[dict]:
        search = Search(SearchSpace(_sweep(SPACE, {"type": "random", "seed": 7})))
        return [search.ask()[2] for _ in range(5)]

    assert draw() == draw()


def test_grid_visits_every_point_once() -> None:
    space = SearchSpace(_sweep({"a": {"type": "choice", "values": [1, 2, 3]},
                                "b": {"type": "choice", "values": ["x", "y"]}}, "grid"))
    assert space.grid_size() == 6
    search = Search(space)
    points = []
    for _ in range(6):
        number, _, values = search.ask()
        points.append((values["a"], values["b"]))
        search.tell(number, 1.0, "complete")
    assert sorted(points) == sorted((a, b) for a in (1, 2, 3) for b in "xy")


def test_bayesian_moves_towards_the_best_region() -> None:
    search = Search(SearchSpace(_sweep({"x": {"type": "uniform", "min_value": 0, "max_value": 1}}, "bayesian",
                                       goal="minimize")))
    late = []
    for i in range(40):
        number, _, values = search.ask()
        search.tell(number, (values["x"] - 0.3) ** 2, "complete")
        if i >= 30:
            late.append(abs(values["x"] - 0.3))
    assert sum(late) / len(late) < 0.15  # random would average 0.29


def test_a_restored_study_keeps_finished_trials_and_reopens_interrupted_ones() -> None:
    sweep = _sweep({"a": {"type": "choice", "values": [1, 2, 3, 4]}}, "grid")
    first = Search(SearchSpace(sweep))
    asked = [first.ask() for _ in range(3)]
    attrs = [first.system_attrs(n) for n, _, _ in asked]
    first.tell(0, 0.5, "complete")
    first.tell(1, None, "pruned")
    # the server stops with trial 2 running; the new server rebuilds the study from the rows
    again = Search(SearchSpace(sweep))
    again.restore([(0, asked[0][1], "complete", 0.5, attrs[0]), (1, asked[1][1], "pruned", None, attrs[1]),
                   (2, asked[2][1], "running", None, attrs[2])])
    again.tell(2, 0.7, "complete")  # the interrupted trial, run again, is told as itself
    number, _, values = again.ask()
    assert number == 3
    assert values["a"] not in {v["a"] for _, _, v in asked}  # the grid's last point, not one already run
    assert again.study.best_value == 0.7


def test_trial_steps_carry_the_values_in_the_command_and_as_component_inputs() -> None:
    job = {"type": "sweep", "trial": {"command": "python t.py --lr ${{search_space.lr}} --d ${{inputs.d}}",
                                      "code": "azureml://datastores/x/paths/c"},
           "inputs": {"d": 1}, "outputs": {"m": {"type": "mlflow_model", "name": "reg", "path": "azureml://x"}},
           "limits": {"trial_timeout": 30}, **_sweep({"lr": {"type": "uniform", "min_value": 0, "max_value": 1}})}
    base = plan_sweep_job(job)
    step = trial_step(base, {"lr": 0.25})
    assert step["command"] == "python t.py --lr 0.25 --d ${{inputs.d}}"
    assert step["outputs"] == {"m": {"type": "mlflow_model"}}  # registered and placed by the sweep, not each trial
    assert step["limits"] == {"timeout": 30} and "sweep" not in step and step["is_deterministic"] is False
    component = {**base, "declared_inputs": {"lr": {"type": "number"}, "d": {}}, "inputs": {"d": 2}}
    assert trial_step(component, {"lr": 0.5})["inputs"] == {"d": 2, "lr": 0.5}


def test_normal_values_follow_mu_and_sigma() -> None:
    p = Hyperparameter("n", {"type": "normal", "mu": 3.0, "sigma": 2.0})
    assert p.value(0.5) == pytest.approx(3.0)
    assert p.value(0.8413447) == pytest.approx(5.0, abs=1e-4)


def test_a_restored_sobol_sweep_goes_on_along_its_sequence() -> None:
    sweep = _sweep({"x": {"type": "uniform", "min_value": 0, "max_value": 1}},
                   {"type": "random", "seed": 5, "rule": "sobol"})
    straight = Search(SearchSpace(sweep))
    expected = []
    for _ in range(5):
        number, _, values = straight.ask()
        straight.tell(number, values["x"], "complete")
        expected.append(values["x"])
    first = Search(SearchSpace(sweep))
    rows = []
    for _ in range(3):
        number, raw, values = first.ask()
        rows.append((number, raw, "complete", values["x"], first.system_attrs(number)))
        snapshot = first.study_attrs()
        first.tell(number, values["x"], "complete")
    again = Search(SearchSpace(sweep))
    again.restore(rows, snapshot)
    assert [again.ask()[2]["x"] for _ in range(2)] == pytest.approx(expected[3:])
