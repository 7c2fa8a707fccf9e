"""Running the real ``python -m mlyard.serving.batch`` on small folders of files.

``sklearn_model`` (from ``tests/serving/conftest.py``) is the MLflow model of the no-code tests. ``write_inputs``
writes its (age, income, city) rows as CSV or Parquet files; ``write_script`` puts a scoring script in a code folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.serving.conftest import COLUMNS, ROWS, SRC

RUN_TIMEOUT_S = 120


@dataclass
class BatchRun:
    """A finished run: exit status, the job log (stdout), the failure paragraph (stderr), the output folder."""

    returncode: int
    stdout: str
    stderr: str
    output: Path

    def predictions(self, name: str = "predictions.csv") -> list[str]:
        return (self.output / name).read_text().splitlines()

    def report(self, path: Path) -> dict[str, Any]:
        return json.loads(path.read_text())  # type: ignore[no-any-return]


def run_batch(*args: str | Path, output: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
              python: str = sys.executable) -> BatchRun:
    """Run the engine to completion with ``--output output`` and ``args`` (relative paths: to ``cwd``)."""
    full_env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    done = subprocess.run([python, "-m", "mlyard.serving.batch", "--output", str(output), *map(str, args)],
                          capture_output=True, text=True, env=full_env, timeout=RUN_TIMEOUT_S, check=False, cwd=cwd)
    return BatchRun(done.returncode, done.stdout, done.stderr, output if cwd is None else cwd / output)


def write_inputs(folder: Path, count: int, rows: int = 6, kind: str = "csv", prefix: str = "part") -> list[Path]:
    """``count`` files of ``rows`` rows (cycling through ROWS), ``<prefix>-000.<kind>`` on."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        frame = pd.DataFrame([ROWS[(number + i) % len(ROWS)] for i in range(rows)], columns=COLUMNS)
        frame["age"] += number  # each file differs
        path = folder / f"{prefix}-{number:03d}.{kind}"
        if kind == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        paths.append(path)
    return paths


def write_script(folder: Path, source: str, name: str = "score.py") -> Path:
    """A code folder holding ``name`` with ``source`` (dedented)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(source))
    return folder


# A scoring script without heavy imports: one row per file, "<name>,<lines>", and a hook for each test's behaviour.
COUNTING_SCRIPT = '''
import os, pathlib

def init():
    pass

def run(mini_batch):
    rows = []
    for path in mini_batch:
        assert os.path.isabs(path), path
        misbehave(pathlib.Path(path))
        rows.append(f"{os.path.basename(path)},{len(pathlib.Path(path).read_text().splitlines())}")
    return rows

'''
