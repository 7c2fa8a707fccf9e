"""The synthetic attrition table: IBM's shape, deterministic, internally consistent, and a documented drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest

from mlyard.datasets.attrition import CATEGORICAL, COLUMNS, PRODUCTION_SHIFTS, generate, write_csv

CATEGORIES = {
    "Attrition": {"Yes", "No"},
    "BusinessTravel": {"Travel_Rarely", "Travel_Frequently", "Non-Travel"},
    "Department": {"Sales", "Research & Development", "Human Resources"},
    "EducationField": {"Life Sciences", "Medical", "Marketing", "Technical Degree", "Other", "Human Resources"},
    "Gender": {"Male", "Female"},
    "JobRole": {"Sales Executive", "Research Scientist", "Laboratory Technician", "Manufacturing Director",
                "Healthcare Representative", "Manager", "Sales Representative", "Research Director",
                "Human Resources"},
    "MaritalStatus": {"Single", "Married", "Divorced"},
    "Over18": {"Y"},
    "OverTime": {"Yes", "No"},
}
RANGES = {  # the IBM data set's min and max
    "Age": (18, 60), "DailyRate": (102, 1499), "DistanceFromHome": (1, 29), "Education": (1, 5),
    "EmployeeCount": (1, 1), "EnvironmentSatisfaction": (1, 4), "HourlyRate": (30, 100), "JobInvolvement": (1, 4),
    "JobLevel": (1, 5), "JobSatisfaction": (1, 4), "MonthlyIncome": (1009, 19999), "MonthlyRate": (2094, 26999),
    "NumCompaniesWorked": (0, 9), "PercentSalaryHike": (11, 25), "PerformanceRating": (3, 4),
    "RelationshipSatisfaction": (1, 4), "StandardHours": (80, 80), "StockOptionLevel": (0, 3),
    "TotalWorkingYears": (0, 40), "TrainingTimesLastYear": (0, 6), "WorkLifeBalance": (1, 4),
    "YearsAtCompany": (0, 40), "YearsInCurrentRole": (0, 18), "YearsSinceLastPromotion": (0, 15),
    "YearsWithCurrManager": (0, 17),
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate(rows=5000, seed=7)


def _yes(series: pd.Series) -> float:
    return float((series == "Yes").mean())


def test_columns_and_dtypes_match_the_ibm_data_set(frame: pd.DataFrame) -> None:
    assert len(COLUMNS) == 35 and list(frame.columns) == COLUMNS and len(frame) == 5000
    assert set(CATEGORIES) == set(CATEGORICAL)
    for column in COLUMNS:
        if column in CATEGORICAL:
            assert frame[column].dtype == object, column
            assert set(frame[column]) == CATEGORIES[column], column
        else:
            assert frame[column].dtype == "int64", column
    assert frame["EmployeeNumber"].is_unique and frame["EmployeeNumber"].is_monotonic_increasing
    assert frame["EmployeeNumber"].iloc[0] == 1


def test_same_seed_same_frame_other_seed_other_frame() -> None:
    pd.testing.assert_frame_equal(generate(300, seed=3), generate(300, seed=3))
    pd.testing.assert_frame_equal(generate(300, 3, "production"), generate(300, 3, "production"))
    assert not generate(300, seed=3).equals(generate(300, seed=4))


def test_values_stay_in_the_real_ranges(frame: pd.DataFrame) -> None:
    for column, (low, high) in RANGES.items():
        assert low <= frame[column].min() and frame[column].max() <= high, column


def test_careers_are_consistent(frame: pd.DataFrame) -> None:
    assert (frame["TotalWorkingYears"] <= frame["Age"] - 18).all()
    assert (frame["YearsAtCompany"] <= frame["TotalWorkingYears"]).all()
    for column in ("YearsInCurrentRole", "YearsWithCurrManager", "YearsSinceLastPromotion"):
        assert (frame[column] <= frame["YearsAtCompany"]).all(), column
    assert (frame.loc[frame["MaritalStatus"] == "Single", "StockOptionLevel"] == 0).all()
    assert ((frame["PerformanceRating"] == 4) == (frame["PercentSalaryHike"] >= 20)).all()
    managers = frame[frame["JobRole"].isin(["Manager", "Research Director"])]
    assert managers["JobLevel"].min() >= 3
    assert frame.loc[frame["JobRole"] == "Sales Representative", "JobLevel"].max() <= 2
    assert set(frame.loc[frame["Department"] == "Sales", "JobRole"]) == {
        "Sales Executive", "Sales Representative", "Manager"}


def test_income_grows_with_level_and_experience(frame: pd.DataFrame) -> None:
    by_level = frame.groupby("JobLevel")["MonthlyIncome"].median()
    assert by_level.is_monotonic_increasing and by_level[5] > 3 * by_level[1]
    assert frame["MonthlyIncome"].corr(frame["TotalWorkingYears"]) > 0.6
    assert frame["JobLevel"].corr(frame["TotalWorkingYears"]) > 0.6
    assert frame["JobLevel"].corr(frame["Age"]) > 0.4


def test_attrition_rate_and_its_drivers(frame: pd.DataFrame) -> None:
    assert 0.10 <= _yes(frame["Attrition"]) <= 0.25
    by = {column: frame.groupby(column)["Attrition"].apply(_yes) for column in
          ("OverTime", "MaritalStatus", "BusinessTravel")}
    assert by["OverTime"]["Yes"] > 1.8 * by["OverTime"]["No"]
    assert by["MaritalStatus"]["Single"] > by["MaritalStatus"]["Married"]
    assert by["BusinessTravel"]["Travel_Frequently"] > by["BusinessTravel"]["Non-Travel"]
    leavers, stayers = frame[frame["Attrition"] == "Yes"], frame[frame["Attrition"] == "No"]
    for column in ("MonthlyIncome", "JobSatisfaction", "EnvironmentSatisfaction", "YearsAtCompany", "Age"):
        assert leavers[column].mean() < stayers[column].mean(), column
    assert leavers["DistanceFromHome"].mean() > stayers["DistanceFromHome"].mean()


def test_production_shifts_exactly_the_documented_features() -> None:
    train, prod = generate(5000, seed=11), generate(5000, seed=11, variant="production")
    assert set(PRODUCTION_SHIFTS) == {"MonthlyIncome", "OverTime", "DistanceFromHome", "BusinessTravel"}
    assert prod["MonthlyIncome"].mean() == pytest.approx(0.85 * train["MonthlyIncome"].mean(), rel=0.02)
    assert _yes(train["OverTime"]) == pytest.approx(0.283, abs=0.03)
    assert _yes(prod["OverTime"]) == pytest.approx(0.45, abs=0.03)
    assert 4 <= prod["DistanceFromHome"].mean() - train["DistanceFromHome"].mean() <= 5
    frequent = {name: float((f["BusinessTravel"] == "Travel_Frequently").mean()) for name, f in
                (("train", train), ("prod", prod))}
    assert frequent["train"] == pytest.approx(0.188, abs=0.03) and frequent["prod"] == pytest.approx(0.30, abs=0.03)
    assert ((prod["BusinessTravel"] == "Non-Travel") == (train["BusinessTravel"] == "Non-Travel")).all()
    assert _yes(prod["Attrition"]) > _yes(train["Attrition"]) + 0.04
    unshifted = [c for c in COLUMNS if c not in PRODUCTION_SHIFTS and c != "Attrition"]
    pd.testing.assert_frame_equal(prod[unshifted], train[unshifted])
    # Another seed is another sample of the same population: unshifted features stay close, not equal.
    other = generate(5000, seed=12, variant="production")
    for column in ("Age", "TotalWorkingYears", "YearsAtCompany", "JobLevel", "JobSatisfaction"):
        assert other[column].mean() == pytest.approx(train[column].mean(), rel=0.05), column


def test_write_csv_and_command_line(tmp_path: Path) -> None:
    written = write_csv(tmp_path / "sub" / "a.csv", rows=50, seed=2)
    pd.testing.assert_frame_equal(pd.read_csv(written), generate(50, 2), check_dtype=False)
    out = tmp_path / "b.csv"
    proc = subprocess.run([sys.executable, "-m", "mlyard.datasets.attrition", "--rows", "40", "--seed", "2",
                           "--variant", "production", "--out", str(out)], capture_output=True, text=True, check=True)
    assert "wrote 40 rows" in proc.stdout
    pd.testing.assert_frame_equal(pd.read_csv(out), generate(40, 2, "production"), check_dtype=False)
    bad = subprocess.run([sys.executable, "-m", "mlyard.datasets.attrition", "--variant", "nope", "--out", str(out)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rows must be at least 1"):
        generate(0)
    with pytest.raises(ValueError, match="variant must be"):
        generate(10, variant="staging")  # type: ignore[arg-type]


def test_help_names_the_production_shifts(capsys: pytest.CaptureFixture[str]) -> None:
    from mlyard.datasets.attrition import PRODUCTION_SHIFTS, main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in PRODUCTION_SHIFTS)
