"""Batch scoring: ``python -m mlyard.serving.batch`` against one process looping ``predict``, and ``mlflow models
predict``, on the same files with the same model.

    .venv/bin/python benchmarks/batch.py --quick             # a check: 1 round, 10 files of 2,000 rows
    .venv/bin/python benchmarks/batch.py                     # 5 rounds, 100 files of 10,000 rows (make bench)

The model is the attrition pipeline of ``serving.py`` (one-hot encoding of 7 of 30 columns + a 200-tree random
forest), saved with ``mlflow.sklearn.save_model``; the data are ``--batch-files`` CSV files of ``--batch-rows`` rows
from ``mlyard.datasets.attrition`` (35 columns, 4 of them outside the signature). Each round runs, in this order,
each as a fresh process timed from spawn to exit (model load included):

* mlyard: no-code scoring with ``--instance-count 1 --max-concurrency-per-instance WORKERS`` and
  ``--mini-batch-size 1``, writing ``predictions.csv``;
* the loop (floor and ceiling): one process that loads the model, then per file reads it (pandas, pyarrow engine),
  calls ``predict`` and appends ``row,prediction,file`` CSV rows: what the engine does, without workers;
* MLflow: ``mlflow models predict -m <model> -i <all files in one CSV> -t csv -o <out> --env-manager local``.

And the per-mini-batch overhead: the engine with one worker over ``--batch-tiny`` one-row files (one file per
mini-batch) against the loop over the same files; the difference divided by the file count is what a mini-batch
costs beyond reading, predicting and writing it. The floor: the loop over one one-row file (interpreter start,
imports, model load), which every worker pays as well; it bounds what any number of workers can gain.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness import Comparison, alternate, markdown_table, print_table
from procs import PYTHON, clean_env, package_version

HERE = Path(__file__).resolve().parent
Progress = Callable[[str], None]
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

LOOP = '''\
import os, sys
import mlflow.pyfunc, mlflow.tracing
import numpy as np, pandas as pd
mlflow.tracing.disable()
model = mlflow.pyfunc.load_model(sys.argv[1])
folder = sys.argv[2]
with open(sys.argv[3], "w", newline="") as out:
    for name in sorted(os.listdir(folder)):
        frame = pd.read_csv(os.path.join(folder, name), engine="pyarrow")
        prediction = model.predict(frame)
        pd.DataFrame({"row": np.arange(len(frame)), "prediction": prediction, "file": name}).to_csv(
            out, header=False, index=False)
'''


def _data(base: Path, files: int, rows: int, tiny: int) -> tuple[Path, Path, Path, Path]:
    """The model, the folder of ``files`` CSV files, the same rows in one CSV, and ``tiny`` one-row files."""
    import mlflow.tracing
    from serving import _attrition_model

    from mlyard.datasets import attrition

    mlflow.tracing.disable()
    model = base / "model"
    _attrition_model(model)
    data, tiny_data, whole = base / "data", base / "tiny", base / "all.csv"
    data.mkdir()
    tiny_data.mkdir()
    columns = [c for c in attrition.COLUMNS if c != "Attrition"]
    frames = []
    for number in range(files):
        frame = attrition.generate(rows=rows, seed=1000 + number)[columns]
        frame.to_csv(data / f"part-{number:05d}.csv", index=False)
        frames.append(frame)
    import pandas as pd

    pd.concat(frames).to_csv(whole, index=False)
    for number in range(tiny):
        frames[0].iloc[[number % rows]].to_csv(tiny_data / f"row-{number:05d}.csv", index=False)
    return model, data, whole, tiny_data


def _timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env={**clean_env(), **MLFLOW_ENV}, capture_output=True, text=True,
                          check=False, timeout=1800)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:6])} ... exited {done.returncode}: {(done.stderr or done.stdout)[-2000:]}")
    return elapsed


class Sides:
    """The three commands of a round, over one data folder."""

    def __init__(self, base: Path, model: Path, workers: int) -> None:
        self.base, self.model, self.workers = base, model, workers
        (base / "loop.py").write_text(LOOP)
        (base / "cwd").mkdir(exist_ok=True)  # MLflow may write an mlflow.db into the working directory

    def engine(self, data: Path, output: str = "score", workers: int | None = None) -> float:
        return _timed([PYTHON, "-m", "mlyard.serving.batch", "--input", str(data), "--output",
                       str(self.base / output), "--model", str(self.model), "--mini-batch-size", "1",
                       "--max-concurrency-per-instance", str(workers or self.workers), "--logging-level", "warning"],
                      self.base / "cwd")

    def loop(self, data: Path, output: str = "loop.csv") -> float:
        return _timed([PYTHON, str(self.base / "loop.py"), str(self.model), str(data), str(self.base / output)],
                      self.base / "cwd")

    def mlflow(self, whole: Path) -> float:
        return _timed([PYTHON, "-m", "mlflow", "models", "predict", "-m", str(self.model), "-i", str(whole), "-t",
                       "csv", "-o", str(self.base / "mlflow.json"), "--env-manager", "local"], self.base / "cwd")

    def check_same(self) -> None:
        """The engine's predictions.csv holds the loop's lines, in the same order."""
        engine = (self.base / "score" / "predictions.csv").read_text().splitlines()
        loop = (self.base / "loop.csv").read_text().splitlines()
        if engine != loop:
            first = next((i for i, (a, b) in enumerate(zip(engine, loop, strict=False)) if a != b), -1)
            raise RuntimeError(f"the engine and the loop disagree: {len(engine)} and {len(loop)} lines, first "
                               f"difference at line {first}")


def run(rounds: int, progress: Progress, opts: argparse.Namespace) -> list[Comparison]:
    base = Path(tempfile.mkdtemp(prefix="mlyard-bench-batch-"))
    try:
        model, data, whole, tiny = _data(base, opts.files, opts.rows, opts.tiny)
        one = base / "one"
        one.mkdir()
        shutil.copy(next(tiny.iterdir()), one)
        sides = Sides(base, model, opts.workers)
        total = opts.files * opts.rows
        mlflow_s: list[float] = []
        engine_s, loop_s = alternate(
            rounds, lambda: sides.engine(data), lambda: sides.loop(data),
            after=lambda index: mlflow_s.append(sides.mlflow(whole)),
            progress=lambda line: progress(f"engine vs loop {line}; mlflow {mlflow_s[-1] if mlflow_s else 0:.2f} s"))
        sides.check_same()
        tiny_engine, tiny_loop = alternate(rounds, lambda: sides.engine(tiny, "tiny-score", workers=1),
                                           lambda: sides.loop(tiny, "tiny.csv"),
                                           progress=lambda line: progress(f"tiny files, 1 worker {line}"))
        start_s = [sides.loop(one) for _ in range(3)]  # start + imports + load: what no worker count divides
    finally:
        shutil.rmtree(base, ignore_errors=True)
    mlflow_s = mlflow_s[1:]  # the warm-up round's
    med = statistics.median
    per_batch_ms = (med(tiny_engine) - med(tiny_loop)) / opts.tiny * 1000
    start, loop = med(start_s), med(loop_s)
    best = loop / (start + (loop - start) / opts.workers)
    mlyard = (f"mlyard {package_version('mlyard')} python -m mlyard.serving.batch, no-code, {opts.workers} workers, "
              "mini-batch size 1")
    workload = (f"attrition pipeline (one-hot 7 of 30 columns + 200-tree random forest); {opts.files} CSV files of "
                f"{opts.rows:,} rows ({total:,} rows), each side a fresh process timed spawn to exit, model load "
                "included")
    speedups = [b / a for a, b in zip(engine_s, loop_s, strict=True)]
    overhead = (f"per mini-batch overhead: the engine with 1 worker over {opts.tiny} one-row files "
                f"{med(tiny_engine):.2f} s against the loop over them {med(tiny_loop):.2f} s: about "
                f"{per_batch_ms:.1f} ms per mini-batch beyond read + predict + write (the engine's own start included)")
    floor = (f"floor: a process that starts, imports and loads the model and scores one row takes {start:.2f} s; each "
             f"worker pays it too, so {opts.workers} workers can at best be {best:.2f}x the loop on this workload")
    return [
        Comparison(name="Batch attrition: engine vs one-process predict loop", subject=mlyard,
                   peer="one Python process: load, then per file read_csv(pyarrow) + predict + to_csv",
                   workload=workload, subject_s=engine_s, peer_s=loop_s,
                   subject_extra=f"{total / med(engine_s):,.0f} rows/s; {med(speedups):.2f}x the loop "
                                 f"[{min(speedups):.2f} - {max(speedups):.2f}]",
                   peer_extra=f"{total / med(loop_s):,.0f} rows/s", notes=[overhead, floor]),
        Comparison(name="Batch attrition: engine vs mlflow models predict", subject=mlyard,
                   peer=f"mlflow {package_version('mlflow')} models predict -t csv --env-manager local, one CSV of "
                        "all rows", workload=workload, subject_s=engine_s, peer_s=mlflow_s,
                   subject_extra=f"{total / med(engine_s):,.0f} rows/s",
                   peer_extra=f"{total / med(mlflow_s):,.0f} rows/s"),
    ]


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-files", dest="files", type=int, default=100, help="batch: CSV files (default 100)")
    parser.add_argument("--batch-rows", dest="rows", type=int, default=10_000,
                        help="batch: rows per file (default 10000)")
    parser.add_argument("--batch-tiny", dest="tiny", type=int, default=200,
                        help="batch: one-row files of the overhead measurement (default 200)")
    parser.add_argument("--batch-workers", dest="workers", type=int, default=2, help="batch: workers (default 2)")


def main(argv: list[str] | None = None) -> int:
    from machine import describe, summary_line
    from rich.console import Console

    parser = argparse.ArgumentParser(description="mlyard batch scoring against a predict loop and mlflow.")
    parser.add_argument("--quick", action="store_true", help="1 round, 10 files of 2,000 rows, 50 tiny files")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--results", type=Path, default=HERE / ".results")
    add_options(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.files, args.rows, args.tiny = 1, 10, 2_000, 50
    console = Console(width=max(Console().width, 160))
    info = describe()
    console.print(f"[bold]batch[/bold]: 1 warm-up + {args.rounds} alternating rounds · {summary_line(info)}")
    results = run(args.rounds, lambda line: console.print(f"  batch {line}", highlight=False, markup=False), args)
    print_table(console, results, title=f"mlyard batch scoring vs peers · {info['date']} · commit {info['commit']}")
    for c in results:
        console.print("; ".join([f"• {c.name}: mlyard = {c.subject}", f"peer = {c.peer}", c.workload, *c.notes]),
                      highlight=False, markup=False)
    args.results.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "results": [c.to_dict() for c in results]}
    (args.results / "batch.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results / "batch.md").write_text(f"{summary_line(info)}\n\n{markdown_table(results)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
