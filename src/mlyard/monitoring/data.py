"""Reading a window of reference or production data as a table that is read one column batch at a time.

Sources: CSV, Parquet and JSON Lines files or folders of them, MLTable folders (an ``MLTable`` file naming
``paths`` as file/folder/pattern and read with ``read_delimited``/``read_parquet``/``read_json_lines``), and the
data collector's hourly folders (``collector.py``). Everything that is not Parquet already is converted once,
file by file, into Parquet parts in a scratch folder; every later read projects columns from Parquet, so a window
larger than memory is processed a few columns at a time.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlyard.core.errors import InvalidRequestError
from mlyard.monitoring import collector
from mlyard.monitoring.windows import WHOLE, TimeWindow

FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
           ".json": "jsonl"}
MLTABLE_READERS = {"read_delimited": "csv", "read_parquet": "parquet", "read_json_lines": "jsonl"}


class WindowTable:
    """One window of data: Parquet parts on disk and the schema they share (types promoted across parts).

    Reads go through ``pyarrow.parquet`` file by file (``pyarrow.dataset`` would import pandas, a quarter of a
    second of start-up a monitor job does not need).
    """

    def __init__(self, label: str, parts: list[Path], notes: list[str] | None = None) -> None:
        self.label = label
        self.notes = list(notes or [])
        self._files = [pq.ParquetFile(part, read_dictionary=_string_columns(part)) for part in parts]
        schemas = [f.schema_arrow for f in self._files]
        self.schema: pa.Schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else pa.schema([])
        self.num_rows: int = sum(f.metadata.num_rows for f in self._files)
        self._rows: pa.ChunkedArray | None = None  # a data segment's row filter

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def may_have_nulls(self, names: Iterable[str]) -> bool:
        """False when every file's statistics say the named columns hold no null (NaN is not counted there)."""
        wanted = set(names)
        for file in self._files:
            meta = file.metadata
            for group in range(meta.num_row_groups):
                row_group = meta.row_group(group)
                for index in range(row_group.num_columns):
                    chunk = row_group.column(index)
                    if chunk.path_in_schema not in wanted:
                        continue
                    stats = chunk.statistics
                    if stats is None or not stats.has_null_count or stats.null_count:
                        return True
            if wanted - set(file.schema_arrow.names):
                return True  # a part without the column: nulls there
        return False

    def read(self, columns: Iterable[str]) -> pa.Table:
        """The named columns, every row of the window."""
        names = list(columns)
        unknown = [name for name in names if name not in self.schema.names]
        if unknown:
            raise InvalidRequestError(f"{self.label}: no column {', '.join(map(repr, unknown))} in the data; columns: "
                                      f"{', '.join(self.schema.names)}")
        target = pa.schema([self.schema.field(name) for name in names])
        tables = []
        for file in self._files:
            present = [name for name in names if name in file.schema_arrow.names]
            table = file.read(columns=present, use_threads=True)
            for name in names:
                if name not in present:
                    table = table.append_column(name, pa.nulls(table.num_rows, target.field(name).type))
            tables.append(table.select(names).cast(target))
        if not tables:
            return target.empty_table()
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        return table if self._rows is None else table.filter(self._rows)

    def segment(self, column: str, values: Iterable[str]) -> WindowTable:
        """The rows whose ``column`` (as text) is one of ``values``: a signal's ``data_segment``."""
        import copy

        import pyarrow.compute as pc

        if column not in self.schema.names:
            raise InvalidRequestError(f"{self.label}: data_segment.feature_name '{column}' is not a column; "
                                      f"columns: {', '.join(self.schema.names)}")
        present = self.read([column])[column]
        if pa.types.is_dictionary(present.type):
            present = pc.cast(present, present.type.value_type)
        text = present if pa.types.is_string(present.type) else pc.cast(present, pa.string())
        rows = pc.fill_null(pc.is_in(text, value_set=pa.array([str(v) for v in values], pa.string())), False)
        view = copy.copy(self)
        view._rows = rows
        view.num_rows = int(pc.sum(rows).as_py() or 0)
        view.notes = [*self.notes, f"{self.label}: rows where {column} is one of {', '.join(map(str, values))}: "
                                   f"{view.num_rows} of {self.num_rows}"]
        return view


