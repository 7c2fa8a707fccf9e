"""Model performance joined on the correlation id, and feature attribution drift with the surrogate importance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error, precision_score, recall_score, root_mean_squared_error

from tests.monitoring.conftest import HOUR, NOW, Runner, data, only, write_collected, write_parquet

TOL = 1e-9


def performance(outputs: Path, truth: Path, thresholds: dict[str, object] | None = None) -> dict[str, object]:
    return {"perf": {"type": "model_performance",
                     "production_data": data(outputs, data_context="model_outputs",
                                             data_column_names={"prediction": "label"}),
                     "reference_data": data(truth, data_context="ground_truth",
                                            data_column_names={"actual": "label", "correlation_id": "request"}),
                     **({"metric_thresholds": thresholds} if thresholds else {})}}


def test_predictions_meet_labels_on_correlation_id_and_position(tmp_path: Path, run_signals: Runner) -> None:
    outputs = write_collected(tmp_path / "outputs", [
        (NOW - 2 * HOUR, "r1", [{"label": "yes"}, {"label": "no"}, {"label": "yes"}]),
        (NOW - HOUR, "r2", [{"label": "no"}]),
        (NOW - HOUR, "r3", [{"label": "yes"}]),  # no ground truth: left out
    ])
    truth = write_parquet(tmp_path / "truth.parquet", {
        "request": ["r2", "r1", "r1", "r1", "r9"], "label": ["no", "yes", "yes", "no", "yes"]})
    signal = only(run_signals(performance(outputs, truth), target={"ml_task": "classification"}))
    y_true, y_pred = ["yes", "yes", "no", "no"], ["yes", "no", "yes", "no"]
    values = {m.name: (m.value, m.threshold) for m in signal.signal_metrics}
    assert values["Accuracy"] == (pytest.approx(accuracy_score(y_true, y_pred), abs=TOL), 0.9)
    assert values["Precision"][0] == pytest.approx(precision_score(y_true, y_pred, average="macro"), abs=TOL)
    assert values["Recall"][0] == pytest.approx(recall_score(y_true, y_pred, average="macro"), abs=TOL)
    assert signal.status == "alerted"  # accuracy 0.5 is below the default 0.9
    assert "4 predictions matched" in signal.notes[-1]


def test_regression_metrics_and_a_task_inferred_from_the_labels(tmp_path: Path, run_signals: Runner) -> None:
    outputs = write_parquet(tmp_path / "out.parquet", {"correlationid": ["a", "b", "c"], "label": [1.0, 2.5, 4.0]})
    truth = write_parquet(tmp_path / "truth.parquet", {"request": ["c", "b", "a"], "label": [3.0, 2.0, 1.5]})
    signal = only(run_signals(performance(outputs, truth, {"regression": {"mae": 0.5}})))
    values = {m.name: (m.value, m.threshold) for m in signal.signal_metrics}
    truth_v, pred_v = [1.5, 2.0, 3.0], [1.0, 2.5, 4.0]
    assert values["MeanAbsoluteError"] == (pytest.approx(mean_absolute_error(truth_v, pred_v), abs=TOL), 0.5)
    assert values["RootMeanSquaredError"] == (pytest.approx(root_mean_squared_error(truth_v, pred_v), abs=TOL),
                                              None)
    assert signal.status == "alerted"  # MAE 0.667 > 0.5


def test_no_match_on_the_correlation_id_is_a_signal_error(tmp_path: Path, run_signals: Runner) -> None:
    outputs = write_parquet(tmp_path / "out.parquet", {"correlationid": ["a"], "label": [1]})
    truth = write_parquet(tmp_path / "truth.parquet", {"request": ["zz"], "label": [1]})
    signal = only(run_signals(performance(outputs, truth)))
    assert signal.status == "error" and "correlation id" in (signal.error or "")


def test_feature_attribution_drift_reports_ndcg_of_surrogate_importances(tmp_path: Path,
                                                                         run_signals: Runner) -> None:
    rng = np.random.default_rng(4)
    n = 600
    strong, weak, noise = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    label = (strong + 0.2 * weak > 0).astype(int)
    ref = write_parquet(tmp_path / "ref.parquet", {"strong": strong, "weak": weak, "noise": noise, "y": label})
    lines = [(NOW - HOUR, f"r{i}", [{"strong": float(noise[i]), "weak": float(weak[i]),
                                      "noise": float(strong[i])}]) for i in range(300)]
    outputs = [(NOW - HOUR, f"r{i}", [{"y": int(strong[i] > 0)}]) for i in range(300)]  # the model now follows noise
    inputs_folder = write_collected(tmp_path / "inputs", lines)
    outputs_folder = write_collected(tmp_path / "outputs", outputs)
    signals = {"fad": {"type": "feature_attribution_drift",
                       "production_data": [data(inputs_folder, data_context="model_inputs"),
                                           data(outputs_folder, data_context="model_outputs",
                                                data_column_names={"prediction": "y"})],
                       "reference_data": data(ref, data_context="training",
                                              data_column_names={"target_column": "y"}),
                       "metric_thresholds": {"normalized_discounted_cumulative_gain": 0.9}}}
    signal = only(run_signals(signals))
    ndcg = signal.signal_metrics[0]
    assert ndcg.name == "NormalizedDiscountedCumulativeGain" and ndcg.value is not None and ndcg.value < 0.9
    assert signal.status == "alerted"
    importances = {f.name: f.metrics[0].value for f in signal.features}
    assert max(importances, key=lambda k: importances[k] or 0) == "strong"


def test_top_n_feature_importance_selects_by_the_baseline_surrogate(tmp_path: Path, run_signals: Runner) -> None:
    rng = np.random.default_rng(6)
    n = 500
    cols = {f"f{i}": rng.normal(size=n) for i in range(5)}
    y = (cols["f3"] * 3 + cols["f1"] > 0).astype(int)
    ref = write_parquet(tmp_path / "ref.parquet", {**cols, "y": y})
    prod = write_parquet(tmp_path / "prod.parquet", cols)
    signals = {"d": {"type": "data_drift", "production_data": data(prod),
                     "reference_data": data(ref, data_context="training", data_column_names={"target_column": "y"}),
                     "features": {"top_n_feature_importance": 2}}}
    signal = only(run_signals(signals))
    assert sorted(f.name for f in signal.features) == ["f1", "f3"]
