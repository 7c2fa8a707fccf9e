"""Reading windows: collector folders with rolling windows, CSV/JSONL/Parquet files and folders, MLTable."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mlyard.core.errors import InvalidRequestError
from mlyard.monitoring.collector import window_files
from mlyard.monitoring.data import open_window
from mlyard.monitoring.windows import WHOLE, TimeWindow, production_size_for, rolling
from tests.monitoring.conftest import HOUR, NOW, write_collected


def _collected(tmp_path: Path) -> Path:
    lines = []
    for hours_back in range(1, 50):
        moment = NOW - hours_back * HOUR + timedelta(minutes=30)
        lines.append((moment, f"req-{hours_back}", [{"x": float(hours_back), "city": "a"},
                                                    {"x": float(hours_back) + 0.5, "city": "b"}]))
    lines.append((NOW + timedelta(minutes=5), "future", [{"x": -1.0, "city": "z"}]))
    return write_collected(tmp_path / "collected", lines)


def test_a_rolling_window_reads_only_its_hours_and_rows(tmp_path: Path) -> None:
    folder = _collected(tmp_path)
    window = rolling(NOW, timedelta(days=1), timedelta(0))
    table = open_window(folder, label="p", window=window, scratch=tmp_path / "s")
    rows = table.read(["x", "city", "correlationid", "time"]).to_pylist()
    assert table.num_rows == len(rows) == 48  # 24 lines of 2 rows; the future line and older hours are out
    assert {r["correlationid"] for r in rows} == {f"req-{h}" for h in range(1, 25)}
    assert all(r["time"].endswith("Z") for r in rows)
    assert len(window_files(folder, window)) == 24


def test_an_offset_moves_the_window_back(tmp_path: Path) -> None:
    folder = _collected(tmp_path)
    window = rolling(NOW, timedelta(hours=2), timedelta(hours=24))
    rows = open_window(folder, label="p", window=window, scratch=tmp_path / "s").read(["correlationid"])
    assert sorted(set(rows["correlationid"].to_pylist())) == ["req-25", "req-26"]


def test_the_window_end_is_exclusive(tmp_path: Path) -> None:
    folder = write_collected(tmp_path / "c", [(NOW - HOUR, "in", [{"x": 1}]), (NOW, "at-end", [{"x": 2}])])
    rows = open_window(folder, label="p", window=TimeWindow(NOW - 2 * HOUR, NOW), scratch=tmp_path / "s")
    assert rows.read(["correlationid"])["correlationid"].to_pylist() == ["in"]


def test_values_of_mixed_types_are_kept_as_text(tmp_path: Path) -> None:
    folder = write_collected(tmp_path / "c", [(NOW - HOUR, "r1", [{"x": 1.5}, {"x": "oops"}, {"x": None}])])
    table = open_window(folder, label="p", window=WHOLE, scratch=tmp_path / "s")
    assert table.read(["x"])["x"].to_pylist() == ["1.5", "oops", None]


def test_default_window_sizes_follow_the_recurrence() -> None:
    class Trigger:
        def __init__(self, frequency: str, interval: int) -> None:
            self.frequency, self.interval = frequency, interval

    assert production_size_for(Trigger("hour", 3)) == timedelta(days=1)
    assert production_size_for(Trigger("day", 2)) == timedelta(days=2)
    assert production_size_for(Trigger("week", 1)) == timedelta(days=7)
    assert production_size_for(Trigger("month", 2)) == timedelta(days=60)
    assert production_size_for(None) == timedelta(days=7)


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_files_and_folders_of_each_format(tmp_path: Path, suffix: str) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for part in range(2):
        rows = [{"a": part * 10 + i, "b": f"t{i}"} for i in range(3)]
        path = folder / f"part-{part}.{suffix}"
        if suffix == "csv":
            path.write_text("a,b\n" + "".join(f"{r['a']},{r['b']}\n" for r in rows))
        elif suffix == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            import pyarrow as pa

            pq.write_table(pa.Table.from_pylist(rows), path)
    table = open_window(folder, label="r", window=WHOLE, scratch=tmp_path / "s")
    assert table.num_rows == 6 and sorted(table.read(["a"])["a"].to_pylist()) == [0, 1, 2, 10, 11, 12]
    single = open_window(folder / f"part-1.{suffix}", label="r", window=WHOLE, scratch=tmp_path / "t")
    assert single.read(["b"])["b"].to_pylist() == ["t0", "t1", "t2"]


def test_an_mltable_folder_names_its_files(tmp_path: Path) -> None:
    folder = tmp_path / "table"
    (folder / "files").mkdir(parents=True)
    (folder / "files" / "one.csv").write_text("a\n1\n2\n")
    (folder / "files" / "two.csv").write_text("a\n3\n")
    (folder / "MLTable").write_text("paths:\n  - pattern: ./files/*.csv\ntransformations:\n  - read_delimited:\n"
                                    "      delimiter: ','\n")
    table = open_window(folder, label="r", window=WHOLE, scratch=tmp_path / "s")
    assert sorted(table.read(["a"])["a"].to_pylist()) == [1, 2, 3]


def test_a_missing_path_and_a_mixed_folder_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="does not exist"):
        open_window(tmp_path / "nope", label="drift.reference_data", window=WHOLE, scratch=tmp_path / "s")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.csv").write_text("a\n1\n")
    (tmp_path / "m" / "b.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(InvalidRequestError, match="mixes data formats"):
        open_window(tmp_path / "m", label="r", window=WHOLE, scratch=tmp_path / "s")


def test_a_non_collector_asset_is_filtered_by_its_timestamp_column(tmp_path: Path) -> None:
    import pyarrow as pa

    moments = [NOW - timedelta(days=d) for d in (10, 3, 1)]
    pq.write_table(pa.table({"ts": pa.array(moments, pa.timestamp("us", tz="UTC")), "v": [1, 2, 3]}),
                   tmp_path / "d.parquet")
    window = rolling(NOW, timedelta(days=7), timedelta(0))
    table = open_window(tmp_path / "d.parquet", label="p", window=window, scratch=tmp_path / "s",
                        timestamp_column="ts")
    assert table.read(["v"])["v"].to_pylist() == [2, 3]
    whole = open_window(tmp_path / "d.parquet", label="p", window=window, scratch=tmp_path / "t")
    assert whole.num_rows == 3 and "whole asset" in whole.notes[0]


def test_arrow_columns_become_numpy_from_their_buffers_without_pandas(tmp_path: Path) -> None:
    import subprocess
    import sys

    import numpy as np
    import pyarrow as pa

    from mlyard.monitoring.columns import to_numpy, valid_mask

    sliced = pa.chunked_array([pa.array([1.5, None, 3.0]), pa.array([4.0, 5.0])]).slice(1)
    assert np.array_equal(to_numpy(sliced), [np.nan, 3.0, 4.0, 5.0], equal_nan=True)
    assert valid_mask(sliced).tolist() == [False, True, True, True]
    ints = pa.chunked_array([pa.array(list(range(12)), pa.int32()).slice(3), pa.array([None, 1], pa.int32())])
    assert np.array_equal(to_numpy(ints), [*range(3, 12), np.nan, 1.0], equal_nan=True)
    assert np.array_equal(to_numpy(pa.array([True, False, None])), [1.0, 0.0, np.nan], equal_nan=True)
    pq.write_table(pa.table({"x": [1.0, None, 2.0]}), tmp_path / "x.parquet")
    code = ("import sys, pyarrow.parquet as pq; from mlyard.monitoring.columns import to_numpy; "
            f"print(to_numpy(pq.ParquetFile({str(tmp_path / 'x.parquet')!r}).read()['x']).tolist(), "
            "'pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[1.0, nan, 2.0] False"


def test_a_csv_is_streamed_and_read_whole_when_a_later_block_changes_a_type(tmp_path: Path) -> None:
    rows = ["a,b", *(f"{i},x{i % 3}" for i in range(300_000)), "1.5,y"]  # several 1 MB blocks, then a decimal
    (tmp_path / "big.csv").write_text("\n".join(rows) + "\n")
    table = open_window(tmp_path / "big.csv", label="r", window=WHOLE, scratch=tmp_path / "s")
    column = table.read(["a"])["a"]
    assert table.num_rows == 300_001 and str(column.type) == "double" and column[-1].as_py() == 1.5
