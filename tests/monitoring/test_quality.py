"""Data quality: rates to 1e-5, the baseline rate + t threshold, imputation before bounds, type errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from tests.monitoring.conftest import HOUR, NOW, Runner, data, only, write_collected, write_parquet


def quality(reference: Path, production: Path, thresholds: dict[str, object] | None = None) -> dict[str, object]:
    signal: dict[str, object] = {"type": "data_quality", "production_data": data(production),
                                 "reference_data": data(reference), "features": "all_features"}
    if thresholds:
        signal["metric_thresholds"] = thresholds
    return {"quality": signal}


def rows(signal: object) -> dict[tuple[str, str], tuple[float | None, float | None, bool]]:
    return {(f.name, m.name): (m.value, m.threshold, m.alert)
            for f in signal.features for m in f.metrics}  # type: ignore[attr-defined]


def test_rates_and_the_baseline_plus_t_threshold(tmp_path: Path, run_signals: Runner) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {
        "n": pa.array([1.0, 2.0, None, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]),  # 1 null in 10
        "c": ["a", "b", "a", "b", "a", "b", "a", "b", "a", None]})
    prod = write_parquet(tmp_path / "prod.parquet", {
        "n": pa.array([0.5, 2.0, None, None, 11.0, 3.0]),  # 2 nulls, 2 out of [1, 10]
        "c": ["a", "z", "b", None, "a", "a"]})  # 1 null, 1 unseen
    signal = only(run_signals(quality(ref, prod)))
    got = rows(signal)
    assert got[("n", "NullValueRate")] == (round(2 / 6, 5), 0.1, True)
    assert got[("n", "OutOfBoundsRate")] == (round(2 / 6, 5), 0.0, True)
    assert got[("n", "DataTypeErrorRate")] == (0.0, 0.0, False)
    assert got[("c", "NullValueRate")] == (round(1 / 6, 5), 0.1, True)
    assert got[("c", "OutOfBoundsRate")] == (round(1 / 6, 5), 0.0, True)  # the null imputed with the mode 'a'


def test_a_rate_equal_to_the_threshold_does_not_alert(tmp_path: Path, run_signals: Runner) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {"n": pa.array([1.0, None, 3.0, 4.0])})
    prod = write_parquet(tmp_path / "prod.parquet", {"n": pa.array([2.0, None, 3.0, 1.0])})
    signal = only(run_signals(quality(ref, prod, {"numerical": {"null_value_rate": 0.0}})))
    assert rows(signal)[("n", "NullValueRate")] == (0.25, 0.25, False)
    assert signal.status == "passed"


def test_t_is_added_to_the_baseline_rate(tmp_path: Path, run_signals: Runner) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {"n": pa.array([1.0, 2.0, 3.0, 4.0])})
    prod = write_parquet(tmp_path / "prod.parquet", {"n": pa.array([1.0, 9.0, 3.0, 4.0])})
    signal = only(run_signals(quality(ref, prod, {"numerical": {"out_of_bounds_rate": 0.3}})))
    assert rows(signal) == {("n", "OutOfBoundsRate"): (0.25, 0.3, False)}


def test_type_errors_count_values_that_do_not_cast_to_the_baseline_type(tmp_path: Path,
                                                                        run_signals: Runner) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {"x": [1.0, 2.0, 3.0, 4.0]})
    folder = write_collected(tmp_path / "collected", [(NOW - HOUR, "r", [{"x": 2.0}, {"x": "n/a"}, {"x": 3.5},
                                                                        {"x": "4"}])])
    signals = {"q": {"type": "data_quality", "production_data": data(folder), "reference_data": data(ref),
                     "features": ["x"]}}
    got = rows(only(run_signals(signals)))
    assert got[("x", "DataTypeErrorRate")] == (0.25, 0.0, True)
    assert got[("x", "NullValueRate")] == (0.0, 0.0, False)


def test_a_column_with_no_baseline_value_is_reported_not_crashed(tmp_path: Path, run_signals: Runner) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {"e": pa.nulls(3), "n": [1.0, 2.0, 3.0]})
    prod = write_parquet(tmp_path / "prod.parquet", {"e": [1.0, None, 2.0], "n": [1.0, 2.0, 3.0]})
    signal = only(run_signals(quality(ref, prod)))
    status = {f.name: f.status for f in signal.features}
    assert status == {"e": "all_null", "n": "ok"}


@pytest.mark.parametrize("listed", [["n", "ghost"]])
def test_listed_features_outside_the_data_are_reported(tmp_path: Path, run_signals: Runner,
                                                       listed: list[str]) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {"n": [1.0, 2.0], "m": [1.0, 2.0]})
    prod = write_parquet(tmp_path / "prod.parquet", {"n": [1.0, 2.0], "m": [1.0, 2.0]})
    signals = {"q": {"type": "data_quality", "production_data": data(prod), "reference_data": data(ref),
                     "features": listed}}
    signal = only(run_signals(signals))
    assert [f.name for f in signal.features] == ["n"] and "ghost" in signal.skipped
