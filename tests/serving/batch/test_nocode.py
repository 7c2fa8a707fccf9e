"""No-code MLflow batch scoring (Azure's §7.4): one ``row,prediction,file`` line per input row, predict per file."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from tests.serving.batch.conftest import BatchRun, run_batch, write_inputs
from tests.serving.conftest import SavedModel


@pytest.fixture(scope="module")
def mixed_run(sklearn_model: SavedModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[BatchRun, Path]:
    """Five CSV, four Parquet and one CSV whose age column holds text, scored by two workers, 3 files a batch."""
    base = tmp_path_factory.mktemp("mixed")
    data = base / "data"
    write_inputs(data, 5, rows=7, kind="csv", prefix="a")
    write_inputs(data, 4, rows=5, kind="parquet", prefix="b")
    (data / "c-bad.csv").write_text("age,income,city\n31,100.0,oslo\nthirty,200.0,rome\n")
    (data / ".hidden.avro").write_text("skipped")
    (data / "nested").mkdir()
    (data / "nested" / "x.avro").write_text("not explored")
    run = run_batch("--input", data, "--model", sklearn_model.path, "--mini-batch-size", "3",
                    "--max-concurrency-per-instance", "2", "--progress", base / "progress.json",
                    "--report", base / "report.json", output=base / "score")
    return run, base


def test_one_row_per_input_row_equal_to_predict(mixed_run: tuple[BatchRun, Path], sklearn_model: SavedModel) -> None:
    run, base = mixed_run
    assert run.returncode == 0, run.stderr
    out = pd.read_csv(io.StringIO("\n".join(run.predictions())), names=["row", "prediction", "file"], header=None)
    expected = []
    for path in sorted((base / "data").iterdir()):
        if path.suffix not in (".csv", ".parquet") or path.name == "c-bad.csv":
            continue
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        for row, value in enumerate(sklearn_model.pyfunc.predict(frame)):
            expected.append((row, int(value), path.name))
    assert list(out.itertuples(index=False, name=None)) == expected


def test_a_cast_error_fails_only_that_file_naming_the_column(mixed_run: tuple[BatchRun, Path]) -> None:
    run, base = mixed_run
    report = run.report(base / "report.json")
    assert report["state"] == "completed"
    [failure] = report["failed_files"]
    assert failure["file"] == str((base / "data" / "c-bad.csv").resolve())
    assert "'age'" in failure["reason"] and "long" in failure["reason"]
    assert "c-bad.csv" in run.stdout  # the error table of the final summary


def test_progress_file_counts_the_run(mixed_run: tuple[BatchRun, Path]) -> None:
    run, base = mixed_run
    progress = run.report(base / "progress.json")
    assert progress["state"] == "completed"
    assert progress["mini_batches"] == {"total": 4, "done": 4, "failed": 1, "retried": 0}
    assert progress["files"] == {"total": 10, "done": 10, "failed": 1}
    assert progress["rows"] == 5 * 7 + 4 * 5
    assert "mini-batches 4/4 done, 1 failed" in run.stdout
    assert not (run.output / ".mlyard-parts").exists()


def test_unsupported_file_type_is_refused_before_any_work(sklearn_model: SavedModel, tmp_path: Path) -> None:
    write_inputs(tmp_path / "data", 2)
    (tmp_path / "data" / "x.avro").write_text("avro")
    (tmp_path / "data" / "y.avro").write_text("avro")
    run = run_batch("--input", tmp_path / "data", "--model", sklearn_model.path, output=tmp_path / "score")
    assert run.returncode == 1
    assert "File type 'avro' is not supported: " in run.stderr
    assert "x.avro" in run.stderr and "y.avro" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "score" / "predictions.csv").exists()
    assert "worker" not in run.stdout


def test_empty_input_succeeds_with_an_empty_output(sklearn_model: SavedModel, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    run = run_batch("--input", tmp_path / "data", "--model", sklearn_model.path, output=tmp_path / "score")
    assert run.returncode == 0, run.stderr
    assert run.predictions() == []
    assert "holds no files" in run.stdout


def test_a_single_file_input_and_relative_paths(sklearn_model: SavedModel, tmp_path: Path) -> None:
    [path] = write_inputs(tmp_path, 1, rows=4, kind="parquet")
    run = run_batch("--input", path.name, "--model", sklearn_model.path, "--output-file-name", "out.csv",
                    output=Path("score"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [line.split(",")[0] for line in run.predictions("out.csv")] == ["0", "1", "2", "3"]
