"""A synthetic employee-attrition table shaped like IBM's HR Analytics Employee Attrition & Performance data.

The 35 columns, their order, category values and ranges follow the public IBM sample (1,470 rows, 16% attrition).
Rows come from a small causal story: experience follows age, job level follows experience, the role is one that
exists at that level, income follows level and experience, tenure never exceeds experience, and whether someone
leaves comes from one logistic model (over time, low income, low satisfaction and work-life balance, short tenure,
youth, frequent travel, being single, a long commute).

The ``production`` variant shifts exactly the four features of ``PRODUCTION_SHIFTS``:

* MonthlyIncome x0.85 (a pay freeze against the market; still floored at 1,009);
* OverTime "Yes" share 28.3% -> 45%;
* DistanceFromHome +5 (an office move; still capped at 29);
* BusinessTravel "Travel_Frequently" share 18.8% -> 30%, taken from "Travel_Rarely" (Non-Travel stays 10.2%).

Both variants consume the same random numbers, so for one seed every other column is identical, and Attrition
(about 16% -> 24%) rises only through the same logistic model. Age is deliberately not shifted: it drives
experience, level, income and tenure, so moving it would drift a dozen columns at once.

numpy and pandas are imported inside the functions: they come with mlyard's ``ml`` extra, not the core install.
Command line: ``python -m mlyard.datasets.attrition --rows 1470 --seed 0 --variant training --out attrition.csv``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

Variant = Literal["training", "production"]

COLUMNS = [
    "Age", "Attrition", "BusinessTravel", "DailyRate", "Department", "DistanceFromHome", "Education",
    "EducationField", "EmployeeCount", "EmployeeNumber", "EnvironmentSatisfaction", "Gender", "HourlyRate",
    "JobInvolvement", "JobLevel", "JobRole", "JobSatisfaction", "MaritalStatus", "MonthlyIncome", "MonthlyRate",
    "NumCompaniesWorked", "Over18", "OverTime", "PercentSalaryHike", "PerformanceRating", "RelationshipSatisfaction",
    "StandardHours", "StockOptionLevel", "TotalWorkingYears", "TrainingTimesLastYear", "WorkLifeBalance",
    "YearsAtCompany", "YearsInCurrentRole", "YearsSinceLastPromotion", "YearsWithCurrManager",
]
CATEGORICAL = ["Attrition", "BusinessTravel", "Department", "EducationField", "Gender", "JobRole", "MaritalStatus",
               "Over18", "OverTime"]

PRODUCTION_SHIFTS: dict[str, str] = {
    "MonthlyIncome": "x0.85",
    "OverTime": "Yes share 28.3% -> 45%",
    "DistanceFromHome": "+5 (capped at 29)",
    "BusinessTravel": "Travel_Frequently share 18.8% -> 30%, taken from Travel_Rarely",
}
_OVERTIME_SHARE = {"training": 0.283, "production": 0.45}
_FREQUENT_TRAVEL_SHARE = {"training": 0.188, "production": 0.30}
_NON_TRAVEL_SHARE = 0.102
_INCOME_FACTOR = {"training": 1.0, "production": 0.85}
_DISTANCE_OFFSET = {"training": 0, "production": 5}

_DEPARTMENTS = ["Research & Development", "Sales", "Human Resources"]
# (department, role, count in the IBM data): managers exist in every department.
_ROLES = [
    ("Research & Development", "Research Scientist", 292), ("Research & Development", "Laboratory Technician", 259),
    ("Research & Development", "Manufacturing Director", 145),
    ("Research & Development", "Healthcare Representative", 131),
    ("Research & Development", "Research Director", 80), ("Research & Development", "Manager", 54),
    ("Sales", "Sales Executive", 326), ("Sales", "Sales Representative", 83), ("Sales", "Manager", 37),
    ("Human Resources", "Human Resources", 52), ("Human Resources", "Manager", 11),
]
_LEVELS = {  # role -> (lowest, highest) JobLevel seen for it
    "Research Scientist": (1, 3), "Laboratory Technician": (1, 3), "Human Resources": (1, 3),
    "Sales Representative": (1, 2), "Sales Executive": (2, 4), "Manufacturing Director": (2, 4),
    "Healthcare Representative": (2, 4), "Research Director": (3, 5), "Manager": (3, 5),
}
_FIELDS = ["Life Sciences", "Medical", "Marketing", "Technical Degree", "Other", "Human Resources"]
_FIELD_WEIGHTS = {  # department -> weights over _FIELDS
    "Research & Development": [440, 363, 0, 94, 64, 0],
    "Sales": [150, 88, 159, 35, 14, 0],
    "Human Resources": [16, 13, 0, 4, 3, 27],
}
_LEVEL_THRESHOLDS = [8, 16, 21, 26]  # experience (+ noise) at which JobLevel steps up: 37/36/15/7/5% as in IBM's
_INCOME_BASE = [2600, 5000, 9000, 14200, 17800]  # by JobLevel, before the experience premium
_INTERCEPT = -2.6  # puts training attrition at ~16%, as in the IBM data


def _pick(u: Any, weights: Sequence[float]) -> Any:
    """Index into ``weights`` for each uniform draw in ``u`` (inverse CDF, so shares move monotonically)."""
    import numpy as np

    cdf = np.cumsum(weights) / float(np.sum(weights))
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(weights) - 1)


def generate(rows: int = 1470, seed: int = 0, variant: Variant = "training") -> pd.DataFrame:
    """Draw an attrition table with the IBM data set's 35 columns.

    Args:
        rows: number of employees (rows).
        seed: random seed; the same (rows, seed, variant) always gives the same frame.
        variant: ``"training"``, or ``"production"`` for the shifted features of ``PRODUCTION_SHIFTS``.

    Returns:
        A DataFrame with ``COLUMNS`` in order: int64 numbers, str categories, ``Attrition`` "Yes"/"No".
    """
    import numpy as np
    import pandas as pd

    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if variant not in _OVERTIME_SHARE:
        raise ValueError(f"variant must be 'training' or 'production', got {variant!r}")
    rng = np.random.default_rng(seed)
    n = rows
    # Every draw happens in the same order for both variants; the variant only changes how draws become values.
    u = rng.random((13, n))
    noise = rng.normal(size=(3, n))
    shares = rng.beta([[3.0], [2.0], [3.0], [3.0], [1.0]], [[2.0], [2.0], [2.0], [2.0], [2.2]], size=(5, n))

    department = np.array(_DEPARTMENTS)[_pick(u[0], [961, 446, 63])]
    age = np.clip(np.rint(36.9 + 9.1 * noise[0]), 18, 60).astype(np.int64)
    education = _pick(u[1], [170, 282, 572, 398, 48]) + 1
    field = np.empty(n, dtype=object)
    for dept, weights in _FIELD_WEIGHTS.items():
        mask = department == dept
        field[mask] = np.array(_FIELDS)[_pick(u[2][mask], weights)]

    total_years = np.minimum(np.rint((age - 18) * shares[0]), 40).astype(np.int64)
    companies = np.minimum(rng.poisson(0.5 + 0.2 * total_years), 9)
    years_at = np.where(companies <= 1, total_years, np.rint(total_years * shares[1])).astype(np.int64)
    in_role = np.minimum(np.rint(years_at * shares[2]), 18).astype(np.int64)
    with_manager = np.minimum(np.rint(years_at * shares[3]), 17).astype(np.int64)
    since_promotion = np.minimum(np.rint(years_at * shares[4]), 15).astype(np.int64)

    # Level follows experience (with noise); the role is then one that exists at that level in that department.
    # Sales reaches a level sooner than R&D, so sales representatives stay the minority of Sales they are.
    head_start = np.select([department == "Sales", department == "Human Resources"], [4, 0], -1)
    seniority = total_years + 4 * noise[1] + head_start
    level = (1 + np.searchsorted(_LEVEL_THRESHOLDS, seniority)).astype(np.int64)
    role = np.empty(n, dtype=object)
    for dept in _DEPARTMENTS:
        for lvl in range(1, 6):
            mask = (department == dept) & (level == lvl)
            fits = [(r, c / (_LEVELS[r][1] - _LEVELS[r][0] + 1)) for d, r, c in _ROLES
                    if d == dept and _LEVELS[r][0] <= lvl <= _LEVELS[r][1]]
            role[mask] = np.array([r for r, _ in fits])[_pick(u[12][mask], [w for _, w in fits])]
    income = np.array(_INCOME_BASE)[level - 1] * (1 + 0.008 * total_years) * np.exp(0.18 * noise[2])
    income = np.clip(np.rint(income * _INCOME_FACTOR[variant]), 1009, 19999).astype(np.int64)

    distance = np.clip(1 + np.floor(rng.exponential(8.2, n)) + _DISTANCE_OFFSET[variant], 1, 29).astype(np.int64)
    frequent = _FREQUENT_TRAVEL_SHARE[variant]
    travel = np.where(u[3] < frequent, "Travel_Frequently",
                      np.where(u[3] >= 1 - _NON_TRAVEL_SHARE, "Non-Travel", "Travel_Rarely"))
    overtime = u[4] < _OVERTIME_SHARE[variant]
    marital = np.array(["Single", "Married", "Divorced"])[_pick(u[5], [470, 673, 327])]
    stock = np.where(marital == "Single", 0, _pick(u[6], [161, 596, 158, 85]))
    env_sat = _pick(u[7], [284, 287, 453, 446]) + 1
    job_sat = _pick(u[8], [289, 280, 442, 459]) + 1
    involvement = _pick(u[9], [83, 375, 868, 144]) + 1
    balance = _pick(u[10], [80, 344, 893, 153]) + 1
    hike = np.minimum(11 + np.floor(rng.exponential(4.7, n)), 25).astype(np.int64)
    gender = np.where(u[11] < 0.6, "Male", "Female")

    logit = (_INTERCEPT + 1.4 * overtime - 0.9 * np.log(income / 5000)
             + np.select([travel == "Travel_Frequently", travel == "Non-Travel"], [0.7, -0.6], 0.0)
             + 0.75 * (marital == "Single") - 0.2 * (stock > 0)
             - 0.3 * (job_sat - 2.7) - 0.3 * (env_sat - 2.7) - 0.3 * (balance - 2.8) - 0.35 * (involvement - 2.7)
             + 0.9 * (years_at <= 1) - 0.04 * np.minimum(years_at, 20)
             + 0.8 * (age < 25) - 0.02 * (age - 37) + 0.04 * (distance - 9) + 0.1 * (companies - 2.7))
    leaves = rng.random(n) < 1 / (1 + np.exp(-logit))

    gaps = np.where(rng.random(n) < 0.4, 2, 1)  # employee numbers have holes, as in the IBM data
    relationship = _pick(rng.random(n), [276, 303, 459, 432]) + 1
    frame = pd.DataFrame({
        "Age": age, "Attrition": np.where(leaves, "Yes", "No"), "BusinessTravel": travel,
        "DailyRate": rng.integers(102, 1500, n), "Department": department, "DistanceFromHome": distance,
        "Education": education, "EducationField": field, "EmployeeCount": 1,
        "EmployeeNumber": np.cumsum(gaps) - gaps[0] + 1, "EnvironmentSatisfaction": env_sat, "Gender": gender,
        "HourlyRate": rng.integers(30, 101, n), "JobInvolvement": involvement, "JobLevel": level, "JobRole": role,
        "JobSatisfaction": job_sat, "MaritalStatus": marital, "MonthlyIncome": income,
        "MonthlyRate": rng.integers(2094, 27000, n), "NumCompaniesWorked": companies, "Over18": "Y",
        "OverTime": np.where(overtime, "Yes", "No"), "PercentSalaryHike": hike,
        "PerformanceRating": np.where(hike >= 20, 4, 3), "RelationshipSatisfaction": relationship,
        "StandardHours": 80, "StockOptionLevel": stock, "TotalWorkingYears": total_years,
        "TrainingTimesLastYear": _pick(rng.random(n), [54, 71, 547, 491, 123, 119, 65]),
        "WorkLifeBalance": balance, "YearsAtCompany": years_at, "YearsInCurrentRole": in_role,
        "YearsSinceLastPromotion": since_promotion, "YearsWithCurrManager": with_manager,
    }, columns=COLUMNS)
    for column in COLUMNS:
        frame[column] = frame[column].astype(object if column in CATEGORICAL else np.int64)
    return frame


def write_csv(path: str | Path, rows: int = 1470, seed: int = 0, variant: Variant = "training") -> Path:
    """Write ``generate(rows, seed, variant)`` to ``path`` as CSV (no index); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    generate(rows, seed, variant).to_csv(out, index=False)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlyard.datasets.attrition",
                                     description="Write a synthetic IBM-style employee-attrition CSV.")
    parser.add_argument("--rows", type=int, default=1470, help="number of rows (default 1470)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--variant", choices=["training", "production"], default="training",
                        help="'production' shifts: " + "; ".join(
                            f"{k} {v}" for k, v in PRODUCTION_SHIFTS.items()).replace("%", "%%"))  # argparse formats %
    parser.add_argument("--out", required=True, help="CSV file to write")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    out = write_csv(args.out, rows=args.rows, seed=args.seed, variant=args.variant)
    print(f"wrote {args.rows} rows ({args.variant}, seed {args.seed}) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
