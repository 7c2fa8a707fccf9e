"""Worker side: what scores one mini-batch, a scoring script (Azure's §7.3) or an MLflow model without one (§7.4).

Both write the rows of a successful attempt to ``part + ".tmp"`` and rename it to ``part`` before answering, so the
engine only ever sees whole part files. Standard library only at module top (see the package's docstring).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlyard.serving.batch import tables

log = logging.getLogger("mlyard.serving.batch.worker")
REASON_MAX = 500  # characters of one file's failure reason kept in the report


class SetupError(Exception):
    """The scorer cannot start: the script or the model is missing or unusable; the message says what to fix."""


@dataclass
class Outcome:
    """What one mini-batch attempt produced: rows written, and files that failed on their own (no-code only)."""

    rows: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


class Scorer(Protocol):
    """Scores mini-batches inside a worker: ``load`` once, then ``score`` per mini-batch."""

    def load(self) -> None:
        """Run the script's ``init()`` or load the model."""

    def score(self, files: list[str], part: str | None) -> Outcome:
        """Score ``files``; write the rows to ``part`` (None: summary_only, nothing is written)."""


def disable_tracing() -> None:
    """MLflow enables tracing when it loads a model; its default store is an mlflow.db in the working directory."""
    if "mlflow" in sys.modules and not os.environ.get("MLFLOW_TRACKING_URI"):
        import mlflow.tracing

        mlflow.tracing.disable()


class ScriptScorer:
    """Imports a scoring script from the code folder (on ``sys.path``, the working directory), ``init()`` once.

    ``arguments`` become the script's ``sys.argv[1:]`` (``sys.argv[0]`` is the script's path).
    """

    def __init__(self, code: Path, script: str, arguments: list[str] | None = None) -> None:
        self.code = code.resolve()
        self.script = script
        self.arguments = arguments or []
        self._run: Callable[[list[str]], Any] | None = None

    def load(self) -> None:
        path = self.code / self.script
        if not path.is_file():
            raise SetupError(f"scoring script {self.script} not found in the code folder {self.code}")
        if str(self.code) not in sys.path:
            sys.path.insert(0, str(self.code))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise SetupError(f"scoring script {self.script} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        sys.argv = [str(path), *self.arguments]  # a parallel step's program_arguments, read in init()
        spec.loader.exec_module(module)
        run = getattr(module, "run", None)
        if not callable(run):
            raise SetupError(f"scoring script {self.script} has no run(mini_batch) function")
        disable_tracing()
        init = getattr(module, "init", None)
        if callable(init):
            init()
        disable_tracing()  # init() may have imported mlflow itself
        self._run = run

    def score(self, files: list[str], part: str | None) -> Outcome:
        assert self._run is not None, "score() before load()"
        result = self._run(list(files))
        if part is None:
            return Outcome(rows=_count(result))
        if result is None:
            raise TypeError("run() returned None; with output_action append_row it must return a DataFrame or a "
                            "list (one element or row per scored item)")
        with open(part + ".tmp", "w", encoding="utf-8", newline="") as handle:
            rows = tables.write_rows(result, handle)
        os.replace(part + ".tmp", part)
        return Outcome(rows=rows)


def _count(result: Any) -> int:
    try:
        return len(result)
    except TypeError:
        return 0 if result is None else 1


class MlflowScorer:
    """Loads an MLflow model's pyfunc flavor once and calls ``predict`` once per file.

    Args:
        model_path: the folder holding ``MLmodel``.
        check_requirements: let MLflow compare the model's requirements with the installed packages and warn. The
            comparison takes about half a second and says the same in every worker, so one worker makes it.
    """

    def __init__(self, model_path: Path, check_requirements: bool = True) -> None:
        self.model_path = model_path
        self.check_requirements = check_requirements
        self.model: Any = None
        self.columns: list[tuple[str, str, bool]] | None = None
        self.fast_csv = False
        self._extra_told = False

    def load(self) -> None:
        if not (self.model_path / "MLmodel").is_file():
            raise SetupError(f"no MLflow model at {self.model_path}: the folder has no MLmodel file (give --model "
                             "the folder that holds MLmodel, or a scoring script)")
        import mlflow.pyfunc

        if not os.environ.get("MLFLOW_TRACKING_URI"):
            import mlflow.tracing

            mlflow.tracing.disable()
        self.model = mlflow.pyfunc.load_model(str(self.model_path), suppress_warnings=not self.check_requirements)
        self.columns = tables.signature_columns(self.model)
        self.fast_csv = tables.has_pyarrow()
        log.debug("model loaded from %s; signature columns: %s; pyarrow CSV: %s", self.model_path, self.columns,
                  self.fast_csv)

    def score(self, files: list[str], part: str | None) -> Outcome:
        outcome = Outcome()
        handle = open(part + ".tmp", "w", encoding="utf-8", newline="") if part is not None else None
        try:
            for path in files:
                try:
                    frame = self._predict(path)
                except Exception as exc:
                    reason = str(exc) if isinstance(exc, tables.FileError) else f"{type(exc).__name__}: {exc}"
                    log.error("%s failed: %s", path, reason, exc_info=not isinstance(exc, tables.FileError))
                    outcome.failed.append((path, reason[:REASON_MAX]))
                    continue
                if handle is not None:
                    frame.to_csv(handle, header=False, index=False)
                outcome.rows += len(frame)
        finally:
            if handle is not None:
                handle.close()
        if part is not None:
            os.replace(part + ".tmp", part)
        return outcome

    def _predict(self, path: str) -> Any:
        frame = tables.read_frame(path, self.fast_csv)
        if self.columns is not None:
            width = len(frame.columns)
            frame = tables.apply_signature(frame, self.columns)
            if len(frame.columns) < width and not self._extra_told:
                self._extra_told = True
                log.info("columns the model's signature does not name are left out of predict() (%s has %d)", path,
                         width - len(frame.columns))
        prediction = self.model.predict(frame)
        return tables.prediction_frame(prediction, len(frame), os.path.basename(path))
