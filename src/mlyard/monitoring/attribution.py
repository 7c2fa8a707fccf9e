"""Feature importance by a surrogate model, and feature attribution drift as NDCG (reference §1.7).

Azure fits LightGBM (200 trees, depth 5) and explains it with SHAP. LightGBM and SHAP are not dependencies of
mlyard, so the documented surrogate is scikit-learn's random forest (100 trees, depth 8, ``random_state=777``)
fitted on at most 20,000 rows of the window, and its impurity-based (MDI) ``feature_importances_``. Numerical
features are used as floats with nulls set to the median; categorical ones as ordinal codes (nulls a code of their
own). Rankings agree with SHAP on strong features but are not the same numbers: use thresholds on NDCG, which only
compares rankings. NDCG is ``sklearn.metrics.ndcg_score([baseline], [production])`` with both importance vectors
ordered by feature name, as Azure computes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlyard.monitoring.columns import to_numpy
from mlyard.monitoring.features import Kind

SAMPLE_ROWS = 20_000
SEED = 777


def _matrix(table: pa.Table, features: Sequence[str], kinds: Mapping[str, Kind]) -> np.ndarray:
    columns = []
    for name in features:
        column = table[name]
        if kinds[name] == "numerical":
            if not pa.types.is_floating(column.type):
                column = pc.cast(column, pa.float64())
            values = to_numpy(column).astype(np.float64, copy=False)
            present = ~np.isnan(values)
            fill = float(np.median(values[present])) if present.any() else 0.0
            columns.append(np.where(present, values, fill))
        else:
            text = np.array(["\0null" if v is None else str(v) for v in column.to_pylist()], dtype=object)
            columns.append(np.unique(text, return_inverse=True)[1].astype(np.float64))
    return np.column_stack(columns) if columns else np.empty((table.num_rows, 0))


def surrogate_importance(table: pa.Table, features: Sequence[str], kinds: Mapping[str, Kind], target: str,
                         classification: bool) -> dict[str, float]:
    """Impurity importance of each feature for predicting ``target`` (rows without a target are dropped)."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    table = table.filter(pc.is_valid(table[target]))
    if table.num_rows > SAMPLE_ROWS:
        rows = np.random.default_rng(SEED).choice(table.num_rows, SAMPLE_ROWS, replace=False)
        table = table.take(pa.array(np.sort(rows)))
    if table.num_rows < 2 or not features:
        raise ValueError(f"feature importance needs at least 2 rows with a value of the target column '{target}'")
    x = _matrix(table, features, kinds)
    labels = table[target].to_pylist()
    if classification:
        y = np.array([str(v) for v in labels], dtype=object)
        model = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=SEED, n_jobs=2)
    else:
        y = np.asarray(labels, dtype=np.float64)
        model = RandomForestRegressor(n_estimators=100, max_depth=8, random_state=SEED, n_jobs=2)
    model.fit(x, y)
    return {name: float(value) for name, value in zip(features, model.feature_importances_, strict=True)}


def ndcg(baseline: Mapping[str, float], production: Mapping[str, float]) -> float:
    """NDCG of the production ranking against the baseline importances, features ordered by name."""
    from sklearn.metrics import ndcg_score

    names = sorted(baseline.keys() & production.keys())
    if len(names) < 2:
        raise ValueError("NDCG needs at least two features with an importance in both windows")
    return float(ndcg_score([[baseline[n] for n in names]], [[production[n] for n in names]]))