def decoded(table: pa.Table) -> pa.Table:
    """``table`` with dictionary-encoded columns cast back to plain values (joins need that)."""
    fields = [pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields))


def _string_columns(part: Path) -> list[str]:
    """String columns are read dictionary-encoded: category counts and memory both profit."""
    schema = pq.read_schema(part)
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


def open_window(path: Path, *, label: str, window: TimeWindow, scratch: Path,
                timestamp_column: str | None = None) -> WindowTable:
    """Open ``path`` (a file, a folder, an MLTable folder or collector folders) for ``window``.

    ``window`` filters collector rows by their ``time``; other data by ``timestamp_column`` when one is named,
    and is otherwise ignored (the whole asset is used, and a note says so).
    """
    if not path.exists():
        raise InvalidRequestError(f"{label}: data path {path} does not exist; resolve the data input to a local "
                                  "file or folder", details={"path": str(path)})
    scratch.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if path.is_dir() and collector.looks_like_collector(path):
        return WindowTable(label, _collector_parts(path, window, scratch), notes)
    files = _mltable_files(path) if (path / "MLTable").is_file() else _data_files(path)
    if not files:
        raise InvalidRequestError(f"{label}: no CSV, Parquet or JSONL files under {path}", details={"path": str(path)})
    parts = [part for index, (file, fmt) in enumerate(files) for part in _to_parquet(file, fmt, scratch, index)]
    if window != WHOLE:
        if timestamp_column:
            parts = _filter_time(parts, timestamp_column, window, scratch, label)
        else:
            notes.append(f"{label}: {path} is not collector data and names no timestamp column; the whole asset "
                         "is used")
    return WindowTable(label, parts, notes)


def _format_of(path: Path) -> str | None:
    return FORMATS.get(path.suffix.lower())


def _data_files(path: Path) -> list[tuple[Path, str]]:
    if path.is_file():
        fmt = _format_of(path)
        if fmt is None:
            raise InvalidRequestError(f"{path}: unknown data format '{path.suffix}'; expected one of "
                                      f"{', '.join(sorted(FORMATS))}", details={"path": str(path)})
        return [(path, fmt)]
    found = [(p, fmt) for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith((".", "_"))
             and (fmt := _format_of(p)) is not None]
    kinds = {fmt for _, fmt in found}
    if len(kinds) > 1:
        raise InvalidRequestError(f"{path}: the folder mixes data formats ({', '.join(sorted(kinds))}); keep one "
                                  "format per data input", details={"path": str(path)})
    return found


def _mltable_files(folder: Path) -> list[tuple[Path, str]]:
    import yaml

    text = (folder / "MLTable").read_text(encoding="utf-8")
    try:
        spec = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InvalidRequestError(f"{folder / 'MLTable'}: not valid YAML ({exc})") from exc
    fmt = None
    for step in spec.get("transformations") or []:
        name = next(iter(step)) if isinstance(step, dict) else step
        fmt = MLTABLE_READERS.get(str(name), fmt)
    files: list[tuple[Path, str]] = []
    for entry in spec.get("paths") or []:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise InvalidRequestError(f"{folder / 'MLTable'}: paths: each entry is one of file:, folder:, pattern:")
        kind, value = next(iter(entry.items()))
        target = (folder / str(value)).resolve() if "://" not in str(value) else None
        if target is None:
            raise InvalidRequestError(f"{folder / 'MLTable'}: paths: {value} is not a local path; mlyard reads "
                                      "MLTable paths relative to the MLTable folder")
        if kind == "file":
            matches = [target]
        elif kind == "folder":
            matches = [p for p in sorted(target.rglob("*")) if p.is_file() and not p.name.startswith((".", "_"))]
        elif kind == "pattern":
            matches = [Path(p) for p in sorted(glob.glob(str(target), recursive=True)) if Path(p).is_file()]
        else:
            raise InvalidRequestError(f"{folder / 'MLTable'}: paths: unknown entry '{kind}'; expected file, folder "
                                      "or pattern")
        for match in matches:
            match_format = fmt or _format_of(match)
            if match_format is not None:
                files.append((match, match_format))
    return files


