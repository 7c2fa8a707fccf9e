"""Scoring scripts (Azure's §7.3): init() once per worker, run(mini_batch) with absolute paths, failures isolated."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.serving.batch.conftest import COUNTING_SCRIPT, run_batch, write_inputs, write_script

RAISES_ON_THREE = COUNTING_SCRIPT + '''
def misbehave(path):
    if path.name in ("part-002.csv", "part-005.csv", "part-011.csv"):
        raise ValueError(f"cannot score {path.name}")
'''

ISOLATED = '''
def misbehave(path):
    import sys
    assert "numpy" not in sys.modules
    import importlib.util
    assert importlib.util.find_spec("mlyard.serving.worker") is None, "the rest of mlyard is importable"
'''


def _three_bad(tmp_path: Path, threshold: int, *extra: str) -> tuple[int, str, str, dict[str, object], list[str]]:
    write_inputs(tmp_path / "data", 12)
    code = write_script(tmp_path / "code", RAISES_ON_THREE)
    run = run_batch("--input", tmp_path / "data", "--code", code, "--scoring-script", "score.py",
                    "--mini-batch-size", "4", "--max-retries", "1", "--error-threshold", str(threshold),
                    "--max-concurrency-per-instance", "2", "--report", tmp_path / "report.json", *extra,
                    output=tmp_path / "score")
    lines = run.predictions() if (run.output / "predictions.csv").exists() else []
    return run.returncode, run.stdout, run.stderr, run.report(tmp_path / "report.json"), lines


def test_failing_files_within_the_threshold_are_named_exactly(tmp_path: Path) -> None:
    code, log, _, report, lines = _three_bad(tmp_path, threshold=5)
    assert code == 0
    failed = report["failed_files"]
    assert isinstance(failed, list)
    bad = ["part-002.csv", "part-005.csv", "part-011.csv"]
    assert sorted(Path(f["file"]).name for f in failed) == bad
    assert all("ValueError: cannot score" in f["reason"] and f["attempts"] == 3 for f in failed)
    good = [f"part-{n:03d}.csv" for n in range(12) if f"part-{n:03d}.csv" not in bad]
    assert sorted(line.split(",")[0] for line in lines) == good  # isolation kept every good file's row, once
    assert "Traceback" in log and "cannot score part-002.csv" in log  # run()'s failure is in the job log


def test_failing_files_past_the_threshold_fail_the_run(tmp_path: Path) -> None:
    code, _, stderr, report, lines = _three_bad(tmp_path, threshold=2)
    assert code == 1
    assert "more than error_threshold 2" in stderr and "Traceback" not in stderr
    assert all(name in stderr for name in ("part-002.csv", "part-005.csv", "part-011.csv"))
    assert report["state"] == "failed"
    assert lines == []  # a failed run writes no predictions file


def test_failed_mini_batches_past_their_threshold_fail_the_run(tmp_path: Path) -> None:
    code, _, stderr, report, _ = _three_bad(tmp_path, -1, "--mini-batch-error-threshold", "1")
    assert code == 1 and "more than mini_batch_error_threshold 1" in stderr
    assert report["state"] == "failed"


def test_engine_and_workers_import_only_the_standard_library(tmp_path: Path) -> None:
    """The engine and its workers run under a wrapper that starts Python without site-packages and keeps only the
    first PYTHONPATH entry: for the engine ``src``, for a worker the engine's private folder (MLYARD_BATCH_PYTHON)."""
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\ntouch "{tmp_path}/wrapper-ran"\nexport PYTHONPATH="${{PYTHONPATH%%:*}}"\n'
                       f'exec "{sys.executable}" -S "$@"\n')
    wrapper.chmod(0o755)
    write_inputs(tmp_path / "data", 3)
    code = write_script(tmp_path / "code", COUNTING_SCRIPT + ISOLATED)
    run = run_batch("--input", tmp_path / "data", "--code", code, "--scoring-script", "score.py",
                    output=tmp_path / "score", env={"MLYARD_BATCH_PYTHON": str(wrapper)}, python=str(wrapper))
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "wrapper-ran").exists()
    assert run.predictions() == ["part-000.csv,7", "part-001.csv,7", "part-002.csv,7"]


