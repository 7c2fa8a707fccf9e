"""Worker side of no-code scoring: reading a file into the model's input and writing its predictions as CSV rows.

pandas, numpy and pyarrow are imported inside the functions (see the package's docstring). CSV files are read with
pandas' pyarrow engine when pyarrow is installed (several times faster than the C engine on wide files), Parquet
with ``pandas.read_parquet``. Predictions are written as Azure's ``row,prediction,file`` rows without a header; a
prediction with several values per row (a 2-D array, a DataFrame of several columns, a dict of named outputs) is
written as one JSON text per row in the ``prediction`` field (a list, or an object keyed by column name), so every
line keeps three fields.
"""

from __future__ import annotations

import json
from typing import IO, Any

TABULAR = (".csv", ".parquet", ".pqt")
IMAGES = (".png", ".jpg", ".jpeg", ".tiff", ".bmp", ".gif")
_INTEGERS = {"long": "int64", "integer": "int32"}
_FLOATS = {"double": "float64", "float": "float32"}


class FileError(Exception):
    """One file cannot be scored; the message says why (a column, a shape) and is reported for that file alone."""


def has_pyarrow() -> bool:
    """Whether pyarrow can be imported in this interpreter."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def read_frame(path: str, fast_csv: bool) -> Any:
    """Read a ``.csv``, ``.parquet`` or ``.pqt`` file into a DataFrame."""
    import pandas as pd  # type: ignore[import-untyped]

    lower = path.lower()
    try:
        if lower.endswith(".csv"):
            return pd.read_csv(path, engine="pyarrow") if fast_csv else pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as exc:
        raise FileError(f"cannot be read as a table: {type(exc).__name__}: {exc}") from None


def signature_columns(model: Any) -> list[tuple[str, str, bool]] | None:
    """``(name, type, required)`` of a loaded pyfunc model's ColSpec input signature, or None (tensors, none)."""
    schema = model.metadata.get_input_schema()
    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return None
    return [(spec.name, getattr(spec.type, "name", str(spec.type)), bool(getattr(spec, "required", True)))
            for spec in schema.inputs]


def apply_signature(frame: Any, columns: list[tuple[str, str, bool]]) -> Any:
    """The signature's columns of ``frame``, cast to their types; one that cannot be cast raises :class:`FileError`.

    Columns the signature does not name are left out, as ``predict`` would (it logs a warning per call for them).
    """
    missing = [name for name, _, required in columns if required and name not in frame.columns]
    if missing:
        raise FileError(f"column(s) {', '.join(repr(m) for m in missing)} missing; the model's signature asks for "
                        f"{', '.join(name for name, _, _ in columns)}")
    import pandas as pd

    typed = {}
    changed = False
    for name, kind, _ in columns:
        if name in frame.columns:
            column = frame[name]
            try:
                typed[name] = _cast(column, kind)
            except (ValueError, TypeError, OverflowError) as exc:
                raise FileError(f"column {name!r} cannot be read as {kind} (the model's signature): {exc}") from None
            changed = changed or typed[name] is not column
    if changed:
        return pd.DataFrame(typed)
    return frame if len(typed) == len(frame.columns) else frame[list(typed)]  # most files: already typed


def _cast(column: Any, kind: str) -> Any:
    import numpy as np
    import pandas as pd

    dtype = column.dtype
    if dtype.name == _INTEGERS.get(kind, _FLOATS.get(kind)):
        return column
    if kind in _INTEGERS:
        if dtype.kind in "iub":
            return column.astype(_INTEGERS[kind], copy=False)
        values = column if dtype.kind == "f" else pd.to_numeric(column, errors="raise")
        if values.isna().any():
            raise ValueError(f"row {int(np.flatnonzero(values.isna().to_numpy())[0])} is empty")
        fractional = values.to_numpy() != np.floor(values.to_numpy())
        if fractional.any():
            row = int(np.flatnonzero(fractional)[0])
            raise ValueError(f"row {row} holds {values.iloc[row].item()!r}, not a whole number")
        return values.astype(_INTEGERS[kind])
    if kind in _FLOATS:
        values = column if dtype.kind in "iufb" else pd.to_numeric(column, errors="raise")
        return values.astype(_FLOATS[kind], copy=False)
    if kind == "string":
        return column if dtype.kind == "O" else column.astype(str).astype(object)
    if kind == "boolean":
        if dtype.kind == "b":
            return column
        mapping = {"true": True, "false": False, "1": True, "0": False}
        text = column.astype(str).str.strip().str.lower()
        unknown = ~text.isin(list(mapping))
        if unknown.any():
            raise ValueError(f"row {int(np.flatnonzero(unknown.to_numpy())[0])} holds "
                             f"{str(column[unknown].iloc[0])!r}, not true or false")
        return text.map(mapping).astype(bool)
    if kind == "datetime":
        return pd.to_datetime(column, errors="raise")
    return column  # binary and types mlflow adds later: left to predict()'s own enforcement


def prediction_values(prediction: Any, rows: int) -> Any:
    """One scalar (or one JSON text) per input row, from whatever ``predict`` returned."""
    import numpy as np
    import pandas as pd

    if isinstance(prediction, dict):
        prediction = pd.DataFrame({key: list(value) for key, value in prediction.items()})
    if isinstance(prediction, pd.DataFrame):
        if prediction.shape[1] == 1:
            values: Any = prediction.iloc[:, 0].to_numpy()
        else:
            values = prediction.to_json(orient="records", lines=True).splitlines()
    elif isinstance(prediction, pd.Series):
        values = prediction.to_numpy()
    else:
        array = np.asarray(prediction, dtype=object if _ragged(prediction) else None)
        if array.ndim == 2 and array.shape[1] == 1:
            values = array[:, 0]
        elif array.ndim >= 2 or (array.dtype == object and any(isinstance(v, list | tuple) for v in array[:1])):
            values = [json.dumps(row, default=str) for row in array.tolist()]
        else:
            values = array
    if len(values) != rows:
        raise FileError(f"predict() returned {len(values)} values for {rows} rows")
    return values


def _ragged(prediction: Any) -> bool:
    return isinstance(prediction, list) and bool(prediction) and isinstance(prediction[0], list | tuple) and len(
        {len(row) for row in prediction}) > 1


def prediction_frame(prediction: Any, rows: int, name: str) -> Any:
    """The ``row, prediction, file`` frame of one file's prediction."""
    import numpy as np
    import pandas as pd

    values = prediction_values(prediction, rows)
    return pd.DataFrame({"row": np.arange(rows), "prediction": values, "file": name})


def write_rows(result: Any, handle: IO[str]) -> int:
    """Append what a scoring script's ``run()`` returned, without a header; return how many rows were written.

    A DataFrame is written as CSV rows of its values (column names and index dropped); a Series as one value per
    line; anything iterable as one ``str()`` per element and line; any other object as one ``str()`` line.
    """
    if _is_frame(result):
        result.to_csv(handle, header=False, index=False)
        return len(result)
    if type(result).__name__ == "Series" and hasattr(result, "to_frame"):
        result.to_frame().to_csv(handle, header=False, index=False)
        return len(result)
    if isinstance(result, str | bytes) or not hasattr(result, "__iter__"):
        handle.write(f"{result}\n")
        return 1
    count = 0
    for item in result:
        text = str(item)
        handle.write(text if text.endswith("\n") else text + "\n")
        count += 1
    return count


def _is_frame(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "to_csv")
