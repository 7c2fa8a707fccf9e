"""The attrition example's committed CSV is exactly what the generator writes, so the two never drift apart."""

from __future__ import annotations

from pathlib import Path

import yaml

from mlyard.datasets.attrition import write_csv

ROOT = Path(__file__).resolve().parents[2]
DATA_YML = ROOT / "examples" / "attrition" / "mlops" / "azureml" / "train" / "data.yml"
COMMITTED = ROOT / "examples" / "attrition" / "data" / "employee-attrition.csv"
REGENERATE = ("python -m mlyard.datasets.attrition --rows 1470 --seed 0 "
              "--out examples/attrition/data/employee-attrition.csv")


def test_the_data_asset_points_at_the_committed_csv() -> None:
    spec = yaml.safe_load(DATA_YML.read_text())
    assert spec["type"] == "uri_file" and spec["name"] == "employee-attrition"
    assert (DATA_YML.parent / spec["path"]).resolve() == COMMITTED


def test_the_committed_csv_is_the_generators_output(tmp_path: Path) -> None:
    fresh = write_csv(tmp_path / "employee-attrition.csv", rows=1470, seed=0)
    assert COMMITTED.read_bytes() == fresh.read_bytes(), f"the committed CSV drifted; regenerate it: {REGENERATE}"