def test_summary_only_writes_to_azureml_bi_output_path_and_sees_the_model_dir(tmp_path: Path) -> None:
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "weights.txt").write_text("42")
    write_inputs(tmp_path / "data", 5)
    code = write_script(tmp_path / "code", '''
        import glob, os, pathlib

        def init():
            global weights
            folder = glob.glob(os.environ["AZUREML_MODEL_DIR"] + "/*/")[0]
            weights = pathlib.Path(folder, "weights.txt").read_text()
            pathlib.Path("init-ran").touch()  # the code folder is the working directory

        def run(mini_batch):
            out = pathlib.Path(os.environ["AZUREML_BI_OUTPUT_PATH"])
            for path in mini_batch:
                (out / (pathlib.Path(path).stem + ".txt")).write_text(weights + " " + os.environ["JOB_SETTING"])
            return mini_batch
        ''')
    run = run_batch("--input", tmp_path / "data", "--model", model, "--code", code, "--scoring-script", "score.py",
                    "--mini-batch-size", "2", "--output-action", "summary_only", output=tmp_path / "score",
                    env={"JOB_SETTING": "passed-through"})
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "score").iterdir()) == [f"part-{n:03d}.txt" for n in range(5)]
    assert (tmp_path / "score" / "part-000.txt").read_text() == "42 passed-through"
    assert (code / "init-ran").exists()


def test_dataframe_rows_are_appended_without_a_header(tmp_path: Path) -> None:
    write_inputs(tmp_path / "data", 3, rows=2)
    code = write_script(tmp_path / "code", '''
        import pandas as pd

        def run(mini_batch):
            return pd.concat([pd.read_csv(path).assign(source=path.rsplit("/", 1)[-1]) for path in mini_batch])
        ''')
    run = run_batch("--input", tmp_path / "data", "--code", code, "--scoring-script", "score.py",
                    "--mini-batch-size", "2", output=tmp_path / "score")
    assert run.returncode == 0, run.stderr
    assert run.predictions() == ["25,30000.0,paris,part-000.csv", "40,52000.5,oslo,part-000.csv",
                                 "41,52000.5,oslo,part-001.csv", "32,41000.0,paris,part-001.csv",
                                 "33,41000.0,paris,part-002.csv", "60,90000.0,rome,part-002.csv"]


def test_arguments_after_double_dash_are_the_scripts_argv(tmp_path: Path) -> None:
    write_inputs(tmp_path / "data", 2)
    code = write_script(tmp_path / "code", '''
        import argparse, os, sys

        def init():
            global label
            parser = argparse.ArgumentParser()
            parser.add_argument("--label")
            args, _ = parser.parse_known_args()  # as Azure's parallel examples read program_arguments
            label = f"{os.path.basename(sys.argv[0])} {args.label}"

        def run(mini_batch):
            return [label for _ in mini_batch]
        ''')
    run = run_batch("--input", tmp_path / "data", "--code", code, "--scoring-script", "score.py", "--logging-level",
                    "DEBUG", "--", "--label", "from-yaml", "--error_threshold", "5", output=tmp_path / "score")
    assert run.returncode == 0, run.stderr
    assert run.predictions() == ["score.py from-yaml", "score.py from-yaml"]


def test_init_failing_in_every_worker_fails_the_run(tmp_path: Path) -> None:
    write_inputs(tmp_path / "data", 4)
    code = write_script(tmp_path / "code", '''
        def init():
            raise RuntimeError("the model store is unreachable")

        def run(mini_batch):
            return mini_batch
        ''')
    run = run_batch("--input", tmp_path / "data", "--code", code, "--scoring-script", "score.py",
                    "--mini-batch-size", "1", "--max-concurrency-per-instance", "2", output=tmp_path / "score")
    assert run.returncode == 1
    assert "init() failed in every worker" in run.stderr and "the model store is unreachable" in run.stderr
    assert "Traceback" not in run.stderr and "Traceback" in run.stdout


def test_bad_arguments_exit_1_with_a_reason(tmp_path: Path) -> None:
    run = run_batch("--input", tmp_path, "--mini-batch-size", "0", output=tmp_path / "score")
    assert run.returncode == 1 and "--mini-batch-size" in run.stderr and "Traceback" not in run.stderr
    run = run_batch("--input", tmp_path, "--scoring-script", "score.py", output=tmp_path / "score")
    assert run.returncode == 1 and "needs --code" in run.stderr
