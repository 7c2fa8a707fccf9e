"""Column batches of two windows: null masks, and numpy arrays or category counts per column.

Azure drops, per window, every row with a null (or NaN) in any selected column before computing drift
(``null_policy="row"``, the default); ``null_policy="column"`` drops nulls per column, as Evidently does. A column
with no value at all in a window is set aside first (status ``all_null``) so that it cannot empty the others.
Batches read in the first pass are kept for the second while they fit ``cache_bytes``; beyond that they are read
again, so memory stays bounded by a batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlyard.monitoring.data import WindowTable
from mlyard.monitoring.kernels import FloatArray

NullPolicy = Literal["row", "column"]
BoolArray = np.ndarray


def batches(names: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(names), size):
        yield list(names[start:start + size])


_NUMPY_TYPES = {"double": np.float64, "float": np.float32, "halffloat": np.float16, "int8": np.int8,
                "int16": np.int16, "int32": np.int32, "int64": np.int64, "uint8": np.uint8, "uint16": np.uint16,
                "uint32": np.uint32, "uint64": np.uint64}


def _bits(buffer: pa.Buffer, offset: int, length: int) -> BoolArray:
    return np.unpackbits(np.frombuffer(buffer, dtype=np.uint8), bitorder="little")[offset:offset + length] \
        .astype(bool)


def _chunk(chunk: pa.Array) -> np.ndarray:
    """One primitive chunk straight from its Arrow buffers (nulls as NaN, as floats); others through pyarrow.

    ``Array.to_numpy`` imports pandas, a quarter of a second of start-up a monitor run does not need.
    """
    name = str(chunk.type)
    if pa.types.is_boolean(chunk.type):
        values: np.ndarray = _bits(chunk.buffers()[1], chunk.offset, len(chunk))
    elif name in _NUMPY_TYPES:
        values = np.frombuffer(chunk.buffers()[1], dtype=_NUMPY_TYPES[name])[chunk.offset:chunk.offset + len(chunk)]
    else:
        return np.asarray(chunk.to_numpy(zero_copy_only=False))
    if chunk.null_count:
        values = values.astype(np.float64)
        values[~_bits(chunk.buffers()[0], chunk.offset, len(chunk))] = np.nan
    return values


def to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The values as one numpy array (nulls of a numeric column as NaN), chunk by chunk."""
    if isinstance(column, pa.Array):
        return _chunk(column)
    chunks = [_chunk(chunk) for chunk in column.chunks]
    if not chunks:
        return np.empty(0, dtype=np.float64)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def valid_mask(column: pa.ChunkedArray | pa.Array) -> BoolArray:
    """True where a value is present (not null and, for floats, not NaN)."""
    if pa.types.is_floating(column.type):
        return ~np.isnan(to_numpy(column).astype(np.float64, copy=False))
    if column.null_count == 0:
        return np.ones(len(column), dtype=bool)
    return to_numpy(pc.is_valid(column)).astype(bool)


def to_float(column: pa.ChunkedArray, keep: BoolArray | None) -> FloatArray:
    """The column as float64: the rows of ``keep`` (the complete rows), or every non-null, non-NaN value."""
    if not pa.types.is_floating(column.type):
        column = pc.cast(column, pa.float64())  # integers, booleans; a string overridden to numerical must parse
    values = to_numpy(column).astype(np.float64, copy=False)  # nulls become NaN
    if keep is not None:
        rows: FloatArray = values[keep]
        return rows
    missing = np.isnan(values)
    kept: FloatArray = values[~missing] if missing.any() else values
    return kept


def category_counts(column: pa.ChunkedArray, keep: BoolArray | None) -> dict[str, int]:
    """Counts per category, keyed by ``str(value)`` as Azure keys them; nulls dropped."""
    if keep is not None:
        column = column.filter(pa.array(keep))
    counted = pc.value_counts(column.drop_null())
    values = counted.field("values").to_pylist()
    counts = counted.field("counts").to_pylist()
    out: dict[str, int] = {}
    for value, count in zip(values, counts, strict=True):
        key = str(value)
        out[key] = out.get(key, 0) + int(count)
    return out


@dataclass
class Masks:
    """Per window: rows kept (None: all), the kept count, and the columns with no value at all."""

    baseline: BoolArray | None
    production: BoolArray | None
    n_baseline: int
    n_production: int
    all_null: dict[str, str] = field(default_factory=dict)


class BatchReader:
    """Reads column batches of both windows, keeping what the first pass read while it fits ``cache_bytes``."""

    def __init__(self, baseline: WindowTable, production: WindowTable, cache_bytes: int) -> None:
        self.baseline, self.production = baseline, production
        self.cache_bytes = cache_bytes
        self._cache: dict[str, tuple[pa.ChunkedArray, pa.ChunkedArray]] = {}
        self._cached = 0

    def read(self, names: Sequence[str]) -> dict[str, tuple[pa.ChunkedArray, pa.ChunkedArray]]:
        missing = [n for n in names if n not in self._cache]
        out = {n: self._cache[n] for n in names if n in self._cache}
        if missing:
            left, right = self.baseline.read(missing), self.production.read(missing)
            for name in missing:
                out[name] = (left[name], right[name])
        return out

    def keep(self, columns: dict[str, tuple[pa.ChunkedArray, pa.ChunkedArray]]) -> None:
        for name, pair in columns.items():
            size = pair[0].nbytes + pair[1].nbytes
            if self._cached + size <= self.cache_bytes:
                self._cache[name] = pair
                self._cached += size

    def forget(self, names: Sequence[str]) -> None:
        for name in names:
            pair = self._cache.pop(name, None)
            if pair is not None:
                self._cached -= pair[0].nbytes + pair[1].nbytes


def null_masks(reader: BatchReader, names: Sequence[str], policy: NullPolicy, batch_size: int) -> Masks:
    """Pass 1: the all-null columns, and for ``row`` the complete-row mask of each window."""
    base_keep = np.ones(reader.baseline.num_rows, dtype=bool) if policy == "row" else None
    prod_keep = np.ones(reader.production.num_rows, dtype=bool) if policy == "row" else None
    all_null: dict[str, str] = {}
    for batch in batches(names, batch_size):
        columns = reader.read(batch)
        reader.keep(columns)
        for name, (left, right) in columns.items():
            valid_b, valid_p = valid_mask(left), valid_mask(right)
            if not valid_b.any() or not valid_p.any():
                where = " and ".join(w for w, v in (("baseline", valid_b), ("production", valid_p)) if not v.any())
                all_null[name] = f"no value in the {where} window: nothing to compare"
                continue
            if base_keep is not None and prod_keep is not None:
                base_keep &= valid_b
                prod_keep &= valid_p
    n_b = int(base_keep.sum()) if base_keep is not None else reader.baseline.num_rows
    n_p = int(prod_keep.sum()) if prod_keep is not None else reader.production.num_rows
    reader.forget(list(all_null))
    return Masks(base_keep, prod_keep, n_b, n_p, all_null)