def _to_parquet(path: Path, fmt: str, scratch: Path, index: int) -> Iterator[Path]:
    """The file itself when Parquet; otherwise its rows converted to one Parquet part in ``scratch``."""
    if fmt == "parquet":
        yield path
        return
    target = scratch / f"part-{index:06d}.parquet"
    try:
        if fmt == "csv":
            _csv_to_parquet(path, target)
        else:
            pq.write_table(_jsonl_table(path), target)
    except (pa.ArrowInvalid, ValueError) as exc:
        if isinstance(exc, InvalidRequestError):
            raise
        raise InvalidRequestError(f"{path}: cannot read it as {fmt} ({exc})", details={"path": str(path)}) from exc
    yield target


def _csv_to_parquet(path: Path, target: Path) -> None:
    """Stream a CSV into Parquet block by block (a file larger than memory works); when a later block does not
    fit the types inferred from the first (an integer column that turns decimal, say), read it whole instead."""
    import pyarrow.csv as pcsv

    parse = pcsv.ParseOptions(delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        with pcsv.open_csv(path, parse_options=parse) as reader, \
                pq.ParquetWriter(target, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
        return
    except pa.ArrowInvalid:
        target.unlink(missing_ok=True)
    pq.write_table(pcsv.read_csv(path, parse_options=parse), target)


def _jsonl_table(path: Path) -> pa.Table:
    import json

    with path.open("rb") as handle:
        first = next((line for line in handle if line.strip()), b"")
    if first and collector.is_envelope(json.loads(first)):
        return rows_table(collector.envelope_rows(path, WHOLE))
    import pyarrow.json as pjson

    return pjson.read_json(path)


def rows_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """Row dicts as a table; a column whose values mix types (a string among numbers) is kept as strings."""
    columns: dict[str, list[Any]] = {}
    count = 0
    for row in rows:
        for name in row.keys() - columns.keys():
            columns[name] = [None] * count
        for name, values in columns.items():
            values.append(row.get(name))
        count += 1
    arrays = {}
    for name, values in columns.items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[name] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    return pa.table(arrays) if arrays else pa.table({})


def _collector_parts(folder: Path, window: TimeWindow, scratch: Path) -> list[Path]:
    parts = []
    for index, path in enumerate(collector.window_files(folder, window)):
        table = rows_table(collector.envelope_rows(path, window))
        if table.num_rows:
            target = scratch / f"collected-{index:06d}.parquet"
            pq.write_table(table, target)
            parts.append(target)
    return parts


def _filter_time(parts: list[Path], column: str, window: TimeWindow, scratch: Path, label: str) -> list[Path]:
    import pyarrow.compute as pc

    kept = []
    for index, part in enumerate(parts):
        table = pq.read_table(part)
        if column not in table.column_names:
            raise InvalidRequestError(f"{label}: timestamp column '{column}' is not in {part.name}; columns: "
                                      f"{', '.join(table.column_names)}")
        moments = table[column]
        if not pa.types.is_timestamp(moments.type):
            moments = pc.cast(moments, pa.timestamp("us", tz="UTC"))
        mask = pa.array([True] * table.num_rows)
        if window.start is not None:
            mask = pc.and_(mask, pc.greater_equal(moments, pa.scalar(window.start, pa.timestamp("us", tz="UTC"))))
        if window.end is not None:
            mask = pc.and_(mask, pc.less(moments, pa.scalar(window.end, pa.timestamp("us", tz="UTC"))))
        target = scratch / f"windowed-{index:06d}.parquet"
        pq.write_table(table.filter(mask), target)
        kept.append(target)
    return kept
